// The chaos row for the team deployment (`meshflow team up`: the host's PostgreSQL, the Temporal
// server on it, two `meshflow worker` processes and `meshflow serve`, each under a supervisor that
// restarts it when it dies). Round after round, a two-cluster local mesh is created through the
// API and, at a random step of its provisioning, one service is SIGKILLed: the worker of the
// mesh's host, the Temporal server or PostgreSQL (which recovers from the crash when its supervisor
// starts it again). Each mesh must end ready, then its DELETE through the API must end `deleted`
// with nothing of it left running on the machine. The deployment is started once, in a scratch
// folder on free ports, and torn down with its data at the end (and on interrupt).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { type TeamRecord, freeTeamEnv, servicePid, teamDown, teamUp } from '../team/deployment';
import { canConnect, sleep } from '../util/net';
import type { RunResult } from './harness';

/** What a round SIGKILLs: the mesh's worker, the server, or the database. */
const VICTIMS = ['worker', 'temporal', 'postgres'] as const;

/** The mesh's status as the API answers it (the fields the row reads). */
interface ApiStatus {
  phase: string;
  startedAt: string;
  readyAt?: string;
  host?: string;
  steps: Array<{ id: string; state: string }>;
  ledger: unknown[];
  leftBehind: unknown[];
  checks: Array<{ name: string; status: string }>;
  error?: string;
}

/** A two-cluster local mesh (one network, the sample app across both) with a TTL, as the API takes it. */
export const teamMeshSpec = (name: string, ttl = '1h') =>
  [
    'apiVersion: meshflow.dev/v1alpha1',
    'kind: Mesh',
    `name: ${name}`,
    `ttl: ${ttl}`,
    'clusters:',
    '  - {name: east, provider: local, network: net1, podCidr: 10.10.0.0/16}',
    '  - {name: west, provider: local, network: net1, podCidr: 10.20.0.0/16}',
    'istio: {topology: multi-primary}',
    'app: {sample: helloworld, placement: {east: [v1], west: [v2]}}',
    '',
  ].join('\n');

/** One HTTP call to the API (no kept-alive socket, 15 s at most); undefined when it does not answer. */
function call(
  apiUrl: string,
  token: string,
  method: string,
  urlPath: string,
  body?: string,
): Promise<{ status: number; json: unknown } | undefined> {
  const url = new URL(urlPath, apiUrl);
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) {
    headers['content-type'] = 'application/yaml';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method, path: url.pathname, headers, agent: false, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', () => resolve(undefined));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Processes whose command line names the team folder and the mesh's clusters (`<mesh>-east`, ...). */
function meshProcesses(dir: string, mesh: string): string[] {
  const left: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(dir) && cmd.includes(`${mesh}-`)) left.push(`process ${pid} ${cmd.slice(0, 160)}`);
    } catch {
      // gone meanwhile
    }
  }
  return left;
}

/** The mesh's local clusters on disk, per worker volume (`volumes/meshflow-worker-1|2/local/clusters`). */
function clustersOnDisk(dir: string, mesh: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const volume of ['meshflow-worker-1', 'meshflow-worker-2']) {
    const clusters = path.join(dir, 'volumes', volume, 'local', 'clusters');
    out[volume] = fs.existsSync(clusters)
      ? fs
          .readdirSync(clusters)
          .filter((n) => n.startsWith(`${mesh}-`) && fs.existsSync(path.join(clusters, n, 'cluster.json')))
          .sort()
      : [];
  }
  return out;
}

/**
 * `count` rounds on a team deployment of its own; `report` gets each round as it ends, `onStop` a
 * function that stops the deployment and deletes its data (for an interrupt).
 */
