// Where meshflow finds Temporal: TEMPORAL_ADDRESS (default 127.0.0.1:7233) and
// TEMPORAL_NAMESPACE (default "default"). With nothing listening on the default address, the
// local mode starts the pinned dev server (SQLite under the state directory, Web UI on 8233).
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { MESH_SEARCH_ATTRIBUTES, searchAttributeRegistrations } from './search-attributes';
import { logTail, runningPid, startDaemon } from '../util/daemon';
import { type Progress, silent } from '../util/progress';
import { sleep } from '../util/net';

export const DEFAULT_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_UI_PORT = 8233;

export interface TemporalTarget {
  address: string;
  namespace: string;
  uiUrl?: string;
}

export function temporalTarget(): TemporalTarget {
  const address = process.env.TEMPORAL_ADDRESS || DEFAULT_ADDRESS;
  return {
    address,
    namespace: process.env.TEMPORAL_NAMESPACE || 'default',
    uiUrl: process.env.MESHFLOW_UI_URL || (address === DEFAULT_ADDRESS ? `http://127.0.0.1:${DEFAULT_UI_PORT}` : undefined),
  };
}

export async function tryConnect(address: string): Promise<Connection | undefined> {
  try {
    return await Connection.connect({ address, connectTimeout: 2000 });
  } catch {
    return undefined;
  }
}

/**
 * Connects to Temporal; when nothing answers on the default local address, starts the local dev
 * server as a background process and says so. Returns the client and whether we started it.
 */
/**
 * Dev-server settings meshflow starts it with. Eager activity execution hands an activity to the
 * worker that scheduled it in the reply to its workflow task, instead of through the matching
 * service: a no-op activity's round trip drops from ~100 ms to ~30 ms (p50, measured here), and a
 * mesh's critical path pays that once per step. Temporal Cloud turns it on by default.
 */
export const DEV_SERVER_ARGS = ['--dynamic-config-value', 'system.enableActivityEagerExecution=true'];

export async function connectOrStartLocal(opts: { stateDir: string; temporalBin: () => Promise<string>; progress?: Progress }): Promise<{ client: Client; connection: Connection; started: boolean; target: TemporalTarget }> {
  const progress = opts.progress ?? silent;
  const target = temporalTarget();
  let connection = await tryConnect(target.address);
  let started = false;
  if (!connection) {
    if (target.address !== DEFAULT_ADDRESS) throw new Error(`no Temporal server answers at TEMPORAL_ADDRESS=${target.address}`);
    const dir = path.join(opts.stateDir, 'temporal');
    const pidFile = path.join(dir, 'temporal.pid');
    if (runningPid(pidFile, dir) === undefined) {
      const [host, port] = target.address.split(':');
      progress(`no Temporal server at ${target.address}: starting the local dev server (data in ${dir}, Web UI ${target.uiUrl})`);
      startDaemon({
        file: await opts.temporalBin(),
        pidFile,
        marker: dir,
        args: [
          'server', 'start-dev', '--ip', host, '--port', port, '--ui-port', String(DEFAULT_UI_PORT),
          '--db-filename', path.join(dir, 'temporal.db'), '--namespace', target.namespace, '--log-level', 'warn', ...DEV_SERVER_ARGS,
          ...Object.values(MESH_SEARCH_ATTRIBUTES).flatMap((k) => ['--search-attribute', `${k.name}=${k.type === 'INT' ? 'Int' : 'Keyword'}`]),
        ],
      });
      started = true;
    }
    const deadline = Date.now() + 30_000;
    while (!(connection = await tryConnect(target.address))) {
      if (Date.now() > deadline || runningPid(pidFile, dir) === undefined) {
        throw new Error(`the local Temporal dev server did not start; last log lines:\n${logTail(pidFile)}`);
      }
      await sleep(250);
    }
  }
  await ensureSearchAttributes(connection, target.namespace);
  return { client: new Client({ connection, namespace: target.namespace }), connection, started, target };
}

/** Registers meshflow's search attributes where they are missing (start-dev's flags do not apply to an existing db). */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const existing = await connection.operatorService.listSearchAttributes({ namespace });
      const missing = Object.values(MESH_SEARCH_ATTRIBUTES).filter((k) => !(k.name in (existing.customAttributes ?? {})));
      if (missing.length === 0) return;
      await connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: searchAttributeRegistrations(missing.map((k) => k.name)),
      });
      return;
    } catch (err) {
      // The namespace may not be registered yet right after the server starts.
      if (Date.now() > deadline) throw err;
      await sleep(250);
    }
  }
}
