// Idempotency-Key on POST /v1/meshes: a client that lost the answer to a create sends it again with
// the same key and gets the first answer, and nothing new starts.
//
// Keys live in memory for 24 h (at most MAX_KEYS of them, oldest dropped first). That memory goes
// with the process, so the run a create starts also records its key and its spec's digest in its
// memo; a key this process does not know is looked up on the latest run of the mesh's workflow
// (`mesh/<name>`, deterministic), running or ended: same key and spec within 24 h of its start is
// the first answer again, same key and another spec is refused. A key that started a mesh whose
// name a later run took over is not found that way: the request then starts or conflicts as a
// new one would.
import crypto from 'node:crypto';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type { z } from '@hono/zod-openapi';
import { meshHandle } from '../client';
import type { MeshSpec } from '../spec/schema';
import { ApiError } from './errors';
import type { StartedSchema } from './schemas';

export type Started = z.infer<typeof StartedSchema>;

export const WINDOW_MS = 24 * 3_600_000;
const MAX_KEYS = 10_000;

/** The memo field of a run started over the API. */
export const REQUEST_MEMO = 'meshflowApiRequest';
export interface RequestMemo {
  idempotencyKey?: string;
  specSha256: string;
}

/** The spec's SHA-256 over its JSON with sorted keys: a YAML and a JSON body of one spec are the same request. */
export function specDigest(spec: MeshSpec): string {
  const sorted = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sorted)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([k, x]) => [k, sorted(x)]),
          )
        : v;
  return crypto
    .createHash('sha256')
    .update(JSON.stringify(sorted(spec)))
    .digest('hex');
}

const reused = (key: string) =>
  new ApiError(
    422,
    'idempotency_key_reused',
    `Idempotency-Key ${JSON.stringify(key)} was used within 24 h for a different spec: use a new key for a new request`,
  );

interface Entry {
  digest: string;
  at: number;
  answer: Promise<{ started: Started; replayed: boolean }>;
}

export class IdempotencyKeys {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * The answer for `key`: the one given before (or being made now, by a concurrent request), else
   * the one `recorded` finds on the workflow, else `start()`'s. Only answers are kept, never
   * failures: a request that failed may be sent again with the same key.
   */
  async answer(
    key: string,
    digest: string,
    recorded: () => Promise<Started | undefined>,
    start: () => Promise<Started>,
  ): Promise<{ started: Started; replayed: boolean }> {
    this.prune();
    const known = this.entries.get(key);
    if (known) {
      if (known.digest !== digest) throw reused(key);
      return { started: (await known.answer).started, replayed: true };
    }
    const entry: Entry = {
      digest,
      at: this.now(),
      answer: (async () => {
        const found = await recorded();
        return found ? { started: found, replayed: true } : { started: await start(), replayed: false };
      })(),
    };
    this.entries.set(key, entry);
    try {
      return await entry.answer;
    } catch (err) {
      if (this.entries.get(key) === entry) this.entries.delete(key);
      throw err;
    }
  }

  private prune(): void {
    const oldest = this.now() - WINDOW_MS;
    for (const [key, e] of this.entries) if (e.at < oldest) this.entries.delete(key);
    // Insertion order is age order: past the cap, the oldest keys go first.
    for (const key of this.entries.keys()) {
      if (this.entries.size < MAX_KEYS) break;
      this.entries.delete(key);
    }
  }
}

/**
 * What the latest run of the mesh's workflow says about `key`: the first answer when that run was
 * started with this key and spec within the window; a 422 when with this key and another spec;
 * nothing when it was not started with this key (or there is no run).
 */
export async function recordedStart(
  client: Client,
  mesh: string,
  key: string,
  digest: string,
  webUi: { webUi?: string },
): Promise<Started | undefined> {
  let latest;
  try {
    latest = await meshHandle(client, mesh).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
  // The key is on the first run of the chain (a long-lived mesh continues as new).
  const firstRunId = latest.raw.workflowExecutionInfo?.firstRunId || latest.runId;
  const first =
    firstRunId === latest.runId ? latest : await client.workflow.getHandle(latest.workflowId, firstRunId).describe();
  const memo = first.memo?.[REQUEST_MEMO] as RequestMemo | undefined;
  if (memo?.idempotencyKey !== key || Date.now() - first.startTime.getTime() > WINDOW_MS) return undefined;
  if (memo.specSha256 !== digest) throw reused(key);
  return { name: mesh, workflowId: first.workflowId, runId: first.runId, ...webUi };
}
