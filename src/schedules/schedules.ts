// meshflow's Temporal Schedules: the sweep (`meshflow-sweep`) and recurring meshes
// (`meshflow-mesh-<name>`). Temporal keeps the calendar, overlap and catch-up; meshflow only
// creates, reads and steers schedules, for the CLI and the HTTP API alike.
import { status as grpcStatus } from '@grpc/grpc-js';
import {
  type Client,
  isGrpcServiceError,
  type ScheduleDescription,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type ScheduleSummary,
} from '@temporalio/client';
import { meshSummary, planDetails, recordedSpec } from '../client';
import { hasInlineRoot } from '../trust-store/spec-files';
import { formatDurationMs, parseDuration } from '../spec/duration';
import type { MeshSpec } from '../spec/schema';
import { TASK_QUEUE } from '../workflows/definitions';
import type { ScheduledMeshInput, ScheduledMeshResult, scheduledMesh } from '../workflows/scheduled-mesh';
import type { SweepInput, sweepMeshes } from '../sweep/workflow';
import { cronMinGapMs } from './interval';

export const SWEEP_SCHEDULE_ID = 'meshflow-sweep';
export const meshScheduleId = (mesh: string) => `meshflow-mesh-${mesh}`;
export const DEFAULT_KEPT_LIMIT = '24h';

/** Temporal's overlap policies by the names meshflow gives them; allow-all is refused (checkWhen) but named. */
export const OVERLAPS = { skip: 'SKIP', 'buffer-one': 'BUFFER_ONE', 'allow-all': 'ALLOW_ALL' } as const;
export type Overlap = keyof typeof OVERLAPS;
/** The policies that never run two actions at once: a mesh schedule's action lasts as long as its mesh. */
const ONE_AT_A_TIME: Overlap[] = ['skip', 'buffer-one'];
export type ScheduleKind = 'sweep' | 'mesh';
/**
 * The shortest interval between two runs of a schedule, and why. A mesh takes minutes to stand up
 * and tear down; a sweep is one listing and a status query per open mesh, so it may run more often.
 */
export const MIN_INTERVAL: Record<ScheduleKind, { every: string; why: string }> = {
  mesh: { every: '5m', why: 'a mesh takes minutes to stand up and tear down' },
  sweep: { every: '1m', why: 'each sweep lists the open meshes and asks each its status' },
};

/** A request that cannot become a schedule: the problems say which field and why. */
export class ScheduleInputError extends Error {
  override name = 'ScheduleInputError';
  constructor(readonly problems: Array<{ path: string; message: string }>) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('; '));
  }
}
export class ScheduleExistsError extends Error {
  override name = 'ScheduleExistsError';
}
export class NoScheduleError extends Error {
  override name = 'NoScheduleError';
}

/** When a schedule runs: every DURATION, or a cron expression (checked by Temporal itself). */
export interface When {
  every?: string;
  cron?: string;
}

export interface ScheduleOptions extends When {
  overlap?: Overlap;
  paused?: boolean;
}

/** What meshflow keeps in the schedule's memo: what it is and when, as the user wrote it. */
interface ScheduleMemo extends When {
  kind: ScheduleKind;
  mesh?: string;
  keptLimit?: string;
  /** What each run is, in a line. */
  summary: string;
}

