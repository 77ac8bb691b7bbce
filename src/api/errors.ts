// The API's failures: one answer shape for all of them, `{ "error": { code, message, problems? } }`,
// and what Temporal's errors mean to a client.
import { status as grpcStatus } from '@grpc/grpc-js';
import { isGrpcServiceError } from '@temporalio/client';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { type SpecError, problemLine } from '../spec/load';

export interface Problem {
  path: string;
  message: string;
  line?: number;
  column?: number;
  /** The problem in one line, as `meshflow validate` prints it. */
  text: string;
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly problems?: Problem[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): { error: { code: string; message: string; problems?: Problem[] } } {
    return { error: { code: this.code, message: this.message, ...(this.problems ? { problems: this.problems } : {}) } };
  }
}

export function specProblems(err: SpecError): Problem[] {
  return err.problems.map((p) => ({ ...p, text: problemLine(err.file, p) }));
}

/** A request Temporal could not answer because it is down, unreachable or too slow: 503. */
export function temporalUnavailable(err: unknown): ApiError | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (isGrpcServiceError(e) && (e.code === grpcStatus.UNAVAILABLE || e.code === grpcStatus.DEADLINE_EXCEEDED)) {
      return new ApiError(503, 'temporal_unavailable', `Temporal did not answer: ${e.message}`);
    }
  }
  return undefined;
}

/** The reason Temporal gives under its own wrapper (an update validator's message, a failure's). */
export function innermostMessage(err: Error): string {
  let message = err.message;
  for (let c = err.cause; c instanceof Error; c = c.cause) if (c.message) message = c.message;
  return message;
}
