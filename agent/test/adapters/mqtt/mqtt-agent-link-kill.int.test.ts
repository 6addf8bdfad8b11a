import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { type MosquittoHandle, startMosquitto, TestCollector, waitFor } from "@polyfleet/scripts/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { bundleChild, tempDir } from "../outbox/outbox-helpers.js";
import { watchState } from "./link-helpers.js";

let broker: MosquittoHandle;
let childJs: string;
const cleanups: (() => Promise<void>)[] = [];
const children = new Set<ChildProcess>();

beforeAll(async () => {
  [broker, childJs] = await Promise.all([
    startMosquitto(),
    bundleChild(new URL("./fixtures/agent-child.ts", import.meta.url), "agent-child"),
  ]);
});
// Each test's collector stops before the next test: two collectors acking one agent would interfere.
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  for (const c of cleanups.splice(0).reverse()) await c();
  await broker?.stop();
  await rm(childJs, { force: true });
});

interface ChildRun {
  lastReported: () => number;
  lines: string[];
  exited: Promise<void>;
  kill: () => void;
}

function runAgent(args: {
  dir: string;
  count: number;
  ratePerSec: number;
  chunk: number;
  sessionId: string;
}): ChildRun {
  const p = spawn(process.execPath, [childJs, JSON.stringify({ ...args, url: broker.url })], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(p);
  const lines: string[] = [];
  let buf = "";
  let last = 0;
  p.stdout?.on("data", (d) => {
    buf += String(d);
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    for (const l of parts) {
      lines.push(l);
      if (l.startsWith("seq ")) last = Number(l.slice(4));
    }
  });
  let stderr = "";
  p.stderr?.on("data", (d) => {
    stderr += String(d);
  });
  const exited = new Promise<void>((resolve) =>
    p.once("exit", (code, signal) => {
      children.delete(p);
      if (code !== 0 && signal !== "SIGKILL") lines.push(`exit ${code} ${signal} ${stderr}`);
      resolve();
    }),
  );
  return { lastReported: () => last, lines, exited, kill: () => p.kill("SIGKILL") };
}

describe("agent SIGKILLed mid-stream and restarted (real Mosquitto)", () => {
  it("loses nothing that reached the outbox; the Will marks the killed run offline", async () => {
    const t = await tempDir("agent-kill");
    cleanups.push(t.cleanup);
    const col = new TestCollector({ url: broker.url, siteId: "site-k", agentId: "agent-k" });
    await col.start();
    cleanups.push(() => col.stop());
    const watch = await watchState(broker.url, "agent-k", "site-k");
    cleanups.push(watch.stop);

    const s1 = randomUUID();
    const first = runAgent({ dir: t.dir, count: 100_000, ratePerSec: 2000, chunk: 20, sessionId: s1 });
    await waitFor(() => first.lastReported() >= 1500, 20_000, "first run appended 1500");
    first.kill();
    await first.exited;
    const reportedBeforeKill = first.lastReported();
    await waitFor(
      () => watch.states.some((s) => s.status === "offline" && s.sessionId === s1),
      10_000,
      "Will of the killed run",
    );
    expect(watch.states.find((s) => s.status === "offline" && s.sessionId === s1)).toMatchObject({
      reason: "will",
    });

    const s2 = randomUUID();
    const second = runAgent({ dir: t.dir, count: 1500, ratePerSec: 3000, chunk: 30, sessionId: s2 });
    await waitFor(() => second.lines.some((l) => l.startsWith("drained ")), 30_000, "second run drained");
    const drained = second.lines.find((l) => l.startsWith("drained "));
    const start = Number(second.lines.find((l) => l.startsWith("start "))?.slice(6));
    const finalSeq = Number(drained?.split(" ")[1]);
    await second.exited;

    // The restarted agent continued the sequence after everything the killed one had stored.
    expect(start).toBeGreaterThanOrEqual(reportedBeforeKill);
    expect(finalSeq).toBe(start + 1500);
    await col.waitForSeq(finalSeq, 10_000);
    expect(col.seqs()).toEqual(Array.from({ length: finalSeq }, (_, i) => i + 1));
    expect(col.gaps()).toEqual([]);
    expect(col.invalid).toBe(0);
    expect(watch.states.some((s) => s.status === "online" && s.sessionId === s2)).toBe(true);
    console.log(
      `[agent kill] killed after seq ${reportedBeforeKill} reported (${start} stored), final ${finalSeq}, duplicates received ${col.duplicates}`,
    );
  });

  it("measures the publishing path's CPU per reading (printed, not asserted)", async () => {
    const t = await tempDir("agent-cpu");
    cleanups.push(t.cleanup);
    // The collector runs in this process; the child is the agent's outbox + link alone.
    const col = new TestCollector({ url: broker.url, siteId: "site-k", agentId: "agent-k" });
    await col.start();
    cleanups.push(() => col.stop());
    const n = 20_000;
    const run = runAgent({ dir: t.dir, count: n, ratePerSec: 10_000, chunk: 100, sessionId: randomUUID() });
    await waitFor(() => run.lines.some((l) => l.startsWith("drained ")), 40_000, "drained");
    await run.exited;
    const line = run.lines.find((l) => l.startsWith("drained ")) ?? "";
    const stats = JSON.parse(line.slice(line.indexOf("{"))) as {
      totalCpuUs: number;
      appendCpuUs: number;
      appended: number;
      published: number;
    };
    expect(stats.appended).toBe(n);
    // The agent drains on the first ack covering everything; this collector may still be catching up.
    await col.waitForSeq(n, 20_000);
    expect(col.seqs()).toHaveLength(n);
    const perReading = stats.totalCpuUs / n;
    const append = stats.appendCpuUs / n;
    console.log(
      `[cpu] ${n} readings: agent process CPU ${perReading.toFixed(1)} µs/reading in all (outbox append ${append.toFixed(1)} µs, link publish+ack+delete ${(perReading - append).toFixed(1)} µs incl. idle timers), ${col.messages} MQTT messages`,
    );
  });
});