/** Refuses what cannot become a `kind` schedule, every problem at once, before anything is created. */
export function checkWhen(kind: ScheduleKind, when: ScheduleOptions): void {
  const problems: Array<{ path: string; message: string }> = [];
  if ((when.every === undefined) === (when.cron === undefined))
    problems.push({ path: 'every', message: 'give exactly one of every (a duration such as 5m) or cron' });
  const floor = MIN_INTERVAL[kind];
  const min = parseDuration(floor.every)!;
  const which = kind === 'mesh' ? 'a mesh schedule' : 'the sweep';
  const tooOften = (gap: number) =>
    `runs every ${formatDurationMs(gap)}; the shortest interval of ${which} is ${floor.every} (${floor.why})`;
  const every = when.every === undefined ? undefined : parseDuration(when.every);
  if (when.every !== undefined && !((every ?? 0) > 0))
    problems.push({ path: 'every', message: `"${when.every}" is not a positive duration such as 5m or 1h` });
  else if (every !== undefined && every < min) problems.push({ path: 'every', message: tooOften(every) });
  if (when.cron !== undefined && !when.cron.trim()) problems.push({ path: 'cron', message: 'empty cron expression' });
  else if (when.cron !== undefined) {
    const gap = cronMinGapMs(when.cron);
    const fields = when.cron.trim().split(/\s+/).length;
    // Fewer or more fields, or a form not read here: Temporal's parser says what is wrong with it.
    if (gap === undefined && fields >= 5 && fields <= 7 && !when.cron.trim().startsWith('@'))
      problems.push({
        path: 'cron',
        message:
          `cannot tell how often "${when.cron}" runs: ` +
          'write its seconds, minutes and hours as numbers, ranges, steps or lists',
      });
    else if (gap !== undefined && gap < min) problems.push({ path: 'cron', message: tooOften(gap) });
  }
  if (when.overlap !== undefined && !(when.overlap in OVERLAPS))
    problems.push({ path: 'overlap', message: `"${when.overlap}": choose one of ${ONE_AT_A_TIME.join(', ')}` });
  else if (when.overlap !== undefined && !ONE_AT_A_TIME.includes(when.overlap))
    problems.push({
      path: 'overlap',
      message:
        `${when.overlap} would start a run while the last one is open, and two runs of one mesh make the same ` +
        `clusters (every resource name derives from the mesh name): choose ${ONE_AT_A_TIME.join(' or ')}`,
    });
  if (problems.length) throw new ScheduleInputError(problems);
}

const specOf = (when: When) =>
  when.every !== undefined ? { intervals: [{ every: parseDuration(when.every)! }] } : { cronExpressions: [when.cron!] };

/**
 * Temporal's reason when it refused the request as invalid, e.g. a cron expression: the SDK
 * rethrows the server's "Invalid schedule spec" as a TypeError, anything else stays INVALID_ARGUMENT.
 */
function invalidArgument(err: unknown): string | undefined {
  if (err instanceof TypeError) return err.message;
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (isGrpcServiceError(e) && e.code === grpcStatus.INVALID_ARGUMENT) return e.details || e.message;
  }
  return undefined;
}

/** Creates the schedule; Temporal refuses a cron expression it cannot parse (then: ScheduleInputError). */
async function create(client: Client, options: Parameters<Client['schedule']['create']>[0]): Promise<string> {
  try {
    await client.schedule.create(options);
    return options.scheduleId;
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning)
      throw new ScheduleExistsError(
        `schedule ${options.scheduleId} already exists: \`meshflow schedule delete ${options.scheduleId}\` first`,
      );
    const refused = invalidArgument(err);
    if (refused)
      throw new ScheduleInputError([
        { path: 'cronExpressions' in options.spec ? 'cron' : 'schedule', message: refused },
      ]);
    throw err;
  }
}

