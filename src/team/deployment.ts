// `meshflow team up|down|status|restart`: the compose stack's topology as processes of this machine,
// no container engine needed. The compose files are the settings (src/team/compose.ts translates
// them); each long-running service is a supervised daemon (restarted when it dies, as compose's
// `restart: unless-stopped` does) with its PID file and log in the team folder:
//
//   <team>/team.json                 what runs: addresses, ports, the server version
//   <team>/run/<service>.{pid,log}   each service's supervisor (its program's PID in .pid.child)
//   <team>/secrets/                  the database password and the API tokens (mode 0600)
//   <team>/volumes/<volume>/         the compose volumes: each worker's state directory
//   <team>/temporal/, <team>/ui/     the server's and the UI's config (their images' templates)
//
// PostgreSQL's data is in <team>/postgres, or where src/team/postgres.ts says when running as root.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { Client, Connection } from '@temporalio/client';
import { packageRoot, teamDir } from '../paths';
import { LOCAL_TOOL_NAMES } from '../local/tools';
import { ensureSearchAttributes, pollsFromPid } from '../temporal/connection';
import { TEMPORAL_CONFIG_DIR, ensureTools } from '../tools/install';
import { TEMPORAL_SERVER_VERSION, TEMPORAL_SERVER_VERSIONS, temporalServerToolName } from '../tools/specs';
import {
  childPidFile,
  logFileOf,
  logTail,
  runningPid,
  startSupervisedDaemon,
  stopDaemons,
  supervisedPid,
} from '../util/daemon';
import { canConnect, ephemeralPortRange, freePort, sleep } from '../util/net';
import { type Progress, formatDuration, stderrProgress } from '../util/progress';
import { sweepDaemons } from '../util/sweep';
import { TASK_QUEUE } from '../workflows/definitions';
import {
  MAX_TEMPORAL_PORT,
  type TeamService,
  type TeamTopology,
  imageDrift,
  loadCompose,
  temporalInternalPorts,
  translate,
} from './compose';
import { type Postgres, dataDirFor, ensurePostgres, initCluster, isReady, pgCommand, serverArgs } from './postgres';

/** What `team.json` records of a running deployment. */
export interface TeamRecord {
  address: string;
  namespace: string;
  uiUrl: string;
  apiUrl: string;
  apiTokenFile: string;
  serverVersion: string;
  postgresPort: number;
  postgresData: string;
  postgresMajor: string;
  services: Array<{ service: string; role: string; ports: number[]; args: string[] }>;
}

/** The PostgreSQL port (compose does not publish one): MESHFLOW_TEAM_POSTGRES_PORT, else 15432. */
const postgresPort = () => Number(process.env.MESHFLOW_TEAM_POSTGRES_PORT || 15432);

/** Orders two x.y.z versions. */
function compareVersions(a: string, b: string): number {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

/** Services compose runs to completion (`service_completed_successfully`), not kept running. */
const oneShot = (role: string) => role === 'schema' || role === 'namespace';

const recordFile = (dir: string) => path.join(dir, 'team.json');
const pidFileOf = (dir: string, service: string) => path.join(dir, 'run', `${service}.pid`);

export function readRecord(dir = teamDir()): TeamRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordFile(dir), 'utf8')) as TeamRecord;
  } catch {
    return undefined;
  }
}

/** A secret of the team folder, made once (random, mode 0600) unless `given`. */
function secret(dir: string, name: string, given?: string): string {
  const file = path.join(dir, 'secrets', name);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  if (given !== undefined) {
    fs.writeFileSync(file, given + '\n', { mode: 0o600 });
    return given;
  }
  if (!fs.existsSync(file)) fs.writeFileSync(file, crypto.randomBytes(24).toString('hex') + '\n', { mode: 0o600 });
  return fs.readFileSync(file, 'utf8').trim();
}

/**
 * The environment every service starts from: this process's, without what names a Temporal, a
 * state directory, a host or credentials (a container starts with none of it), so only what the
 * compose file gives each service decides it.
 */
function baseEnv(): Record<string, string> {
  const drop =
    /^(TEMPORAL_|MESHFLOW_(STATE_DIR|HOST_ID|TRUST_STORE|API_TOKEN|PAYLOAD_KEY|UI_URL|UI_ORIGIN|WORKERS|TEAM_))/;
  return Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !drop.test(e[0])),
  );
}

