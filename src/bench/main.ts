// `npm run bench`: prints the numbers meshflow is held to, as tables.
//  1. provisioning wall time against the plan's critical path (2 and 5 clusters), with step
//     latencies injected by a TEST DOUBLE of the activities, beside the same steps run one after
//     another as the classic scripts do;
//  2. orchestration overhead per step on the dev server (p50, p99), its steps on the workflow's
//     queue and on the claiming host's, against the floor for the plan's shape (its steps as no-ops
//     in a workflow that does nothing else); 2b. a chain of no-op activities on a dev server started
//     as the local mode starts it (SQLite file), on the workflow's task queue and on another one;
//     2c. where a step's overhead goes, from the server's event times (src/bench/overhead.ts);
//  3. history events and the largest payload of a provisioned and torn-down 3-cluster mesh;
//  4. local clusters: time until 2 are ready (warm tools), RSS per API server, and the time 2 and 3
//     take to be deleted (each by its own call, at once, as a mesh's undo does);
//  5. `meshflow setup` with every tool present;
//  6. the real install on local clusters (istioctl, API servers) for each example topology: whole
//     install, time per step kind per cluster, and objects applied per cluster (one server-side
//     apply request each); 6b. the install against its CPU floor; 6c. `verify` on the ready mesh,
//     each domain of checks alone (`verify --only`), and its checks through the kubelet API;
//  10. another worker takes over a GKE (emulated) mesh on the shared queue after its worker is
//     SIGKILLed for good (src/bench/takeover.ts).
//  11. `apply` on local clusters with the real worker: a ready two-clusters example mesh grows a
//     third cluster and shrinks back: wall time of each update against the critical path of the
//     change, the new cluster's step times, how long until no istiod knew the removed cluster
//     (`forgotten`), and this process's CPU during each.
//  13. `upgrade --to 1.31.4` on local clusters with the real worker: the two- and three-cluster
//     examples started on Istio 1.30.8, one primary a wave: each wave's stages as the status showed
//     them, the final stage (old revision removed, gateways in place, verify) and the whole.
//  14. the team deployment (`meshflow team`: Temporal server on PostgreSQL) against the dev server:
//     sections 1 and 2 on both, PostgreSQL's settings named.
//  15. sidecar against ambient: the same clusters (the ambient example: two clusters, two networks,
//     helloworld, a waypoint) with istio.dataPlane flipped, one after the other: install and teardown
//     time, objects applied, the CPU of the clusters' processes, `verify` time, and every check's result.
//  17. `meshflow up` and `meshflow down --wait` as a user types them: the CLI in local mode on a
//     scratch state directory, each command a whole process, for the two- and three-cluster examples.
//  16. (`npm run bench -- cold` only) the first run on a fresh machine: the tools start-workflow
//     builds, from empty caches: each tool's time, where it went (fetching, compiling, linking),
//     the CPU used, wall against its floor and the 15-minute target.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { CHECKS } from '../checks/catalog';
import { applyMesh, planChange, rotateMesh, startMesh, startUpgrade, teardownMesh, verifyMesh } from '../client';
import { LocalClusters } from '../local/clusters';
import { startSimulatedDataPlane } from '../sim/start';
import { GKE_COMPUTE_EMULATOR_HOST, GKE_EMULATOR_HOST } from '../gke/clients';
import { GkeEmulator } from '../emulators/gke/emulator';
import { startApi } from '../api/server';
import { type Plan, type StepKind, buildPlan, criticalPath } from '../plan/plan';
import { loadMeshSpec, parseMeshSpec } from '../spec/load';
import { activityDeps, createWorker } from '../worker';
import type { MeshSpec } from '../spec/schema';
import { DEV_SERVER_ARGS } from '../temporal/connection';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import { ensureTools } from '../tools/install';
import { coldFirstRun } from './cold';
import { localTools } from '../local/tools';
import { applySpecs } from '../chaos/apply-kills';
import { ChaosBench } from '../chaos/harness';
import { meshHandle } from '../client';
import { localClusterName } from '../spec/names';
import { canConnect, freePort, sleep } from '../util/net';
import { meshWorkflowId, statusQuery } from '../workflows/definitions';
import { Context } from '@temporalio/activity';
import type { HostActivities } from '../activities/host';
import type { MeshActivities } from '../activities/types';
import { everyStep } from '../workflows/activity-names';
import type { noopChain, noopPlan } from './noop-chain';
import { takeoverAfterKill } from './takeover';
import { type StepParts, stepOverheadParts, workflowTaskDurations } from './overhead';
import type {
  MeshStatus,
  RotateRequest,
  StepOutcome,
  StepRequest,
  UpdateRecord,
  UpgradeState,
} from '../workflows/types';

/** Injected latency per step kind (ms): the plan's estimates scaled down 20x. */
function latency(plan: Plan, kind: StepKind): number {
  return Math.round(plan.steps.find((s) => s.kind === kind)!.estimateMs / 20);
}

/**
 * TEST DOUBLE of the activities: each step sleeps its injected latency and creates one marker
 * resource; the host claim keeps the steps on the worker's own queue.
 */
function latencyActivities(
  latencyOf: (req: StepRequest) => number,
  hostQueue?: string,
): MeshActivities & HostActivities {
  const step = async (req: StepRequest): Promise<StepOutcome> => {
    await sleep(latencyOf(req));
    return { resources: req.step.kind === 'verify' ? [] : [{ type: 'file', path: req.step.id }], attempt: 1 };
  };
  return {
    claimHost: async () => ({ host: 'bench', taskQueue: hostQueue ?? Context.current().info.taskQueue }),
    ...everyStep(step),
    undoResource: async () => undefined,
    awaitClusterForgotten: async () => ({ forgotten: true, afterMs: 0, detail: 'test double: no istiod' }),
    rotateIntermediate: async () => ({ resources: [], attempt: 1 }),
    addRoot: async () => ({ resources: [], attempt: 1 }),
    retireRoots: async () => ({ resources: [], attempt: 1 }),
    refreshTrust: async () => ({ resources: [], attempt: 1 }),
    installRevision: async () => ({ resources: [], attempt: 1 }),
    switchRevision: async () => ({ resources: [], attempt: 1 }),
    stopRevision: async () => ({ resources: [], attempt: 1 }),
    baselineDrift: async () => ({
      baseline: { takenAt: new Date().toISOString(), objects: {} },
      requests: 0,
      unreachable: [],
    }),
    checkDrift: async () => ({ checkedAt: new Date().toISOString(), objects: 0, requests: 0, items: [] }),
  };
}

function meshSpec(name: string, clusters: number): MeshSpec {
  const list = Array.from(
    { length: clusters },
    (_, i) => `  - { name: c${i + 1}, provider: local, network: n${(i % 2) + 1} }`,
  ).join('\n');
  return parseMeshSpec(`apiVersion: meshflow.dev/v1alpha1\nkind: Mesh\nname: ${name}\nttl: 1h\nclusters:\n${list}\n`);
}

function table(title: string, rows: Array<Record<string, string | number>>): void {
  const cols = Object.keys(rows[0]);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  console.log(`\n${title}`);
  console.log(cols.map((c, i) => c.padEnd(widths[i])).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => String(r[c]).padEnd(widths[i])).join('  '));
}

/**
 * What to stop when the bench is interrupted (Ctrl-C, SIGTERM): the clusters, servers and workers
 * a section started run as their own processes and would outlive it. Each section registers its own
 * while it runs; `finally` blocks do the same on a normal end.
 */
const onInterrupt = new Set<() => Promise<unknown>>();