/** The sweep, every `when`; SKIP: a sweep still running makes the next one wait its turn. */
export async function createSweepSchedule(
  client: Client,
  when: ScheduleOptions & { keptLimit?: string },
  taskQueue = TASK_QUEUE,
): Promise<string> {
  checkWhen('sweep', when);
  const keptLimit = when.keptLimit ?? DEFAULT_KEPT_LIMIT;
  const keptLimitMs = parseDuration(keptLimit);
  if (keptLimitMs === undefined)
    throw new ScheduleInputError([{ path: 'keptLimit', message: `"${keptLimit}" is not a duration such as 24h` }]);
  const input: SweepInput = { keptLimitMs, graceMs: 60_000 };
  const summary = `sweep: expired meshes, and meshes kept over ${keptLimit}`;
  const memo: ScheduleMemo = { kind: 'sweep', every: when.every, cron: when.cron, keptLimit, summary };
  return create(client, {
    scheduleId: SWEEP_SCHEDULE_ID,
    spec: specOf(when),
    action: {
      type: 'startWorkflow',
      workflowType: 'sweepMeshes' satisfies (typeof sweepMeshes)['name'],
      args: [input],
      taskQueue,
      workflowId: 'meshflow-sweep',
      staticSummary: summary,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
    state: { paused: when.paused ?? false },
    memo: { ...memo },
  });
}

/**
 * A mesh started from `spec` at every tick; its TTL ends each run. Each tick runs scheduledMesh
 * (`meshflow-mesh-<name>-<scheduled time>`: Temporal appends the time), which starts the mesh as its
 * child `mesh/<name>`, as `up` names it, and lasts as long as the mesh: one run per mesh name at a
 * time, whoever starts it (see src/workflows/scheduled-mesh.ts).
 */
export async function createMeshSchedule(
  client: Client,
  spec: MeshSpec,
  when: ScheduleOptions,
  taskQueue = TASK_QUEUE,
): Promise<string> {
  checkWhen('mesh', when);
  if (hasInlineRoot(spec)) {
    // A schedule's action holds the spec as it is, and each tick's run records it: no key may be in it.
    throw new ScheduleInputError([
      { path: 'trust.rootCa', message: 'a scheduled mesh names its root CA by files (certFile, keyFile), not as PEM' },
    ]);
  }
  const recorded = recordedSpec(spec);
  const input: ScheduledMeshInput = { spec: recorded, summary: meshSummary(spec), details: planDetails(recorded) };
  const { clusters, istio, ttl } = spec;
  const summary = `mesh ${spec.name} (scheduled): ${clusters.length} cluster(s), ${istio.topology}, ttl ${ttl}`;
  const memo: ScheduleMemo = { kind: 'mesh', mesh: spec.name, every: when.every, cron: when.cron, summary };
  return create(client, {
    scheduleId: meshScheduleId(spec.name),
    spec: specOf(when),
    action: {
      type: 'startWorkflow',
      workflowType: 'scheduledMesh' satisfies (typeof scheduledMesh)['name'],
      args: [input],
      taskQueue,
      workflowId: meshScheduleId(spec.name),
      staticSummary: summary,
    },
    policies: { overlap: ScheduleOverlapPolicy[OVERLAPS[when.overlap ?? 'skip']] },
    state: { paused: when.paused ?? false },
    memo: { ...memo },
  });
}

/** A schedule as `meshflow schedule list|describe` and the API show it. */
export interface ScheduleView {
  id: string;
  kind: 'sweep' | 'mesh' | 'other';
  mesh?: string;
  /** When it runs, as given: "every 5m" or "cron 0 * * * *". */
  spec: string;
  keptLimit?: string;
  /** What each run is: the mesh's clusters, topology and TTL, or the sweep's limit. */
  summary?: string;
  overlap?: string;
  paused: boolean;
  nextRuns: string[];
  /** `outcome`: what the run came to, e.g. `skipped: mesh demo is already running as mesh/demo`. */
  recentActions: Array<{ scheduledAt: string; workflowId: string; runId: string; outcome?: string }>;
}

/**
 * What a run a schedule started came to, in a line: `running`, a scheduled mesh's `mesh/demo ended
 * deleted`, `mesh/demo failed: ...` or `skipped: mesh demo is already running as mesh/demo`, else
 * the run's status (`completed`, `terminated`...). Undefined once Temporal no longer keeps the run.
 */
async function outcomeOf(client: Client, workflowId: string, runId: string): Promise<string | undefined> {
  try {
    const handle = client.workflow.getHandle(workflowId, runId);
    const d = await handle.describe();
    if (d.status.name !== 'COMPLETED' || d.type !== ('scheduledMesh' satisfies (typeof scheduledMesh)['name']))
      return d.status.name.toLowerCase();
    const r = (await handle.result()) as ScheduledMeshResult;
    if (r.outcome === 'skipped') return `skipped: ${r.reason}`;
    return r.outcome === 'failed' ? `${r.workflowId} failed: ${r.reason}` : `${r.workflowId} ended ${r.phase}`;
  } catch {
    return undefined;
  }
}

/** The view with the outcome of its recent runs (`last`: of the latest only, as the list shows it). */
async function withOutcomes(client: Client, v: ScheduleView, last = false): Promise<ScheduleView> {
  const actions = await Promise.all(
    v.recentActions.map(async (a, i) => {
      if (last && i < v.recentActions.length - 1) return a;
      const outcome = await outcomeOf(client, a.workflowId, a.runId);
      return outcome ? { ...a, outcome } : a;
    }),
  );
  return { ...v, recentActions: actions };
}

function view(
  id: string,
  memo: Record<string, unknown> | undefined,
  s: Pick<ScheduleSummary, 'spec' | 'state' | 'info'>,
  overlap?: string,
): ScheduleView {
  const m = (memo ?? {}) as Partial<ScheduleMemo>;
  const every = s.spec?.intervals?.[0]?.every;
  const spec = m.every
    ? `every ${m.every}`
    : m.cron
      ? `cron ${m.cron}`
      : every
        ? `every ${formatDurationMs(every)}`
        : '?';
  return {
    id,
    kind: m.kind ?? 'other',
    ...(m.mesh ? { mesh: m.mesh } : {}),
    spec,
    ...(m.keptLimit ? { keptLimit: m.keptLimit } : {}),
    ...(m.summary ? { summary: m.summary } : {}),
    ...(overlap ? { overlap } : {}),
    paused: s.state.paused,
    nextRuns: s.info.nextActionTimes.map((t) => t.toISOString()),
    recentActions: s.info.recentActions.map((a) => ({
      scheduledAt: a.scheduledAt.toISOString(),
      workflowId: a.action.workflow.workflowId,
      runId: a.action.workflow.firstExecutionRunId,
    })),
  };
}

const isOurs = (id: string) => id === SWEEP_SCHEDULE_ID || id.startsWith(meshScheduleId(''));

/** meshflow's schedules (others in the namespace are not listed). */
export async function listSchedules(client: Client): Promise<ScheduleView[]> {
  const all: ScheduleView[] = [];
  for await (const s of client.schedule.list()) {
    if (isOurs(s.scheduleId)) all.push(view(s.scheduleId, s.memo, s));
  }
  const outcomes = await Promise.all(all.map((v) => withOutcomes(client, v, true)));
  return outcomes.sort((a, b) => a.id.localeCompare(b.id));
}

async function handled<T>(id: string, fn: () => Promise<T>): Promise<T> {
  if (!isOurs(id))
    throw new NoScheduleError(`no schedule ${id}: meshflow's are meshflow-sweep and meshflow-mesh-<name>`);
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw new NoScheduleError(`no schedule ${id}`);
    throw err;
  }
}

