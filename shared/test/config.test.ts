import { describe, expect, it } from "vitest";
import {
  AgentConfig,
  CollectorConfig,
  CredentialProfile,
  PolyfleetError,
  parseConfigText,
  SecretRef,
} from "../src/index.js";

const FULL_AGENT_YAML = `
siteId: hq-berlin
agentId: agent-01
logLevel: debug
broker:
  url: mqtts://broker.example.com:8883
  username: agent-01
  password: { env: POLYFLEET_BROKER_PASSWORD }
  ca: /etc/polyfleet/ca.pem
  protocolVersion: 5
  keepaliveSec: 60
credentials:
  lab-v3:
    type: snmpv3
    user: polyfleet
    authProtocol: sha512
    authKey: { file: /run/secrets/snmp-auth }
    privProtocol: aes256
    privKey: { env: SNMP_PRIV }
    securityLevel: authPriv
    allowLegacySha1: false
  legacy:
    type: snmpv2c
    community: public-inline
  phones:
    type: http
    user: Polycom
    password: "456"
devices:
  - address: 10.1.20.15
    driver: poly-ucs
    httpsPort: 8443
    snmpPort: 1161
    credentials: [phones]
    tags: [lobby, floor-1]
    pollIntervalSec: 30
  - address: studio-x50.example.com
    credentials: [lab-v3, phones]
discovery:
  ranges: [10.1.20.0/24, 192.168.0.0/16]
  credentials: [lab-v3]
  httpsPorts: [443, 8443]
  snmpPorts: [161]
  concurrency: 32
  timeoutMs: 1500
  intervalSec: 0
polling:
  intervalSec: 120
  jitterPct: 20.5
  timeoutMs: 8000
  concurrency: 100
  missesBeforeUnreachable: 5
outbox:
  dir: /var/lib/polyfleet/outbox
  maxEntries: 5000
  batchSize: 50
provisioning:
  host: 10.1.20.2
  port: 8086
  advertisedUrl: http://10.1.20.2:8086
traps:
  enabled: false
  host: 10.1.20.2
  port: 1162
http:
  host: 0.0.0.0
  port: 9466
`;

const MINIMAL_AGENT_YAML = `
siteId: s1
agentId: a1
broker:
  url: mqtt://localhost:1883
`;

const FULL_COLLECTOR_YAML = `
logLevel: warn
broker:
  type: external
  url: mqtt://emqx.internal:1883
  username: collector
  password: { file: /run/secrets/mqtt }
  sharedGroup: collectors
store:
  type: postgres
  url: { env: DATABASE_URL }
metrics:
  type: influxdb
  url: http://influx.internal:8181
  database: polyfleet
  username: writer
  password: influx-inline-secret
  batchSize: 2000
  flushMs: 500
  maxBufferPoints: 200000
http:
  host: 0.0.0.0
  port: 8443
alerts:
  rulesFile: /etc/polyfleet/rules.yaml
`;

/** Runs `fn`, expecting a PolyfleetError; returns it. */
function refusal(fn: () => unknown): PolyfleetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PolyfleetError);
    return e as PolyfleetError;
  }
  throw new Error("expected a PolyfleetError, nothing was thrown");
}

