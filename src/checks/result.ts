// The vocabulary every check of `verify` speaks: a verdict (passed, failed with a hint, or not
// supported here) and `call`, which runs one request of a check with its retry budget.
import type { CheckResult } from '../steps/contract';

export type Verdict = Omit<CheckResult, 'name' | 'cluster'>;
/** Runs one request of a check, retrying transient errors within the check's budget. */
export type Call = <T>(fn: () => Promise<T>) => Promise<T>;

export const pass = (detail: string): Verdict => ({ status: 'passed', detail });
export const fail = (detail: string, hint: string): Verdict => ({ status: 'failed', detail, hint });
export const notSupported = (detail: string): Verdict => ({ status: 'not-supported', detail });

export const notFound = (err: unknown) => (err as { code?: unknown }).code === 404;

/**
 * A check met only transient errors until its retry budget ran out. It is not a verdict about
 * the mesh: verifyMesh throws it (a retryable activity failure) rather than report a failed check.
 */
export class ChecksUnavailableError extends Error {
  override name = 'ChecksUnavailable';
}
