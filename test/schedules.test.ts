// Temporal Schedules on the dev server (the time-skipping server has none), with the real mesh and
// sweep workflows and a worker running the TEST DOUBLE mesh activities: a recurring mesh schedule
// starts meshes from its spec; the sweep tears down a mesh past its deadline and one kept too long,
// and leaves the rest; the API and the CLI's functions create, list, describe, pause, unpause,
// trigger and delete schedules, and refuse bad input without creating anything.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { type RunningApi, startApi } from '../src/api/server';
import { execa } from 'execa';
import { MeshAlreadyRunningError, meshStatus, startMesh, teardownMesh } from '../src/client';
import type { GcResult } from '../src/gc';
import { scheduleCommand } from '../src/cli/schedule';
import {
  NoScheduleError,
  ScheduleExistsError,
  ScheduleInputError,
  createMeshSchedule,
  createSweepSchedule,
  deleteSchedule,
  describeSchedule,
  listSchedules,
  pauseSchedule,
  triggerSchedule,
  unpauseSchedule,
} from '../src/schedules/schedules';
import { cronMinGapMs } from '../src/schedules/interval';
import { createSweepActivities } from '../src/sweep/activities';
import { SpecError } from '../src/spec/load';
import { MESH_SEARCH_ATTRIBUTES } from '../src/temporal/search-attributes';
import { sleep } from '../src/util/net';
import { WORKER_TUNING } from '../src/worker';
import { TASK_QUEUE, statusQuery } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import { type SweepResult, sweepMeshes, verdict } from '../src/sweep/workflow';
import type { MeshStatus } from '../src/workflows/types';
import { scratchDir } from './helpers/env';
import { FakeActivities, twoClusterMesh, twoClusterYaml } from './helpers/fake-activities';
import { devServer } from './helpers/temporal';

const TOKEN = 'schedules-test-token-0123456789abcdef';
const CLI = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');
const STALE_QUEUE = 'stale-mesh';
let env: TestWorkflowEnvironment;
let workers: Worker[];
let running: Promise<unknown>;
let api: RunningApi;
const fake = new FakeActivities();

beforeAll(async () => {
  env = await devServer();
  const common = { ...WORKER_TUNING, connection: env.nativeConnection, shutdownGraceTime: '1s' };
  workers = [
    // As src/worker.ts is to register them: the real workflows, the mesh activities, the sweep's.
    await Worker.create({
      ...common,
      taskQueue: TASK_QUEUE,
      workflowsPath: require.resolve('../src/workflow-bundle'),
      activities: { ...fake.activities(), ...createSweepActivities(env.client) },
    }),
    await Worker.create({ ...common, taskQueue: STALE_QUEUE, workflowsPath: require.resolve('./fixtures/stale-mesh') }),
  ];
  running = Promise.all(workers.map((w) => w.run()));
  api = await startApi({
    client: env.client,
    namespace: 'default',
    tokens: [TOKEN],
    log: () => {},
    host: '127.0.0.1',
    port: 0,
  });
}, 120_000);