describe("parseConfigText: agent.yaml", () => {
  it("parses a full agent.yaml, filling only the defaults that were left out", () => {
    const cfg = parseConfigText(AgentConfig, FULL_AGENT_YAML, "agent.yaml");
    expect(cfg.siteId).toBe("hq-berlin");
    expect(cfg.broker).toEqual({
      url: "mqtts://broker.example.com:8883",
      username: "agent-01",
      password: { env: "POLYFLEET_BROKER_PASSWORD" },
      ca: "/etc/polyfleet/ca.pem",
      protocolVersion: 5,
      keepaliveSec: 60,
    });
    expect(cfg.credentials).toEqual({
      "lab-v3": {
        type: "snmpv3",
        user: "polyfleet",
        authProtocol: "sha512",
        authKey: { file: "/run/secrets/snmp-auth" },
        privProtocol: "aes256",
        privKey: { env: "SNMP_PRIV" },
        securityLevel: "authPriv",
        allowLegacySha1: false,
      },
      legacy: { type: "snmpv2c", community: "public-inline" },
      phones: { type: "http", user: "Polycom", password: "456" },
    });
    expect(cfg.devices).toEqual([
      {
        address: "10.1.20.15",
        driver: "poly-ucs",
        httpsPort: 8443,
        snmpPort: 1161,
        credentials: ["phones"],
        tags: ["lobby", "floor-1"],
        pollIntervalSec: 30,
      },
      // defaults fill the second device
      {
        address: "studio-x50.example.com",
        httpsPort: 443,
        snmpPort: 161,
        credentials: ["lab-v3", "phones"],
        tags: [],
      },
    ]);
    expect(cfg.discovery.ranges).toEqual(["10.1.20.0/24", "192.168.0.0/16"]);
    expect(cfg.discovery.intervalSec).toBe(0);
    expect(cfg.polling).toEqual({
      intervalSec: 120,
      jitterPct: 20.5,
      timeoutMs: 8000,
      concurrency: 100,
      missesBeforeUnreachable: 5,
    });
    expect(cfg.outbox).toEqual({ dir: "/var/lib/polyfleet/outbox", maxEntries: 5000, batchSize: 50 });
    expect(cfg.provisioning.advertisedUrl).toBe("http://10.1.20.2:8086");
    expect(cfg.traps).toEqual({ enabled: false, host: "10.1.20.2", port: 1162 });
    expect(cfg.http).toEqual({ host: "0.0.0.0", port: 9466 });
  });

  it("applies every default to a minimal agent.yaml", () => {
    expect(parseConfigText(AgentConfig, MINIMAL_AGENT_YAML, "agent.yaml")).toEqual({
      siteId: "s1",
      agentId: "a1",
      logLevel: "info",
      broker: { url: "mqtt://localhost:1883", keepaliveSec: 30 },
      credentials: {},
      devices: [],
      discovery: {
        ranges: [],
        credentials: [],
        httpsPorts: [443],
        snmpPorts: [161],
        concurrency: 64,
        timeoutMs: 2000,
        intervalSec: 3600,
      },
      polling: {
        intervalSec: 60,
        jitterPct: 10,
        timeoutMs: 5000,
        concurrency: 256,
        missesBeforeUnreachable: 3,
      },
      outbox: { dir: "./.polyfleet/outbox", maxEntries: 1_000_000, batchSize: 100 },
      provisioning: {
        host: "0.0.0.0",
        port: 8085,
        dir: "./.polyfleet/firmware",
        maxCachedImages: 8,
        watchIntervalMs: 5000,
      },
      traps: { enabled: true, host: "0.0.0.0", port: 162 },
      http: { host: "127.0.0.1", port: 9465 },
    });
  });

  it("defaults snmpv3 protocols and level when only the keys are given", () => {
    const cfg = parseConfigText(
      AgentConfig,
      `${MINIMAL_AGENT_YAML}credentials:\n  v3: { type: snmpv3, user: u, authKey: a-secret, privKey: p-secret }\n`,
      "agent.yaml",
    );
    expect(cfg.credentials.v3).toEqual({
      type: "snmpv3",
      user: "u",
      authProtocol: "sha256",
      authKey: "a-secret",
      privProtocol: "aes128",
      privKey: "p-secret",
      securityLevel: "authPriv",
      allowLegacySha1: false,
    });
  });

  it("accepts JSON as well as YAML", () => {
    const json = JSON.stringify({ siteId: "s1", agentId: "a1", broker: { url: "mqtt://b:1883" } });
    expect(parseConfigText(AgentConfig, json, "agent.json").broker.url).toBe("mqtt://b:1883");
  });

  it("refuses a typo'd top-level key, naming the file and the key", () => {
    const text = MINIMAL_AGENT_YAML.replace("broker:", "brokr:");
    const e = refusal(() => parseConfigText(AgentConfig, text, "agent.yaml"));
    expect(e.code).toBe("POLYFLEET_ERR_CONFIG_INVALID");
    expect(e.statusCode).toBe(400);
    expect(e.message).toMatch(/^agent\.yaml: brokr: unknown key$/m);
    // The real key is now missing, and that is reported too.
    expect(e.message).toMatch(/^agent\.yaml: broker: /m);
    expect(e.details).toMatchObject({ file: "agent.yaml" });
  });

  it("refuses a typo'd nested key, naming the file and its full key path", () => {
    const text = `${MINIMAL_AGENT_YAML}polling:\n  intervalSecs: 30\n`;
    const e = refusal(() => parseConfigText(AgentConfig, text, "/etc/polyfleet/agent.yaml"));
    expect(e.code).toBe("POLYFLEET_ERR_CONFIG_INVALID");
    expect(e.message).toBe("/etc/polyfleet/agent.yaml: polling.intervalSecs: unknown key");
    expect(e.details).toEqual({
      file: "/etc/polyfleet/agent.yaml",
      issues: [{ path: "polling.intervalSecs", message: "unknown key" }],
    });
  });

  it("refuses a bad value, naming the file, the key path and the reason", () => {
    const text = MINIMAL_AGENT_YAML.replace("mqtt://localhost:1883", "http://x");
    const e = refusal(() => parseConfigText(AgentConfig, text, "agent.yaml"));
    expect(e.code).toBe("POLYFLEET_ERR_CONFIG_INVALID");
    expect(e.message).toBe("agent.yaml: broker.url: must be mqtt://host:port or mqtts://host:port");
  });

  it("names every failing key, with array indices", () => {
    const text = `${MINIMAL_AGENT_YAML}devices:\n  - address: 10.0.0.1\n    credentials: [x]\n  - address: 10.0.0.2\n    credentials: []\n    httpsPort: 0\ndiscovery:\n  ranges: [10.0.0.0/33]\n`;
    const e = refusal(() => parseConfigText(AgentConfig, text, "agent.yaml"));
    const lines = e.message.split("\n");
    expect(lines.every((l) => l.startsWith("agent.yaml: "))).toBe(true);
    expect(e.message).toMatch(/^agent\.yaml: devices\[1\]\.httpsPort: /m);
    expect(e.message).toMatch(/^agent\.yaml: devices\[1\]\.credentials: /m);
    expect(e.message).toMatch(
      /^agent\.yaml: discovery\.ranges\[0\]: octets must be 0-255 and the prefix 0-32$/m,
    );
  });

  it("refuses invalid YAML, naming the file and keeping the parser error as cause", () => {
    const e = refusal(() =>
      parseConfigText(AgentConfig, "siteId: [unclosed\nagentId: a1\n", "site-7/agent.yaml"),
    );
    expect(e.code).toBe("POLYFLEET_ERR_CONFIG_INVALID");
    expect(e.message.startsWith("site-7/agent.yaml: not valid YAML: ")).toBe(true);
    expect(e.message).not.toContain("\n");
    expect(e.cause).toBeInstanceOf(Error);
  });

  it("treats an empty file as an empty object (so the required keys are reported)", () => {
    const e = refusal(() => parseConfigText(AgentConfig, "", "agent.yaml"));
    expect(e.message).toMatch(/^agent\.yaml: siteId: /m);
    expect(e.message).toMatch(/^agent\.yaml: agentId: /m);
    expect(e.message).toMatch(/^agent\.yaml: broker: /m);
  });

  it("refuses a siteId that is not one safe topic level", () => {
    const e = refusal(() =>
      parseConfigText(AgentConfig, MINIMAL_AGENT_YAML.replace("siteId: s1", "siteId: a/b"), "agent.yaml"),
    );
    expect(e.message).toMatch(/^agent\.yaml: siteId: must be 1-64/m);
  });
});

