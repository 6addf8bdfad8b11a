import { defineConfig } from "vitest/config";

// Tests run against the TypeScript sources of sibling workspaces (the `@polyfleet/source` export
// condition), so no build is needed before `vitest run`.
export default defineConfig({
  resolve: { conditions: ["@polyfleet/source"] },
  ssr: { resolve: { conditions: ["@polyfleet/source"] } },
  test: {
    // Two test files at a time (the default on 2 cores is one): the suite's wall time is mostly e2e tests
    // that wait on devices, brokers and timers rather than burn CPU.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["*/test/**/*.test.ts"],
          exclude: ["*/test/**/*.int.test.ts", "**/node_modules/**"],
        },
      },
      {
        extends: true,
        test: {
          name: "int",
          include: ["*/test/**/*.int.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
