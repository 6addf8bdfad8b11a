export * from "./email-message.js";
export * from "./email-notifier.js";
export * from "./mqtt-alert-notifier.js";
export * from "./notifier-support.js";
export * from "./smtp-client.js";
export * from "./sse-hub.js";
export * from "./webhook-notifier.js";
export * from "./webhook-template.js";
