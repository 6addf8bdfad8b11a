/** The metrics registry lives in shared (the collector uses it too). */
export { PromRegistry } from "@polyfleet/shared";
