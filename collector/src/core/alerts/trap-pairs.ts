/**
 * Resolution trap name -> the problem trap names it clears. Mirrors the pairs of the agent's
 * POLYCOM-ENDPOINT-MIB table (agent/src/core/trap-map.ts) and the SNMPv2-MIB linkDown/linkUp pair; the agent
 * sends names, kinds and severities, the collector only needs the pairing.
 */
export const TRAP_RESOLUTIONS: ReadonlyMap<string, readonly string[]> = new Map([
  ["securityPortUnlocked", ["securityPortLocked"]],
  ["securityAccountUnlocked", ["securityAccountLocked"]],
  ["softwareUpdateComplete", ["softwareUpdateFailed"]],
  ["h323GateKeeperRegistrationOK", ["h323GateKeeperRegistrationFailed"]],
  ["sipRegistrationOK", ["sipRegistrationFailed"]],
  ["isdnLineUp", ["isdnLineDown"]],
  ["primaryCameraOK", ["primaryCameraDown"]],
  ["jitterOK", ["jitterExcessive"]],
  ["latencyOK", ["latencyExcessive"]],
  ["packetLossOK", ["packetLossExcessive"]],
  ["presenceServerOK", ["presenceServerDown"]],
  ["cdrServerOK", ["cdrServerDown"]],
  ["syslogServerOK", ["syslogServerDown"]],
  ["softwareUpdateServerOK", ["softwareUpdateServerDown"]],
  ["provisioningServerOK", ["provisioningServerDown"]],
  ["calendarServerOK", ["calendarServerDown"]],
  ["directoryServerOK", ["directoryServerDown"]],
  ["remoteControlBatteryOK", ["remoteControlBatteryLow"]],
  ["linkUp", ["linkDown"]],
]);

/** The problem trap names a resolution trap clears (empty for an unknown resolution). */
export function problemsClearedBy(resolution: string): readonly string[] {
  return TRAP_RESOLUTIONS.get(resolution) ?? [];
}
