import { ApiError } from "@polyfleet/shared";
import { z } from "zod";

/** `:id` path parameter. */
export const IdParams = z.strictObject({ id: z.string().min(1).max(200) });

/** The error envelope, documented for every route. */
export const ERROR_RESPONSES = { "4xx": ApiError, "5xx": ApiError } as const;

/** Empty 204 answer. */
export const NO_CONTENT = z.undefined().describe("done");
