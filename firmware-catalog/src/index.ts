export * from "./catalog.js";
export * from "./compliance.js";
export * from "./resolve.js";
export * from "./sign.js";
export * from "./trust-state.js";
export * from "./verify.js";
export * from "./versions.js";
