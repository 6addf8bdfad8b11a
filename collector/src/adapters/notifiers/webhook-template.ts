import type { Alert, AlertNotification } from "@polyfleet/shared";

/** The object a webhook template's `{{path}}` placeholders are resolved against. */
export interface WebhookTemplateContext {
  v: 1;
  groupKey: string;
  reason: AlertNotification["reason"];
  escalationLevel: number;
  ts: number;
  alertIds: string[];
  notification: AlertNotification;
  alerts: readonly Alert[];
  /** The first alert (shortcut for `alerts.0`). */
  alert: Alert | undefined;
  count: number;
  notifier: string;
}

export function webhookTemplateContext(
  notifier: string,
  n: AlertNotification,
  alerts: readonly Alert[],
): WebhookTemplateContext {
  return {
    ...n,
    notification: n,
    alerts,
    alert: alerts[0],
    count: alerts.length,
    notifier,
  };
}

/** The default body: the notification with its alerts. */
export function defaultWebhookBody(n: AlertNotification, alerts: readonly Alert[]): string {
  return JSON.stringify({ ...n, alerts });
}

/** Resolves a dotted path (`alerts.0.summary`) in a value; undefined when any step is missing. */
export function resolvePath(value: unknown, path: string): unknown {
  let cur: unknown = value;
  for (const key of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (!Object.hasOwn(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/**
 * Fills `{{path}}` placeholders of a JSON template. Inside a JSON string literal the value is inserted
 * JSON-escaped (objects as their escaped JSON text, missing values as nothing); outside a string it is
 * inserted as a JSON value (`null` when missing). So `{"text": "{{alert.summary}}", "alerts": {{alerts}}}`
 * stays valid JSON whatever the values contain.
 */
export function renderWebhookTemplate(template: string, ctx: unknown): string {
  let out = "";
  let inString = false;
  let i = 0;
  while (i < template.length) {
    if (template.startsWith("{{", i)) {
      const end = template.indexOf("}}", i + 2);
      if (end !== -1) {
        const value = resolvePath(ctx, template.slice(i + 2, end).trim());
        out += inString ? escapeInString(value) : asJsonValue(value);
        i = end + 2;
        continue;
      }
    }
    const ch = template.charAt(i);
    if (ch === "\\" && inString) {
      out += template.slice(i, i + 2);
      i += 2;
      continue;
    }
    if (ch === '"') inString = !inString;
    out += ch;
    i += 1;
  }
  return out;
}

function asJsonValue(value: unknown): string {
  return value === undefined ? "null" : (JSON.stringify(value) ?? "null");
}

function escapeInString(value: unknown): string {
  if (value === undefined || value === null) return "";
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? "");
  return JSON.stringify(text).slice(1, -1);
}
