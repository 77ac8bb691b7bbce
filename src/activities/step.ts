// The one wrapper every mesh activity runs in. It gives the step an abort signal (a cancel from
// the workflow, delivered with a heartbeat's answer), heartbeats on its own every second so a
// cancel or a lost worker is noticed within seconds, and keeps the step's trace: every resource
// the step is about to create is tracked before it is created, carried in each heartbeat (so a
// retry after a crash knows what the dead attempt made) and in the details of any failure, so the
// workflow's compensation removes exactly what was made, whether the step succeeded or not.
import { setMaxListeners } from 'node:events';
import { CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Heartbeat } from '../adapters/kube';
import { PermanentError } from '../util/errors';
import { type Resource, type StepOutcome, type StepTrace, mergeResources } from '../steps/contract';

/** How often the wrapper heartbeats (the SDK sends at most one per throttle interval). */
const BEAT_MS = 1000;

export interface StepContext {
  /** Aborted when the workflow cancels the step (teardown, TTL expiry, a failure elsewhere). */
  readonly signal: AbortSignal;
  /** Reports progress; the wrapper adds the trace and sends it with the next heartbeat. */
  readonly heartbeat: Heartbeat;
  /** Records resources the step is about to create: call it before creating them. */
  track(...resources: Resource[]): void;
  readonly attempt: number;
  /** The progress the previous attempt last reported (to resume, say, a cloud operation it started). */
  readonly previous?: unknown;
}

export type StepResult = Omit<StepOutcome, 'attempt' | 'resources'> & { resources?: Resource[] };

/** The running activity's context, or undefined outside an activity (a direct call in a test). */
export function current(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined; // a direct call outside an activity (tests)
  }
}

/** Runs a step; its outcome lists everything it tracked (this attempt's and earlier attempts'). */
export async function runStep(fn: (ctx: StepContext) => Promise<StepResult>): Promise<StepOutcome> {
  const activity = current();
  const earlier = activity?.info.heartbeatDetails as StepTrace | undefined;
  const trace: StepTrace = { resources: mergeResources([], earlier?.resources ?? []) };
  const beat = () => activity?.heartbeat(trace);
  const ctx: StepContext = {
    signal: activity?.cancellationSignal ?? new AbortController().signal,
    heartbeat: (progress) => {
      trace.progress = progress;
      beat();
    },
    track: (...resources) => {
      mergeResources(trace.resources, resources);
      beat();
    },
    attempt: activity?.info.attempt ?? 1,
    previous: earlier?.progress,
  };
  // Every request and wait of the step listens on the signal; a step runs many at once.
  setMaxListeners(0, ctx.signal);
  beat();
  const timer = setInterval(beat, BEAT_MS);
  try {
    const result = await fn(ctx);
    // Done, but cancelled meanwhile: report as cancelled, with everything made, so it is undone.
    ctx.signal.throwIfAborted();
    return { ...result, resources: mergeResources(trace.resources, result.resources ?? []), attempt: ctx.attempt };
  } catch (err) {
    throw failureOf(err, ctx.signal, trace);
  } finally {
    clearInterval(timer);
  }
}

/** The failure a step reports: typed, retryable or not, always with its trace in the details. */
export function failureOf(err: unknown, signal: AbortSignal, trace: StepTrace): Error {
  const details = [{ resources: trace.resources }];
  if (signal.aborted || err instanceof CancelledFailure) return new CancelledFailure('step cancelled', details);
  if (err instanceof ApplicationFailure) {
    return ApplicationFailure.create({
      type: err.type ?? 'Error',
      message: err.message,
      nonRetryable: err.nonRetryable ?? false,
      details,
    });
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return ApplicationFailure.create({
    type: e.name,
    message: e.message,
    nonRetryable: e instanceof PermanentError,
    details,
  });
}