/** Registers `stop` for an interrupt; returns what the section's `finally` awaits: unregistered, then stopped. */
function stopOnInterrupt(stop: () => Promise<unknown>): () => Promise<void> {
  onInterrupt.add(stop);
  return async () => {
    onInterrupt.delete(stop);
    await stop();
  };
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the clusters, servers and workers the bench started ...`);
    void Promise.allSettled([...onInterrupt].map((stop) => stop())).then((results) => {
      for (const r of results)
        if (r.status === 'rejected') console.error(`could not stop everything: ${String(r.reason)}`);
      process.exit(130);
    });
  });
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

/**
 * Waits for the mesh to be ready; returns the time it took as the workflow saw it (from its start
 * to the workflow task that made it ready). Polled every 250 ms: a workflow answers a query
 * between its workflow tasks, so polling faster would slow down what is measured.
 */
async function waitReady(env: { client: Client }, mesh: string): Promise<number> {
  for (;;) {
    const s = await env.client.workflow.getHandle(meshWorkflowId(mesh)).query(statusQuery);
    if (s.phase === 'ready') return Date.parse(s.readyAt!) - Date.parse(s.startedAt);
    if (s.phase !== 'provisioning') throw new Error(`mesh ${mesh} ended ${s.phase}: ${s.error}`);
    await sleep(250);
  }
}

async function main(): Promise<void> {
  if (SECTIONS.includes('cold')) {
    // 16. Only when named: it fetches and compiles every module again (15-20 minutes here).
    const cold = await coldFirstRun();
    table(
      '16. the first run on a fresh machine: the tools `npm run start-workflow` builds, with empty tool, Go module ' +
        "and Go build caches (phases from each Go command's -debug-trace; a tool's phases overlap others')",
      cold.rows,
    );
    table('16b. those builds together against their CPU floor', [cold.total]);
    if (SECTIONS.length === 1) return;
  }
  const tools = await ensureTools();
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: tools.temporal },
      ip: '127.0.0.1',
      ui: false,
      searchAttributes: Object.values(MESH_SEARCH_ATTRIBUTES),
      log: { format: 'pretty', level: 'error' },
      extraArgs: DEV_SERVER_ARGS,
    },
  });
  const teardown = stopOnInterrupt(() => env.teardown());
  try {
    if (want('orchestration')) {
      // 1. Wall time against the critical path.
      const rows: Array<Record<string, string | number>> = [];
      for (const n of [2, 5]) rows.push(await wallVsCriticalPath(env, n));
      table('1. provisioning wall time vs critical path (injected latencies = plan estimates / 20)', rows);

      // 2. Orchestration overhead per activity: a mesh whose steps take no time, one step at a time on a chain.
      const { samples, parts, tasks, floor, eventsRow } = await orchestrationOverhead(env, 'overhead');
      const onHost = await orchestrationOverhead(env, 'overhead-host', true);
      table(
        '2. orchestration overhead per activity on the dev server (no-op activities; time from schedule to completion seen by the workflow)',
        [
          {
            steps: "on the workflow's own queue (eager dispatch)",
            activities: samples.length,
            'p50 ms': pct(samples, 50),
            'p99 ms': pct(samples, 99),
            'max ms': Math.max(...samples),
            'floor p50 ms (the plan as no-ops, nothing else)': pct(floor, 50),
            'p50 / floor (target <= 1.5)': (pct(samples, 50) / pct(floor, 50)).toFixed(2),
          },
          {
            steps: "on the claiming host's queue (as a real worker runs them; no eager dispatch)",
            activities: onHost.samples.length,
            'p50 ms': pct(onHost.samples, 50),
            'p99 ms': pct(onHost.samples, 99),
            'max ms': Math.max(...onHost.samples),
            'floor p50 ms (the plan as no-ops, nothing else)': pct(floor, 50),
            'p50 / floor (target <= 1.5)': (pct(onHost.samples, 50) / pct(floor, 50)).toFixed(2),
          },
        ],
      );
      const chains = await noopChains(tools.temporal);
      table(
        '2b. round trip per no-op activity, chains of 100, dev server on a SQLite file with DEV_SERVER_ARGS',
        chains,
      );
      table(
        "2c. where a mesh step's overhead goes (section 2's steps, from the server's event times; p50 / p99 ms)",
        overheadRows(parts, tasks),
      );
      table('3. history of a 3-cluster mesh (provision + ready + teardown)', [eventsRow]);
    }
    if (want('real')) await realInstalls(env, tools);
    if (want('gke')) await gkeEmulated(env, tools);
    if (want('api')) await apiBench(env);
    if (want('apply')) await applyBench(env, tools);
    if (want('rotate')) await rotateBench(env, tools);
    if (want('upgrade')) await upgradeBench(env, tools);
    if (want('team')) await teamBench(env);
    if (want('ambient')) await sidecarVersusAmbient(env, tools);
    if (want('takeover')) {
      table(
        '10. another worker takes over: a GKE (emulated, durations / 20) mesh with the Kubernetes trust store; ' +
          'worker A SIGKILLed inside the create, never restarted; worker B started at the kill',
        await takeoverAfterKill(tools, stopOnInterrupt),
      );
    }
  } finally {
    await teardown();
  }

  if (want('local')) await localClusterBench(tools);
  if (want('cli')) await asUserTypesIt();
  if (want('resume')) await resumeAfterKill(tools);
  if (want('tools')) {
    // 5. Warm setup.
    const t2 = Date.now();
    await execa(process.execPath, [path.join(__dirname, '..', 'cli', 'main.js'), 'setup']);
    table('5. tools', [{ 'warm `meshflow setup` ms': Date.now() - t2 }]);
  }
}

/**
 * `npm run bench -- gke real`: only those sections (orchestration, real, gke, api, apply, rotate, upgrade, team,
 * ambient, takeover, local, cli, resume, tools; cold only when named); none named: all.
 * MESHFLOW_BENCH_EXAMPLES=two-clusters,one-network: only those examples in sections 6 and 13 (13 by
 * default: two-clusters,three-clusters).
 */
/** A Temporal server to measure on: the bench's dev server, or another (the team deployment's). */
interface BenchServer {
  client: Client;
  nativeConnection: NativeConnection;
}

/** 1. A mesh of `n` clusters with injected step latencies: its wall time against its plan's critical path. */
async function wallVsCriticalPath(server: BenchServer, n: number): Promise<Record<string, string | number>> {
  const spec = meshSpec(`bench-${n}`, n);
  const plan = buildPlan(spec);
  const worker = await Worker.create({
    connection: server.nativeConnection,
    taskQueue: `bench-${n}`,
    workflowsPath: require.resolve('../workflow-bundle'),
    activities: latencyActivities((req) => latency(plan, req.step.kind)),
  });
  const wall = await worker.runUntil(async () => {
    await startMesh(server.client, spec, `bench-${n}`);
    const ms = await waitReady(server, spec.name);
    await teardownMesh(server.client, spec.name);
    await server.client.workflow.getHandle(meshWorkflowId(spec.name)).result();
    return ms;
  });
  const cp =
    plan.steps.length &&
    criticalPath({ ...plan, steps: plan.steps.map((s) => ({ ...s, estimateMs: latency(plan, s.kind) })) }).estimateMs;
  const sequential = plan.steps.reduce((sum, s) => sum + latency(plan, s.kind), 0);
  return {
    clusters: n,
    steps: plan.steps.length,
    'critical path ms': cp,
    'meshflow wall ms': wall,
    ratio: (wall / cp).toFixed(3),
    'one-after-another ms': sequential,
    speedup: (sequential / wall).toFixed(2) + 'x',
  };
}

/**
 * 2. Five 3-cluster meshes of no-op steps: each step's time from schedule to completion as the
 * workflow saw it; 3. the first one's history.
 */
async function orchestrationOverhead(
  server: BenchServer,
  queue: string,
  onHostQueue = false,
): Promise<{
  samples: number[];
  parts: StepParts[];
  tasks: number[];
  floor: number[];
  eventsRow: Record<string, string | number>;
}> {
  const spec = meshSpec(queue, 3);
  const samples: number[] = [];
  const parts: StepParts[] = [];
  const tasks: number[] = [];
  const worker = await Worker.create({
    connection: server.nativeConnection,
    taskQueue: queue,
    workflowsPath: require.resolve('../workflow-bundle'),
    activities: latencyActivities(() => 0, onHostQueue ? `${queue}@bench` : undefined),
  });
  // As a real worker runs a mesh it claimed: its steps on the host's own queue, polled beside.
  const host = onHostQueue
    ? await Worker.create({
        connection: server.nativeConnection,
        taskQueue: `${queue}@bench`,
        activities: latencyActivities(() => 0),
      })
    : undefined;
  let eventsRow: Record<string, string | number> = {};
  const rounds = async () => {
    for (let round = 0; round < 5; round++) {
      const s = { ...spec, name: `${queue}-${round}` };
      await startMesh(server.client, s, queue);
      await waitReady(server, s.name);
      const status = await server.client.workflow.getHandle(meshWorkflowId(s.name)).query(statusQuery);
      for (const st of status.steps) samples.push(Date.parse(st.endedAt!) - Date.parse(st.startedAt!));
      const { events } = await server.client.workflow.getHandle(meshWorkflowId(s.name)).fetchHistory();
      parts.push(...stepOverheadParts(events ?? []));
      tasks.push(...workflowTaskDurations(events ?? []));
      await teardownMesh(server.client, s.name);
      await server.client.workflow.getHandle(meshWorkflowId(s.name)).result();
      if (round === 0) {
        // 3. History of a whole 3-cluster mesh: provisioned, ready, torn down.
        const history = await server.client.workflow.getHandle(meshWorkflowId(s.name)).fetchHistory();
        const json = JSON.parse(historyToJSON(history)) as { events: unknown[] };
        const sizes = json.events.map((e) => JSON.stringify(e).length);
        eventsRow = {
          clusters: 3,
          steps: status.steps.length,
          'history events': json.events.length,
          'history bytes (JSON)': sizes.reduce((a, b) => a + b, 0),
          'largest event bytes': Math.max(...sizes),
        };
      }
    }
  };
  await worker.runUntil(host ? host.runUntil(rounds) : rounds());
  if (onHostQueue) return { samples, parts, tasks, floor: [], eventsRow };
  // The floor for this plan's shape: its steps as no-ops in a workflow that does nothing else.
  const floorWorker = await Worker.create({
    connection: server.nativeConnection,
    taskQueue: `${queue}-plan`,
    workflowsPath: require.resolve('./noop-chain'),
    activities: { noop: async () => undefined },
  });
  const steps = buildPlan(spec).steps.map((st) => ({ id: st.id, dependsOn: st.dependsOn }));
  const floor: number[] = [];
  await floorWorker.runUntil(async () => {
    for (let round = 0; round < 5; round++) {
      floor.push(
        ...(await server.client.workflow.execute<typeof noopPlan>('noopPlan', {
          taskQueue: `${queue}-plan`,
          workflowId: `${queue}-plan-${round}`,
          args: [steps],
        })),
      );
    }
  });
  return { samples, parts, tasks, floor, eventsRow };
}

/**
 * 14. The team deployment (`meshflow team up`: the Temporal server on PostgreSQL, SQL visibility)
 * against the dev server (SQLite): sections 1 and 2 measured on both, PostgreSQL's settings named.
 * The deployment gets a folder and free ports of its own and is purged at the end.
 */
async function teamBench(env: TestWorkflowEnvironment): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-team-'));
  const saved = { ...process.env };
  const { freeTeamEnv, teamUp, teamDown } = await import('../team/deployment.js');
  const { describeSettings, ensurePostgres } = await import('../team/postgres.js');
  Object.assign(process.env, await freeTeamEnv(dir));
  const stop = stopOnInterrupt(() => teamDown({ force: true, purge: true, progress: () => undefined }));
  try {
    const record = await teamUp({ progress: (line) => console.error(line) });
    const connection = await NativeConnection.connect({ address: record.address });
    const client = new Client({
      connection: await Connection.connect({ address: record.address }),
      namespace: record.namespace,
    });
    const team: BenchServer = { client, nativeConnection: connection };
    const pg = await describeSettings(await ensurePostgres(() => undefined), record.postgresData);
    const rows: Array<Record<string, string | number>> = [];
    try {
      for (const [name, server] of [
        ['dev server (SQLite file)', env],
        [`team (PostgreSQL, server ${record.serverVersion})`, team],
      ] as const) {
        const walls = [await wallVsCriticalPath(server, 2), await wallVsCriticalPath(server, 5)];
        const { samples } = await orchestrationOverhead(server, `team-overhead-${rows.length}`);
        rows.push({
          server: name,
          'wall/cp 2 clusters': walls[0].ratio,
          'wall/cp 5 clusters': walls[1].ratio,
          'step overhead p50 ms': pct(samples, 50),
          'p99 ms': pct(samples, 99),
          activities: samples.length,
        });
      }
    } finally {
      await client.connection.close();
      await connection.close();
    }
    table(`14. the team deployment against the dev server (same bench as 1 and 2); ${pg}`, rows);
  } finally {
    await stop();
    process.env = saved;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const SECTIONS = process.argv.slice(2);
const want = (section: string) => SECTIONS.length === 0 || SECTIONS.includes(section);

/**
 * 17. `meshflow up` and `meshflow down --wait` as a user types them: the CLI in local mode (its dev
 * server and worker started in the background, as `npm run start-workflow` does) on a scratch
 * state directory, each command timed as a whole process; everything stopped after.
 */
async function asUserTypesIt(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-cli-'));
  let port = await freePort();
  while (port + 1000 > 65535 || (await canConnect(port + 1000))) port = await freePort();
  const env = { ...process.env, MESHFLOW_STATE_DIR: dir, MESHFLOW_LOCAL_TEMPORAL_ADDRESS: `127.0.0.1:${port}` };
  // What `npx meshflow` runs: the bin script (it runs the CLI on a supported Node, as installed).
  const bin = path.join(__dirname, '..', '..', 'bin', 'meshflow.cjs');
  const timed = async (args: string[]) => {
    const t = Date.now();
    await execa(process.execPath, [bin, ...args], { env });
    return ((Date.now() - t) / 1000).toFixed(1);
  };
  const stop = stopOnInterrupt(async () => {
    await execa(process.execPath, [bin, 'local', 'stop', '--force'], { env, reject: false });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const rows: Array<Record<string, string | number>> = [];
  try {
    // The first `up` starts the dev server and the worker: timed apart from the meshes after it.
    const cases = [
      ['two-clusters', 'demo', 2, '<= 3 s'],
      ['three-clusters', 'trio', 3, '<= 4 s'],
    ] as const;
    for (const [example, mesh, clusters, target] of cases) {
      const up = await timed(['up', path.join(__dirname, '..', '..', 'examples', `${example}.yaml`)]);
      const down = await timed(['down', mesh, '--wait']);
      rows.push({
        example,
        clusters,
        'up until ready s': up + (rows.length ? '' : ' (starts the dev server and worker too)'),
        'down --wait s': down,
        'down target': target,
      });
    }
  } finally {
    await stop();
  }
  table('17. `meshflow up` and `meshflow down --wait` as a user types them (local mode, whole CLI process)', rows);
}

/** 4. Local clusters. */
async function localClusterBench(tools: Record<string, string>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-'));
  const local = new LocalClusters(dir, localTools(tools));
  const stop = stopOnInterrupt(() =>
    local.delete(['bench-a', 'bench-b', 'bench-c']).finally(() => fs.rmSync(dir, { recursive: true, force: true })),
  );
  // As the LocalProvider does: each cluster with its simulated data plane, each deleted by its own call.
  const deleteTime = async (names: string[]) => {
    for (const c of await local.start(names)) startSimulatedDataPlane(c);
    const t = Date.now();
    await Promise.all(names.map((n) => local.delete([n])));
    return ((Date.now() - t) / 1000).toFixed(2);
  };
  try {
    const t0 = Date.now();
    const clusters = await local.start(['bench-a', 'bench-b']);
    const readyMs = Date.now() - t0;
    const rss = clusters.map((c) => {
      const pid = Number(fs.readFileSync(path.join(path.dirname(c.kubeconfig), 'apiserver.pid'), 'utf8'));
      return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
    });
    await local.stop();
    const t1 = Date.now();
    await local.start(['bench-a', 'bench-b']);
    const restartMs = Date.now() - t1;
    const delete2 = await deleteTime(['bench-a', 'bench-b']);
    const delete3 = await deleteTime(['bench-a', 'bench-b', 'bench-c']);
    table('4. local clusters (tools warm)', [
      {
        clusters: 2,
        'first start ms (PKI + etcd + apiserver, controller manager, scheduler, kwok node)': readyMs,
        'restart from state ms': restartMs,
        'RSS per apiserver MiB': rss.map((r) => r.toFixed(0)).join(', '),
        'delete 2 clusters s': delete2,
        'delete 3 clusters s': delete3,
      },
    ]);
  } finally {
    await stop();
  }
}

/**
 * 9. A dead worker: the two-cluster example with its worker (a child process, as `meshflow up`
 * runs it) SIGKILLed while a step runs, and started again at once, as the local mode's supervisor
 * does. The killed attempt is noticed when its heartbeat times out (10 s); the time measured is
 * from the kill until the step's next attempt starts on the new worker, then until the mesh is ready.
 */
async function resumeAfterKill(tools: Record<string, string>): Promise<void> {
  const examples = path.join(__dirname, '..', '..', 'examples');
  const rows: Array<Record<string, string | number>> = [];
  for (const kind of ['create-cluster', 'control-plane']) {
    const bench = new ChaosBench({ temporal: tools.temporal, local: localTools(tools) });
    const stop = stopOnInterrupt(() => bench.stop());
    try {
      await bench.startServer();
      bench.startWorker();
      const spec = { ...loadMeshSpec(path.join(examples, 'two-clusters.yaml')), name: `resume-${kind}` };
      const t0 = Date.now();
      await startMesh(bench.client!, spec, bench.taskQueue);
      let killedAt = 0;
      let killed = '';
      let resumedAt = 0;
      for (;;) {
        const s = await bench.status(spec.name);
        if (!killedAt) {
          const running = s?.steps.find((st) => st.kind === kind && st.state === 'running');
          // Half a second into the step: the attempt has done some of its work.
          if (running && Date.now() - Date.parse(running.startedAt!) > 500) {
            killed = running.id;
            await bench.killWorker();
            killedAt = Date.now();
          }
        } else if (!resumedAt) {
          const desc = await meshHandle(bench.client!, spec.name).describe();
          const retry = desc.raw.pendingActivities?.find(
            (a) => (a.attempt ?? 0) > 1 && a.state === 2 /* PENDING_ACTIVITY_STATE_STARTED */,
          );
          if (retry) resumedAt = Date.now();
        }
        if (s && s.phase !== 'provisioning') {
          if (s.phase !== 'ready') throw new Error(`resume bench: mesh ended ${s.phase}: ${s.error}`);
          break;
        }
        if (Date.now() - t0 > 5 * 60_000) throw new Error('resume bench: mesh not ready in 5 minutes');
        await sleep(100);
      }
      const readyAt = Date.now();
      const status = await bench.status(spec.name);
      rows.push({
        'killed during': killed,
        'kill to retry started s': resumedAt ? ((resumedAt - killedAt) / 1000).toFixed(1) : 'not seen',
        'kill to ready s': ((readyAt - killedAt) / 1000).toFixed(1),
        'attempts of that step': status?.steps.find((st) => st.id === killed)?.attempts ?? '?',
        'up to ready s': ((readyAt - t0) / 1000).toFixed(1),
      });
      await teardownMesh(bench.client!, spec.name);
      await meshHandle(bench.client!, spec.name).result();
    } finally {
      await stop();
    }
  }
  table('9. worker SIGKILLed mid-step and restarted at once (two-clusters example)', rows);
}

/** 2c: the parts of a step's overhead, as src/bench/overhead.ts splits it. */
const OVERHEAD_PARTS: Array<[string, Exclude<keyof StepParts, 'activity'>]> = [
  ['scheduling workflow task (its start to the step scheduled)', 'schedulingTaskMs'],
  ['dispatch (scheduled to started)', 'dispatchMs'],
  ['run and report (started to completed; a no-op)', 'runMs'],
  ['next workflow task (completed to its start)', 'nextTaskMs'],
  ['whole (the overhead of section 2)', 'totalMs'],
];

/** 2c: each part of a step's overhead, p50 and p99 over the steps, and the workflow tasks' own time. */
function overheadRows(parts: StepParts[], tasks: number[]): Array<Record<string, string | number>> {
  const row = (what: string, xs: number[]) => ({ part: what, 'p50 ms': pct(xs, 50), 'p99 ms': pct(xs, 99) });
  return [
    ...OVERHEAD_PARTS.map(([what, key]) =>
      row(
        what,
        parts.map((p) => p[key]),
      ),
    ),
    row('a workflow task of the mesh, start to completion', tasks),
  ];
}

/**
 * 2b. The per-step floor: chains of no-op activities, one after another, on a dev server started
 * with a database file as the local mode starts it. On the workflow's own task queue the worker
 * gets each activity eagerly with its workflow task; on another queue every activity goes through
 * the matching service, as with per-worker task queues.
 */
async function noopChains(temporal: string): Promise<Array<Record<string, string | number>>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-chain-'));
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporal },
      ip: '127.0.0.1',
      ui: false,
      dbFilename: path.join(dir, 'temporal.db'),
      log: { format: 'pretty', level: 'error' },
      extraArgs: DEV_SERVER_ARGS,
    },
  });
  const teardown = stopOnInterrupt(() =>
    env.teardown().finally(() => fs.rmSync(dir, { recursive: true, force: true })),
  );
  const rows: Array<Record<string, string | number>> = [];
  try {
    const activities = { noop: async () => undefined };
    const workflows = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'chain',
      workflowsPath: require.resolve('./noop-chain'),
      activities,
    });
    const others = await Worker.create({ connection: env.nativeConnection, taskQueue: 'chain-activities', activities });
    await workflows.runUntil(
      others.runUntil(async () => {
        const ways = [
          ['same task queue (eager)', undefined],
          ['other task queue', 'chain-activities'],
        ] as const;
        for (const [where, queue] of ways) {
          const run = (id: string, count: number) =>
            env.client.workflow.execute<typeof noopChain>('noopChain', {
              taskQueue: 'chain',
              workflowId: id,
              args: [count, queue],
            });
          await run(`warm-up-${queue ?? 'same'}`, 10);
          const samples: number[] = [];
          for (let round = 0; round < 3; round++)
            samples.push(...(await run(`chain-${queue ?? 'same'}-${round}`, 100)));
          rows.push({
            activities: where,
            samples: samples.length,
            'p50 ms': pct(samples, 50),
            'p99 ms': pct(samples, 99),
            'max ms': Math.max(...samples),
          });
        }
      }),
    );
  } finally {
    await teardown();
  }
  return rows;
}

/**
 * Polls the debug interface of the first primary's istiod (once it runs) until it holds endpoints
 * from another cluster: the time from `up` until that istiod could route across clusters.
 */
function firstCrossClusterEndpoints(
  stateDir: string,
  spec: MeshSpec,
  t0: number,
): { done: Promise<number | undefined> } {
  const primary = spec.clusters.find((c) => c.role === 'primary')!;
  const others = new Set(spec.clusters.filter((c) => c.name !== primary.name).map((c) => c.name));
  const local = new LocalClusters(stateDir, { kubeApiserver: '', etcd: '' });
  const done = (async () => {
    while (Date.now() - t0 < 300_000) {
      try {
        const istiod = local.istiod(localClusterName(spec.name, primary.name));
        if (!istiod?.running) throw new Error('not started yet');
        const r = await fetch(`${istiod.debug}/debug/endpointShardz`);
        const shards = (await r.json()) as Record<string, Record<string, { Shards: Record<string, unknown[]> }>>;
        for (const byNs of Object.values(shards))
          for (const ns of Object.values(byNs))
            for (const [shard, eps] of Object.entries(ns.Shards))
              if (others.has(shard.split('/')[1]) && eps.length) return Date.now() - t0;
      } catch {
        // not started yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return undefined;
  })();
  return { done };
}

/**
 * Resident memory (MiB) and CPU time used so far (s) of the mesh's local cluster processes, summed
 * by kind (etcd is shared and not counted; istioctl runs and exits, and is in the worker's
 * children, not here).
 */
/** The CPU seconds of the process a pid file names (0 when it is not running). */
function pidCpu(pidFile: string): number {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** This process's CPU seconds, with the children it has waited for (istioctl runs): /proc/self/stat. */
function selfCpuWithChildren(): number {
  const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  // utime, stime, cutime, cstime: fields 14-17 of stat, 11-14 after the command name.
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

interface CpuSamples {
  /** Per 250 ms interval: its start (ms since epoch) and how busy the machine was (0-1). */
  points: Array<{ at: number; busy: number }>;
  busyPct: number;
}

/** Samples the whole machine's CPU (/proc/stat) every 250 ms until stopped. */
function sampleMachineCpu(): { stop: () => CpuSamples } {
  const read = () => {
    const [, ...v] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    const n = v.map(Number);
    return { total: n.reduce((a, b) => a + b, 0), idle: n[3] + n[4] };
  };
  const points: CpuSamples['points'] = [];
  let last = { ...read(), at: Date.now() };
  const timer = setInterval(() => {
    const now = read();
    const dt = now.total - last.total;
    if (dt > 0) points.push({ at: last.at, busy: 1 - (now.idle - last.idle) / dt });
    last = { ...now, at: Date.now() };
  }, 250);
  return {
    stop: () => {
      clearInterval(timer);
      const busyPct = points.length ? (100 * points.reduce((a, p) => a + p.busy, 0)) / points.length : 0;
      return { points, busyPct };
    },
  };
}

/** The stretches of at least 0.5 s when the machine was under half busy, and the steps running then. */
function idleGaps(samples: CpuSamples, status: MeshStatus, t0: number): string {
  const gaps: Array<{ from: number; to: number }> = [];
  for (const p of samples.points) {
    if (p.busy >= 0.5) continue;
    const g = gaps.at(-1);
    if (g && p.at - g.to <= 300) g.to = p.at + 250;
    else gaps.push({ from: p.at, to: p.at + 250 });
  }
  return gaps
    .filter((g) => g.to - g.from >= 500)
    .map((g) => {
      const running = status.steps
        .filter(
          (st) => st.startedAt && st.endedAt && Date.parse(st.startedAt) < g.to && Date.parse(st.endedAt) > g.from,
        )
        .map((st) => st.id);
      const secs = (ms: number) => ((ms - t0) / 1000).toFixed(1);
      return `${secs(g.from)}-${secs(g.to)}s (${running.join(', ') || 'no step'})`;
    })
    .join('; ');
}

function usageByComponent(stateDir: string, mesh: string): { rss: string; cpu: string; cpuSeconds: number } {
  const root = path.join(stateDir, 'local', 'clusters');
  const rss = new Map<string, number>();
  const cpu = new Map<string, number>();
  for (const cluster of fs.readdirSync(root).filter((n) => n.startsWith(`${mesh}-`))) {
    const files = fs.readdirSync(path.join(root, cluster));
    for (const file of files.filter((f) => f.endsWith('.pid') || f.endsWith('.pid.child'))) {
      try {
        const pid = Number(fs.readFileSync(path.join(root, cluster, file), 'utf8'));
        const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
        // utime and stime, in clock ticks (100 a second), after the command name in parentheses.
        const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        const seconds = (Number(fields[11]) + Number(fields[12])) / 100;
        // A supervised process (istiod): the program under its own name, its supervisor apart.
        const name = file.replace(/\.pid(\.child)?$/, '');
        const kind = file.endsWith('.pid') && files.includes(`${file}.child`) ? `${name} supervisor` : name;
        rss.set(kind, (rss.get(kind) ?? 0) + kb / 1024);
        cpu.set(kind, (cpu.get(kind) ?? 0) + seconds);
      } catch {
        // gone
      }
    }
  }
  const show = (m: Map<string, number>, digits: number) => {
    const total = [...m.values()].reduce((a, b) => a + b, 0);
    return `${total.toFixed(digits)} (${[...m].map(([k, v]) => `${k} ${v.toFixed(digits)}`).join(', ')})`;
  };
  return { rss: show(rss, 0), cpu: show(cpu, 1), cpuSeconds: [...cpu.values()].reduce((a, b) => a + b, 0) };
}

/** 6. Real installs on local clusters, one example topology after another. */
/** Deletes every local cluster under a section's state directory, then the directory (its end, or an interrupt). */
async function removeLocalClusters(dir: string, tools: Record<string, string>): Promise<void> {
  const local = new LocalClusters(dir, localTools(tools));
  await local.delete(local.list().map((c) => c.name));
  fs.rmSync(dir, { recursive: true, force: true });
}

async function realInstalls(env: TestWorkflowEnvironment, tools: Record<string, string>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-real-'));
  const examples = path.join(__dirname, '..', '..', 'examples');
  const worker = await createWorker(env.nativeConnection, 'default', activityDeps(dir, tools), 'bench-real');
  const totals: Array<Record<string, string | number>> = [];
  const perStep: Array<Record<string, string | number>> = [];
  const floors: Array<Record<string, string | number>> = [];
  const kubelet: Array<Record<string, string | number>> = [];
  const stopClusters = stopOnInterrupt(() => removeLocalClusters(dir, tools));
  try {
    await worker.runUntil(async () => {
      for (const example of (
        process.env.MESHFLOW_BENCH_EXAMPLES ?? 'two-clusters,three-clusters,one-network,primary-remote'
      ).split(',')) {
        const spec = { ...loadMeshSpec(path.join(examples, `${example}.yaml`)), name: `bench-${example}` };
        const t0 = Date.now();
        const cpuAtStart = process.cpuUsage();
        const selfAtStart = selfCpuWithChildren();
        const etcdPid = path.join(dir, 'local', 'etcd', 'etcd.pid');
        const etcdAtStart = pidCpu(etcdPid);
        const machine = sampleMachineCpu();
        await startMesh(env.client, spec, 'bench-real');
        const seen = firstCrossClusterEndpoints(dir, spec, t0);
        const wall = await waitReady(env, spec.name);
        const usage = usageByComponent(dir, spec.name);
        const workerCpu = process.cpuUsage(cpuAtStart);
        const selfCpu = selfCpuWithChildren() - selfAtStart;
        // The clusters' shared etcd (started by the first cluster of the section): its CPU during this install.
        const etcdCpu = pidCpu(etcdPid) - etcdAtStart;
        const samples = machine.stop();
        const endpointsMs = await seen.done;
        const status = await env.client.workflow.getHandle(meshWorkflowId(spec.name)).query(statusQuery);
        // `verify` again on the ready mesh: what the checks that go through the kubelet API cost.
        const v0 = Date.now();
        const checks = await verifyMesh(env.client, spec.name);
        const forwarded = checks.filter((c) => c.via?.startsWith('port-forward'));
        const traffic = checks.filter((c) => c.name === 'traffic' && c.status !== 'not-supported');
        const passed = (cs: typeof checks) => `${cs.filter((c) => c.status === 'passed').length}/${cs.length}`;
        const everyCheckS = ((Date.now() - v0) / 1000).toFixed(1);
        // `verify --only` one domain's codes at a time: what each domain of checks costs.
        const byDomain: string[] = [];
        for (const domain of [...new Set(CHECKS.map((c) => c.domain))]) {
          const d0 = Date.now();
          const only = CHECKS.filter((c) => c.domain === domain).map((c) => c.code);
          const ran = await verifyMesh(env.client, spec.name, only);
          byDomain.push(`${domain} ${((Date.now() - d0) / 1000).toFixed(1)} (${passed(ran)})`);
        }
        kubelet.push({
          topology: example,
          'verify s (every check)': everyCheckS,
          'verify --only s, by domain (passed/all)': byDomain.join(', '),
          'checks through a port-forward to istiod (passed/all)': passed(forwarded),
          'traffic checks through exec, kwok test double (passed/all)': passed(traffic),
          'exec requests': traffic.length * spec.verify.traffic.requests,
        });
        const t1 = Date.now();
        await teardownMesh(env.client, spec.name);
        await env.client.workflow.getHandle(meshWorkflowId(spec.name)).result();
        const objects = (cluster: string) =>
          status.ledger.reduce(
            (n, l) =>
              n + (l.resource.type === 'objects' && l.resource.cluster === cluster ? l.resource.objects.length : 0),
            0,
          );
        totals.push({
          topology: example,
          clusters: spec.clusters.length,
          'install s': (wall / 1000).toFixed(1),
          'teardown s': ((Date.now() - t1) / 1000).toFixed(1),
          'objects applied per cluster': spec.clusters.map((c) => `${c.name} ${objects(c.name)}`).join(', '),
          "up until the first istiod sees another cluster's endpoints s":
            endpointsMs === undefined ? 'n/a' : (endpointsMs / 1000).toFixed(1),
          'RSS MiB at ready, all clusters (per process kind)': usage.rss,
          'CPU s until ready, all clusters (per process kind)': usage.cpu,
          'CPU s until ready, this process (worker, bench, istioctl not counted)': (
            (workerCpu.user + workerCpu.system) /
            1e6
          ).toFixed(1),
        });
        // The floor: the CPU the install's processes used (the clusters' components, this process and
        // the istioctl runs it waited for), spread over every core; wall / floor says how close it came.
        const cpuTotal = usage.cpuSeconds + etcdCpu + selfCpu;
        const floor = cpuTotal / os.cpus().length;
        floors.push({
          topology: example,
          'wall s': (wall / 1000).toFixed(1),
          'CPU s (components + etcd + worker and istioctl)': `${cpuTotal.toFixed(1)} (${[
            usage.cpuSeconds,
            etcdCpu,
            selfCpu,
          ]
            .map((x) => x.toFixed(1))
            .join(' + ')})`,
          cores: os.cpus().length,
          'floor s': floor.toFixed(1),
          'wall / floor': (wall / 1000 / floor).toFixed(2),
          target: '<= 1.1',
          'machine busy %': samples.busyPct.toFixed(0),
          'idle gaps (< 50% busy, >= 0.5 s: when, running steps)': idleGaps(samples, status, t0) || 'none',
        });
        const kinds = [...new Set(status.steps.map((st) => st.kind))];
        const row: Record<string, string | number> = { topology: example };
        for (const kind of kinds) {
          const secs = status.steps
            .filter((st) => st.kind === kind)
            .map((st) => (Date.parse(st.endedAt!) - Date.parse(st.startedAt!)) / 1000);
          row[kind] =
            secs.length === 1 ? secs[0].toFixed(1) : `${Math.min(...secs).toFixed(1)}-${Math.max(...secs).toFixed(1)}`;
        }
        perStep.push(row);
      }
    });
  } finally {
    // A mesh that did not finish (an error, a failed step) leaves its clusters: stop their processes too.
    await stopClusters().catch((err: unknown) => console.error(`could not stop every cluster: ${String(err)}`));
  }
  table(
    '6. real install on local clusters (whole install, teardown, objects applied = server-side apply requests)',
    totals,
  );
  table(
    '6b. install against its CPU floor (the CPU the install used / the cores; wall / floor, target <= 1.1)',
    floors,
  );
  table(
    '6c. checks through the kubelet API (port-forward to istiod, exec in the client pod; kwok plays the kubelet here)',
    kubelet,
  );
  for (const row of perStep)
    table(`6. seconds per step (min-max over clusters or pairs): ${row.topology}`, [
      Object.fromEntries(Object.entries(row).filter(([k]) => k !== 'topology')),
    ]);
}

/**
 * 15. The same mesh with each data plane: the ambient example (with a waypoint) as it is, and with
 * istio.dataPlane flipped to sidecar (a waypoint is ambient's, so that one has none), brought up on
 * the same local clusters' names one after the other, each checked and torn down.
 */
async function sidecarVersusAmbient(env: TestWorkflowEnvironment, tools: Record<string, string>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-dataplane-'));
  const ambient = loadMeshSpec(path.join(__dirname, '..', '..', 'examples', 'ambient.yaml'));
  const worker = await createWorker(env.nativeConnection, 'default', activityDeps(dir, tools), 'bench-dataplane');
  const rows: Array<Record<string, string | number>> = [];
  const stopClusters = stopOnInterrupt(() => removeLocalClusters(dir, tools));
  try {
    await worker.runUntil(async () => {
      for (const dataPlane of ['sidecar', 'ambient'] as const) {
        const spec: MeshSpec = {
          ...ambient,
          name: 'bench-dp',
          istio: { ...ambient.istio, dataPlane },
          app: { ...ambient.app, waypoint: dataPlane === 'ambient' ? 'waypoint' : undefined },
        };
        await startMesh(env.client, spec, 'bench-dataplane');
        const wall = await waitReady(env, spec.name);
        const usage = usageByComponent(dir, spec.name);
        const status = await env.client.workflow.getHandle(meshWorkflowId(spec.name)).query(statusQuery);
        const v0 = Date.now();
        const checks = await verifyMesh(env.client, spec.name);
        const verifyS = (Date.now() - v0) / 1000;
        const t1 = Date.now();
        await teardownMesh(env.client, spec.name);
        await env.client.workflow.getHandle(meshWorkflowId(spec.name)).result();
        const objects = status.ledger.reduce(
          (n, l) => n + (l.resource.type === 'objects' ? l.resource.objects.length : 0),
          0,
        );
        const by = (st: string) => checks.filter((c) => c.status === st).length;
        rows.push({
          'istio.dataPlane': dataPlane,
          'install s': (wall / 1000).toFixed(1),
          'objects applied': objects,
          'CPU s until ready (clusters)': usage.cpuSeconds.toFixed(1),
          'verify s': verifyS.toFixed(1),
          'checks passed/failed/not-supported': `${by('passed')}/${by('failed')}/${by('not-supported')}`,
          'Istio checks': [...new Set(checks.map((c) => c.name))]
            .filter((n) =>
              [
                'discovery',
                'cross-network-endpoints',
                'injection',
                'ambient-workloads',
                'ambient-capture',
                'analyze',
                'trust-chain',
              ].includes(n),
            )
            .join(' '),
          'teardown s': ((Date.now() - t1) / 1000).toFixed(1),
        });
      }
    });
  } finally {
    await stopClusters().catch((err: unknown) => console.error(`could not stop every cluster: ${String(err)}`));
  }
  table('15. sidecar against ambient on the same clusters (ambient example, waypoint on ambient; real worker)', rows);
}

/**
 * 11. `apply` on local clusters, the real worker in this process: the two-clusters example grows a
 * third cluster (cluster3 on network3, helloworld v2 in it too) and shrinks back. Wall time of each
 * update (from sending it to its answer) against the critical path of the change: the plan's
 * estimates (`diffPlans`), and the same steps with their measured durations; the update's
 * `forgotten` (until no istiod knew the removed cluster); CPU of this process (worker and bench).
 */
async function applyBench(env: TestWorkflowEnvironment, tools: Record<string, string>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-apply-'));
  const examples = path.join(__dirname, '..', '..', 'examples');
  const { a, b } = applySpecs({ ...loadMeshSpec(path.join(examples, 'two-clusters.yaml')), name: 'bench-apply' });
  const worker = await createWorker(env.nativeConnection, 'default', activityDeps(dir, tools), 'bench-apply');
  const rows: Array<Record<string, string | number>> = [];
  let newSteps: Record<string, string | number> = {};
  const stopClusters = stopOnInterrupt(() => removeLocalClusters(dir, tools));
  try {
    await worker.runUntil(async () => {
      await startMesh(env.client, a, 'bench-apply');
      await waitReady(env, a.name);
      for (const [change, spec] of [
        ['add cluster3', b],
        ['remove cluster3', a],
      ] as const) {
        const { delta } = await planChange(env.client, spec);
        const cpu0 = process.cpuUsage();
        const t0 = Date.now();
        const { update } = await (await applyMesh(env.client, spec)).result();
        const wall = Date.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        if (update.state !== 'applied')
          throw new Error(`apply bench: ${change} ended ${update.state}: ${update.error}`);
        const status = await env.client.workflow.getHandle(meshWorkflowId(a.name)).query(statusQuery);
        const ran = new Set([...delta!.added, ...delta!.rerun].map((st) => st.id));
        const took = new Map(
          status.steps
            .filter((st) => ran.has(st.id) && st.startedAt && st.endedAt)
            .map((st) => [st.id, Date.parse(st.endedAt!) - Date.parse(st.startedAt!)]),
        );
        // The verify after an update keeps the start time of the first one in the status: its time
        // here is from the last step's end to its own.
        const verify = status.steps.find((st) => st.kind === 'verify');
        const lastEnd = Math.max(
          0,
          ...status.steps.filter((st) => ran.has(st.id) && st.endedAt).map((st) => Date.parse(st.endedAt!)),
        );
        if (verify?.endedAt && lastEnd) took.set(verify.id, Date.parse(verify.endedAt) - lastEnd);
        // The steps that ran, with their measured durations, through the same cut of the plan.
        const plan = buildPlan(spec);
        const measured = criticalPath({
          ...plan,
          steps: plan.steps
            .filter((st) => ran.has(st.id) || st.kind === 'verify')
            .map((st) => ({
              ...st,
              dependsOn: st.kind === 'verify' ? [...ran] : st.dependsOn.filter((d) => ran.has(d)),
              estimateMs: took.get(st.id) ?? 0,
            })),
        }).estimateMs;
        const cp = delta!.criticalPath.estimateMs;
        rows.push({
          change,
          'steps added/rerun/removed': `${delta!.added.length}/${delta!.rerun.length}/${delta!.removed.length}`,
          'update wall s': (wall / 1000).toFixed(1),
          'in the workflow s': ((Date.parse(update.endedAt!) - Date.parse(update.requestedAt)) / 1000).toFixed(1),
          // A removal only undoes: the plan estimates no step of it.
          'critical path (plan estimates) s': cp ? (cp / 1000).toFixed(1) : 'n/a (undo only)',
          'wall / estimate': cp ? (wall / cp).toFixed(2) : 'n/a',
          'critical path (measured steps) s': ran.size ? (measured / 1000).toFixed(1) : 'n/a',
          'wall / measured': ran.size ? (wall / measured).toFixed(2) : 'n/a',
          'forgotten after ms':
            (update.forgotten ?? [])
              .map((f) => `${f.cluster} ${f.afterMs === undefined ? 'not proven' : f.afterMs}`)
              .join(', ') || 'n/a',
          'CPU s, this process (worker + bench)': ((cpu.user + cpu.system) / 1e6).toFixed(1),
        });
        if (change.startsWith('add')) {
          const kinds = new Map<string, number[]>();
          for (const st of status.steps.filter((x) => ran.has(x.id) && took.has(x.id)))
            kinds.set(st.kind, [...(kinds.get(st.kind) ?? []), took.get(st.id)! / 1000]);
          newSteps = Object.fromEntries(
            [...kinds].map(([kind, secs]) => [
              kind,
              secs.length === 1
                ? secs[0].toFixed(1)
                : `${Math.min(...secs).toFixed(1)}-${Math.max(...secs).toFixed(1)}`,
            ]),
          );
        }
      }
      await teardownMesh(env.client, a.name);
      await env.client.workflow.getHandle(meshWorkflowId(a.name)).result();
    });
  } finally {
    await stopClusters().catch((err: unknown) => console.error(`could not stop every cluster: ${String(err)}`));
  }
  table('11. apply on local clusters (two-clusters example + cluster3 on network3, real worker in this process)', rows);
  table('11. seconds per step of the add (min-max over clusters or pairs; steps added or run again)', [newSteps]);
}

/**
 * 12. Rotation on a ready mesh of local clusters (two and three clusters, real worker in this
 * process): each kind's wall time as `meshflow rotate` waits for it (the verify after it included,
 * which runs every check), the verify alone, and how long istiods took to take up what changed.
 */
async function rotateBench(env: TestWorkflowEnvironment, tools: Record<string, string>): Promise<void> {
  const examples = path.join(__dirname, '..', '..', 'examples');
  const rows: Array<Record<string, string | number>> = [];
  for (const example of ['two-clusters.yaml', 'three-clusters.yaml']) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-rotate-'));
    const spec = { ...loadMeshSpec(path.join(examples, example)), name: 'bench-rotate' };
    const worker = await createWorker(env.nativeConnection, 'default', activityDeps(dir, tools), 'bench-rotate');
    const stopClusters = stopOnInterrupt(() => removeLocalClusters(dir, tools));
    try {
      await worker.runUntil(async () => {
        await startMesh(env.client, spec, 'bench-rotate');
        await waitReady(env, spec.name);
        const t0 = Date.now();
        await verifyMesh(env.client, spec.name);
        const verifyMs = Date.now() - t0;
        const kinds: Array<[string, RotateRequest]> = [
          ['intermediates', { what: 'intermediates' }],
          ['readers', { what: 'readers' }],
          ['root: trust both, switch intermediates', { what: 'root', grace: '1h' }],
          ['root: drop the old (--finish)', { what: 'root', finish: true }],
        ];
        for (const [kind, req] of kinds) {
          const t1 = Date.now();
          const { update } = await rotateMesh(env.client, spec.name, req);
          const wall = Date.now() - t1;
          if (update.state !== 'applied')
            throw new Error(`rotate bench: ${kind} ended ${update.state}: ${update.error}`);
          const status = await env.client.workflow.getHandle(meshWorkflowId(spec.name)).query(statusQuery);
          const takeUp = status.steps
            .filter((st) => update.rerun.includes(st.id))
            .map((st) => /in (\d+) ms/.exec((req.finish ? st.outputs?.trustTakenUp : st.outputs?.caTakenUp) ?? '')?.[1])
            .filter((x): x is string => x !== undefined)
            .map(Number);
          rows.push({
            clusters: spec.clusters.length,
            rotation: kind,
            'steps run': update.rerun.length,
            'wall s (with verify)': (wall / 1000).toFixed(1),
            'verify alone s': (verifyMs / 1000).toFixed(1),
            'istiod take-up ms (min-max)': takeUp.length ? `${Math.min(...takeUp)}-${Math.max(...takeUp)}` : 'n/a',
          });
        }
        await teardownMesh(env.client, spec.name);
        await env.client.workflow.getHandle(meshWorkflowId(spec.name)).result();
      });
    } finally {
      await stopClusters().catch((err: unknown) => console.error(`could not stop every cluster: ${String(err)}`));
    }
  }
  table('12. rotation on local clusters (real worker and istiods; each rotation ends with verify)', rows);
}

/** 13. The Istio versions the upgrade section goes between: the mesh starts on the first. */
const UPGRADE_FROM = '1.30.8';
const UPGRADE_TO = '1.31.4';

/**
 * 13. `upgrade --to 1.31.4` of a ready mesh of local clusters started on 1.30.8 (the two- and
 * three-cluster examples, default waves: one primary a wave; real worker and istiods in this
 * process). Measured by polling the status query every 250 ms from the moment the upgrade is sent:
 * a stage's time runs from when it was first seen (the first wave's install: from the send) until
 * the next stage was; a wave's is the sum of its install, switch (tag moved, workloads restarted)
 * and verify. The final stage runs from when `removing-old` was seen until the update was seen
 * ended; inside it, the re-rendered control-plane and east-west-gateway steps (first start to last
 * end) and the last verify are the workflow's own step times. Polled times are late by up to one
 * interval and a query (a workflow answers between its tasks).
 */
async function upgradeBench(env: TestWorkflowEnvironment, tools: Record<string, string>): Promise<void> {
  const examples = path.join(__dirname, '..', '..', 'examples');
  const waveRows: Array<Record<string, string | number>> = [];
  const rows: Array<Record<string, string | number>> = [];
  const secs = (ms: number) => (ms / 1000).toFixed(1);
  for (const example of (process.env.MESHFLOW_BENCH_EXAMPLES ?? 'two-clusters,three-clusters').split(',')) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-upgrade-'));
    const base = loadMeshSpec(path.join(examples, `${example}.yaml`));
    const spec: MeshSpec = { ...base, name: 'bench-upgrade', istio: { ...base.istio, version: UPGRADE_FROM } };
    const worker = await createWorker(env.nativeConnection, 'default', activityDeps(dir, tools), 'bench-upgrade');
    const stopClusters = stopOnInterrupt(() => removeLocalClusters(dir, tools));
    try {
      await worker.runUntil(async () => {
        await startMesh(env.client, spec, 'bench-upgrade');
        await waitReady(env, spec.name);
        const handle = env.client.workflow.getHandle(meshWorkflowId(spec.name));
        // Each (wave, stage) the status showed, when first seen.
        const seen: Array<{ wave: number; stage: UpgradeState['stage']; at: number }> = [];
        let waves: string[][] = [];
        const t0 = Date.now();
        const id = await startUpgrade(env.client, spec.name, { to: UPGRADE_TO });
        let update: UpdateRecord | undefined;
        let status: MeshStatus;
        for (;;) {
          status = await handle.query(statusQuery);
          const up = status.upgrade;
          const last = seen.at(-1);
          if (up && (!last || last.wave !== up.wave || last.stage !== up.stage)) {
            seen.push({ wave: up.wave, stage: up.stage, at: seen.length ? Date.now() : t0 });
            waves = up.waves;
          }
          update = status.updates?.find((u) => u.id === id);
          if (update && update.state !== 'running') break;
          if (Date.now() - t0 > 15 * 60_000) throw new Error('upgrade bench: the upgrade did not end in 15 minutes');
          await sleep(250);
        }
        const ended = Date.now();
        if (update.state !== 'applied')
          throw new Error(`upgrade bench: ${example} ended ${update.state}: ${update.error ?? ''}`);
        // How long each seen (wave, stage) lasted: until the next one was seen, the last until the end.
        const lasted = seen.map((x, i) => ({ ...x, ms: (seen[i + 1]?.at ?? ended) - x.at }));
        const stageMs = (wave: number, stage: UpgradeState['stage']) =>
          lasted.filter((x) => x.wave === wave && x.stage === stage).reduce((sum, x) => sum + x.ms, 0);
        for (const [i, clusters] of waves.entries()) {
          const [install, sw, verify] = (['installing', 'switching', 'verifying'] as const).map((st) => stageMs(i, st));
          waveRows.push({
            clusters: spec.clusters.length,
            wave: `${i + 1}/${waves.length}`,
            'its clusters': clusters.join(', '),
            'install revision s': secs(install),
            'move tag + restart workloads s': secs(sw),
            'verify s': secs(verify),
            'wave s': secs(install + sw + verify),
          });
        }
        const finalFrom = seen.find((x) => x.stage === 'removing-old')?.at;
        const rerun = status.steps.filter(
          (st) =>
            (st.kind === 'control-plane' || st.kind === 'eastwest-gateway') &&
            st.startedAt &&
            st.endedAt &&
            Date.parse(st.startedAt) >= Date.parse(update.requestedAt),
        );
        const verifyStep = status.steps.find((st) => st.kind === 'verify');
        const span = (from?: string, to?: string) => (from && to ? secs(Date.parse(to) - Date.parse(from)) : 'n/a');
        rows.push({
          clusters: spec.clusters.length,
          waves: waves.length,
          'update state': update.state,
          'waves s (sum)': secs(
            lasted.filter((x) => !['removing-old', 'gateways'].includes(x.stage)).reduce((sum, x) => sum + x.ms, 0),
          ),
          'remove old revision s': secs(lasted.filter((x) => x.stage === 'removing-old').reduce((a, x) => a + x.ms, 0)),
          'gateways + control planes in place s (steps)': rerun.length
            ? span(
                rerun.map((st) => st.startedAt!).sort()[0],
                rerun
                  .map((st) => st.endedAt!)
                  .sort()
                  .at(-1),
              )
            : 'n/a',
          'final verify s (step)': span(verifyStep?.startedAt, verifyStep?.endedAt),
          'final stage s': finalFrom ? secs(ended - finalFrom) : 'not seen',
          'total s (send to seen ended)': secs(ended - t0),
          'in the workflow s': secs(Date.parse(update.endedAt!) - Date.parse(update.requestedAt)),
        });
        await teardownMesh(env.client, spec.name);
        await handle.result();
      });
    } finally {
      await stopClusters().catch((err: unknown) => console.error(`could not stop every cluster: ${String(err)}`));
    }
  }
  table(
    `13. upgrade ${UPGRADE_FROM} -> ${UPGRADE_TO} on local clusters, per wave (stages as the status showed them, ` +
      'polled every 250 ms)',
    waveRows,
  );
  table(
    `13. upgrade ${UPGRADE_FROM} -> ${UPGRADE_TO} on local clusters (real worker and istiods; the final stage: old ` +
      'revision removed, control planes and east-west gateways re-rendered in place, verify)',
    rows,
  );
}

/**
 * 7. The two-project GKE example against the emulator, with GKE's durations at 1/20 (create 15 s,
 * delete 9 s): wall time against the critical path of the steps' own durations through the plan,
 * and how often each created cluster's operation was polled.
 */
async function gkeEmulated(env: TestWorkflowEnvironment, tools: Record<string, string>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-gke-'));
  const emulator = new GkeEmulator({ stateDir: path.join(dir, 'emulator'), tools: localTools(tools), latency: 0.05 });
  const at = await emulator.start();
  const saved = { grpc: process.env[GKE_EMULATOR_HOST], compute: process.env[GKE_COMPUTE_EMULATOR_HOST] };
  process.env[GKE_EMULATOR_HOST] = at.grpc;
  process.env[GKE_COMPUTE_EMULATOR_HOST] = at.compute;
  const spec = {
    ...loadMeshSpec(path.join(__dirname, '..', '..', 'examples', 'gke-two-projects.yaml')),
    name: 'bench-gke',
  };
  const plan = buildPlan(spec);
  const stopEmulator = stopOnInterrupt(() => emulator.reset().finally(() => emulator.stop()));
  try {
    const worker = await createWorker(
      env.nativeConnection,
      'default',
      activityDeps(path.join(dir, 'state'), tools),
      'bench-gke',
    );
    await worker.runUntil(async () => {
      await startMesh(env.client, spec, 'bench-gke');
      const wall = await waitReady(env, spec.name);
      const ready = emulator.calls();
      const status = await env.client.workflow.getHandle(meshWorkflowId(spec.name)).query(statusQuery);
      const took = new Map(status.steps.map((st) => [st.id, Date.parse(st.endedAt!) - Date.parse(st.startedAt!)]));
      const cp = criticalPath({
        ...plan,
        steps: plan.steps.map((st) => ({ ...st, estimateMs: took.get(st.id) ?? 0 })),
      });
      const t1 = Date.now();
      await teardownMesh(env.client, spec.name);
      await env.client.workflow.getHandle(meshWorkflowId(spec.name)).result();
      const down = emulator.calls();
      const creates = status.steps.filter((st) => st.kind === 'create-cluster');
      table(
        '7. GKE (emulated, GKE durations / 20: create 15 s, delete 9 s), examples/gke-two-projects.yaml; polls start at 1 s and grow by 1.5 up to 15 s',
        [
          {
            'ready s': (wall / 1000).toFixed(1),
            'critical path of step durations s': (cp.estimateMs / 1000).toFixed(1),
            ratio: (wall / cp.estimateMs).toFixed(3),
            'create-cluster s': creates.map((st) => ((took.get(st.id) ?? 0) / 1000).toFixed(1)).join(', '),
            'GetOperation per created cluster': ((ready.GetOperation ?? 0) / creates.length).toFixed(1),
            'teardown s': ((Date.now() - t1) / 1000).toFixed(1),
            'GetOperation per deleted cluster': (
              ((down.GetOperation ?? 0) - (ready.GetOperation ?? 0)) /
              creates.length
            ).toFixed(1),
          },
        ],
      );
    });
  } finally {
    await stopEmulator();
    for (const [k, v] of [
      [GKE_EMULATOR_HOST, saved.grpc],
      [GKE_COMPUTE_EMULATOR_HOST, saved.compute],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * 8. The HTTP API: GET /v1/meshes/{name} on a ready mesh (no-op activities) under 50 concurrent
 * clients for 10 s; and how long after a step ends its server-sent event arrives (the stream polls
 * the status query every 250 ms).
 */
async function apiBench(env: TestWorkflowEnvironment): Promise<void> {
  const spec = meshSpec('bench-api', 3);
  const plan = buildPlan(spec);
  const token = 'bench-token';
  const api = await startApi({
    client: env.client,
    namespace: 'default',
    tokens: [token],
    host: '127.0.0.1',
    port: 0,
    log: () => undefined,
  });
  const headers = { authorization: `Bearer ${token}` };
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'bench-api',
    workflowsPath: require.resolve('../workflow-bundle'),
    activities: latencyActivities((req) => latency(plan, req.step.kind)),
  });
  try {
    await worker.runUntil(async () => {
      // Step -> event: follow the mesh from its start, noting when each step event arrives.
      const arrived = new Map<string, number>();
      const stream = fetch(`${api.url}/v1/meshes/${spec.name}/events?until=ready`, { headers });
      await startMesh(env.client, spec, 'bench-api');
      const res = await stream.catch(async () =>
        fetch(`${api.url}/v1/meshes/${spec.name}/events?until=ready`, { headers }),
      );
      const reader = res.body!.getReader();
      let buffer = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += new TextDecoder().decode(value);
        let i;
        while ((i = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (/^event: step$/m.test(frame) && data) {
            const st = JSON.parse(data) as { id: string; state: string };
            if (st.state === 'done' && !arrived.has(st.id)) arrived.set(st.id, Date.now());
          }
        }
      }
      const status = await env.client.workflow.getHandle(meshWorkflowId(spec.name)).query(statusQuery);
      const lags = status.steps
        .filter((st) => arrived.has(st.id) && st.endedAt)
        .map((st) => arrived.get(st.id)! - Date.parse(st.endedAt!));

      // GET under load.
      const samples: number[] = [];
      const until = Date.now() + 10_000;
      const cpu0 = process.cpuUsage();
      const t0 = Date.now();
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          while (Date.now() < until) {
            const s0 = performance.now();
            const r = await fetch(`${api.url}/v1/meshes/${spec.name}`, { headers });
            await r.arrayBuffer();
            if (r.status !== 200) throw new Error(`GET answered ${r.status}`);
            samples.push(performance.now() - s0);
          }
        }),
      );
      const seconds = (Date.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      table('8. HTTP API (meshflow serve in-process, dev server, 3-cluster mesh on no-op activities)', [
        {
          'GET /v1/meshes/{name}, 50 clients': `${samples.length} requests`,
          'p50 ms': pct(samples, 50).toFixed(1),
          'p99 ms': pct(samples, 99).toFixed(1),
          'req/s': (samples.length / seconds).toFixed(0),
          'API process CPU (cores)': ((cpu.user + cpu.system) / 1e6 / seconds).toFixed(2),
          'step end -> SSE event ms p50/max': lags.length ? `${pct(lags, 50)}/${Math.max(...lags)}` : 'n/a',
        },
      ]);
      await teardownMesh(env.client, spec.name);
      await env.client.workflow.getHandle(meshWorkflowId(spec.name)).result();
    });
  } finally {
    await api.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
