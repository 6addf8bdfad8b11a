// Helpers that start the real servers integration tests run against, on ephemeral loopback ports.

export * from "./aedes.js";
export * from "./firmware.js";
export * from "./free-port.js";
export * from "./influxdb.js";
export * from "./mosquitto.js";
export * from "./postgres.js";
export * from "./smtp-sink.js";
export * from "./snmpd.js";
export * from "./test-collector.js";
