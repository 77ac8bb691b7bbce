// Where a mesh step's orchestration overhead goes, read from the workflow's history (section 2c of
// `npm run bench`). A step's overhead as the workflow sees it runs from the workflow task that
// scheduled it to the one that resumed after it; the server's event times split it in four:
//   scheduling task: from that task's start to the step's schedule (the workflow code and the
//     commands of every step scheduled with it);
//   dispatch: schedule to start (eager: handed back with the task's completion; otherwise through
//     the task queue's matching);
//   run: start to completion (the activity, a no-op here, and its result reported);
//   next task: completion to the start of the workflow task that sees it (another task of the
//     same workflow still running, which its siblings' completions queue behind, then dispatch).
import type { temporal } from '@temporalio/proto';
import { STEP_ACTIVITIES } from '../workflows/activity-names';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export interface StepParts {
  activity: string;
  schedulingTaskMs: number;
  dispatchMs: number;
  runMs: number;
  nextTaskMs: number;
  totalMs: number;
}

const STEP_TYPES = new Set<string>(Object.values(STEP_ACTIVITIES));

const timeOf = (e: HistoryEvent): number =>
  Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);

const idOf = (e: HistoryEvent): number => Number(e.eventId);

/** The four parts of every step activity that completed, in the order they were scheduled. */
export function stepOverheadParts(events: HistoryEvent[]): StepParts[] {
  const byId = new Map(events.map((e) => [idOf(e), e]));
  const started = new Map<number, HistoryEvent>();
  const completed = new Map<number, HistoryEvent>();
  for (const e of events) {
    const s = e.activityTaskStartedEventAttributes;
    if (s) started.set(Number(s.scheduledEventId), e);
    const c = e.activityTaskCompletedEventAttributes;
    if (c) completed.set(Number(c.scheduledEventId), e);
  }
  const taskStarts = events.filter((e) => e.workflowTaskStartedEventAttributes);
  const parts: StepParts[] = [];
  for (const e of events) {
    const a = e.activityTaskScheduledEventAttributes;
    if (!a || !STEP_TYPES.has(a.activityType?.name ?? '')) continue;
    const start = started.get(idOf(e));
    const done = completed.get(idOf(e));
    const taskDone = byId.get(Number(a.workflowTaskCompletedEventId));
    const taskStart = byId.get(Number(taskDone?.workflowTaskCompletedEventAttributes?.startedEventId));
    if (!start || !done || !taskStart) continue;
    const next = taskStarts.find((t) => idOf(t) > idOf(done));
    if (!next) continue;
    parts.push({
      activity: a.activityType!.name!,
      schedulingTaskMs: timeOf(e) - timeOf(taskStart),
      dispatchMs: timeOf(start) - timeOf(e),
      runMs: timeOf(done) - timeOf(start),
      nextTaskMs: timeOf(next) - timeOf(done),
      totalMs: timeOf(next) - timeOf(taskStart),
    });
  }
  return parts;
}

/** How long the workflow tasks of a history took, start to completion (ms). */
export function workflowTaskDurations(events: HistoryEvent[]): number[] {
  const byId = new Map(events.map((e) => [idOf(e), e]));
  return events
    .filter((e) => e.workflowTaskCompletedEventAttributes)
    .map((e) => timeOf(e) - timeOf(byId.get(Number(e.workflowTaskCompletedEventAttributes!.startedEventId))!));
}
