import { main } from "./simulator/cli.js";

/**
 * `npm start`: runs the system on embedded defaults. Until the agent and the collector land, that is the
 * simulated fleet, with a few faults so that there is something to see; extra arguments go to the simulator.
 */
const defaults = [
  "--devices",
  "24",
  "--subnet",
  "127.0.10.0/24",
  "--manifest",
  ".polyfleet/sim-manifest.json",
  "--fault",
  "cameraDown=1",
  "--fault",
  "sipUnregistered=1",
  "--fault",
  "highCpu=1",
];
const { mkdirSync } = await import("node:fs");
mkdirSync(".polyfleet", { recursive: true });
await main([...defaults, ...process.argv.slice(2)]);