export async function teamFaultRuns(
  count: number,
  random: () => number,
  runTimeoutMs: number,
  report: (r: RunResult) => void,
  onStop: (stop: () => Promise<void>) => void,
): Promise<RunResult[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-chaos-team-'));
  const say = (line: string) => process.stderr.write(`[chaos] team: ${line}\n`);
  // teamUp and teamDown read the folder and the ports from the environment; the rest of the
  // harness's is restored afterwards. No other Temporal settings: only the compose files decide.
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('TEMPORAL_')) delete process.env[k];
  Object.assign(process.env, await freeTeamEnv(dir));
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      // The folder named again: an interrupt may come after the environment was restored.
      const env = process.env.MESHFLOW_TEAM_DIR;
      process.env.MESHFLOW_TEAM_DIR = dir;
      try {
        await teamDown({ force: true, purge: true, progress: () => undefined });
      } finally {
        if (env === undefined) delete process.env.MESHFLOW_TEAM_DIR;
        else process.env.MESHFLOW_TEAM_DIR = env;
        fs.rmSync(dir, { recursive: true, force: true });
      }
    })());
  onStop(stop);
  const results: RunResult[] = [];
  try {
    const t = Date.now();
    const record = await teamUp({ progress: say });
    say(`up in ${((Date.now() - t) / 1000).toFixed(1)} s (${dir})`);
    const token = fs.readFileSync(record.apiTokenFile, 'utf8').trim();
    const api = (method: string, p: string, body?: string) => call(record.apiUrl, token, method, p, body);
    for (let i = 0; i < count; i++) {
      const result = await round(dir, record, api, `teamf${i}`, random, runTimeoutMs);
      results.push(result);
      report(result);
    }
  } finally {
    await stop();
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  return results;
}

type Api = (method: string, p: string, body?: string) => ReturnType<typeof call>;