interface Context {
  dir: string;
  topology: TeamTopology;
  serverVersion: string;
  tools: Record<string, string>;
  pg: Postgres;
  pgData: string;
  password: string;
  progress: Progress;
}

/** The running program of a service (not its supervisor), or undefined. */
function programPid(dir: string, service: string): number | undefined {
  const pidFile = pidFileOf(dir, service);
  return supervisedPid(pidFile, dir) ?? supervisedPid(pidFile, markerOf(dir, service));
}

/** What a service's command line holds, so a recycled PID is never taken for it. */
function markerOf(dir: string, service: string): string {
  return service === 'postgres' ? (readRecord(dir)?.postgresData ?? dir) : dir;
}

function supervisorRunning(dir: string, service: string): boolean {
  return runningPid(pidFileOf(dir, service), markerOf(dir, service)) !== undefined;
}

async function waitFor(what: string, ctx: Context, service: string, probe: () => Promise<boolean>, ms = 180_000) {
  const started = Date.now();
  let said = started;
  while (!(await probe())) {
    const pidFile = pidFileOf(ctx.dir, service);
    if (!supervisorRunning(ctx.dir, service)) {
      throw new Error(`${service} stopped before ${what}; log ${logFileOf(pidFile)}:\n${logTail(pidFile)}`);
    }
    if (Date.now() - started > ms) {
      throw new Error(
        `${service}: ${what} did not happen within ${formatDuration(ms)}; ` +
          `log ${logFileOf(pidFile)}:\n${logTail(pidFile)}`,
      );
    }
    if (Date.now() - said > 10_000) {
      said = Date.now();
      ctx.progress(`waiting for ${service}: ${what} (${formatDuration(Date.now() - started)})`);
    }
    await sleep(250);
  }
}

/** Runs a one-shot service's script (as compose runs its container to completion), its output to its log. */
async function runOneShot(ctx: Context, s: TeamService, extra: Record<string, string>): Promise<void> {
  const log = logFileOf(pidFileOf(ctx.dir, s.service));
  fs.mkdirSync(path.dirname(log), { recursive: true });
  const to = { file: log, append: true };
  const env = { ...baseEnv(), ...s.env, ...extra };
  // Compose's one-shots have no deadline (their scripts wait for their server); here one that runs
  // for 5 minutes is stopped, and the error says why from its log.
  const r = await execa('/bin/sh', [s.script!], {
    env,
    extendEnv: false,
    stdout: to,
    stderr: to,
    reject: false,
    timeout: ONE_SHOT_TIMEOUT_MS,
  });
  if (r.exitCode !== 0) {
    const how = r.timedOut
      ? `did not finish within ${formatDuration(ONE_SHOT_TIMEOUT_MS)}`
      : `failed (exit ${r.exitCode})`;
    throw new Error(`${s.service} ${how}; log ${log}:\n${logTail(pidFileOf(ctx.dir, s.service))}`);
  }
}

const ONE_SHOT_TIMEOUT_MS = 5 * 60_000;

/** Whether the frontend at `address` answers its gRPC health check with SERVING. */
async function frontendServing(address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 2_000 }).catch(() => undefined);
  if (!connection) return false;
  try {
    const r = await connection.healthService.check({ service: 'temporal.api.workflowservice.v1.WorkflowService' });
    return r.status === 1;
  } catch {
    return false;
  } finally {
    await connection.close();
  }
}

/** Copies an image's config template into the team folder; the service runs with `--root <there>`. */
function configRoot(ctx: Context, name: string, toolPath: string): string {
  const root = path.join(ctx.dir, name);
  fs.mkdirSync(path.join(root, 'config'), { recursive: true });
  fs.copyFileSync(
    path.join(path.dirname(toolPath), TEMPORAL_CONFIG_DIR, 'docker.yaml'),
    path.join(root, 'config', 'docker.yaml'),
  );
  return root;
}

const meshflowCli = () => path.join(packageRoot, 'dist', 'cli', 'main.js');

async function connectClient(address: string, namespace: string): Promise<Client> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  return new Client({ connection, namespace });
}

/** Whether the worker's program polls the shared queue (false while the server does not answer). */
async function workerPolls(client: Client, namespace: string, pid: number | undefined): Promise<boolean> {
  return pid !== undefined && pollsFromPid(client, namespace, [pid]).catch(() => false);
}