describe("parseConfigText: collector.yaml", () => {
  it("parses a full collector.yaml", () => {
    expect(parseConfigText(CollectorConfig, FULL_COLLECTOR_YAML, "collector.yaml")).toEqual({
      logLevel: "warn",
      broker: {
        type: "external",
        url: "mqtt://emqx.internal:1883",
        username: "collector",
        password: { file: "/run/secrets/mqtt" },
        sharedGroup: "collectors",
        keepaliveSec: 30,
      },
      store: { type: "postgres", url: { env: "DATABASE_URL" } },
      metrics: {
        type: "influxdb",
        url: "http://influx.internal:8181",
        database: "polyfleet",
        username: "writer",
        password: "influx-inline-secret",
        batchSize: 2000,
        flushMs: 500,
        maxBufferPoints: 200000,
      },
      http: { host: "0.0.0.0", port: 8443 },
      alerts: { rulesFile: "/etc/polyfleet/rules.yaml" },
      firmware: { imagesDir: "./.polyfleet/firmware", tickMs: 1000 },
      audit: { checkpointEvery: 100 },
      api: { rateLimitPerMinute: 600 },
      notifiers: { webhooks: [] },
    });
  });

  it("applies every default to an empty collector.yaml", () => {
    expect(parseConfigText(CollectorConfig, "", "collector.yaml")).toEqual({
      logLevel: "info",
      broker: { type: "embedded", host: "127.0.0.1", port: 1883 },
      store: { type: "sqlite", path: "./.polyfleet/state.db" },
      metrics: { type: "embedded", retentionMinutes: 360 },
      http: { host: "127.0.0.1", port: 8080 },
      alerts: {},
      firmware: { imagesDir: "./.polyfleet/firmware", tickMs: 1000 },
      audit: { checkpointEvery: 100 },
      api: { rateLimitPerMinute: 600 },
      notifiers: { webhooks: [] },
    });
  });

  it("fills the defaults inside a chosen variant", () => {
    const cfg = parseConfigText(
      CollectorConfig,
      "broker: { type: embedded, port: 0 }\nstore: { type: sqlite }\nmetrics: { type: influxdb, url: 'http://i:8181', database: d }\n",
      "collector.yaml",
    );
    expect(cfg.broker).toEqual({ type: "embedded", host: "127.0.0.1", port: 0 });
    expect(cfg.store).toEqual({ type: "sqlite", path: "./.polyfleet/state.db" });
    expect(cfg.metrics).toEqual({
      type: "influxdb",
      url: "http://i:8181",
      database: "d",
      batchSize: 5000,
      flushMs: 1000,
      maxBufferPoints: 1_000_000,
    });
  });

  it("refuses a bad value and a key that belongs to another variant", () => {
    const bad = refusal(() =>
      parseConfigText(CollectorConfig, "broker: { type: external, url: 'http://x' }\n", "collector.yaml"),
    );
    expect(bad.code).toBe("POLYFLEET_ERR_CONFIG_INVALID");
    expect(bad.message).toBe("collector.yaml: broker.url: must be mqtt://host:port or mqtts://host:port");
    const misplaced = refusal(() =>
      parseConfigText(CollectorConfig, "broker: { type: embedded, sharedGroup: g }\n", "collector.yaml"),
    );
    expect(misplaced.message).toBe("collector.yaml: broker.sharedGroup: unknown key");
  });

  it("refuses an unknown store type, naming the discriminator", () => {
    const e = refusal(() => parseConfigText(CollectorConfig, "store: { type: mysql }\n", "collector.yaml"));
    expect(e.message).toMatch(/^collector\.yaml: store\.type: /m);
  });
});

