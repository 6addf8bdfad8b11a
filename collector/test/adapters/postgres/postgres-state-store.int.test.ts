import { type PostgresHandle, startPostgres } from "@polyfleet/scripts/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PG_MIGRATIONS } from "../../../src/adapters/postgres/postgres-migrations.js";
import { PostgresStateStore } from "../../../src/adapters/postgres/postgres-state-store.js";
import { describeStateStoreContract, reading } from "../../contracts/state-store.contract.js";

// One real PostgreSQL server for this file; every fixture gets its own database.
let server: PostgresHandle | undefined;
let dbs = 0;

async function freshDatabase(): Promise<string> {
  server ??= await startPostgres();
  const name = `polyfleet_${process.pid}_${++dbs}`;
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  return server.urlFor(name);
}

afterAll(async () => {
  await server?.stop();
  server = undefined;
});

describeStateStoreContract("postgres (real server)", async () => {
  const url = await freshDatabase();
  return {
    open: async () => {
      const s = new PostgresStateStore({ connectionString: url });
      await s.migrate();
      return s;
    },
    dispose: async () => {},
  };
});

describe("PostgresStateStore specifics", () => {
  let url: string;
  beforeAll(async () => {
    url = await freshDatabase();
  });

  it("applies migrations once, also when several stores migrate concurrently", async () => {
    const stores = [1, 2, 3].map(() => new PostgresStateStore({ connectionString: url, poolMax: 2 }));
    await Promise.all(stores.map((s) => s.migrate()));
    for (const s of stores) expect(await s.schemaVersions()).toEqual(PG_MIGRATIONS.map((m) => m.version));
    await Promise.all(stores.map((s) => s.close()));
  });

  it("serialises concurrent batches of one agent from two collectors (no lost or double-counted seq)", async () => {
    const a = new PostgresStateStore({ connectionString: url });
    const b = new PostgresStateStore({ connectionString: url });
    await a.migrate();
    await b.migrate();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const seqs = [i * 5 + 1, i * 5 + 2, i * 5 + 3, i * 5 + 4, i * 5 + 5];
        // Every batch is sent twice, to both collectors (a shared subscription redelivering).
        const batch = {
          agentId: "conc",
          siteId: "s",
          readings: seqs.map((s) => reading("conc", "s", s, `conc-d${s % 7}`)),
          events: [],
        };
        return Promise.all([a.ingest(batch), b.ingest(batch)]);
      }),
    );
    const flat = results.flat();
    expect(flat.reduce((n, r) => n + r.stored, 0)).toBe(200);
    expect(flat.reduce((n, r) => n + r.duplicates, 0)).toBe(200);
    expect((await a.getAgent("conc"))?.ackedSeq).toBe(200);
    // Each device holds its newest reading.
    expect((await b.getDevice("conc-d3"))?.lastSeen).toBe(reading("conc", "s", 199, "x").ts);
    await a.close();
    await b.close();
  });
});
