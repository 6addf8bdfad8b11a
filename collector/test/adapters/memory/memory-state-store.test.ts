import { MemoryStateStore } from "../../../src/adapters/memory/memory-state-store.js";
import { describeStateStoreContract } from "../../contracts/state-store.contract.js";

// The memory store keeps its data in the object: a "restart" reopens the same instance.
describeStateStoreContract("memory", () => {
  const store = new MemoryStateStore();
  return Promise.resolve({
    open: async () => {
      await store.migrate();
      return store;
    },
    dispose: () => Promise.resolve(),
  });
});
