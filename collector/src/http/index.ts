export type { AlertActions, ApiConfig, ApiDeps, Principal, SseHub } from "./api-deps.js";
export { generateTokenSecret, hashToken, issueToken } from "./auth.js";
export { TokenBucketLimiter } from "./rate-limit.js";
export { API_PREFIX, buildServer } from "./server.js";
