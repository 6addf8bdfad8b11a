import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isPolyfleetError } from "@polyfleet/shared";
import { afterEach, describe, expect, it } from "vitest";
import { InMemoryUpdateJournal, SqliteUpdateJournal } from "../../../src/adapters/update/update-journal.js";
import type { UpdateRecord } from "../../../src/core/update-state.js";
import type { UpdateJournal } from "../../../src/ports/update.js";

function record(over: Partial<UpdateRecord> = {}): UpdateRecord {
  return {
    commandId: "cmd-1",
    deviceId: "dev-1",
    scheduledId: "ip-10.0.0.1",
    family: "uc",
    targetVersion: "8.1.0.1000",
    image: { url: "http://c/i", fileName: "a.sip.ld", length: 10, sha256: "c".repeat(64) },
    phase: "accepted",
    configRestored: false,
    acceptedAt: 1000,
    deadline: 9000,
    updatedAt: 1000,
    ...over,
  };
}

/** The journal contract: every implementation behaves the same. */
function describeJournalContract(
  name: string,
  make: () => { journal: UpdateJournal; reopen: () => UpdateJournal },
) {
  describe(`${name} update journal`, () => {
    it("stores and returns copies of records by command id", () => {
      const { journal } = make();
      const r = record({ rolloutId: "r-1", previousConfig: { a: "1" } });
      journal.put(r);
      r.phase = "installing";
      expect(journal.get("cmd-1")).toMatchObject({
        phase: "accepted",
        rolloutId: "r-1",
        previousConfig: { a: "1" },
      });
      expect(journal.get("nope")).toBeUndefined();
    });

    it("knows each device's unfinished update and every unfinished one, oldest first", () => {
      const { journal } = make();
      journal.put(record({ commandId: "b", acceptedAt: 2000, deviceId: "dev-2" }));
      journal.put(record({ commandId: "a", acceptedAt: 1000 }));
      journal.put(record({ commandId: "c", deviceId: "dev-3", phase: "succeeded" }));
      expect(journal.unfinished().map((r) => r.commandId)).toEqual(["a", "b"]);
      expect(journal.activeFor("dev-1")?.commandId).toBe("a");
      expect(journal.activeFor("dev-3")).toBeUndefined();
      journal.put({ ...record({ commandId: "a" }), phase: "failed" });
      expect(journal.activeFor("dev-1")).toBeUndefined();
    });

    it("lists ended updates that still owe the device its settings", () => {
      const { journal } = make();
      journal.put(record({ commandId: "a", phase: "failed", previousConfig: { x: "1" } }));
      journal.put(record({ commandId: "b", phase: "failed", previousConfig: {} }));
      journal.put(
        record({ commandId: "c", phase: "succeeded", previousConfig: { x: "1" }, configRestored: true }),
      );
      journal.put(record({ commandId: "d", phase: "installing", previousConfig: { x: "1" } }));
      expect(journal.pendingRestores().map((r) => r.commandId)).toEqual(["a"]);
    });

    it("prunes ended records by age and count, never unfinished ones", () => {
      const { journal } = make();
      for (let i = 0; i < 6; i++)
        journal.put(record({ commandId: `e${i}`, phase: "succeeded", updatedAt: 1000 + i }));
      journal.put(record({ commandId: "open", updatedAt: 0 }));
      expect(journal.prune(1002, 2)).toBe(4);
      expect(["e0", "e1", "e2", "e3", "e4", "e5"].filter((id) => journal.get(id))).toEqual(["e4", "e5"]);
      expect(journal.get("open")).toBeDefined();
    });

    it("keeps everything across a reopen", () => {
      const { journal, reopen } = make();
      journal.put(record({ phase: "installing", imageServedAt: 5000, triggeredAt: 4000 }));
      const again = reopen();
      expect(again.get("cmd-1")).toMatchObject({
        phase: "installing",
        imageServedAt: 5000,
        triggeredAt: 4000,
      });
    });
  });
}

const dirs: string[] = [];
const open: SqliteUpdateJournal[] = [];
afterEach(() => {
  for (const j of open.splice(0)) j.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describeJournalContract("in-memory", () => {
  const journal = new InMemoryUpdateJournal();
  return { journal, reopen: () => journal };
});

describeJournalContract("SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "polyfleet-journal-"));
  dirs.push(dir);
  const journal = new SqliteUpdateJournal(dir);
  journal.open();
  open.push(journal);
  return {
    journal,
    reopen: () => {
      journal.close();
      const again = new SqliteUpdateJournal(dir);
      again.open();
      open.push(again);
      return again;
    },
  };
});

describe("SQLite update journal", () => {
  it("belongs to one agent process at a time", () => {
    const dir = mkdtempSync(join(tmpdir(), "polyfleet-journal-"));
    dirs.push(dir);
    const a = new SqliteUpdateJournal(dir);
    a.open();
    open.push(a);
    a.put(record());
    const b = new SqliteUpdateJournal(dir);
    let err: unknown;
    try {
      b.open();
    } catch (e) {
      err = e;
    }
    expect(isPolyfleetError(err) && err.code).toBe("POLYFLEET_ERR_CONFIG_UNREADABLE");
  });
});
