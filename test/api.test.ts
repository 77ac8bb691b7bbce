// The HTTP API (`meshflow serve`) on the Temporal dev server, with the real mesh workflow and a
// worker running the TEST DOUBLE activities (test/helpers/fake-activities.ts): create, follow over
// server-sent events, status, list, extend, verify, teardown, idempotency keys, the OpenAPI
// document, metrics, probes, graceful shutdown, and a corpus of malformed requests that must each
// get their 4xx and a reason without starting any workflow.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Client, Connection, type WorkflowClientInterceptor } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { tokensFromEnv } from '../src/api/auth';
import { IdempotencyKeys, WINDOW_MS } from '../src/api/idempotency';
import { type RunningApi, startApi } from '../src/api/server';
import { routes } from '../src/api/routes';
import { meshStatus, statusView } from '../src/client';
import { buildPlan } from '../src/plan/plan';
import { parseMeshSpec } from '../src/spec/load';
import { sleep } from '../src/util/net';
import { WORKER_TUNING } from '../src/worker';
import { TASK_QUEUE } from '../src/workflows/definitions';
import type { MeshStatus, StepStatus } from '../src/workflows/types';
import { scratchDir, until } from './helpers/env';
import { FakeActivities, twoClusterYaml } from './helpers/fake-activities';
import { type Answer, type CallOptions, call as httpCall } from './helpers/api-http';
import { devServer, workflowRuns } from './helpers/temporal';

const TOKEN = 'api-test-token-0123456789abcdef';
const UI = 'http://127.0.0.1:8233';
let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
let api: RunningApi;
const fake = new FakeActivities();
const logs: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  env = await devServer();
  worker = await Worker.create({
    ...WORKER_TUNING,
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE, // where the API starts meshes
    workflowsPath: require.resolve('../src/workflow-bundle'),
    activities: fake.activities(),
    shutdownGraceTime: '1s',
  });
  running = worker.run();
  api = await startApi({
    client: env.client,
    namespace: 'default',
    uiUrl: UI,
    tokens: [TOKEN],
    log: (e) => logs.push(e),
    host: '127.0.0.1',
    port: 0,
  });
});

afterAll(async () => {
  await api?.close();
  worker?.shutdown();
  await running;
  await env?.teardown();
});

const jsonSpec = (name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    apiVersion: 'meshflow.dev/v1alpha1',
    kind: 'Mesh',
    name,
    clusters: [
      { name: 'east', provider: 'local', network: 'n1' },
      { name: 'west', provider: 'local', network: 'n2' },
    ],
    ...extra,
  });

/** A call's options here: the token defaults to this file's, the port to the API's. */
type LocalCallOptions = Partial<CallOptions> & { port?: number };

/** One request on a connection of its own, with this file's token unless told otherwise. */
function call(method: string, urlPath: string, opts: LocalCallOptions = {}): Promise<Answer> {
  return httpCall(opts.port ?? api.port, method, urlPath, {
    ...opts,
    token: opts.token === undefined ? TOKEN : opts.token,
  });
}

const create = (body: string, type = 'application/yaml', headers: Record<string, string> = {}) =>
  call('POST', '/v1/meshes', { body, type, headers });

interface SseEvent {
  event: string;
  data: unknown;
}

/** Opens an event stream and collects its events until it closes, or until the client leaves after `leaveAfterMs`. */
function follow(
  urlPath: string,
  opts: { port?: number; leaveAfterMs?: number } = {},
): Promise<{ status: number; events: SseEvent[] }> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const req = http.request(
      {
        host: '127.0.0.1',
        port: opts.port ?? api.port,
        path: urlPath,
        headers: { authorization: `Bearer ${TOKEN}`, accept: 'text/event-stream' },
        agent: false,
      },
      (res) => {
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const field = (name: string) =>
              block
                .split('\n')
                .filter((l) => l.startsWith(`${name}:`))
                .map((l) => l.slice(name.length + 1).trimStart())
                .join('\n');
            events.push({ event: field('event') || 'message', data: JSON.parse(field('data') || 'null') });
          }
        });
        const done = () => resolve({ status: res.statusCode!, events });
        res.on('end', done);
        res.on('error', done);
        if (opts.leaveAfterMs !== undefined) {
          setTimeout(() => {
            req.destroy();
            done();
          }, opts.leaveAfterMs);
        }
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Every workflow the namespace holds, by id and run. */
const allRuns = () => workflowRuns(env.client);