/** Whether this machine's team deployment has its Temporal server running. */
export function teamServerRunning(dir = teamDir()): boolean {
  return supervisorRunning(dir, 'temporal');
}

/** Starts one service (when it is not running) and waits until it is healthy, as compose's health checks ask. */
async function startService(ctx: Context, s: TeamService): Promise<void> {
  const { dir, topology } = ctx;
  const pidFile = pidFileOf(dir, s.service);
  const running = supervisorRunning(dir, s.service);
  const daemon = (
    file: string,
    args: string[],
    env: Record<string, string>,
    marker = dir,
    stopSignal?: NodeJS.Signals,
  ) =>
    startSupervisedDaemon(
      { file, args, pidFile, marker, env: { ...baseEnv(), ...env } },
      { quickMs: 20_000, maxQuickFailures: 5, ...(stopSignal ? { stopSignal } : {}) },
    );
  switch (s.role) {
    case 'postgres': {
      const port = s.ports[0];
      if (!running) {
        if (await initCluster(ctx.pg, ctx.pgData, topology.postgresUser, ctx.password)) {
          ctx.progress(`postgres: new PostgreSQL ${ctx.pg.major} cluster in ${ctx.pgData}`);
        }
        const cmd = pgCommand(ctx.pg, 'postgres', serverArgs(ctx.pgData, port));
        // SIGINT is PostgreSQL's fast shutdown: clients are disconnected rather than waited for.
        daemon(cmd.file, cmd.args, {}, ctx.pgData, 'SIGINT');
      }
      await waitFor(`PostgreSQL answering on 127.0.0.1:${port}`, ctx, s.service, () =>
        isReady(ctx.pg, port, topology.postgresUser),
      );
      return;
    }
    case 'schema':
      await runOneShot(ctx, s, {
        TEMPORAL_SQL_TOOL: ctx.tools[temporalServerToolName('temporal-sql-tool', ctx.serverVersion)],
      });
      return;
    case 'temporal': {
      if (!running) {
        const bin = ctx.tools[temporalServerToolName('temporal-server', ctx.serverVersion)];
        const root = configRoot(ctx, 'temporal', bin);
        daemon(bin, ['--root', root, '--config', 'config', '--env', 'docker', '--allow-no-auth', 'start'], s.env);
      }
      // Healthy: the frontend's gRPC health check answers SERVING (what the namespace script waits for too).
      await waitFor(`the frontend serving on ${topology.temporalAddress}`, ctx, s.service, () =>
        frontendServing(topology.temporalAddress),
      );
      return;
    }
    case 'namespace': {
      const cliDir = path.dirname(ctx.tools.temporal);
      await runOneShot(ctx, s, { PATH: `${cliDir}${path.delimiter}${process.env.PATH ?? ''}` });
      // meshflow's search attributes, as its first client registers them in any namespace.
      const connection = await Connection.connect({ address: topology.temporalAddress });
      try {
        await ensureSearchAttributes(connection, topology.namespace);
      } finally {
        await connection.close();
      }
      return;
    }
    case 'ui': {
      if (!running) {
        const bin = ctx.tools['temporal-ui-server'];
        daemon(bin, ['--root', configRoot(ctx, 'ui', bin), '--config', 'config', '--env', 'docker', 'start'], s.env);
      }
      const url = `http://127.0.0.1:${topology.uiPort}/healthz`;
      await waitFor(
        `the Web UI answering at ${url}`,
        ctx,
        s.service,
        async () => (await fetch(url).catch(() => undefined))?.ok === true,
      );
      return;
    }
    case 'worker': {
      const stateDir = s.env.MESHFLOW_STATE_DIR;
      fs.mkdirSync(stateDir, { recursive: true });
      if (!running) daemon(process.execPath, [meshflowCli(), ...s.args, '--marker', stateDir], s.env);
      const client = await connectClient(topology.temporalAddress, topology.namespace);
      try {
        await waitFor(`the worker polling task queue ${TASK_QUEUE}`, ctx, s.service, () =>
          workerPolls(client, topology.namespace, programPid(dir, s.service)),
        );
      } finally {
        await client.connection.close();
      }
      return;
    }
    case 'api': {
      if (!running) {
        // Its workers are the deployment's: `serve` must wait for them, never start one of its own.
        daemon(process.execPath, [meshflowCli(), ...s.args, '--marker', dir], {
          ...s.env,
          MESHFLOW_WORKERS: 'external',
        });
      }
      const url = `http://127.0.0.1:${topology.apiPort}/readyz`;
      await waitFor(
        `the API answering at ${url}`,
        ctx,
        s.service,
        async () => (await fetch(url).catch(() => undefined))?.ok === true,
      );
      return;
    }
  }
}

