import { PolyfleetError, type WindowSchedule } from "@polyfleet/shared";

const WEEK_MIN = 7 * 24 * 60;
const WEEKDAYS: Readonly<Record<string, number>> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };
const formatters = new Map<string, Intl.DateTimeFormat | null>();

function formatter(timezone: string): Intl.DateTimeFormat | null {
  let f = formatters.get(timezone);
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat("en-US", {
        timeZone: timezone,
        weekday: "short",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
      });
    } catch {
      f = null;
    }
    formatters.set(timezone, f);
  }
  return f;
}

/**
 * Minute of the week (0 = Sunday 00:00) of instant `at` on the wall clock of `timezone`, or undefined for
 * an unknown timezone. Uses Intl.DateTimeFormat, so daylight saving time follows the IANA database.
 */
export function localMinuteOfWeek(at: number, timezone: string): number | undefined {
  const f = formatter(timezone);
  if (f === null) return undefined;
  let day = -1;
  let hour = -1;
  let minute = -1;
  for (const p of f.formatToParts(at)) {
    if (p.type === "weekday") day = WEEKDAYS[p.value] ?? -1;
    else if (p.type === "hour") hour = Number(p.value);
    else if (p.type === "minute") minute = Number(p.value);
  }
  if (day < 0 || hour < 0 || minute < 0) return undefined;
  return day * 1440 + hour * 60 + minute;
}

/**
 * True when `at` falls inside the schedule. `once`: start <= at < end. `weekly`: on one of `days` from the
 * local `start` (HH:MM in `timezone`) for `durationMin` minutes of local wall-clock time, so a window may run
 * past midnight into the next day (Saturday 23:00 for 120 min covers Sunday 00:00-01:00). An unknown
 * timezone is never active (windowScheduleError reports it).
 */
export function isWindowActive(schedule: WindowSchedule, at: number): boolean {
  if (schedule.type === "once") return schedule.start <= at && at < schedule.end;
  const now = localMinuteOfWeek(at, schedule.timezone);
  if (now === undefined) return false;
  const [hh, mm] = schedule.start.split(":");
  const startOfDay = Number(hh) * 60 + Number(mm);
  for (const d of schedule.days) {
    const since = (((now - (d * 1440 + startOfDay)) % WEEK_MIN) + WEEK_MIN) % WEEK_MIN;
    if (since < schedule.durationMin) return true;
  }
  return false;
}

/** A PolyfleetError (POLYFLEET_ERR_BODY_INVALID) when the schedule cannot work: unknown timezone, end <= start. */
export function windowScheduleError(schedule: WindowSchedule): PolyfleetError | undefined {
  if (schedule.type === "once") {
    return schedule.end > schedule.start
      ? undefined
      : new PolyfleetError("POLYFLEET_ERR_BODY_INVALID", "schedule.end: must be after schedule.start");
  }
  return formatter(schedule.timezone) === null
    ? new PolyfleetError(
        "POLYFLEET_ERR_BODY_INVALID",
        `schedule.timezone: unknown timezone "${schedule.timezone}" (use an IANA name like Europe/Berlin)`,
      )
    : undefined;
}