const ready = (name: string) =>
  until(`mesh ${name} ready`, async () => {
    const s = await call('GET', `/v1/meshes/${name}`);
    return s.status === 200 && s.json.phase === 'ready' ? (s.json as MeshStatus) : undefined;
  });

test('a YAML create starts the mesh; its events arrive in plan order, each step after what it depends on, then end', async () => {
  const text = twoClusterYaml('api-yaml');
  const res = await create(text);
  expect(res.status).toBe(202);
  expect(res.json).toEqual({
    name: 'api-yaml',
    workflowId: 'mesh/api-yaml',
    runId: expect.any(String),
    webUi: `${UI}/namespaces/default/workflows/${encodeURIComponent('mesh/api-yaml')}`,
  });
  expect((await env.client.workflow.getHandle('mesh/api-yaml').describe()).runId).toBe(res.json.runId);

  const { status, events } = await follow('/v1/meshes/api-yaml/events?until=ready');
  expect(status).toBe(200);
  expect(events[0].event).toBe('status');
  expect(events.at(-1)).toEqual({ event: 'end', data: { reason: 'ready', phase: 'ready' } });
  expect(events.filter((e) => e.event === 'phase').at(-1)?.data).toEqual({ phase: 'ready', previous: 'provisioning' });

  // Each step is reported done only after every step it depends on was (in the first status or an event).
  const plan = buildPlan(parseMeshSpec(text));
  const done = new Set((events[0].data as MeshStatus).steps.filter((s) => s.state === 'done').map((s) => s.id));
  const order = plan.steps.map((s) => s.id);
  const steps = events.filter((x) => x.event === 'step');
  expect(steps.length).toBeGreaterThan(0);
  expect(steps.at(-1)?.data).toMatchObject({ id: 'verify', state: 'done' }); // verify comes after every other step
  for (const e of steps) {
    const step = e.data as StepStatus;
    const deps = plan.steps.find((s) => s.id === step.id)!.dependsOn;
    expect({ step: step.id, missing: deps.filter((d) => !done.has(d)) }).toEqual({ step: step.id, missing: [] });
    if (step.state === 'done') done.add(step.id);
  }
  expect([...done].sort()).toEqual([...order].sort());
});

