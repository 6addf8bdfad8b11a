// Helpers that start the real servers integration tests run against, on ephemeral loopback ports.

export * from "./aedes.js";
export * from "./free-port.js";
export * from "./mosquitto.js";
export * from "./snmpd.js";
export * from "./test-collector.js";
