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
import { meshStatus, startMesh, teardownMesh } from '../src/client';
import { scheduleCommand } from '../src/schedules/cli';
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
import { createSweepActivities } from '../src/schedules/sweep-activities';
import { SpecError } from '../src/spec/load';
import { MESH_SEARCH_ATTRIBUTES } from '../src/temporal/search-attributes';
import { sleep } from '../src/util/net';
import { WORKER_TUNING } from '../src/worker';
import { TASK_QUEUE, statusQuery } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import { type SweepResult, sweepMeshes, verdict } from '../src/workflows/sweep';
import type { MeshStatus } from '../src/workflows/types';
import { scratchDir } from './helpers/env';
import { FakeActivities, twoClusterMesh, twoClusterYaml } from './helpers/fake-activities';
import { devServer } from './helpers/temporal';

const TOKEN = 'schedules-test-token-0123456789abcdef';
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
      workflowsPath: require.resolve('../src/workflows'),
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

describe('a recurring mesh schedule', () => {
  test('starts the mesh from its spec every tick, with the mesh name as search attribute, and skips while a run is open', async () => {
    const spec = twoClusterMesh('every2s', 'ttl: 10m');
    const id = await createMeshSchedule(env.client, spec, { every: '2s' });
    expect(id).toBe('meshflow-mesh-every2s');
    const [run] = await until('a scheduled run', async () => {
      const runs = await openRuns('every2s');
      return runs.length ? runs : undefined;
    });
    // Temporal appends the scheduled time to the action's workflow id.
    expect(run.workflowId).toMatch(/^mesh\/every2s-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const ready = await until('ready', async () => {
      const s = await statusOf(run.workflowId);
      return s.phase === 'ready' ? s : undefined;
    });
    expect(ready).toMatchObject({ mesh: 'every2s', clusters: ['east', 'west'] });
    const described = await env.client.workflow.getHandle(run.workflowId).describe();
    expect(described.typedSearchAttributes.get(MESH_SEARCH_ATTRIBUTES.name)).toBe('every2s');

    // Overlap SKIP: ticks while this run is open start nothing.
    await sleep(5000);
    expect(await openRuns('every2s')).toHaveLength(1);
    const d = await env.client.schedule.getHandle(id).describe();
    expect(d.info.numActionsSkippedOverlap).toBeGreaterThanOrEqual(1);
    expect(d.info.recentActions.map((a) => a.action.workflow.workflowId)).toEqual([run.workflowId]);

    // Found by its name, as `meshflow status every2s` does; and `up` of the same name is refused.
    expect((await meshStatus(env.client, 'every2s')).phase).toBe('ready');
    await expect(startMesh(env.client, spec)).rejects.toThrow(
      `mesh every2s is already running (workflow ${run.workflowId}, started by a schedule)`,
    );

    await deleteSchedule(env.client, id);
    await teardownMesh(env.client, 'every2s');
    const final = await env.client.workflow.getHandle<typeof provisionMesh>(run.workflowId).result();
    expect(final.phase).toBe('deleted');
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
    for (const id of ['badcron', 'baddur', 'zero', 'both', 'overlap', 'badspec'].map((m) => `meshflow-mesh-${m}`))
      expect((await call('GET', `/v1/schedules/${id}`)).status).toBe(404);
    expect((await call('GET', '/v1/schedules/meshflow-sweep')).status).toBe(404);
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
    const file = path.join(scratchDir('schedules'), 'bad.yaml');
    fs.writeFileSync(file, twoClusterYaml('clibad', 'ttl: 1m'));
    const cli = scheduleCommand().exitOverride();
    await expect(
      cli.parseAsync(['create', 'clibad', '--spec', file, '--every', '5m'], { from: 'user' }),
    ).rejects.toThrow(SpecError);
    await expect(
      cli.parseAsync(['create', 'clibad', '--spec', file, '--every', '5m'], { from: 'user' }),
    ).rejects.toThrow(/bad\.yaml:7:\d+ ttl/);

    await deleteSchedule(env.client, id);
    await expect(describeSchedule(env.client, id)).rejects.toThrow(NoScheduleError);
    await until('an empty list', async () => ((await listSchedules(env.client)).length ? undefined : true));
  }, 60_000);
});