test('a JSON create; status equals `meshflow status --json`; list, extend, verify, then DELETE until deleted', async () => {
  const res = await create(jsonSpec('api-json'), 'application/json; charset=utf-8');
  expect(res.status).toBe(202);
  const before = await ready('api-json');

  // The same function makes the CLI's --json and this answer.
  const body = (await call('GET', '/v1/meshes/api-json')).json;
  // Beside it, the name of the token that started the run (from its memo).
  expect(body).toEqual({
    ...JSON.parse(JSON.stringify(statusView(await meshStatus(env.client, 'api-json')))),
    createdBy: 'default',
  });
  expect(body.istiodDebug).toEqual({});

  const listed = await until('the list to show api-json ready', async () => {
    const l = await call('GET', '/v1/meshes');
    return l.json.meshes.find((m: { name: string; phase: string }) => m.name === 'api-json' && m.phase === 'ready');
  });
  expect(listed).toMatchObject({ workflowId: 'mesh/api-json', clusters: 2, provider: 'local' });

  const extended = await call('POST', '/v1/meshes/api-json/extend', { body: '{"by":"2h"}', type: 'application/json' });
  expect(extended.status).toBe(200);
  expect(Date.parse(extended.json.expiresAt) - Date.parse(before.expiresAt!)).toBe(2 * 3_600_000);
  const tooFar = await call('POST', '/v1/meshes/api-json/extend', { body: '{"by":"40d"}', type: 'application/json' });
  expect(tooFar.status).toBe(400);
  expect(tooFar.json.error).toMatchObject({
    code: 'invalid_duration',
    message: expect.stringContaining('at most 30d'),
  });

  const verified = await call('POST', '/v1/meshes/api-json/verify');
  expect(verified.status).toBe(200);
  expect(verified.json).toEqual({
    name: 'api-json',
    checks: [{ name: 'same-root', status: 'passed', detail: expect.stringContaining('fake') }],
  });
  // Some checks, by code or name: only they run.
  const some = await call('POST', '/v1/meshes/api-json/verify?only=mf0201,same-root');
  expect(some.status).toBe(200);
  expect(some.json.checks.map((c: { code: string }) => c.code)).toEqual(['MF0102', 'MF0201']);
  const unknown = await call('POST', '/v1/meshes/api-json/verify?only=MF0101,nope');
  expect(unknown.status).toBe(400);
  expect(unknown.json.error).toMatchObject({
    code: 'unknown_check',
    message: expect.stringContaining('no check "nope"'),
  });
  const catalog = await call('GET', '/v1/checks');
  expect(catalog.status).toBe(200);
  expect(catalog.json.checks).toContainEqual(expect.objectContaining({ code: 'MF0301', name: 'remote-secret' }));

  const deleted = await call('DELETE', '/v1/meshes/api-json');
  expect(deleted.status).toBe(202);
  expect(['ready', 'tearing-down', 'deleted']).toContain(deleted.json.phase);
  const { events } = await follow('/v1/meshes/api-json/events');
  expect(events.at(-1)).toEqual({ event: 'end', data: { reason: 'ended', phase: 'deleted' } });
  expect((await call('GET', '/v1/meshes/api-json')).json.phase).toBe('deleted');

  // An ended mesh: DELETE has nothing to do, extend and verify are conflicts.
  expect(await call('DELETE', '/v1/meshes/api-json')).toMatchObject({ status: 200, json: { phase: 'deleted' } });
  const late = await call('POST', '/v1/meshes/api-json/extend', { body: '{"by":"1h"}', type: 'application/json' });
  expect(late.status).toBe(409);
  expect(late.json.error.code).toBe('mesh_ended');
  expect((await call('POST', '/v1/meshes/api-json/verify')).status).toBe(409);
});

test('a second create of a running mesh is 409; verify before ready is 409; DELETE while provisioning compensates', async () => {
  fake.scripts.set('api-slow', { hangSteps: ['control-plane:west'] });
  const first = await create(twoClusterYaml('api-slow'));
  expect(first.status).toBe(202);
  const again = await create(twoClusterYaml('api-slow'));
  expect(again.status).toBe(409);
  expect(again.json.error).toMatchObject({
    code: 'mesh_already_running',
    message: expect.stringContaining('api-slow'),
  });
  expect((await env.client.workflow.getHandle('mesh/api-slow').describe()).runId).toBe(first.json.runId);

  await until('the hanging step', async () =>
    fake.callsOf('api-slow').includes('run control-plane:west') ? 1 : undefined,
  );
  const early = await call('POST', '/v1/meshes/api-slow/verify');
  expect(early.status).toBe(409);
  expect(early.json.error).toEqual({
    code: 'not_ready',
    message: 'mesh api-slow is provisioning: checks run on a ready mesh',
  });
  // Provisioning meshes may be extended.
  const ext = await call('POST', '/v1/meshes/api-slow/extend', { body: '{"by":"1h"}', type: 'application/json' });
  expect(ext.status).toBe(200);

  expect((await call('DELETE', '/v1/meshes/api-slow')).status).toBe(202);
  const { events } = await follow('/v1/meshes/api-slow/events');
  expect(events.at(-1)).toEqual({ event: 'end', data: { reason: 'ended', phase: 'deleted' } });
  expect(fake.callsOf('api-slow')).toContain('cancelled control-plane:west');
});