describe("SecretRef", () => {
  it("accepts an inline string, { env } and { file }", () => {
    expect(SecretRef.parse("s3cret")).toBe("s3cret");
    expect(SecretRef.parse({ env: "SNMP_AUTH_KEY" })).toEqual({ env: "SNMP_AUTH_KEY" });
    expect(SecretRef.parse({ env: "_x1" })).toEqual({ env: "_x1" });
    expect(SecretRef.parse({ file: "/run/secrets/key" })).toEqual({ file: "/run/secrets/key" });
  });

  it("refuses an empty secret, a bad variable name, both forms at once, or extra keys", () => {
    for (const bad of [
      "",
      {},
      { env: "" },
      { env: "1ABC" },
      { env: "A-B" },
      { file: "" },
      { env: "A", file: "/x" },
      { env: "A", default: "x" },
      42,
      null,
    ]) {
      expect(SecretRef.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });

  it("is accepted in every secret position of a config file, in all three forms", () => {
    for (const form of ["inline-secret", "{ env: MY_SECRET }", "{ file: /run/secrets/x }"]) {
      const agent = `${MINIMAL_AGENT_YAML.replace("  url: mqtt://localhost:1883", `  url: mqtt://localhost:1883\n  password: ${form}`)}credentials:
  a: { type: snmpv3, user: u, authKey: ${form}, privKey: ${form} }
  b: { type: snmpv2c, community: ${form} }
  c: { type: http, user: Polycom, password: ${form} }
`;
      const cfg = parseConfigText(AgentConfig, agent, "agent.yaml");
      const expected = SecretRef.parse(parseConfigText(SecretRef, form, "form"));
      expect(cfg.broker.password).toEqual(expected);
      expect(cfg.credentials.a).toMatchObject({ authKey: expected, privKey: expected });
      expect(cfg.credentials.b).toEqual({ type: "snmpv2c", community: expected });
      expect(cfg.credentials.c).toMatchObject({ password: expected });
      const collector = parseConfigText(
        CollectorConfig,
        `store: { type: postgres, url: ${form} }\nmetrics: { type: influxdb, url: 'http://i', database: d, password: ${form} }\n`,
        "collector.yaml",
      );
      expect(collector.store).toEqual({ type: "postgres", url: expected });
      expect(collector.metrics).toMatchObject({ password: expected });
    }
  });

  it("refuses a malformed reference inside a credential profile, naming its path", () => {
    const text = `${MINIMAL_AGENT_YAML}credentials:\n  lab: { type: snmpv2c, community: { env: "not a name" } }\n`;
    const e = refusal(() => parseConfigText(AgentConfig, text, "agent.yaml"));
    expect(e.message).toMatch(/^agent\.yaml: credentials\.lab\.community/m);
    expect(CredentialProfile.safeParse({ type: "snmpv2c", community: { env: "OK" } }).success).toBe(true);
  });
});