export function describeSchedule(client: Client, id: string): Promise<ScheduleView> {
  return handled(id, async () => {
    const d: ScheduleDescription = await client.schedule.getHandle(id).describe();
    const overlap = Object.entries(OVERLAPS).find(([, v]) => v === d.policies.overlap)?.[0] ?? d.policies.overlap;
    return withOutcomes(client, view(id, d.memo, d, overlap));
  });
}

export const pauseSchedule = (client: Client, id: string, note = 'paused by meshflow') =>
  handled(id, () => client.schedule.getHandle(id).pause(note));
export const unpauseSchedule = (client: Client, id: string, note = 'unpaused by meshflow') =>
  handled(id, () => client.schedule.getHandle(id).unpause(note));
/**
 * Runs the action now, unless a run it started is still open (Temporal's trigger would allow
 * both; two open runs of one mesh would fight over the same clusters).
 */
export const triggerSchedule = (client: Client, id: string) =>
  handled(id, () => client.schedule.getHandle(id).trigger(ScheduleOverlapPolicy.SKIP));
export const deleteSchedule = (client: Client, id: string) => handled(id, () => client.schedule.getHandle(id).delete());

/** The schedule a command means: its id, or `sweep`, or a mesh name. */
export const scheduleIdOf = (arg: string) =>
  arg.startsWith('meshflow-') ? arg : arg === 'sweep' ? SWEEP_SCHEDULE_ID : meshScheduleId(arg);
