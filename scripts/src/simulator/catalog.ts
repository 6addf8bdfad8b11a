/**
 * The simulated models: real model strings, part numbers and version lines from ../shared/poly-devices.md §5.
 * Entries marked `synthetic` use plausible values where no public source confirms the real one.
 */
export type Family = "uc" | "videoos";

export interface ModelSpec {
  family: Family;
  /** `ModelNumber` (UC) or `model` (VideoOS) exactly as the device reports it. */
  model: string;
  /** Series, for realistic user-agents and LLDP strings: VVX, Trio, CCX, StudioX, G7500. */
  series: string;
  partNumber: string;
  /** MAC OUIs (6 lowercase hex) the model ships with. */
  ouis: string[];
  /** Firmware versions the model may run at start: UC `a.b.c.dddd`, VideoOS `a.b.c` with build. */
  firmware: { version: string; build?: string; date: string }[];
  /** Relative share in the "real mix" fleet. */
  weight: number;
  synthetic?: boolean;
}

const UC_OUIS = ["64167f", "0004f2"];
const VIDEO_OUIS = ["00e0db"];

export const MODELS: ModelSpec[] = [
  {
    family: "uc",
    model: "VVX 350",
    series: "VVX",
    partNumber: "3111-48830-001",
    ouis: UC_OUIS,
    firmware: [
      { version: "5.9.3.2857", date: "02-Jul-19 06:14" },
      { version: "5.9.7.4477", date: "18-Feb-21 11:02" },
    ],
    weight: 14,
  },
  {
    family: "uc",
    model: "VVX 311",
    series: "VVX",
    partNumber: "3111-48350-001",
    ouis: UC_OUIS,
    firmware: [{ version: "5.9.7.4477", date: "18-Feb-21 11:02" }],
    weight: 10,
  },
  {
    family: "uc",
    model: "VVX 501",
    series: "VVX",
    partNumber: "3111-44500-001",
    ouis: UC_OUIS,
    firmware: [{ version: "5.9.8.5760", date: "09-Nov-22 14:40" }],
    weight: 8,
  },
  {
    family: "uc",
    model: "VVX 601",
    series: "VVX",
    partNumber: "3111-48600-001",
    ouis: UC_OUIS,
    firmware: [{ version: "5.9.7.4477", date: "18-Feb-21 11:02" }],
    weight: 6,
  },
  {
    family: "uc",
    model: "Trio 8800",
    series: "Trio",
    partNumber: "3111-65290-001",
    ouis: UC_OUIS,
    firmware: [
      { version: "7.2.2.1094", date: "28-Feb-22 15:29" },
      { version: "8.0.2.0267", date: "14-Mar-23 09:51" },
    ],
    weight: 8,
  },
  {
    family: "uc",
    model: "Trio 8300",
    series: "Trio",
    partNumber: "3111-66700-001",
    ouis: UC_OUIS,
    firmware: [{ version: "8.0.2.0267", date: "14-Mar-23 09:51" }],
    weight: 4,
    synthetic: true,
  },
  {
    family: "uc",
    model: "Trio C60",
    series: "Trio",
    partNumber: "3111-87650-001",
    ouis: UC_OUIS,
    firmware: [{ version: "8.1.3.1301", date: "20-Sep-23 17:12" }],
    weight: 4,
    synthetic: true,
  },
  {
    family: "uc",
    model: "CCX 500",
    series: "CCX",
    partNumber: "3111-49710-001",
    ouis: UC_OUIS,
    firmware: [
      { version: "8.1.3.1301", date: "20-Sep-23 17:12" },
      { version: "8.2.1.0034", date: "11-Apr-24 08:03" },
    ],
    weight: 14,
    synthetic: true,
  },
  {
    family: "uc",
    model: "CCX 600",
    series: "CCX",
    partNumber: "3111-49720-001",
    ouis: UC_OUIS,
    firmware: [{ version: "8.2.1.0034", date: "11-Apr-24 08:03" }],
    weight: 10,
    synthetic: true,
  },
  {
    family: "videoos",
    model: "StudioX30",
    series: "StudioX",
    partNumber: "2200-86260-001",
    ouis: VIDEO_OUIS,
    firmware: [
      { version: "3.10.0", build: "362035", date: "2022-06-01" },
      { version: "3.12.0", build: "366027", date: "2022-12-01" },
    ],
    weight: 8,
    synthetic: true,
  },
  {
    family: "videoos",
    model: "StudioX50",
    series: "StudioX",
    partNumber: "2200-86270-001",
    ouis: VIDEO_OUIS,
    firmware: [{ version: "3.12.0", build: "366027", date: "2022-12-01" }],
    weight: 6,
    synthetic: true,
  },
  {
    family: "videoos",
    model: "StudioX70",
    series: "StudioX",
    partNumber: "2200-87280-001",
    ouis: VIDEO_OUIS,
    firmware: [{ version: "4.1.0", build: "401117", date: "2023-09-15" }],
    weight: 3,
    synthetic: true,
  },
  {
    family: "videoos",
    model: "G7500",
    series: "G7500",
    partNumber: "2200-85780-001",
    ouis: VIDEO_OUIS,
    firmware: [{ version: "3.12.0", build: "366027", date: "2022-12-01" }],
    weight: 5,
    synthetic: true,
  },
];

export function findModel(model: string): ModelSpec | undefined {
  return MODELS.find((m) => m.model === model);
}