test('Idempotency-Key: the same key and spec answer the first answer, also after a restart; another spec is 422', async () => {
  const key = { 'Idempotency-Key': 'key-0001' };
  const first = await create(twoClusterYaml('api-idem'), 'application/yaml', key);
  expect(first.status).toBe(202);
  expect(first.headers['idempotent-replayed']).toBeUndefined();
  // Visibility lists a run a moment after it starts: wait for the first one before counting.
  const runsAfterFirst = await until('the first run listed', async () => {
    const runs = await allRuns();
    return runs.some((r) => r.startsWith('mesh/api-idem@')) ? runs : undefined;
  });

  const replay = await create(twoClusterYaml('api-idem'), 'application/yaml', key);
  expect(replay.status).toBe(202);
  expect(replay.json).toEqual(first.json);
  expect(replay.headers['idempotent-replayed']).toBe('true');
  // The same spec as JSON is the same request.
  expect((await create(jsonSpec('api-idem'), 'application/json', key)).json).toEqual(first.json);

  const other = await create(twoClusterYaml('api-idem', 'ttl: 2h'), 'application/yaml', key);
  expect(other.status).toBe(422);
  expect(other.json.error.code).toBe('idempotency_key_reused');
  // A new key for a running mesh is a new request: a conflict.
  expect((await create(twoClusterYaml('api-idem'), 'application/yaml', { 'Idempotency-Key': 'key-0002' })).status).toBe(
    409,
  );

  // A restarted API (no keys in memory) finds the key on the workflow.
  const restarted = await startApi({
    client: env.client,
    namespace: 'default',
    uiUrl: UI,
    tokens: [TOKEN],
    log: () => {},
    host: '127.0.0.1',
    port: 0,
  });
  try {
    const after = await call('POST', '/v1/meshes', {
      body: twoClusterYaml('api-idem'),
      type: 'application/yaml',
      headers: key,
      port: restarted.port,
    });
    expect(after.status).toBe(202);
    expect(after.json).toEqual(first.json);
    expect(after.headers['idempotent-replayed']).toBe('true');
    const changed = await call('POST', '/v1/meshes', {
      body: twoClusterYaml('api-idem', 'ttl: 3h'),
      type: 'application/yaml',
      headers: key,
      port: restarted.port,
    });
    expect(changed.status).toBe(422);
  } finally {
    await restarted.close();
  }
  expect(await allRuns()).toEqual(runsAfterFirst);
  await call('DELETE', '/v1/meshes/api-idem');
});

test('Idempotency-Key in memory: concurrent requests start once, a key is forgotten after 24 h, failures are not kept', async () => {
  let now = 1_000_000;
  const keys = new IdempotencyKeys(() => now);
  let starts = 0;
  const started = (runId: string) => ({ name: 'm', workflowId: 'mesh/m', runId });
  const start = async () => {
    starts++;
    await sleep(50);
    return started(`run-${starts}`);
  };
  const nothing = async () => undefined;
  const [a, b] = await Promise.all([keys.answer('k', 'd1', nothing, start), keys.answer('k', 'd1', nothing, start)]);
  expect(starts).toBe(1);
  expect([a.replayed, b.replayed].sort()).toEqual([false, true]);
  expect(b.started).toEqual(a.started);
  await expect(keys.answer('k', 'd2', nothing, start)).rejects.toMatchObject({ status: 422 });

  now += WINDOW_MS + 1;
  expect(await keys.answer('k', 'd2', nothing, start)).toEqual({ started: started('run-2'), replayed: false });

  const failing = async () => {
    throw new Error('Temporal went away');
  };
  await expect(keys.answer('f', 'd1', nothing, failing)).rejects.toThrow('Temporal went away');
  expect(await keys.answer('f', 'd1', nothing, start)).toMatchObject({ replayed: false });
});

