#!/bin/sh
# Installs the npm dependencies (and builds, through the root `prepare` script) when node_modules is
# missing or older than package-lock.json; otherwise only rebuilds what changed.
set -eu
cd "$(dirname "$0")/.."
node -e 'const [maj]=process.versions.node.split(".").map(Number); if (maj < 20) { console.error("polyfleet needs Node.js >= 20, this is " + process.version); process.exit(1) }'
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npx tsc -b
fi