/** Loads the compose files and the tools; what `up` and `restart` both need. */
async function prepare(progress: Progress, serverVersion: string): Promise<Context> {
  const dir = teamDir();
  fs.mkdirSync(dir, { recursive: true });
  const password = secret(dir, 'postgres-password', process.env.POSTGRES_PASSWORD || undefined);
  const tools = await ensureTools(
    [
      'composecheck',
      'temporal',
      temporalServerToolName('temporal-server', serverVersion),
      temporalServerToolName('temporal-sql-tool', serverVersion),
      'temporal-ui-server',
      ...LOCAL_TOOL_NAMES,
      'istioctl',
    ],
    progress,
  );
  const project = await loadCompose(tools.composecheck, {
    ...(process.env as Record<string, string>),
    POSTGRES_PASSWORD: password,
  });
  const recorded = readRecord(dir);
  const topology = translate(project, dir, { postgres: recorded?.postgresPort ?? postgresPort() });
  // The compose secrets (the API's bearer tokens), each a random value made once.
  for (const name of Object.keys(topology.secrets)) secret(dir, name);
  const drift = imageDrift(topology);
  if (drift.length) throw new Error(`the compose files and the pinned tools differ: ${drift.join('; ')}`);
  const pg = await ensurePostgres(progress);
  const pgData = recorded?.postgresData ?? dataDirFor(pg, dir);
  return { dir, topology, serverVersion, tools, pg, pgData, password, progress };
}

function writeRecord(ctx: Context): TeamRecord {
  const { topology } = ctx;
  const api = topology.services.find((s) => s.role === 'api');
  const tokenTarget = api?.env.MESHFLOW_API_TOKEN_FILE ?? '';
  const record: TeamRecord = {
    address: topology.temporalAddress,
    namespace: topology.namespace,
    uiUrl: `http://127.0.0.1:${topology.uiPort}`,
    apiUrl: `http://127.0.0.1:${topology.apiPort}`,
    apiTokenFile: tokenTarget,
    serverVersion: ctx.serverVersion,
    postgresPort: topology.services.find((s) => s.role === 'postgres')!.ports[0],
    postgresData: ctx.pgData,
    postgresMajor: ctx.pg.major,
    services: topology.services.map((s) => ({ service: s.service, role: s.role, ports: s.ports, args: s.args })),
  };
  fs.writeFileSync(recordFile(ctx.dir), JSON.stringify(record, null, 2) + '\n');
  return record;
}

/** Ports a service needs that something else already holds (a port of its own running service is its own). */
async function portsTaken(ctx: Context): Promise<string[]> {
  const taken: string[] = [];
  for (const s of ctx.topology.services) {
    if (supervisorRunning(ctx.dir, s.service)) continue;
    for (const p of s.ports) if (await canConnect(p)) taken.push(`${p} (${s.service})`);
  }
  return taken;
}

export interface UpOptions {
  progress?: Progress;
  /** The Temporal server release to run (default the pinned one); a newer one upgrades a running deployment. */
  serverVersion?: string;
}

/**
 * Brings the deployment up in compose's order, each service healthy before the next: postgres,
 * the schema (created, or updated to the server's release), temporal, the namespace and search
 * attributes, the UI, the workers, the API. What runs already is left running, except the server
 * when another release is asked for: its schema is updated first, then it is restarted on the new
 * release (workers and API reconnect by themselves).
 */
