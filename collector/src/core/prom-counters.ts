export { PromRegistry as PromCounters } from "@polyfleet/shared";