afterAll(async () => {
  await api?.close();
  for (const w of workers ?? []) w.shutdown();
  await running;
  await env?.teardown();
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** Open meshes of that name, found by their MeshName search attribute (as `meshflow list` finds them). */
async function openRuns(mesh: string): Promise<Array<{ workflowId: string; runId: string }>> {
  const runs: Array<{ workflowId: string; runId: string }> = [];
  for await (const wf of env.client.workflow.list({
    query: `${MESH_SEARCH_ATTRIBUTES.name.name} = "${mesh}" AND ExecutionStatus = "Running"`,
  })) {
    runs.push({ workflowId: wf.workflowId, runId: wf.runId });
  }
  return runs;
}

const statusOf = (workflowId: string) => env.client.workflow.getHandle(workflowId).query(statusQuery);
const teardown = (workflowId: string) => env.client.workflow.getHandle(workflowId).signal('teardown');
/** Tears the mesh down and waits until it has ended. */
const down = async (mesh: string) =>
  expect((await (await teardownMesh(env.client, mesh)).result()).phase).toBe('deleted');

/** A run as a schedule of an earlier meshflow started it: provisionMesh under mesh/<name>-<scheduled time>. */
const LEGACY_TIME = '2026-11-28T04:35:02Z';
const startLegacyRun = (mesh: string) =>
  env.client.workflow.start('provisionMesh', {
    taskQueue: TASK_QUEUE,
    workflowId: `mesh/${mesh}-${LEGACY_TIME}`,
    args: [{ spec: twoClusterMesh(mesh) }],
    typedSearchAttributes: [
      { key: MESH_SEARCH_ATTRIBUTES.name, value: mesh },
      { key: MESH_SEARCH_ATTRIBUTES.phase, value: 'provisioning' },
    ],
  });

const ready = (workflowId: string) =>
  until(`${workflowId} ready`, async () => ((await statusOf(workflowId)).phase === 'ready' ? true : undefined));

/** The schedule's latest run once it has an outcome other than `running`, or `running` when `running` is true. */
const lastTick = (id: string, running = false) =>
  until(`a run of ${id}`, async () => {
    const a = (await describeSchedule(env.client, id)).recentActions.at(-1);
    return a?.outcome && (running || a.outcome !== 'running') ? a : undefined;
  });

describe('a recurring mesh schedule', () => {
  test('a tick starts mesh/NAME (MeshName set); a tick while it is open starts nothing, nor does up', async () => {
    const spec = twoClusterMesh('sched1', 'ttl: 10m');
    const id = await createMeshSchedule(env.client, spec, { every: '1h' });
    expect(id).toBe('meshflow-mesh-sched1');
    const t0 = Date.now();
    await triggerSchedule(env.client, id);
    // Temporal appends the scheduled time to the action's workflow id; the mesh is its child, under the mesh's own id.
    const tick = await lastTick(id, true);
    expect(tick.workflowId).toMatch(/^meshflow-mesh-sched1-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const [run] = await until('a scheduled run', async () => {
      const runs = await openRuns('sched1');
      return runs.length ? runs : undefined;
    });
    expect(run.workflowId).toBe('mesh/sched1');
    await ready('mesh/sched1');
    process.stderr.write(`[schedules.test] trigger to ready: ${Date.now() - t0} ms\n`);
    expect((await statusOf('mesh/sched1')).clusters).toEqual(['east', 'west']);
    const described = await env.client.workflow.getHandle(run.workflowId).describe();
    expect(described.typedSearchAttributes.get(MESH_SEARCH_ATTRIBUTES.name)).toBe('sched1');
    expect(described.parentExecution?.workflowId).toBe(tick.workflowId);

    // Overlap SKIP: the tick's run lasts as long as the mesh, so a tick meanwhile starts nothing.
    await triggerSchedule(env.client, id);
    await until('the second tick skipped', async () =>
      (await env.client.schedule.getHandle(id).describe()).info.numActionsSkippedOverlap >= 1 ? true : undefined,
    );
    expect(await openRuns('sched1')).toHaveLength(1);
    expect((await describeSchedule(env.client, id)).recentActions).toEqual([
      expect.objectContaining({ workflowId: tick.workflowId, outcome: 'running' }),
    ]);

    // Found by its name, as `meshflow status sched1` does; and `up` of the same name is refused by Temporal.
    expect((await meshStatus(env.client, 'sched1')).phase).toBe('ready');
    await expect(startMesh(env.client, spec)).rejects.toThrow(
      `mesh sched1 is already running (workflow mesh/sched1, started by a schedule as ${tick.workflowId})`,
    );

    await deleteSchedule(env.client, id);
    const signalled = await teardownMesh(env.client, 'sched1');
    expect((await signalled.result()).phase).toBe('deleted');
    // The tick's run ends with its mesh, and says how.
    expect(await env.client.workflow.getHandle(tick.workflowId).result()).toEqual({
      mesh: 'sched1',
      workflowId: 'mesh/sched1',
      outcome: 'ended',
      phase: 'deleted',
    });
  }, 90_000);

  test('a tick while the name runs (up, an earlier schedule) ends skipped, says which, creates nothing', async () => {
    const spec = twoClusterMesh('byhand1');
    await startMesh(env.client, spec);
    await ready('mesh/byhand1');
    const id = await createMeshSchedule(env.client, spec, { every: '1h' });
    const t0 = Date.now();
    await triggerSchedule(env.client, id);
    const tick = await lastTick(id);
    process.stderr.write(`[schedules.test] trigger to skipped: ${Date.now() - t0} ms\n`);
    expect(tick.outcome).toBe('skipped: mesh byhand1 is already running as mesh/byhand1');
    expect(await env.client.workflow.getHandle(tick.workflowId).result()).toEqual({
      mesh: 'byhand1',
      workflowId: 'mesh/byhand1',
      outcome: 'skipped',
      reason: 'mesh byhand1 is already running as mesh/byhand1',
    });
    expect(await openRuns('byhand1')).toEqual([expect.objectContaining({ workflowId: 'mesh/byhand1' })]);
    expect(fake.callsOf('byhand1').filter((c) => c === 'run create-cluster:east')).toHaveLength(1);
    // `schedule list` shows the last run's outcome too (its list comes from visibility, a moment behind).
    await until('the list to show the skip', async () =>
      (await listSchedules(env.client)).find((s) => s.id === id)?.recentActions.at(-1)?.outcome === tick.outcome
        ? true
        : undefined,
    );
    await deleteSchedule(env.client, id);
    await down('byhand1');

    // A run a schedule of an earlier meshflow started, under mesh/<name>-<time>.
    await startLegacyRun('legacy1');
    await ready(`mesh/legacy1-${LEGACY_TIME}`);
    const legacy = await createMeshSchedule(env.client, twoClusterMesh('legacy1'), { every: '1h' });
    await triggerSchedule(env.client, legacy);
    expect((await lastTick(legacy)).outcome).toBe(
      `skipped: mesh legacy1 is already running as mesh/legacy1-${LEGACY_TIME}`,
    );
    expect(await openRuns('legacy1')).toHaveLength(1);
    await deleteSchedule(env.client, legacy);
    await down('legacy1');
  }, 90_000);

  test('a tick and an `up` of one name at the same moment: exactly one run', async () => {
    for (const mesh of ['race0', 'race1', 'race2']) {
      const spec = twoClusterMesh(mesh);
      const id = await createMeshSchedule(env.client, spec, { every: '1h' });
      const [up] = await Promise.allSettled([startMesh(env.client, spec), triggerSchedule(env.client, id)]);
      const tick = await lastTick(id, true);
      await ready(`mesh/${mesh}`);
      expect(await openRuns(mesh)).toEqual([expect.objectContaining({ workflowId: `mesh/${mesh}` })]);
      if (up.status === 'fulfilled') {
        expect((await lastTick(id)).outcome).toBe(`skipped: mesh ${mesh} is already running as mesh/${mesh}`);
      } else {
        expect(up.reason).toBeInstanceOf(MeshAlreadyRunningError);
        expect(tick.outcome).toBe('running');
      }
      expect(fake.callsOf(mesh).filter((c) => c === 'run create-cluster:east')).toHaveLength(1);
      process.stderr.write(`[schedules.test] ${mesh}: ${up.status === 'fulfilled' ? 'up' : 'the tick'} won\n`);
      await deleteSchedule(env.client, id);
      expect((await (await teardownMesh(env.client, mesh)).result()).phase).toBe('deleted');
    }
  }, 90_000);
});

describe('down and gc of a scheduled mesh', () => {
  test('down follows the run it signalled, also one an earlier schedule started as mesh/NAME-<time>', async () => {
    await startLegacyRun('legacy2');
    await ready(`mesh/legacy2-${LEGACY_TIME}`);
    const t0 = Date.now();
    const run = await teardownMesh(env.client, 'legacy2');
    expect(run.workflowId).toBe(`mesh/legacy2-${LEGACY_TIME}`);
    expect((await run.result()).phase).toBe('deleted');
    process.stderr.write(`[schedules.test] down --wait of a legacy scheduled run: ${Date.now() - t0} ms\n`);
  }, 60_000);

  test('gc --dry-run --json keeps open scheduled meshes, and lists a closed one', async () => {
    const id = await createMeshSchedule(env.client, twoClusterMesh('gcsched'), { every: '1h' });
    await triggerSchedule(env.client, id);
    const [run] = await until('gcsched open', async () => {
      const runs = await openRuns('gcsched');
      return runs.length ? runs : undefined;
    });
    await ready(run.workflowId);
    await startLegacyRun('gclegacy');
    await ready(`mesh/gclegacy-${LEGACY_TIME}`);

    // What the runs would have left on disk: a stopped local cluster each (with its owner record) and a CA.
    const state = scratchDir('schedules-gc');
    for (const mesh of ['gcsched', 'gclegacy', 'gcgone']) {
      const dir = path.join(state, 'local', 'clusters', `${mesh}-east`);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'cluster.json'), JSON.stringify({ name: `${mesh}-east`, index: 0, port: 1 }));
      fs.writeFileSync(path.join(dir, 'owner.json'), JSON.stringify({ mesh, cluster: 'east' }));
      fs.mkdirSync(path.join(state, 'meshes', mesh, 'ca'), { recursive: true });
      fs.writeFileSync(path.join(state, 'meshes', mesh, 'ca', 'root-cert.pem'), 'not really a certificate\n');
    }
    const t0 = Date.now();
    const cmd = await execa(process.execPath, [CLI, 'gc', '--dry-run', '--json'], {
      reject: false,
      env: { ...process.env, MESHFLOW_STATE_DIR: state, TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: 'default' },
    });
    process.stderr.write(`[schedules.test] gc --dry-run --json: ${Date.now() - t0} ms\n`);
    expect(cmd.stderr).not.toMatch(/error/i);
    expect(cmd.exitCode).toBe(0);
    const result = JSON.parse(cmd.stdout) as GcResult;
    expect(result.meshes).toEqual([
      { mesh: 'gcgone', open: false },
      { mesh: 'gclegacy', open: true },
      { mesh: 'gcsched', open: true },
    ]);
    const actions = Object.fromEntries(result.findings.map((f) => [`${f.kind} ${f.mesh}`, f.action]));
    expect(actions).toEqual({
      'local-cluster gcsched': 'kept',
      'local-cluster gclegacy': 'kept',
      'local-cluster gcgone': 'would-delete',
      'ca-dir gcsched': 'kept',
      'ca-dir gclegacy': 'kept',
      'ca-dir gcgone': 'would-delete',
      'mesh-dir gcgone': 'would-delete',
    });

    await deleteSchedule(env.client, id);
    await down('gcsched');
    await down('gclegacy');
  }, 90_000);
});

describe('the sweep', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  const mesh = (status: Partial<MeshStatus>) => ({
    name: 'm',
    workflowId: 'mesh/m',
    runId: 'r',
    startedAt: '2026-01-01T00:00:00Z',
    status: {
      mesh: 'm',
      phase: 'ready',
      provider: 'local',
      clusters: [],
      startedAt: '2026-01-01T00:00:00Z',
      steps: [],
      ledger: [],
      checks: [],
      leftBehind: [],
      ...status,
    } as MeshStatus,
  });

  test('judges on its own clock: past deadline (after the grace), kept over the limit since its last step ended', () => {
    const input = { keptLimitMs: 3_600_000, graceMs: 60_000 };
    expect(verdict(mesh({ expiresAt: '2026-01-01T11:58:00Z' }), now, input)).toMatch(/^deadline .* passed 120s ago/);
    expect(verdict(mesh({ expiresAt: '2026-01-01T11:59:30Z' }), now, input)).toBeUndefined(); // within grace
    expect(verdict(mesh({ expiresAt: '2026-01-01T13:00:00Z' }), now, input)).toBeUndefined();
    expect(verdict(mesh({ phase: 'deleted', expiresAt: '2026-01-01T10:00:00Z' }), now, input)).toBeUndefined();
    const kept = (endedAt: string) =>
      mesh({
        phase: 'kept',
        expiresAt: '2026-01-02T00:00:00Z',
        steps: [{ id: 's', kind: 'link', state: 'failed', endedAt }],
      });
    expect(verdict(kept('2026-01-01T10:30:00Z'), now, input)).toMatch(/^kept since 2026-01-01T10:30:00.000Z \(5400s\)/);
    expect(verdict(kept('2026-01-01T11:30:00Z'), now, input)).toBeUndefined();
    expect(verdict({ ...mesh({}), status: undefined, error: 'no worker' }, now, input)).toBeUndefined();
  });

  test('tears down a mesh past its deadline and one kept over the limit, and leaves a ready one', async () => {
    const kept = twoClusterMesh('kept1', 'onFailure: keep');
    fake.scripts.set('kept1', { failSteps: ['control-plane:west'] });
    await startMesh(env.client, kept);
    await startMesh(env.client, twoClusterMesh('fresh1'));
    await env.client.workflow.start('provisionMesh', {
      taskQueue: STALE_QUEUE,
      workflowId: 'mesh/stale1',
      args: [{ name: 'stale1' }],
      typedSearchAttributes: [{ key: MESH_SEARCH_ATTRIBUTES.name, value: 'stale1' }],
    });
    await until('kept1 kept, fresh1 ready', async () =>
      (await meshStatus(env.client, 'kept1')).phase === 'kept' &&
      (await meshStatus(env.client, 'fresh1')).phase === 'ready'
        ? true
        : undefined,
    );
    await until('three open meshes listed', async () =>
      (await env.client.workflow.count(`WorkflowType = "provisionMesh" AND ExecutionStatus = "Running"`)).count === 3
        ? true
        : undefined,
    );

    const sweep = (n: number, keptLimitMs: number): Promise<SweepResult> =>
      env.client.workflow.execute(sweepMeshes, {
        taskQueue: TASK_QUEUE,
        workflowId: `sweep-test-${n}`,
        args: [{ keptLimitMs, graceMs: 0 }],
      });
    const first = await sweep(1, 3_600_000);
    expect(first.looked).toBe(3);
    expect(first.tornDown).toEqual([
      expect.objectContaining({
        mesh: 'stale1',
        workflowId: 'mesh/stale1',
        reason: expect.stringMatching(/^deadline .* passed \d+s ago and the mesh is still open$/),
      }),
    ]);
    expect((await env.client.workflow.getHandle<typeof provisionMesh>('mesh/stale1').result()).phase).toBe('deleted');

    const second = await sweep(2, 0);
    expect(second.tornDown).toEqual([
      expect.objectContaining({ mesh: 'kept1', reason: expect.stringMatching(/^kept since /) }),
    ]);
    const final = await env.client.workflow.getHandle<typeof provisionMesh>('mesh/kept1').result();
    expect(final.phase).toBe('deleted');
    expect(fake.callsOf('kept1').filter((c) => c.startsWith('undo')).length).toBeGreaterThan(0);
    expect((await meshStatus(env.client, 'fresh1')).phase).toBe('ready');
    await teardown('mesh/fresh1');
  }, 90_000);
});

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