export async function teamUp(opts: UpOptions = {}): Promise<TeamRecord> {
  const progress = opts.progress ?? stderrProgress;
  const started = Date.now();
  const previous = readRecord();
  const serverVersion = opts.serverVersion ?? previous?.serverVersion ?? TEMPORAL_SERVER_VERSION;
  if (!(TEMPORAL_SERVER_VERSIONS as readonly string[]).includes(serverVersion)) {
    throw new Error(
      `--server-version ${serverVersion}: meshflow pins Temporal server ${TEMPORAL_SERVER_VERSIONS.join(' and ')} ` +
        '(the release inside the pinned CLI, and the next minor one to upgrade to)',
    );
  }
  if (previous && compareVersions(serverVersion, previous.serverVersion) < 0) {
    throw new Error(
      `--server-version ${serverVersion}: this deployment runs ${previous.serverVersion}, and its schema is that ` +
        "release's; Temporal does not go back to an older release (restore a backup of the database instead)",
    );
  }
  const ctx = await prepare(progress, serverVersion);
  const taken = await portsTaken(ctx);
  if (taken.length) {
    throw new Error(
      `ports in use by something else: ${taken.join(', ')}. ` +
        'Set TEMPORAL_GRPC_PORT, TEMPORAL_UI_PORT, MESHFLOW_API_PORT ' +
        '(in the environment or .env, as for compose) or MESHFLOW_TEAM_POSTGRES_PORT to free ones',
    );
  }
  const upgrading = previous && previous.serverVersion !== serverVersion && supervisorRunning(ctx.dir, 'temporal');
  // Written first, so that `down` finds what a failed `up` started.
  const record = writeRecord(ctx);
  const startedNow: string[] = [];
  try {
    for (const s of ctx.topology.services) {
      const was = supervisorRunning(ctx.dir, s.service);
      if (s.role === 'temporal' && upgrading) {
        progress(
          `temporal: restarting on server ${serverVersion} (was ${previous.serverVersion}); its schema is updated`,
        );
        await stopService(ctx.dir, s.service);
      }
      const t = Date.now();
      await startService(ctx, s);
      if (!was || (s.role === 'temporal' && upgrading)) startedNow.push(s.service);
      if (oneShot(s.role) || !was || (s.role === 'temporal' && upgrading)) {
        progress(`${s.service}: ${oneShot(s.role) ? 'done' : 'up'} (${formatDuration(Date.now() - t)})`);
      }
    }
  } catch (err) {
    const still = ctx.topology.services.filter((s) => supervisorRunning(ctx.dir, s.service)).map((s) => s.service);
    (err as Error).message +=
      `\nStill running: ${still.join(', ') || 'nothing'} (started now: ${startedNow.join(', ') || 'none'}). ` +
      '`meshflow team down` stops them; their data stays.';
    throw err;
  }
  progress(`team deployment up in ${formatDuration(Date.now() - started)}`);
  return record;
}

async function stopService(dir: string, service: string, graceMs = 45_000): Promise<void> {
  await stopDaemons([{ pidFile: pidFileOf(dir, service), marker: markerOf(dir, service) }], graceMs);
}

export interface DownOptions {
  progress?: Progress;
  /** Stop even with meshes open; their local clusters' processes are stopped too (their files stay). */
  force?: boolean;
  /** Delete the data too: the database, the workers' state, the secrets (compose's `down --volumes`). */
  purge?: boolean;
}

