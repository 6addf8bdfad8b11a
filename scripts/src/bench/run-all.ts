import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";

/** `npm run bench`: runs every `*-bench.js` in this folder in turn (or the ones named on the command line). */
const here = new URL(".", import.meta.url).pathname;
const wanted = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((f) => f.endsWith("-bench.js"))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)));
let failed = 0;
for (const b of benches) {
  console.log(`\n== ${b}`);
  const r = spawnSync(process.execPath, [`${here}${b}`], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
