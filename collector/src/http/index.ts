export type { AlertActions, ApiConfig, ApiDeps, Principal, SseHub } from "./api-deps.js";
export { generateTokenSecret, hashToken, issueToken, TOKEN_FORMAT } from "./auth.js";
export { TokenBucketLimiter } from "./rate-limit.js";
export { API_PREFIX, buildServer } from "./server.js";