/** Open meshes, for `down` to refuse to strand them. Undefined when the server does not answer. */
async function openMeshes(record: TeamRecord): Promise<string[] | undefined> {
  const [host, port] = record.address.split(':');
  if (!(await canConnect(Number(port), host))) return undefined;
  const client = await connectClient(record.address, record.namespace);
  try {
    const names: string[] = [];
    const query = `WorkflowType = "provisionMesh" AND ExecutionStatus = "Running"`;
    for await (const w of client.workflow.list({ query })) {
      names.push(w.workflowId.replace(/^mesh\//, ''));
    }
    return names;
  } finally {
    await client.connection.close();
  }
}

/** Stops every service, the API first and PostgreSQL last (compose's reverse order). */
export async function teamDown(opts: DownOptions = {}): Promise<{ stopped: string[]; purged: string[] }> {
  const progress = opts.progress ?? stderrProgress;
  const dir = teamDir();
  const record = readRecord(dir);
  if (!record) {
    if (opts.purge && fs.existsSync(dir)) {
      await sweepDaemons(dir);
      fs.rmSync(dir, { recursive: true, force: true });
      return { stopped: [], purged: [dir] };
    }
    return { stopped: [], purged: [] };
  }
  if (!opts.force) {
    const open = await openMeshes(record).catch(() => undefined);
    if (open?.length) {
      throw new Error(
        `meshes are still open on this deployment: ${open.join(', ')}. ` +
          'Tear them down first (`meshflow down NAME`), ' +
          'or pass --force: their workflows stay in the database and their local clusters stop with the workers',
      );
    }
  }
  const stopped: string[] = [];
  for (const s of [...record.services].reverse()) {
    if (!supervisorRunning(dir, s.service)) continue;
    progress(`stopping ${s.service}`);
    await stopService(dir, s.service);
    stopped.push(s.service);
  }
  // Local clusters the workers started (their API servers, etcd, istiods), as a container's would end with it.
  const volumes = path.join(dir, 'volumes');
  if (fs.existsSync(volumes)) for (const d of await sweepDaemons(volumes)) stopped.push(`volumes/${d}`);
  const purged: string[] = [];
  if (opts.purge) {
    fs.rmSync(record.postgresData, { recursive: true, force: true });
    purged.push(record.postgresData);
    fs.rmSync(dir, { recursive: true, force: true });
    purged.push(dir);
  }
  // Without --purge the record stays: it says where the data is, for the next `up` and a later `down --purge`.
  return { stopped, purged };
}

export interface ServiceState {
  service: string;
  role: string;
  pid?: number;
  supervisor?: number;
  ports: number[];
  state: 'running' | 'stopped' | 'one-shot';
  log: string;
}

export function teamStatus(dir = teamDir()): { record?: TeamRecord; services: ServiceState[] } {
  const record = readRecord(dir);
  const services = (record?.services ?? []).map((s): ServiceState => {
    const pidFile = pidFileOf(dir, s.service);
    const supervisor = runningPid(pidFile, markerOf(dir, s.service));
    return {
      service: s.service,
      role: s.role,
      ...(supervisor !== undefined ? { supervisor } : {}),
      ...(programPid(dir, s.service) !== undefined ? { pid: programPid(dir, s.service) } : {}),
      ports: s.ports,
      state: oneShot(s.role) ? 'one-shot' : supervisor !== undefined ? 'running' : 'stopped',
      log: logFileOf(pidFile),
    };
  });
  return { ...(record ? { record } : {}), services };
}

/** The PID of a service's program (for tests and chaos: the process a crash would take). */
export function servicePid(service: string, dir = teamDir()): number | undefined {
  return programPid(dir, service);
}

/** Stops one service and starts it again, waiting until it is healthy (compose's `restart SERVICE`). */
export async function teamRestart(service: string, progress: Progress = stderrProgress): Promise<void> {
  const record = readRecord();
  if (!record) throw new Error(`no team deployment runs from ${teamDir()} (\`meshflow team up\` starts one)`);
  const ctx = await prepare(progress, record.serverVersion);
  const s = ctx.topology.services.find((x) => x.service === service);
  if (!s)
    throw new Error(
      `no service ${service}; the services are ${ctx.topology.services.map((x) => x.service).join(', ')}`,
    );
  const t = Date.now();
  await stopService(ctx.dir, s.service);
  await startService(ctx, s);
  progress(`${service}: restarted (${formatDuration(Date.now() - t)})`);
}

/**
 * A free Temporal frontend port whose neighbours (the server's other ports) are free too: between
 * 20000 and the ephemeral range (where clients' own ports come from), and within Temporal's smallint.
 */
export async function freeTemporalPort(): Promise<number> {
  const top = Math.min(MAX_TEMPORAL_PORT - 10, ephemeralPortRange()[0] - 20);
  for (;;) {
    const p = 20_400 + Math.floor(Math.random() * (top - 20_400));
    const all = [p, ...Object.values(temporalInternalPorts(p))];
    if (!(await Promise.all(all.map((x) => canConnect(x)))).some(Boolean)) return p;
  }
}

/**
 * The environment of a team deployment of its own in `dir`, on free ports (the bench's, chaos's and
 * the tests'): what `teamUp` and `teamDown` read.
 */
export async function freeTeamEnv(dir: string): Promise<Record<string, string>> {
  return {
    MESHFLOW_TEAM_DIR: dir,
    TEMPORAL_GRPC_PORT: String(await freeTemporalPort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    MESHFLOW_API_PORT: String(await freePort()),
    MESHFLOW_TEAM_POSTGRES_PORT: String(await freePort()),
  };
}

/** The PID file's child file, for tests that watch a supervisor replace its program. */
export const programPidFile = (service: string, dir = teamDir()) => childPidFile(pidFileOf(dir, service));
