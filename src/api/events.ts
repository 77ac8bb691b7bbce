// Following a mesh as server-sent events. The workflow has no push channel, so the stream polls
// its status query (every 250 ms by default) and sends what changed since the last answer:
//   status  the whole status, once, first
//   step    a step whose state or attempt count changed (the changes `meshflow up` prints), in plan order
//   phase   the mesh's phase changed: { phase, previous }
//   drift   a new drift report (the status's drift: a check ran, on schedule or on request)
//   error   the status could not be read (once per run of failures; polling goes on)
//   end     { reason, phase }, then the stream closes: reason "ended" (deleted, failed or kept),
//           "ready" (with ?until=ready), or "shutdown" (the server is stopping)
// A client that disconnects stops the polling.
import { setTimeout as sleep } from 'node:timers/promises';
import type { StatusView } from '../client';
import type { MeshPhase, StepStatus } from '../workflows/types';

export const FINAL_PHASES: readonly MeshPhase[] = ['deleted', 'failed', 'kept'];
export const POLL_MS = 250;

export type SendEvent = (
  event: 'status' | 'step' | 'phase' | 'drift' | 'error' | 'end',
  data: unknown,
) => Promise<void>;

const stepKey = (s: StepStatus) => `${s.state}#${s.attempts ?? 0}`;

/** The steps of `next` whose state or attempt count differ from `prev`, in plan order. */
export function stepChanges(prev: StatusView, next: StatusView): StepStatus[] {
  const before = new Map(prev.steps.map((s) => [s.id, stepKey(s)]));
  return next.steps.filter((s) => before.get(s.id) !== stepKey(s));
}

/** Why a follow ended, unless the client went away (then nothing more is sent). */
function endReason(s: StatusView, untilReady: boolean): 'ended' | 'ready' | undefined {
  if (FINAL_PHASES.includes(s.phase)) return 'ended';
  return untilReady && s.phase === 'ready' ? 'ready' : undefined;
}

export async function followMesh(opts: {
  first: StatusView;
  poll: () => Promise<StatusView>;
  send: SendEvent;
  untilReady: boolean;
  /** Aborted with reason "shutdown" when the server stops, anything else when the client left. */
  signal: AbortSignal;
  intervalMs?: number;
}): Promise<void> {
  const { poll, send, untilReady, signal } = opts;
  let prev = opts.first;
  await send('status', prev);
  let failing = false;
  for (;;) {
    const reason = endReason(prev, untilReady);
    if (reason) return send('end', { reason, phase: prev.phase });
    try {
      await sleep(opts.intervalMs ?? POLL_MS, undefined, { signal });
    } catch {
      if (signal.reason === 'shutdown') await send('end', { reason: 'shutdown', phase: prev.phase });
      return;
    }
    let next: StatusView;
    try {
      next = await poll();
    } catch (err) {
      if (!failing) await send('error', { message: (err as Error).message });
      failing = true;
      continue;
    }
    failing = false;
    for (const step of stepChanges(prev, next)) await send('step', step);
    if (next.phase !== prev.phase) await send('phase', { phase: next.phase, previous: prev.phase });
    if (next.drift && JSON.stringify(next.drift) !== JSON.stringify(prev.drift)) await send('drift', next.drift);
    prev = next;
  }
}
