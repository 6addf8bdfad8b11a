// The issue asks that the system "stops cleanly on Ctrl-C": the collector must stop (exit 0) on SIGTERM
// while a dashboard holds the live alert stream (SSE) open, not only when nobody is connected.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type MosquittoHandle, startMosquitto } from "@polyfleet/scripts/testing";
import { afterAll, describe, expect, it } from "vitest";
import { assertBuilt, Cleanup, CollectorProcess, SseAlertClient } from "./harness.js";

describe("collector e2e: clean stop", () => {
  const cleanup = new Cleanup();
  afterAll(async () => {
    await cleanup.run();
  });

  it("exits 0 on SIGTERM with an SSE client connected", async () => {
    assertBuilt();
    const mosquitto: MosquittoHandle = await startMosquitto();
    cleanup.add("mosquitto", () => mosquitto.stop());
    const dir = await mkdtemp(join(tmpdir(), "polyfleet-e2e-collector-"));
    cleanup.add("collector dir", () => rm(dir, { recursive: true, force: true }));
    const collector = new CollectorProcess({ dir, brokerUrl: mosquitto.url });
    await collector.start();
    cleanup.add("collector", () => collector.stop());
    const sse = new SseAlertClient(collector.apiUrl, collector.token);
    await sse.start();
    cleanup.add("sse client", () => sse.stop());

    const t = Date.now();
    const exit = await collector.stop();
    console.log(
      `[e2e shutdown] SIGTERM with an SSE client connected: exit ${JSON.stringify(exit)} after ${Date.now() - t} ms`,
    );
    expect(exit, collector.output()).toEqual({ code: 0, signal: null });
  }, 60_000);
});
