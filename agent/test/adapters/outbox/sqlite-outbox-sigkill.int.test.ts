import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { Reading, validate } from "@polyfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleChild, makeOutbox, tempDir } from "./outbox-helpers.js";

let child: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  child = await bundleChild(new URL("./fixtures/append-child.ts", import.meta.url), "append-child");
  cleanups.push(() => rm(child, { force: true }));
});
afterAll(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/**
 * Runs the child, collects the seqs it reports, and SIGKILLs it once `killWhen` says so (after "done", or
 * mid-stream). Resolves with the reported seqs once it is dead.
 */
function runAndKill(
  dir: string,
  count: number,
  mode: "stream" | "batch",
  killWhen: (reported: number[], done: boolean) => boolean,
): Promise<{ reported: number[]; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, String(count), mode], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const reported: number[] = [];
    let done = false;
    let buf = "";
    let stderr = "";
    let killed = false;
    p.stderr.on("data", (d) => {
      stderr += String(d);
    });
    p.stdout.on("data", (d) => {
      buf += String(d);
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      for (const l of lines) {
        if (l === "done") done = true;
        else reported.push(Number(l));
      }
      if (!killed && killWhen(reported, done)) {
        killed = true;
        p.kill("SIGKILL");
      }
    });
    p.once("error", reject);
    p.once("exit", (code, signal) => {
      if (!killed) reject(new Error(`child exited on its own (code ${code}): ${stderr}`));
      else resolve({ reported, signal });
    });
  });
}

describe("SqliteOutbox durability under SIGKILL", () => {
  it("finds all N entries after the writer was SIGKILLed right after its last append", async () => {
    const t = await tempDir("outbox-kill");
    cleanups.push(t.cleanup);
    const n = 2000;
    const { reported, signal } = await runAndKill(t.dir, n, "stream", (_r, done) => done);
    expect(signal).toBe("SIGKILL");
    expect(reported).toHaveLength(n);
    const { outbox } = makeOutbox(t.dir, { maxEntries: 1_000_000 });
    outbox.open();
    try {
      expect(outbox.lastSeq()).toBe(n);
      const entries = outbox.pending(0, n + 10);
      expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      for (const e of [entries[0], entries[n - 1]])
        expect(validate(Reading, JSON.parse(e!.json)).ok).toBe(true);
      // The sequence goes on after the crash.
      expect(
        outbox.appendEvent({ type: "device.reachability", deviceId: "d1", reachable: true, missedPolls: 0 }),
      ).toBe(n + 1);
    } finally {
      outbox.close();
    }
  });

  it("mid-stream SIGKILL: every seq reported (appended and returned) is there, and nothing is reused", async () => {
    const t = await tempDir("outbox-kill-mid");
    cleanups.push(t.cleanup);
    const { reported } = await runAndKill(t.dir, 50_000, "stream", (r) => r.length >= 3000);
    const { outbox } = makeOutbox(t.dir, { maxEntries: 1_000_000 });
    outbox.open();
    try {
      const last = reported[reported.length - 1] ?? 0;
      expect(last).toBeGreaterThanOrEqual(3000);
      // The child may have appended a few more after its last report reached us; never fewer.
      expect(outbox.lastSeq()).toBeGreaterThanOrEqual(last);
      const seqs = outbox.pending(0, 100_000).map((e) => e.seq);
      expect(seqs).toEqual(Array.from({ length: outbox.lastSeq() }, (_, i) => i + 1));
    } finally {
      outbox.close();
    }
  });

  it("appendMany batches are durable as a whole", async () => {
    const t = await tempDir("outbox-kill-batch");
    cleanups.push(t.cleanup);
    const { reported } = await runAndKill(t.dir, 5000, "batch", (_r, done) => done);
    expect(reported).toEqual([500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000]);
    const { outbox } = makeOutbox(t.dir, { maxEntries: 1_000_000 });
    outbox.open();
    try {
      expect([outbox.lastSeq(), outbox.depth()]).toEqual([5000, 5000]);
    } finally {
      outbox.close();
    }
  });
});
