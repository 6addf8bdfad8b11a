import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { SQLITE_MIGRATIONS } from "../../../src/adapters/sqlite/sqlite-migrations.js";
import { SqliteStateStore } from "../../../src/adapters/sqlite/sqlite-state-store.js";
import {
  describeStateStoreContract,
  reading,
  rollout,
  rolloutDevice,
} from "../../contracts/state-store.contract.js";

describeStateStoreContract("sqlite (temp file)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-state-"));
  const path = join(dir, "state.db");
  return {
    open: async () => {
      const s = new SqliteStateStore({ path });
      await s.migrate();
      return s;
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
});

describe("SqliteStateStore specifics", () => {
  it("records every migration once in schema_migrations and uses WAL", async () => {
    const dir = await mkdtemp(join(tmpdir(), "polyfleet-state-"));
    const path = join(dir, "state.db");
    try {
      const s = new SqliteStateStore({ path });
      await s.migrate();
      await s.close();
      const s2 = new SqliteStateStore({ path });
      await s2.migrate();
      expect(s2.schemaVersions()).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
      await s2.close();
      const db = new Database(path, { readonly: true });
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(db.prepare("SELECT COUNT(*) AS n FROM schema_migrations").get()).toEqual({
        n: SQLITE_MIGRATIONS.length,
      });
      db.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("upgrades a database created by an older version (rollout tables added, data kept)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "polyfleet-state-"));
    const path = join(dir, "state.db");
    try {
      const first = SQLITE_MIGRATIONS[0]!;
      const db = new Database(path);
      db.exec(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
      );
      db.exec(first.sql);
      db.prepare("INSERT INTO schema_migrations VALUES (?, ?, ?)").run(first.version, first.name, 1);
      db.prepare("INSERT INTO silences (id, body) VALUES (?, ?)").run("s1", JSON.stringify({ id: "s1" }));
      db.close();
      const s = new SqliteStateStore({ path });
      await s.migrate();
      expect(s.schemaVersions()).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
      expect((await s.listSilences()).map((x) => x.id)).toEqual(["s1"]);
      const r = rollout("ro-upgrade");
      await s.saveRolloutChanges({ rollouts: [r], devices: [rolloutDevice(r.id, 0)] });
      expect(await s.getRollout(r.id)).toStrictEqual(r);
      await s.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps only the newest eventRetention events", async () => {
    const dir = await mkdtemp(join(tmpdir(), "polyfleet-state-"));
    try {
      const s = new SqliteStateStore({ path: join(dir, "state.db"), eventRetention: 500 });
      await s.migrate();
      for (let b = 0; b < 3; b++) {
        const events = Array.from({ length: 700 }, (_, i) => ({
          v: 1 as const,
          agentId: "ret",
          siteId: "s",
          seq: b * 700 + i + 1,
          ts: 1000 + b * 700 + i,
          type: "device.reachability" as const,
          deviceId: "d1",
          reachable: i % 2 === 0,
          missedPolls: 0,
        }));
        await s.ingest({ agentId: "ret", siteId: "s", readings: [], events });
      }
      // Pruned every 1,000 inserts: at most retention + 999 rows remain, always the newest.
      const kept = await s.recentEvents(10_000);
      expect(kept.length).toBeGreaterThanOrEqual(500);
      expect(kept.length).toBeLessThan(1500);
      expect(kept.at(-1)?.seq).toBe(2100);
      expect(kept.map((e) => e.seq)).toEqual(kept.map((_, i) => 2100 - kept.length + 1 + i));
      await s.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("rolls back a failed batch completely (nothing half-stored, dedup state intact)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "polyfleet-state-"));
    try {
      const s = new SqliteStateStore({ path: join(dir, "state.db") });
      await s.migrate();
      await s.ingest({ agentId: "rb", siteId: "s", readings: [reading("rb", "s", 1, "rb-d1")], events: [] });
      // A reading whose identity breaks a NOT NULL column (address) makes the transaction fail.
      const bad = reading("rb", "s", 3, "rb-d3");
      (bad.identity as { address: unknown }).address = null;
      await expect(
        s.ingest({ agentId: "rb", siteId: "s", readings: [reading("rb", "s", 2, "rb-d2"), bad], events: [] }),
      ).rejects.toThrow();
      expect(await s.getDevice("rb-d2")).toBeUndefined();
      expect((await s.getAgent("rb"))?.ackedSeq).toBe(1);
      // Seq 2 was not stored: it is new when it comes again.
      expect(
        await s.ingest({
          agentId: "rb",
          siteId: "s",
          readings: [reading("rb", "s", 2, "rb-d2")],
          events: [],
        }),
      ).toEqual({ watermark: 2, duplicates: 0, stored: 1 });
      await s.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
