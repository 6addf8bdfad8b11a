#!/bin/sh
# Installs the npm dependencies (and builds, through the root `prepare` script) when node_modules is
# missing or older than package-lock.json; otherwise only rebuilds what changed.
set -eu
cd "$(dirname "$0")/.."
node -e 'const [maj]=process.versions.node.split(".").map(Number); if (maj < 20) { console.error("polyfleet needs Node.js >= 20, this is " + process.version); process.exit(1) }'
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm 11 behind a registry proxy leaves other platforms' optional packages (biome, rollup, esbuild
  # binaries) out of package-lock.json and `npm ci` then refuses the lock (npm/cli#9846, #4828).
  # `npm install` installs the same locked versions, so it is the fallback.
  npm ci --no-audit --no-fund || npm install --no-audit --no-fund
else
  npx tsc -b
fi
