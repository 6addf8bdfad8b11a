import { AgentConfig, loadConfigFile } from "@polyfleet/shared";

export { PROCESS_SECRETS, resolveSecret, type SecretSources } from "@polyfleet/shared";

/** Reads and validates `agent.yaml`. Errors name the file, the key and the reason; never a secret value. */
export function loadAgentConfig(file: string): AgentConfig {
  return loadConfigFile(AgentConfig, file);
}
