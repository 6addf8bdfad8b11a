/** Time and timers, injected so core logic and schedulers are tested without waiting (defined in shared). */
export { type Clock, SYSTEM_CLOCK, type TimerHandle } from "@polyfleet/shared";
