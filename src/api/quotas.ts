// Limits per token: how many meshes a token may hold open, and how many event streams it may hold
// at once. Beyond either, 429 with Retry-After and the reason.
//
// Open meshes are counted in Temporal, not in this process, so a restarted API counts the same: a
// create records its token's name in the run's search attribute MeshCreatedBy, and the count is a
// visibility query for running mesh workflows with that name. Visibility lags a start by a moment,
// so runs this process started in the last minute count (while they run) even before the query
// sees them, and the creates of one token are checked and started one at a time.
import { Client, type WorkflowClientInterceptor } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import { ApiError } from './errors';

export interface Limits {
  /** Open (running) meshes a token may have created (MESHFLOW_API_MAX_OPEN_MESHES, default 10). */
  openMeshes: number;
  /** Event streams a token may hold at once (MESHFLOW_API_MAX_EVENT_STREAMS, default 20). */
  eventStreams: number;
}

export const DEFAULT_LIMITS: Limits = { openMeshes: 10, eventStreams: 20 };
const VARS = { openMeshes: 'MESHFLOW_API_MAX_OPEN_MESHES', eventStreams: 'MESHFLOW_API_MAX_EVENT_STREAMS' } as const;
/** Seconds a client is told to wait: a mesh ends when it is deleted or expires; a stream as soon as a client leaves. */
const RETRY_AFTER = { openMeshes: 60, eventStreams: 5 } as const;
const VISIBILITY_LAG_MS = 60_000;

export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): Limits {
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(VARS) as Array<keyof Limits>) {
    const text = env[VARS[key]]?.trim();
    if (!text) continue;
    if (!/^\d+$/.test(text)) throw new Error(`${VARS[key]}=${text}: not a whole number`);
    limits[key] = Number(text);
  }
  return limits;
}

const tooMany = (key: keyof Limits, message: string) =>
  new ApiError(429, 'quota_exceeded', message, undefined, { 'Retry-After': String(RETRY_AFTER[key]) });

export class Quotas {
  private readonly streams = new Map<string, number>();
  /** Runs started here recently, by token: counted until visibility has surely caught up. */
  private readonly recent = new Map<string, Array<{ workflowId: string; at: number }>>();
  private readonly creating = new Map<string, Promise<unknown>>();

  constructor(
    private readonly client: Client,
    readonly limits: Limits,
  ) {}

  /** The workflow IDs of the running meshes `token` created. */
  async openMeshes(token: string): Promise<Set<string>> {
    const query =
      `WorkflowType = "provisionMesh" AND ExecutionStatus = "Running" AND ` +
      `${MESH_SEARCH_ATTRIBUTES.createdBy.name} = "${token}"`;
    const open = new Set<string>();
    await this.client.connection.withDeadline(Date.now() + 10_000, async () => {
      for await (const wf of this.client.workflow.list({ query })) open.add(wf.workflowId);
    });
    // Runs started here that the query does not show yet: counted while they run.
    const now = Date.now();
    const recent: Array<{ workflowId: string; at: number }> = [];
    for (const r of this.recent.get(token) ?? []) {
      if (now - r.at > VISIBILITY_LAG_MS || open.has(r.workflowId)) continue;
      const { status } = await this.client.workflow.getHandle(r.workflowId).describe();
      if (status.name !== 'RUNNING') continue;
      recent.push(r);
      open.add(r.workflowId);
    }
    this.recent.set(token, recent);
    return open;
  }

  /**
   * Runs `start` unless `token` holds its limit of open meshes (429). One token's creates run one
   * at a time, so two concurrent ones cannot both take the last place.
   */
  async create<T extends { workflowId: string }>(token: string, start: () => Promise<T>): Promise<T> {
    const before = this.creating.get(token) ?? Promise.resolve();
    const mine = before
      .catch(() => undefined)
      .then(async () => {
        const open = await this.openMeshes(token);
        const limit = this.limits.openMeshes;
        if (open.size >= limit) {
          throw tooMany(
            'openMeshes',
            `token ${token} has ${open.size} open mesh${open.size === 1 ? '' : 'es'}, the most ${VARS.openMeshes} ` +
              `allows (${limit}): DELETE one, or wait for one to expire`,
          );
        }
        const started = await start();
        this.recent.get(token)!.push({ workflowId: started.workflowId, at: Date.now() });
        return started;
      });
    this.creating.set(token, mine);
    try {
      return await mine;
    } finally {
      if (this.creating.get(token) === mine) this.creating.delete(token);
    }
  }

  /** Takes one of `token`'s event streams (429 past the limit); call the answer when the stream ends. */
  openStream(token: string): () => void {
    const held = this.streams.get(token) ?? 0;
    const limit = this.limits.eventStreams;
    if (held >= limit) {
      throw tooMany(
        'eventStreams',
        `token ${token} holds ${held} event streams, the most ${VARS.eventStreams} allows (${limit}): close one first`,
      );
    }
    this.streams.set(token, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.streams.get(token) ?? 1) - 1;
      if (now > 0) this.streams.set(token, now);
      else this.streams.delete(token);
    };
  }
}

/**
 * A client like `client` whose workflow starts carry the memo's `createdBy` (the token's name) in
 * search attribute MeshCreatedBy too, where a visibility query can count it.
 */
export function withCreatorAttribute(client: Client, memoField: string): Client {
  const tag: WorkflowClientInterceptor = {
    start: (input, next) => {
      const creator = input.options.memo?.[memoField];
      if (typeof creator !== 'string') return next(input);
      const pair = { key: MESH_SEARCH_ATTRIBUTES.createdBy, value: creator };
      const given = input.options.typedSearchAttributes;
      const typedSearchAttributes =
        given instanceof TypedSearchAttributes ? given.updateCopy([pair]) : [...(given ?? []), pair];
      return next({ ...input, options: { ...input.options, typedSearchAttributes } });
    },
  };
  const { interceptors } = client.options;
  const workflow = Array.isArray(interceptors.workflow) ? interceptors.workflow : [];
  return new Client({ ...client.options, interceptors: { ...interceptors, workflow: [...workflow, tag] } });
}
