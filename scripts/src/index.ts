export * from "./simulator/addresses.js";
export * from "./simulator/catalog.js";
export * from "./simulator/cli.js";
export * from "./simulator/device.js";
export * from "./simulator/fleet.js";
export * from "./simulator/image.js";