describe('malformed requests', () => {
  const long = 'a'.repeat(41);
  const json = 'application/json';
  const yaml = 'application/yaml';
  const sameLength = TOKEN.replace(/.$/, (c) => (c === 'x' ? 'y' : 'x'));
  const corpus: Array<{
    name: string;
    method: string;
    path: string;
    opts?: LocalCallOptions;
    status: number;
    code: string;
    reason: RegExp;
  }> = [
    {
      name: 'bad YAML',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: 'name: [bad\n', type: yaml },
      status: 400,
      code: 'invalid_spec',
      reason: /request:1:7 \(yaml\): "\[" is never closed/,
    },
    {
      name: 'wrong types',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-types').replace(/clusters:[\s\S]*$/, 'clusters: many\n'), type: yaml },
      status: 400,
      code: 'invalid_spec',
      reason: /request:4:11 clusters: .*array/,
    },
    {
      name: 'unknown field',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-field', 'colour: blue'), type: yaml },
      status: 400,
      code: 'invalid_spec',
      reason: /request:7:1 \(document\): unknown field "colour"/,
    },
    {
      name: 'duplicate cluster names',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-dup').replace('west', 'east'), type: yaml },
      status: 400,
      code: 'invalid_spec',
      reason: /request:6:\d+ clusters\[1\]\.name: duplicate cluster name "east"/,
    },
    {
      name: 'relative file reference',
      method: 'POST',
      path: '/v1/meshes',
      opts: {
        body: twoClusterYaml('bad-file', 'trust: { rootCa: { certFile: ca.pem, keyFile: /etc/ca.key } }'),
        type: yaml,
      },
      status: 400,
      code: 'invalid_spec',
      reason: /trust\.rootCa\.certFile: "ca\.pem" must be an absolute path on the worker's host/,
    },
    {
      name: 'JSON that is not JSON',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-json'), type: json },
      status: 400,
      code: 'invalid_spec',
      reason: /request:1:1 \(json\): Unexpected token/,
    },
    {
      name: 'JSON, wrong types',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: jsonSpec('bad-jtypes', { ttl: 5 }), type: json },
      status: 400,
      code: 'invalid_spec',
      reason: /request:1:\d+ ttl: .*string/,
    },
    {
      name: '2 MiB body',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: `# ${'x'.repeat(2 * 1024 * 1024)}\n${twoClusterYaml('bad-big')}`, type: yaml },
      status: 413,
      code: 'body_too_large',
      reason: /over 1048576 bytes/,
    },
    {
      name: 'wrong content type',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-type'), type: 'text/plain' },
      status: 415,
      code: 'unsupported_media_type',
      reason: /"text\/plain": this takes application\/yaml/,
    },
    {
      name: 'no content type',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-notype') },
      status: 415,
      code: 'unsupported_media_type',
      reason: /missing/,
    },
    {
      name: 'bad Idempotency-Key',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-key'), type: yaml, headers: { 'Idempotency-Key': 'k'.repeat(256) } },
      status: 400,
      code: 'invalid_request',
      reason: /idempotency-key: must be 1 to 255/,
    },
    {
      name: 'missing token',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-anon'), type: yaml, token: null },
      status: 401,
      code: 'unauthorized',
      reason: /Authorization: Bearer/,
    },
    {
      name: 'wrong token of the same length',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-tok1'), type: yaml, token: sameLength },
      status: 401,
      code: 'unauthorized',
      reason: /not one this API accepts/,
    },
    {
      name: 'token of another length',
      method: 'POST',
      path: '/v1/meshes',
      opts: { body: twoClusterYaml('bad-tok2'), type: yaml, token: `${TOKEN}0` },
      status: 401,
      code: 'unauthorized',
      reason: /not one this API accepts/,
    },
    {
      name: 'not a bearer token',
      method: 'GET',
      path: '/v1/meshes',
      opts: { token: null, headers: { authorization: `Basic ${TOKEN}` } },
      status: 401,
      code: 'unauthorized',
      reason: /not "Bearer <token>"/,
    },
    {
      name: 'metrics without a token',
      method: 'GET',
      path: '/metrics',
      opts: { token: null },
      status: 401,
      code: 'unauthorized',
      reason: /Bearer/,
    },
    {
      name: 'name "..": a dot segment',
      method: 'DELETE',
      path: '/v1/meshes/..',
      status: 400,
      code: 'invalid_path',
      reason: /dot segment/,
    },
    {
      name: 'encoded dot segment',
      method: 'GET',
      path: '/v1/meshes/%2e%2e/events',
      status: 400,
      code: 'invalid_path',
      reason: /dot segment/,
    },
    {
      name: 'traversal through the name',
      method: 'POST',
      path: '/v1/meshes/../meshes/x/verify',
      status: 400,
      code: 'invalid_path',
      reason: /dot segment/,
    },
    {
      name: 'encoded slash',
      method: 'DELETE',
      path: '/v1/meshes/a%2Fb',
      status: 400,
      code: 'invalid_path',
      reason: /encoded slash/,
    },
    {
      name: 'uppercase name',
      method: 'DELETE',
      path: '/v1/meshes/Demo',
      status: 400,
      code: 'invalid_request',
      reason: /name: must be a DNS label/,
    },
    {
      name: 'name over 40 characters',
      method: 'GET',
      path: `/v1/meshes/${long}`,
      status: 400,
      code: 'invalid_request',
      reason: /name: must be at most 40 characters/,
    },
    {
      name: 'label injection',
      method: 'GET',
      path: '/v1/meshes/a%22%20OR%20x',
      status: 400,
      code: 'invalid_request',
      reason: /DNS label/,
    },
    {
      name: 'extend by -1h',
      method: 'POST',
      path: '/v1/meshes/api-none/extend',
      opts: { body: '{"by":"-1h"}', type: json },
      status: 400,
      code: 'invalid_request',
      reason: /by: "-1h" is not a positive duration/,
    },
    {
      name: 'extend with an extra field',
      method: 'POST',
      path: '/v1/meshes/api-none/extend',
      opts: { body: '{"by":"1h","force":true}', type: json },
      status: 400,
      code: 'invalid_request',
      reason: /force: unknown field "force"/,
    },
    {
      name: 'extend, body not JSON',
      method: 'POST',
      path: '/v1/meshes/api-none/extend',
      opts: { body: 'by: 1h', type: json },
      status: 400,
      code: 'invalid_request',
      reason: /Malformed JSON/,
    },
    {
      name: 'extend as YAML',
      method: 'POST',
      path: '/v1/meshes/api-none/extend',
      opts: { body: 'by: 1h', type: yaml },
      status: 415,
      code: 'unsupported_media_type',
      reason: /this takes application\/json/,
    },
    {
      name: 'events until what',
      method: 'GET',
      path: '/v1/meshes/api-none/events?until=later',
      status: 400,
      code: 'invalid_request',
      reason: /until/,
    },
    {
      name: 'unknown route',
      method: 'GET',
      path: '/v2/meshes',
      status: 404,
      code: 'no_route',
      reason: /no route GET \/v2\/meshes/,
    },
  ];

  let before: string[];
  beforeAll(async () => {
    before = await allRuns();
  });

  test.each(corpus)('$name: $status', async ({ method, path: p, opts, status, code, reason }) => {
    const res = await call(method, p, opts);
    expect({ status: res.status, code: res.json?.error?.code }).toEqual({ status, code });
    const problems = (res.json.error.problems ?? []).map((x: { text: string }) => x.text).join('\n');
    expect(`${res.json.error.message}\n${problems}`).toMatch(reason);
    if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  test('an unknown mesh is 404 for each operation', async () => {
    for (const [method, p, opts] of [
      ['GET', '/v1/meshes/api-none', {}],
      ['GET', '/v1/meshes/api-none/events', {}],
      ['POST', '/v1/meshes/api-none/verify', {}],
      ['POST', '/v1/meshes/api-none/extend', { body: '{"by":"1h"}', type: 'application/json' }],
      ['POST', '/v1/meshes/api-none/upgrade', { body: '{"to":"1.31.5"}', type: 'application/json' }],
      ['POST', '/v1/meshes/api-none/upgrade/decision', { body: '{"decision":"abort"}', type: 'application/json' }],
      ['DELETE', '/v1/meshes/api-none', {}],
    ] as const) {
      const res = await call(method, p, opts);
      expect({ p, method, status: res.status, code: res.json.error.code }).toEqual({
        p,
        method,
        status: 404,
        code: 'mesh_not_found',
      });
    }
  });

  test('none of them started a workflow', async () => {
    expect(await allRuns()).toEqual(before);
  });
});