async function round(
  dir: string,
  record: TeamRecord,
  api: Api,
  mesh: string,
  random: () => number,
  runTimeoutMs: number,
): Promise<RunResult> {
  // Drawn before anything runs, so that a seed repeats the same faults whatever the timings: the
  // kill comes once this share of the plan's steps is done (a random step; a machine's speed does
  // not move it past the end of the provisioning, as a delay would).
  const kind = VICTIMS[Math.floor(random() * VICTIMS.length)];
  const share = random();
  const result: RunResult = {
    mesh,
    fault: `(not killed: ${kind} SIGKILL planned after ${Math.round(share * 100)}% of the steps)`,
    endedReady: false,
    fullyCompensated: false,
    duplicates: [],
    leftovers: [],
  };
  const errors: string[] = [];
  // The API is asked at most once a second.
  let lastAsked = 0;
  // The longest a status answer took (a query waits on the workflow's worker: a killed one delays it).
  let slowestMs = 0;
  const failed: Array<number | 'none'> = [];
  const status = async (): Promise<ApiStatus | undefined> => {
    await sleep(Math.max(0, lastAsked + 1000 - Date.now()));
    lastAsked = Date.now();
    const r = await api('GET', `/v1/meshes/${mesh}`);
    slowestMs = Math.max(slowestMs, Date.now() - lastAsked);
    if (r?.status === 200) return r.json as ApiStatus;
    failed.push(r?.status ?? 'none');
    return undefined;
  };
  /** Ms until a new program of the service runs and, for the server and the database, its port answers. */
  const comesBack = async (service: string, pid: number, port: number | undefined) => {
    const since = Date.now();
    while (Date.now() - since < 120_000) {
      const now = servicePid(service, dir);
      if (now !== undefined && now !== pid && (port === undefined || (await canConnect(port))))
        return Date.now() - since;
      await sleep(100);
    }
    return undefined;
  };
  const t0 = Date.now();
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  try {
    const created = await api('POST', '/v1/meshes', teamMeshSpec(mesh));
    if (created?.status !== 202) throw new Error(`POST /v1/meshes answered ${created?.status ?? 'nothing'}`);

    // Provisioning, the kill at its step, and the killed service's return.
    let s: ApiStatus | undefined;
    let killed: { service: string; at: number; back: Promise<number | undefined> } | undefined;
    for (;;) {
      // The last status the API gave (a failed answer, while a service is down, changes nothing).
      if (Date.now() - lastAsked >= 1000) s = (await status()) ?? s;
      const done = s?.steps.filter((x) => x.state === 'done').length ?? 0;
      const due =
        s !== undefined &&
        (s.phase !== 'provisioning' ||
          (done >= Math.floor(share * s.steps.length) && (kind !== 'worker' || s.host !== undefined)));
      if (!killed && due) {
        const service =
          kind === 'worker' ? (s?.host === 'compose-worker-2' ? 'meshflow-worker-2' : 'meshflow-worker') : kind;
        let pid = servicePid(service, dir);
        // A service between two runs of its program (restarted by its supervisor) has no PID for a moment.
        for (const deadline = Date.now() + 30_000; pid === undefined && Date.now() < deadline;) {
          await sleep(250);
          pid = servicePid(service, dir);
        }
        if (pid === undefined) throw new Error(`${service} has no running program to kill`);
        const running = s!.steps.filter((x) => x.state === 'running').map((x) => x.id);
        process.kill(pid, 'SIGKILL');
        const port =
          kind === 'temporal'
            ? Number(record.address.split(':')[1])
            : kind === 'postgres'
              ? record.postgresPort
              : undefined;
        killed = { service, at: Date.now(), back: comesBack(service, pid, port) };
        const where = s!.phase === 'provisioning' ? `${done}/${s!.steps.length} steps done` : `already ${s!.phase}`;
        const host = kind === 'worker' ? ` of host ${s!.host ?? 'not yet chosen'}` : '';
        result.fault =
          `${service}${host} SIGKILLed at ${secs(killed.at - t0)} (${where}` +
          `${running.length ? `; running ${running.join(',')}` : ''})`;
      }
      if (killed && s !== undefined && !['provisioning', 'compensating'].includes(s.phase)) break;
      if (Date.now() - t0 > runTimeoutMs) break;
      await sleep(250);
    }
    if (killed) {
      const backAfterMs = await killed.back;
      result.fault += backAfterMs !== undefined ? `, back in ${secs(backAfterMs)}` : ', not back within 120s';
      if (backAfterMs === undefined) errors.push(`${killed.service} did not come back`);
    }
    if (!s || ['provisioning', 'compensating'].includes(s.phase)) {
      result.gaveUp = true;
      result.ended = s?.phase;
      errors.push(`still ${s?.phase ?? 'unknown'} after ${runTimeoutMs / 1000}s`);
    } else {
      result.endedReady = s.phase === 'ready';
      result.ended = s.error ? `${s.phase}: ${s.error}` : s.phase;
      if (!result.endedReady) errors.push(`ended ${result.ended}`);
    }
    if (result.endedReady && s) {
      // One cluster each, on the host's volume only; one root.
      const disk = clustersOnDisk(dir, mesh);
      const own = s.host === 'compose-worker-2' ? 'meshflow-worker-2' : 'meshflow-worker-1';
      const want = [`${mesh}-east`, `${mesh}-west`];
      for (const [volume, have] of Object.entries(disk)) {
        const expected = volume === own ? want : [];
        if (JSON.stringify(have) !== JSON.stringify(expected))
          result.duplicates.push(
            `clusters on ${volume}: ${have.join(',') || 'none'} (want ${expected.join(',') || 'none'})`,
          );
      }
      if (s.checks.some((c) => c.name === 'same-root' && c.status !== 'passed')) result.duplicates.push('two roots');
    }

    // The teardown, through the API, whatever the round ended as (asked again while the API cannot).
    const d0 = Date.now();
    let deleted: Awaited<ReturnType<Api>>;
    for (;;) {
      deleted = await api('DELETE', `/v1/meshes/${mesh}`);
      if ((deleted && deleted.status < 500) || Date.now() - d0 > runTimeoutMs) break;
      await sleep(1000);
    }
    if (deleted?.status !== 202 && deleted?.status !== 200)
      errors.push(`DELETE answered ${deleted?.status ?? 'nothing'}`);
    let final: ApiStatus | undefined;
    while ((final = await status())?.phase !== 'deleted' && Date.now() - d0 < runTimeoutMs) {
      // status() waits out the second between two questions
    }
    const readyIn =
      s?.readyAt !== undefined ? `ready in ${secs(Date.parse(s.readyAt) - Date.parse(s.startedAt))}, ` : '';
    const slow = [
      slowestMs >= 5000 ? `; slowest status answer ${secs(slowestMs)}` : '',
      failed.length ? `; ${failed.length} status answer(s) failed (${[...new Set(failed)].join(', ')})` : '',
    ].join('');
    result.fault += ` [${readyIn}deleted in ${secs(Date.now() - d0)}${slow}]`;
    result.leftovers = meshProcesses(dir, mesh);
    result.fullyCompensated =
      final?.phase === 'deleted' && !final.ledger.length && !final.leftBehind.length && !result.leftovers.length;
    if (final?.phase !== 'deleted') errors.push(`not deleted within ${runTimeoutMs / 1000}s (${final?.phase ?? '?'})`);
    else if (final.ledger.length || final.leftBehind.length)
      errors.push(
        `deleted with ledger ${JSON.stringify(final.ledger)}, left behind ${JSON.stringify(final.leftBehind)}`,
      );
  } catch (err) {
    errors.push((err as Error).message);
    result.leftovers = meshProcesses(dir, mesh);
  }
  if (errors.length) result.error = errors.join('; then ');
  return result;
}
