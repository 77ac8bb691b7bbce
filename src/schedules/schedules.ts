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
import { appPlacement } from '../plan/plan';
import { formatDurationMs, parseDuration } from '../spec/duration';
import type { MeshSpec } from '../spec/schema';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import { TASK_QUEUE, meshWorkflowId } from '../workflows/definitions';
import type { provisionMesh } from '../workflows/mesh';
import type { SweepInput, sweepMeshes } from '../workflows/sweep';

export const SWEEP_SCHEDULE_ID = 'meshflow-sweep';
export const meshScheduleId = (mesh: string) => `meshflow-mesh-${mesh}`;
export const DEFAULT_KEPT_LIMIT = '24h';

export const OVERLAPS = { skip: 'SKIP', 'buffer-one': 'BUFFER_ONE', 'allow-all': 'ALLOW_ALL' } as const;
export type Overlap = keyof typeof OVERLAPS;

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
  kind: 'sweep' | 'mesh';
  mesh?: string;
  keptLimit?: string;
  /** What each run is, in a line. */
  summary: string;
}

export function checkWhen(when: ScheduleOptions): void {
  const problems: Array<{ path: string; message: string }> = [];
  if ((when.every === undefined) === (when.cron === undefined))
    problems.push({ path: 'every', message: 'give exactly one of every (a duration such as 5m) or cron' });
  if (when.every !== undefined && !((parseDuration(when.every) ?? 0) > 0))
    problems.push({ path: 'every', message: `"${when.every}" is not a positive duration such as 30s, 5m or 1h` });
  if (when.cron !== undefined && !when.cron.trim()) problems.push({ path: 'cron', message: 'empty cron expression' });
  if (when.overlap !== undefined && !(when.overlap in OVERLAPS))
    problems.push({ path: 'overlap', message: `"${when.overlap}": choose one of ${Object.keys(OVERLAPS).join(', ')}` });
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
  checkWhen(when);
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
 * A mesh started from `spec` at every tick; its TTL ends each run. The run's workflow id is
 * `mesh/<name>-<scheduled time>` (Temporal appends the time); its MeshName search attribute is the
 * mesh's name, which `meshflow list` shows.
 */
export async function createMeshSchedule(
  client: Client,
  spec: MeshSpec,
  when: ScheduleOptions,
  taskQueue = TASK_QUEUE,
): Promise<string> {
  checkWhen(when);
  const recorded =
    spec.app.sample === 'none' || spec.app.placement
      ? spec
      : { ...spec, app: { ...spec.app, placement: appPlacement(spec) } };
  const summary = `mesh ${spec.name} (scheduled): ${spec.clusters.length} cluster(s), ${spec.istio.topology}, ttl ${spec.ttl}`;
  const memo: ScheduleMemo = { kind: 'mesh', mesh: spec.name, every: when.every, cron: when.cron, summary };
  return create(client, {
    scheduleId: meshScheduleId(spec.name),
    spec: specOf(when),
    action: {
      type: 'startWorkflow',
      workflowType: 'provisionMesh' satisfies (typeof provisionMesh)['name'],
      args: [{ spec: recorded }],
      taskQueue,
      workflowId: meshWorkflowId(spec.name),
      staticSummary: summary,
      typedSearchAttributes: [
        { key: MESH_SEARCH_ATTRIBUTES.name, value: spec.name },
        { key: MESH_SEARCH_ATTRIBUTES.phase, value: 'provisioning' },
      ],
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
  recentActions: Array<{ scheduledAt: string; workflowId: string; runId: string }>;
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
  return all.sort((a, b) => a.id.localeCompare(b.id));
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
    return view(id, d.memo, d, overlap);
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