test('/openapi.json is public and describes every route with its schemas', async () => {
  const res = await call('GET', '/openapi.json', { token: null });
  expect(res.status).toBe(200);
  const doc = res.json;
  expect(doc.openapi).toMatch(/^3\./);
  for (const r of Object.values(routes)) {
    expect({ route: `${r.method} ${r.path}`, described: Boolean(doc.paths[r.path]?.[r.method]) }).toEqual({
      route: `${r.method} ${r.path}`,
      described: true,
    });
  }
  expect(Object.keys(doc.paths).sort()).toEqual([...new Set(Object.values(routes).map((r) => r.path))].sort());
  expect(doc.components.schemas).toHaveProperty('MeshSpec.properties.clusters');
  expect(doc.components.schemas).toHaveProperty('MeshStatus.properties.steps');
  expect(doc.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });
  expect(doc.paths['/v1/meshes'].post.requestBody.content['application/json'].schema).toEqual({
    $ref: '#/components/schemas/MeshSpec',
  });
  expect(doc.paths['/healthz'].get.security).toEqual([]);
});

test('/metrics counts requests by route pattern; the log has one line per request and no secret', async () => {
  await call('GET', '/v1/meshes');
  const res = await call('GET', '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  expect(res.text).toMatch(/^meshflow_http_requests_total\{method="GET",route="\/v1\/meshes",status="200"\} [1-9]/m);
  expect(res.text).toMatch(/^meshflow_http_requests_total\{method="POST",route="\/v1\/meshes",status="202"\} [1-9]/m);
  expect(res.text).toMatch(
    /^meshflow_http_request_duration_seconds_bucket\{le="0.1",method="GET",route="\/v1\/meshes\/:name"/m,
  );
  expect(res.text).toMatch(/^process_cpu_user_seconds_total /m);
  expect(res.text).not.toMatch(/api-yaml/); // names stay out of labels

  const lines = logs.filter((l) => l.msg === 'request');
  expect(lines.length).toBeGreaterThan(20);
  for (const l of lines) expect(Object.keys(l).sort()).toEqual(['method', 'ms', 'msg', 'route', 'status', 'token']);
  expect(lines.filter((l) => l.status !== 401 && l.route !== '/openapi.json').every((l) => l.token === 'default')).toBe(
    true,
  );
  expect(JSON.stringify(logs)).not.toContain(TOKEN);
  expect(JSON.stringify(logs)).not.toContain('apiVersion');
});

test('/healthz and /readyz answer without a token; /readyz is 503 with the reason when Temporal is unreachable', async () => {
  expect(await call('GET', '/healthz', { token: null })).toMatchObject({ status: 200, json: { status: 'ok' } });
  expect(await call('GET', '/readyz', { token: null })).toMatchObject({
    status: 200,
    json: { status: 'ready', namespace: 'default' },
  });

  const port = await freePort();
  const connection = Connection.lazy({ address: `127.0.0.1:${port}` });
  const down = await startApi({
    client: new Client({ connection }),
    namespace: 'default',
    tokens: [TOKEN],
    log: () => {},
    host: '127.0.0.1',
    port: 0,
  });
  try {
    const res = await call('GET', '/readyz', { token: null, port: down.port });
    expect(res.status).toBe(503);
    expect(res.json.error).toMatchObject({
      code: 'temporal_unavailable',
      message: expect.stringContaining('Temporal does not answer for namespace default'),
    });
    expect((await call('GET', '/healthz', { token: null, port: down.port })).status).toBe(200);
  } finally {
    await down.close();
    await connection.close();
  }
});

test('a client that disconnects stops the polling', async () => {
  await create(twoClusterYaml('api-leave'));
  await ready('api-leave');
  let queries = 0;
  const counting: WorkflowClientInterceptor = {
    query: (input, next) => {
      queries++;
      return next(input);
    },
  };
  const client = new Client({ connection: env.connection, interceptors: { workflow: [counting] } });
  const counted = await startApi({
    client,
    namespace: 'default',
    tokens: [TOKEN],
    log: () => {},
    pollMs: 50,
    host: '127.0.0.1',
    port: 0,
  });
  try {
    // A ready mesh: the status, then polls that find no change.
    const { events } = await follow('/v1/meshes/api-leave/events', { port: counted.port, leaveAfterMs: 400 });
    expect(events.map((e) => e.event)).toEqual(['status']);
    await sleep(200);
    const after = queries;
    expect(after).toBeGreaterThan(3);
    await sleep(500);
    expect(queries).toBe(after);
  } finally {
    await counted.close();
  }
  await call('DELETE', '/v1/meshes/api-leave');
});

test('close lets a request in flight finish, ends event streams with reason shutdown, then stops', async () => {
  let release!: () => void;
  fake.scripts.set('api-drain', { holdVerify: new Promise<void>((r) => (release = r)) });
  await create(twoClusterYaml('api-drain'));
  await ready('api-drain');
  const second = await startApi({
    client: env.client,
    namespace: 'default',
    tokens: [TOKEN],
    log: () => {},
    host: '127.0.0.1',
    port: 0,
  });
  const streamed = follow('/v1/meshes/api-drain/events', { port: second.port });
  const verifying = call('POST', '/v1/meshes/api-drain/verify', { port: second.port });
  await until('the held verify', async () =>
    fake.callsOf('api-drain').filter((c) => c === 'run verify').length > 1 ? 1 : undefined,
  );
  let closed = false;
  const closing = second.close().then(() => (closed = true));
  const { events } = await streamed;
  expect(events.at(-1)).toEqual({ event: 'end', data: { reason: 'shutdown', phase: 'ready' } });
  await sleep(200);
  expect(closed).toBe(false); // the verify is still in flight
  await expect(call('GET', '/healthz', { port: second.port })).rejects.toThrow(/ECONNREFUSED/);
  release();
  expect((await verifying).status).toBe(200);
  await closing;
  await call('DELETE', '/v1/meshes/api-drain');
});

test('serve refuses to start without a token unless on a loopback host with --insecure-no-auth', async () => {
  const base = { client: env.client, namespace: 'default', tokens: [], log: () => {}, port: 0 };
  await expect(startApi({ ...base, host: '0.0.0.0', insecureNoAuth: true })).rejects.toThrow(
    '--insecure-no-auth is refused on --host 0.0.0.0: without a token the API listens only on a loopback host',
  );
  await expect(startApi({ ...base, host: '127.0.0.1' })).rejects.toThrow(/^no API token: set MESHFLOW_API_TOKEN/);
  const open = await startApi({ ...base, host: '127.0.0.1', insecureNoAuth: true });
  try {
    expect((await call('GET', '/v1/meshes', { token: null, port: open.port })).status).toBe(200);
  } finally {
    await open.close();
  }
});

test('tokens come from MESHFLOW_API_TOKEN and MESHFLOW_API_TOKEN_FILE (comments and blank lines skipped)', () => {
  const dir = scratchDir('api-tokens');
  const file = path.join(dir, 'tokens');
  fs.writeFileSync(file, '# team tokens\n\n  alpha-token  \nbeta-token\nci: gamma-token\n');
  expect(tokensFromEnv({ MESHFLOW_API_TOKEN: 'single', MESHFLOW_API_TOKEN_FILE: file })).toEqual([
    { name: 'default', token: 'single' },
    { name: 'line-3', token: 'alpha-token' },
    { name: 'line-4', token: 'beta-token' },
    { name: 'ci', token: 'gamma-token' },
  ]);
  fs.writeFileSync(file, '# none yet\n\n');
  expect(() => tokensFromEnv({ MESHFLOW_API_TOKEN_FILE: file })).toThrow(/holds no token/);
  expect(tokensFromEnv({})).toEqual([]);
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