function call(method: string, urlPath: string, body?: unknown, token: string | null = TOKEN): Promise<Answer> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const text = body === undefined ? undefined : JSON.stringify(body);
  if (text !== undefined)
    Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: api.port, method, path: urlPath, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') }),
        );
      },
    );
    req.on('error', reject);
    if (text !== undefined) req.write(text);
    req.end();
  });
}

describe('managing schedules', () => {
  test('the API: create, duplicate 409, list, describe, pause, unpause, trigger, delete, 404, 401', async () => {
    const created = await call('POST', '/v1/schedules', {
      kind: 'mesh',
      spec: twoClusterYaml('apimesh'),
      cron: '0 3 * * *',
      overlap: 'buffer-one',
      paused: true,
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({
      id: 'meshflow-mesh-apimesh',
      kind: 'mesh',
      mesh: 'apimesh',
      spec: 'cron 0 3 * * *',
      overlap: 'buffer-one',
      paused: true,
    });
    expect(created.json.nextRuns.length).toBeGreaterThan(0);
    const again = await call('POST', '/v1/schedules', { kind: 'mesh', spec: twoClusterYaml('apimesh'), every: '1h' });
    expect(again).toMatchObject({ status: 409, json: { error: { code: 'schedule_exists' } } });

    const sweep = await call('POST', '/v1/schedules', { kind: 'sweep', every: '1h', keptLimit: '12h' });
    expect(sweep.json).toMatchObject({
      id: 'meshflow-sweep',
      kind: 'sweep',
      spec: 'every 1h',
      keptLimit: '12h',
      overlap: 'skip',
      paused: false,
    });

    const listed = (): Promise<string> =>
      call('GET', '/v1/schedules').then((a) => a.json.schedules.map((s: { id: string }) => s.id).join(' '));
    // The list comes from visibility, a moment behind.
    await until('both listed', async () =>
      (await listed()) === 'meshflow-mesh-apimesh meshflow-sweep' ? true : undefined,
    );
    expect((await call('GET', '/v1/schedules/meshflow-sweep')).json.kind).toBe('sweep');
    expect((await call('POST', '/v1/schedules/meshflow-sweep/pause')).json.paused).toBe(true);
    expect((await call('POST', '/v1/schedules/meshflow-sweep/unpause')).json.paused).toBe(false);

    expect((await call('POST', '/v1/schedules/meshflow-sweep/trigger')).status).toBe(202);
    const triggered = await until('the triggered sweep', async () => {
      const d = (await call('GET', '/v1/schedules/meshflow-sweep')).json;
      return d.recentActions.length ? d.recentActions[0] : undefined;
    });
    expect(triggered.workflowId).toMatch(/^meshflow-sweep-/);
    const result = await env.client.workflow.getHandle(triggered.workflowId).result();
    expect(result).toMatchObject({ tornDown: [] });

    expect(await call('DELETE', '/v1/schedules/meshflow-sweep')).toMatchObject({
      status: 200,
      json: { id: 'meshflow-sweep' },
    });
    expect(await call('DELETE', '/v1/schedules/meshflow-mesh-apimesh')).toMatchObject({ status: 200 });
    expect(await call('GET', '/v1/schedules/meshflow-sweep')).toMatchObject({
      status: 404,
      json: { error: { code: 'schedule_not_found' } },
    });
    expect((await call('POST', '/v1/schedules/meshflow-mesh-nope/pause')).status).toBe(404);
    expect((await call('GET', '/v1/schedules/other')).status).toBe(400);
    expect((await call('GET', '/v1/schedules', undefined, null)).status).toBe(401);
    expect((await call('GET', '/openapi.json')).json.paths['/v1/schedules/{id}/trigger']).toBeDefined();
  }, 60_000);

  test('the API refuses bad input with 4xx and a reason, and creates nothing', async () => {
    const bad: Array<[unknown, number, RegExp]> = [
      [{ kind: 'mesh', spec: twoClusterYaml('badcron'), cron: 'every blue moon' }, 400, /cron/],
      [
        { kind: 'mesh', spec: twoClusterYaml('baddur'), every: '5 minutes' },
        400,
        /every: "5 minutes" is not a positive duration/,
      ],
      [{ kind: 'mesh', spec: twoClusterYaml('zero'), every: '0s' }, 400, /not a positive duration/],
      [{ kind: 'mesh', spec: twoClusterYaml('both'), every: '5m', cron: '0 * * * *' }, 400, /exactly one of every/],
      [{ kind: 'mesh', spec: twoClusterYaml('overlap'), every: '5m', overlap: 'sometimes' }, 400, /overlap/],
      [
        { kind: 'mesh', spec: twoClusterYaml('allowall'), every: '1h', overlap: 'allow-all' },
        400,
        /^overlap: allow-all would start a run while the last one is open, .* choose skip or buffer-one$/,
      ],
      [
        { kind: 'mesh', spec: twoClusterYaml('often'), every: '1m' },
        400,
        /^every: runs every 1m; the shortest interval of a mesh schedule is 5m/,
      ],
      [
        { kind: 'mesh', spec: twoClusterYaml('oftencron'), cron: '*/2 * * * *' },
        400,
        /^cron: runs every 2m; the shortest interval of a mesh schedule is 5m/,
      ],
      [{ kind: 'mesh', spec: twoClusterYaml('badspec', 'ttl: forever'), every: '5m' }, 400, /ttl/],
      [{ kind: 'mesh', every: '5m' }, 400, /needs the mesh spec/],
      [{ kind: 'sweep', every: '5m', keptLimit: 'long' }, 400, /keptLimit/],
      [{ kind: 'sweep', every: '5m', extra: 1 }, 400, /unknown field/],
    ];
    for (const [body, status, reason] of bad) {
      const a = await call('POST', '/v1/schedules', body);
      expect({ body, status: a.status, message: a.json.error.message }).toEqual({
        body,
        status,
        message: expect.stringMatching(reason),
      });
    }
    const badSpec = await call('POST', '/v1/schedules', {
      kind: 'mesh',
      spec: twoClusterYaml('badspec', 'ttl: forever'),
      every: '5m',
    });
    expect(badSpec.json.error.problems[0]).toMatchObject({ path: 'ttl', line: 7 });
    const refused = ['badcron', 'baddur', 'zero', 'both', 'overlap', 'allowall', 'often', 'oftencron', 'badspec'];
    for (const id of refused.map((m) => `meshflow-mesh-${m}`))
      expect((await call('GET', `/v1/schedules/${id}`)).status).toBe(404);
    expect((await call('GET', '/v1/schedules/meshflow-sweep')).status).toBe(404);
  });

  test('the interval floor is 5m for a mesh schedule and 1m for the sweep, in the API and the CLI', async () => {
    const meshFloor = 'the shortest interval of a mesh schedule is 5m (a mesh takes minutes to stand up and tear down)';
    const sweepFloor =
      'the shortest interval of the sweep is 1m (each sweep lists the open meshes and asks each its status)';
    const refusedBy = async (body: object) => {
      const a = await call('POST', '/v1/schedules', body);
      return { status: a.status, code: a.json.error?.code, message: a.json.error?.message };
    };
    // The API: a sweep every minute is created; a mesh every minute, or a sweep every 30s, is refused for its reason.
    for (const when of [{ every: '1m' }, { cron: '* * * * *' }, { every: '90s' }]) {
      const created = await call('POST', '/v1/schedules', { kind: 'sweep', paused: true, ...when });
      expect({ when, status: created.status, kind: created.json.kind }).toEqual({ when, status: 201, kind: 'sweep' });
      expect((await call('DELETE', '/v1/schedules/meshflow-sweep')).status).toBe(200);
    }
    expect(await refusedBy({ kind: 'sweep', every: '30s' })).toEqual({
      status: 400,
      code: 'invalid_schedule',
      message: `every: runs every 30s; ${sweepFloor}`,
    });
    expect(await refusedBy({ kind: 'sweep', cron: '*/20 * * * * * *' })).toMatchObject({
      message: `cron: runs every 20s; ${sweepFloor}`,
    });
    for (const when of [{ every: '1m' }, { cron: '* * * * *' }, { every: '4m59s' }]) {
      const r = await refusedBy({ kind: 'mesh', spec: twoClusterYaml('floor'), ...when });
      expect(r).toMatchObject({ status: 400, code: 'invalid_schedule', message: expect.stringContaining(meshFloor) });
    }
    expect((await call('GET', '/v1/schedules/meshflow-mesh-floor')).status).toBe(404);

    // The CLI's functions, and the command itself, which checks before it connects.
    expect(await createSweepSchedule(env.client, { every: '2m', paused: true })).toBe('meshflow-sweep');
    expect((await describeSchedule(env.client, 'meshflow-sweep')).spec).toBe('every 2m');
    await deleteSchedule(env.client, 'meshflow-sweep');
    await expect(createMeshSchedule(env.client, twoClusterMesh('floor'), { every: '2m' })).rejects.toThrow(
      `every: runs every 2m; ${meshFloor}`,
    );
    await expect(createSweepSchedule(env.client, { every: '59s' })).rejects.toThrow(
      `every: runs every 59s; ${sweepFloor}`,
    );
    const file = path.join(scratchDir('schedules'), 'floor.yaml');
    fs.writeFileSync(file, twoClusterYaml('floor'));
    const create = (...args: string[]) =>
      scheduleCommand()
        .exitOverride()
        .parseAsync(['create', ...args], { from: 'user' });
    await expect(create('sweep', '--every', '30s')).rejects.toThrow(`every: runs every 30s; ${sweepFloor}`);
    await expect(create('floor', '--spec', file, '--every', '1m')).rejects.toThrow(
      `every: runs every 1m; ${meshFloor}`,
    );
    expect((await call('GET', '/v1/schedules/meshflow-mesh-floor')).status).toBe(404);
  });

  test("the CLI's functions: create, list, describe, pause, unpause, trigger, delete; bad input creates nothing", async () => {
    const id = await createSweepSchedule(env.client, { every: '5m', paused: true });
    expect(id).toBe('meshflow-sweep');
    await expect(createSweepSchedule(env.client, { every: '5m' })).rejects.toThrow(ScheduleExistsError);
    expect(await describeSchedule(env.client, id)).toMatchObject({
      kind: 'sweep',
      spec: 'every 5m',
      keptLimit: '24h',
      overlap: 'skip',
      paused: true,
    });
    await unpauseSchedule(env.client, id);
    await pauseSchedule(env.client, id);
    // The list comes from visibility, which follows the schedule's state a moment later.
    await until('the list to show it paused', async () =>
      JSON.stringify((await listSchedules(env.client)).map((s) => [s.id, s.paused])) === JSON.stringify([[id, true]])
        ? true
        : undefined,
    );
    await triggerSchedule(env.client, id); // a paused schedule can still be triggered
    await until('the triggered sweep', async () =>
      (await describeSchedule(env.client, id)).recentActions.length ? true : undefined,
    );

    const badCron = createMeshSchedule(env.client, twoClusterMesh('cron1'), { cron: 'not a cron' });
    await expect(badCron).rejects.toThrow(ScheduleInputError);
    await expect(badCron).rejects.toThrow(/^cron: .*CronString does not have 5-7 fields/); // Temporal's own words
    await expect(createMeshSchedule(env.client, twoClusterMesh('dur1'), { every: 'soon' })).rejects.toThrow(
      /"soon" is not a positive duration/,
    );
    await expect(
      createMeshSchedule(env.client, twoClusterMesh('ov1'), { every: '5m', overlap: 'never' as never }),
    ).rejects.toThrow(/overlap/);
    // One run of a mesh name at a time, and not too often: refused before anything is created, naming the field.
    const refusal = (when: Parameters<typeof createMeshSchedule>[2]) =>
      createMeshSchedule(env.client, twoClusterMesh('often1'), when).then(
        () => 'created',
        (e: ScheduleInputError) => e.problems.map((p) => p.path).join(','),
      );
    expect(await refusal({ every: '1h', overlap: 'allow-all' })).toBe('overlap');
    expect(await refusal({ every: '4m59s' })).toBe('every');
    for (const cron of [
      '* * * * *',
      '*/4 * * * *',
      '58,1 * * * *',
      '30 * * * * * *',
      '@every 1m',
      '0 0-59/3 9 * * * 2027',
    ])
      expect({ cron, refused: await refusal({ cron }) }).toEqual({ cron, refused: 'cron' });
    expect(cronMinGapMs('*/5 * * * *')).toBe(300_000);
    expect(cronMinGapMs('0 9 * * 1-5')).toBe(86_400_000);
    expect(cronMinGapMs('CRON_TZ=Europe/Paris 0 */6 * * *')).toBe(21_600_000);
    expect(cronMinGapMs('@hourly')).toBe(3_600_000);
    await expect(describeSchedule(env.client, 'meshflow-mesh-often1')).rejects.toThrow(NoScheduleError);
    expect(await refusal({ cron: '*/5 * * * *', paused: true })).toBe('created');
    await deleteSchedule(env.client, 'meshflow-mesh-often1');

    const file = path.join(scratchDir('schedules'), 'bad.yaml');
    fs.writeFileSync(file, twoClusterYaml('clibad', 'ttl: 1m'));
    const cli = scheduleCommand().exitOverride();
    await expect(
      cli.parseAsync(['create', 'clibad', '--spec', file, '--every', '5m'], { from: 'user' }),
    ).rejects.toThrow(SpecError);
    await expect(
      cli.parseAsync(['create', 'clibad', '--spec', file, '--every', '5m'], { from: 'user' }),
    ).rejects.toThrow(/bad\.yaml:7:\d+ ttl/);
    const good = path.join(scratchDir('schedules'), 'good.yaml');
    fs.writeFileSync(good, twoClusterYaml('cliallow'));
    await expect(
      cli.parseAsync(['create', 'cliallow', '--spec', good, '--every', '5m', '--overlap', 'allow-all'], {
        from: 'user',
      }),
    ).rejects.toThrow(/^overlap: allow-all would start a run while the last one is open/);

    await deleteSchedule(env.client, id);
    await expect(describeSchedule(env.client, id)).rejects.toThrow(NoScheduleError);
    await until('an empty list', async () => ((await listSchedules(env.client)).length ? undefined : true));
  }, 60_000);
});
