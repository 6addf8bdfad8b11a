import { PolyfleetError } from "@polyfleet/shared";
import type { CommandHandlers } from "../../ports/command.js";
import type { ResolvedCredential } from "../../ports/credentials.js";
import type { DeviceDriver, DeviceTarget, DriverName } from "../../ports/driver.js";
import type { SnmpClient, SnmpCredential, SnmpResult, SnmpTarget, Varbind } from "../../ports/snmp.js";

/** What the device commands need from the rest of the agent. */
export interface DeviceCommandDeps {
  snmp: SnmpClient;
  drivers: Partial<Record<DriverName, DeviceDriver>>;
  /** The scheduled device with this id: its target and driver. */
  device(deviceId: string): { target: DeviceTarget; driver: DriverName } | undefined;
  /** A named credential profile, resolved. */
  credential(name: string): ResolvedCredential | undefined;
  /** Runs a discovery scan (all configured ranges, or these). */
  rediscover(ranges: string[] | undefined, signal: AbortSignal): Promise<Record<string, unknown>>;
  /** Default SNMP port for explicit-address targets. */
  snmpPort: number;
}

function varbindsOut(vbs: Varbind[]): { oid: string; type: string; value: string | number | null }[] {
  return vbs.map((v) => ({
    oid: v.oid,
    type: v.type,
    value: typeof v.value === "bigint" ? v.value.toString() : v.value,
  }));
}

function unwrap<T>(r: SnmpResult<T>): T {
  if (r.ok) return r.value;
  throw new PolyfleetError("POLYFLEET_ERR_COMMAND_FAILED", `${r.error.code}: ${r.error.message}`);
}

/**
 * Handlers of the commands that act on devices: snmpGet, snmpWalk, reboot, rediscover. Targets are a
 * scheduled device (its own SNMP credential) or an address with a named credential profile. Results carry
 * values, never the credential.
 */
export function createDeviceCommandHandlers(deps: DeviceCommandDeps): CommandHandlers {
  const snmpTarget = (t: { deviceId: string } | { address: string; credentials: string }): SnmpTarget => {
    if ("deviceId" in t) {
      const d = deps.device(t.deviceId);
      if (!d) throw new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `no device ${t.deviceId} on this agent`);
      const cred = d.target.credentials.find(
        (c): c is SnmpCredential => c.type === "snmpv2c" || c.type === "snmpv3",
      );
      if (!cred)
        throw new PolyfleetError(
          "POLYFLEET_ERR_COMMAND_INVALID",
          `device ${t.deviceId} has no SNMP credential`,
        );
      return { address: d.target.address, port: d.target.snmpPort, credential: cred };
    }
    const cred = deps.credential(t.credentials);
    if (!cred || (cred.type !== "snmpv2c" && cred.type !== "snmpv3")) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_COMMAND_INVALID",
        `no SNMP credential profile named ${t.credentials}`,
      );
    }
    return { address: t.address, port: deps.snmpPort, credential: cred };
  };

  return {
    snmpGet: async (body, ctx) => {
      const vbs = unwrap(await deps.snmp.get(snmpTarget(body.target), body.oids, { signal: ctx.signal }));
      return { varbinds: varbindsOut(vbs) };
    },
    snmpWalk: async (body, ctx) => {
      const vbs = unwrap(
        await deps.snmp.walk(snmpTarget(body.target), body.rootOid, {
          signal: ctx.signal,
          maxVarbinds: body.maxVarbinds,
          maxMs: body.maxMs,
        }),
      );
      return { rootOid: body.rootOid, count: vbs.length, varbinds: varbindsOut(vbs) };
    },
    reboot: async (body, ctx) => {
      const d = deps.device(body.deviceId);
      if (!d) throw new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `no device ${body.deviceId} on this agent`);
      const driver = deps.drivers[d.driver];
      if (!driver) throw new PolyfleetError("POLYFLEET_ERR_COMMAND_UNSUPPORTED", `no driver ${d.driver}`);
      const r = await driver.reboot(d.target, { signal: ctx.signal });
      if (!r.ok)
        throw new PolyfleetError("POLYFLEET_ERR_COMMAND_FAILED", `${r.error.code}: ${r.error.message}`);
      return {
        deviceId: body.deviceId,
        rebooting: true,
        reason: body.reason,
        ...(r.detail ? { detail: r.detail } : {}),
      };
    },
    rediscover: (body, ctx) => deps.rediscover(body.ranges, ctx.signal),
  };
}
