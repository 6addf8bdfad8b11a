import { z } from "zod";

/**
 * Answers of the Poly UC Software REST API (VVX, Trio, CCX, Edge), as documented in
 * ../shared/poly-devices.md §1. Scalars are strings on real devices. Schemas are loose (unknown keys pass)
 * because firmware adds fields; they pin what drivers read. The simulator's conformance suite checks its
 * answers against them, and the agent's `poly-ucs` driver parses device answers with them.
 */
const Str = z.string();
const NumStr = z.string().regex(/^-?\d+(\.\d+)?$/, "numeric string");

/** `{"Status":"2000","data":...}`. POST answers on some firmware carry Status as a bare number. */
export function ucEnvelope<T extends z.ZodType>(data: T) {
  return z.object({ Status: z.union([z.string().regex(/^\d{4}$/), z.int()]), data });
}

export const UcStatusOnly = z.object({ Status: z.union([z.string().regex(/^\d{4}$/), z.int()]) });

export const UcDeviceInfoV2 = ucEnvelope(
  z.object({
    ModelNumber: Str,
    DeviceType: Str,
    DeviceVendor: Str,
    MACAddress: z.string().regex(/^[0-9a-f]{12}$/),
    Firmware: z.object({ Application: Str, Updater: Str, BootBlock: Str }),
    UpTime: z.object({ Days: NumStr, Hours: NumStr, Minutes: NumStr, Seconds: NumStr }),
    IPAddress: Str,
    IPStack: Str.optional(),
    AppState: Str,
    ReadyToUse: z.enum(["True", "False"]).optional(),
    AttachedHardware: z.record(z.string(), z.unknown()).optional(),
  }),
);
export type UcDeviceInfoV2 = z.infer<typeof UcDeviceInfoV2>;

/** v1 device/info: the legacy shape (FirmwareRelease, UpTimeSinceLastReboot) or the newer one. */
export const UcDeviceInfoV1 = ucEnvelope(
  z.union([
    z.object({
      ModelNumber: Str,
      FirmwareRelease: Str,
      UpTimeSinceLastReboot: z.string().regex(/^\d+ Days? \d{1,2}:\d{2}:\d{2}$/),
      IPV4Address: Str,
      MACAddress: Str,
      DeviceType: Str,
      DeviceVendor: Str,
    }),
    z.object({
      ModelNumber: Str,
      Firmware: z.object({ Application: Str }).loose(),
      UpTime: z.object({ Days: NumStr }).loose(),
      MACAddress: Str,
    }),
  ]),
);

export const UcDeviceStats = ucEnvelope(
  z.object({
    CPU: z.object({ Current: NumStr, Average: NumStr }),
    Memory: z.object({
      Total: NumStr,
      Used: NumStr,
      Free: NumStr,
      SReclaim: NumStr.optional(),
      Cached: NumStr.optional(),
    }),
  }),
);
export type UcDeviceStats = z.infer<typeof UcDeviceStats>;

export const UcNetworkInfo = ucEnvelope(
  z.object({
    IPV4Address: Str,
    SubnetMask: Str,
    DefaultGateway: Str,
    DHCP: Str,
    DNSServer: Str,
    LANSpeed: Str,
    LANPortStatus: Str,
    ProvServerAddress: Str,
    ProvServerType: Str,
  }),
);

export const UcNetworkStats = ucEnvelope(
  z.object({
    RxPackets: NumStr,
    TxPackets: NumStr,
    UpTime: z.string().regex(/^\d+ days? \d{1,2}:\d{2}:\d{2}$/),
  }),
);
export type UcNetworkStats = z.infer<typeof UcNetworkStats>;

export const UcLineInfoV1 = ucEnvelope(
  z.array(
    z.object({
      LineNumber: NumStr,
      RegistrationStatus: z.enum(["registered", "unregistered"]),
      SIPAddress: Str,
      Label: Str.optional(),
      UserID: Str.optional(),
      ProxyAddress: Str.optional(),
    }),
  ),
);
export type UcLineInfoV1 = z.infer<typeof UcLineInfoV1>;

export const UcLineInfoV2 = ucEnvelope(
  z.array(
    z.object({
      LineNumber: NumStr.optional(),
      RegistrationStatus: z.enum(["registered", "unregistered"]),
      Username: Str.optional(),
      Label: Str.optional(),
      CallServers: z.array(z.unknown()),
    }),
  ),
);

export const UcPollForStatus = ucEnvelope(z.object({ State: Str, StateData: z.unknown().optional() }));

export const UcCallStatusV2 = ucEnvelope(
  z.array(
    z
      .object({ CallState: Str, CallHandle: Str, LineID: Str.optional(), DurationSeconds: NumStr.optional() })
      .loose(),
  ),
);

export const UcSessionStats = ucEnvelope(
  z.array(
    z.object({
      Ref: Str.optional(),
      Streams: z.array(
        z
          .object({ Category: Str, PacketsLost: NumStr.optional(), PacketsExpected: NumStr.optional() })
          .loose(),
      ),
    }),
  ),
);

export const UcConfigGet = ucEnvelope(z.record(z.string(), z.object({ Value: Str, Source: Str })));

export const UcMrPair = ucEnvelope(
  z.object({
    ConnectedDeviceList: z.array(
      z.object({
        ComponentList: z.array(
          z.object({ componentType: Str, componentName: Str, componentSerialNumber: Str.optional() }).loose(),
        ),
      }),
    ),
  }),
);
