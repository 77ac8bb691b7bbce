// What a token may make the API do, on the Temporal dev server with the real mesh workflow and a
// worker running the TEST DOUBLE activities: spec files only under MESHFLOW_API_FILE_ROOTS (after
// realpath), named tokens (name in logs, memo, status; never the token), per-token limits on open
// meshes (counted in Temporal, so a restarted API counts the same) and event streams, 405 for
// undeclared methods, and a document that states what the handlers enforce. Then the corpus of
// malformed requests (src/chaos/malformed-requests.ts): each refused, none starting a workflow.
import fs from 'node:fs';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { z } from 'zod';
import { tokensFromEnv } from '../src/api/auth';
import { fileRootsFromEnv, specFileFields } from '../src/api/file-roots';
import { type RunningApi, startApi } from '../src/api/server';
import { malformedRequests } from '../src/chaos/malformed-requests';
import { parseMeshSpec } from '../src/spec/load';
import { meshSchema } from '../src/spec/schema';
import { MESH_SEARCH_ATTRIBUTES } from '../src/temporal/search-attributes';
import { sleep } from '../src/util/net';
import { WORKER_TUNING } from '../src/worker';
import { TASK_QUEUE } from '../src/workflows/definitions';
import { type CallOptions, call, openStream } from './helpers/api-http';
import { scratchDir, until } from './helpers/env';
import { FakeActivities, twoClusterYaml } from './helpers/fake-activities';
import { devServer, workflowRuns } from './helpers/temporal';

const SECRETS = { alice: 'alice-secret-0123456789', bob: 'bob-secret-0123456789', carol: 'carol-secret-012345678' };
const LIMITS = { openMeshes: 2, eventStreams: 2 };
let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
let api: RunningApi;
const fake = new FakeActivities();
const logs: Array<Record<string, unknown>> = [];
let dir: string;
let root: string;
let otherMeshCa: string;

const tokens = () => {
  const file = path.join(dir, 'tokens');
  fs.writeFileSync(
    file,
    `# the team\n${Object.entries(SECRETS)
      .map(([n, t]) => `${n}:${t}`)
      .join('\n')}\nlegacy-bare-token-0123\n`,
  );
  return tokensFromEnv({ MESHFLOW_API_TOKEN: 'env-secret-0123456789', MESHFLOW_API_TOKEN_FILE: file });
};

const serve = (extra: { fileRoots?: string[]; log?: (e: Record<string, unknown>) => void } = {}) =>
  startApi({
    client: env.client,
    namespace: 'default',
    tokens: tokens(),
    fileRoots: fileRootsFromEnv({ MESHFLOW_API_FILE_ROOTS: root }),
    limits: LIMITS,
    log: (e) => logs.push(e),
    host: '127.0.0.1',
    port: 0,
    ...extra,
  });

beforeAll(async () => {
  dir = scratchDir('api-limits');
  // Another mesh's CA, where the state directory keeps it, and a root an operator allows.
  otherMeshCa = path.join(dir, 'state', 'meshes', 'other', 'ca');
  fs.mkdirSync(otherMeshCa, { recursive: true });
  for (const f of ['root-key.pem', 'root-cert.pem'])
    fs.writeFileSync(path.join(otherMeshCa, f), 'secret', { mode: 0o600 });
  root = path.join(dir, 'allowed');
  fs.mkdirSync(root);
  for (const f of ['c', 'k']) fs.writeFileSync(path.join(root, f), 'pem');
  fs.symlinkSync(otherMeshCa, path.join(root, 'link'));
  env = await devServer();
  worker = await Worker.create({
    ...WORKER_TUNING,
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowsPath: require.resolve('../src/workflow-bundle'),
    activities: fake.activities(),
    shutdownGraceTime: '1s',
  });
  running = worker.run();
  api = await serve();
});

afterAll(async () => {
  await api?.close();
  worker?.shutdown();
  await running;
  await env?.teardown();
});

const as = (who: keyof typeof SECRETS, opts: Omit<CallOptions, 'token'> = {}) => ({ ...opts, token: SECRETS[who] });
const create = (who: keyof typeof SECRETS, body: string, port = api.port) =>
  call(port, 'POST', '/v1/meshes', as(who, { body, type: 'application/yaml' }));

/** Every workflow the namespace holds, by id and run. */
const allRuns = () => workflowRuns(env.client);

/** Deletes the mesh and waits until it has ended, also for visibility (which the quota counts with). */
const deleteAndWait = async (mesh: string) => {
  await call(api.port, 'DELETE', `/v1/meshes/${mesh}`, as('bob'));
  await until(`${mesh} closed`, async () => {
    const open = await env.client.workflow.count(`WorkflowId = "mesh/${mesh}" AND ExecutionStatus = "Running"`);
    const { status } = await env.client.workflow.getHandle(`mesh/${mesh}`).describe();
    return open.count === 0 && status.name !== 'RUNNING' ? 1 : undefined;
  });
};

describe('file references', () => {
  const rootCa = (cert: string, key: string) => `trust: { rootCa: { certFile: ${cert}, keyFile: ${key} } }`;

  test("another mesh's root key is refused, naming field and variable; nothing without roots set", async () => {
    const before = await allRuns();
    const key = path.join(otherMeshCa, 'root-key.pem');
    const res = await create('bob', twoClusterYaml('files-steal', rootCa(path.join(root, 'c'), key)));
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: 'file_not_allowed', message: expect.stringContaining(key) });
    expect(res.json.error.problems).toEqual([
      expect.objectContaining({
        path: 'trust.rootCa.keyFile',
        text: expect.stringMatching(
          /^request:7:\d+ trust\.rootCa\.keyFile: .* under none of the directories in MESHFLOW_API_FILE_ROOTS/,
        ),
      }),
    ]);
    // With no MESHFLOW_API_FILE_ROOTS no file at all, even one that is fine elsewhere.
    const closed = await serve({ fileRoots: [] });
    try {
      const none = await create(
        'bob',
        twoClusterYaml('files-none', rootCa(path.join(root, 'c'), path.join(root, 'k'))),
        closed.port,
      );
      expect(none.status).toBe(400);
      expect(none.json.error.problems.map((p: { path: string }) => p.path)).toEqual([
        'trust.rootCa.certFile',
        'trust.rootCa.keyFile',
      ]);
      expect(none.json.error.message).toMatch(/MESHFLOW_API_FILE_ROOTS is not set/);
    } finally {
      await closed.close();
    }
    expect(await allRuns()).toEqual(before);
  });

  test('files under a root are taken (they need not exist); .. and symlinks are resolved first', async () => {
    const ok = await create(
      'bob',
      twoClusterYaml('files-ok', rootCa(path.join(root, 'c'), path.join(root, 'later', 'k'))),
    );
    expect(ok.status).toBe(202);
    const dotdot = await create(
      'bob',
      twoClusterYaml('files-dotdot', rootCa(`${root}/../state/meshes/other/ca/root-cert.pem`, `${root}/k`)),
    );
    expect(dotdot.json.error.problems.map((p: { path: string }) => p.path)).toEqual(['trust.rootCa.certFile']);
    const link = await create('bob', twoClusterYaml('files-link', rootCa(`${root}/c`, `${root}/link/root-key.pem`)));
    expect(link.json.error.problems[0]).toMatchObject({
      path: 'trust.rootCa.keyFile',
      message: expect.stringContaining(`(${fs.realpathSync(otherMeshCa)}/root-key.pem)`),
    });
    await deleteAndWait('files-ok');
  });

  test('MESHFLOW_API_FILE_ROOTS: each entry an absolute directory that exists, resolved', () => {
    expect(fileRootsFromEnv({})).toEqual([]);
    expect(fileRootsFromEnv({ MESHFLOW_API_FILE_ROOTS: `${root}/link${path.delimiter}${root}` })).toEqual([
      fs.realpathSync(otherMeshCa),
      fs.realpathSync(root),
    ]);
    expect(() => fileRootsFromEnv({ MESHFLOW_API_FILE_ROOTS: 'relative/dir' })).toThrow(/entry 1 .*absolute/);
    expect(() => fileRootsFromEnv({ MESHFLOW_API_FILE_ROOTS: `${root}:${root}/none` })).toThrow(/entry 2 .*ENOENT/);
  });

  test('every field of the spec schema that names a file is checked', () => {
    const named: string[] = [];
    const walk = (node: unknown, at: string) => {
      if (!node || typeof node !== 'object') return;
      const n = node as { type?: string; enum?: unknown; properties?: Record<string, unknown>; items?: unknown };
      for (const [k, v] of Object.entries(n.properties ?? {})) {
        const child = v as { type?: string; enum?: unknown };
        if (child.type === 'string' && !child.enum && /(file|kubeconfig|path|dir)$/i.test(k)) named.push(`${at}${k}`);
        walk(v, `${at}${k}.`);
      }
      if (n.items) walk(n.items, at.replace(/\.$/, '[].'));
    };
    walk(z.toJSONSchema(meshSchema, { io: 'input', unrepresentable: 'any' }), '');
    const spec = parseMeshSpec(
      twoClusterYaml(
        'all-files',
        `${rootCa('/a/c', '/a/k').replace('} }', ', chainFile: /a/ch } }')}\n` +
          'app: { manifests: [{ file: /a/m, clusters: [east] }] }',
      ).replace(
        '{ name: west, provider: local, network: n2 }',
        '{ name: west, provider: existing, existing: { kubeconfig: /a/kc }, network: n2 }',
      ),
      'spec',
      { checkFiles: false },
    );
    const checked = specFileFields(spec).map((f) =>
      f.path
        .map((p) => (typeof p === 'number' ? '[]' : p))
        .join('.')
        .replace(/\.\[\]/g, '[]'),
    );
    expect(checked.sort()).toEqual(named.sort());
  });
});

describe('named tokens', () => {
  test('the token file takes name:token and bare lines; names are unique; MESHFLOW_API_TOKEN is "default"', () => {
    expect(tokens().map((t) => t.name)).toEqual(['default', 'alice', 'bob', 'carol', 'line-5']);
    const file = path.join(dir, 'dup');
    fs.writeFileSync(file, 'a:one\na:two\n');
    expect(() => tokensFromEnv({ MESHFLOW_API_TOKEN_FILE: file })).toThrow(/line 2: the name a is taken/);
    fs.writeFileSync(file, 'team a:one two\n');
    expect(() => tokensFromEnv({ MESHFLOW_API_TOKEN_FILE: file })).toThrow(/line 1: a token holds no whitespace/);
  });

  test("the token's name is in each request's log line, the run's memo, search attribute and status", async () => {
    const res = await create('alice', twoClusterYaml('named-alice'));
    expect(res.status).toBe(202);
    const d = await env.client.workflow.getHandle('mesh/named-alice').describe();
    expect(d.memo?.createdBy).toBe('alice');
    expect(d.typedSearchAttributes.get(MESH_SEARCH_ATTRIBUTES.createdBy)).toBe('alice');
    const status = await until('the status', async () => {
      const s = await call(api.port, 'GET', '/v1/meshes/named-alice', as('bob'));
      return s.status === 200 ? s.json : undefined;
    });
    expect(status.createdBy).toBe('alice');
    await call(api.port, 'GET', '/v1/meshes', { token: 'env-secret-0123456789' });
    await call(api.port, 'GET', '/v1/meshes', { token: 'legacy-bare-token-0123' });
    await call(api.port, 'GET', '/v1/meshes', { token: null });
    const lines = logs.filter((l) => l.msg === 'request');
    expect(lines.every((l) => 'token' in l)).toBe(true);
    expect(new Set(lines.map((l) => l.token))).toEqual(new Set(['alice', 'bob', 'default', 'line-5', null]));
    for (const secret of [...Object.values(SECRETS), 'env-secret-0123456789', 'legacy-bare-token-0123'])
      expect(JSON.stringify(logs)).not.toContain(secret);
    await deleteAndWait('named-alice');
  });
});

describe('limits per token', () => {
  test('open meshes: past the limit 429 with Retry-After, not for others, counted again after a restart', async () => {
    for (const m of ['quota-a1', 'quota-a2']) expect((await create('alice', twoClusterYaml(m))).status).toBe(202);
    const over = await create('alice', twoClusterYaml('quota-a3'));
    expect(over.status).toBe(429);
    expect(over.headers['retry-after']).toBe('60');
    expect(over.json.error).toEqual({
      code: 'quota_exceeded',
      message:
        'token alice has 2 open meshes, the most MESHFLOW_API_MAX_OPEN_MESHES allows (2): ' +
        'DELETE one, or wait for one to expire',
    });
    expect((await create('bob', twoClusterYaml('quota-b1'))).status).toBe(202);

    const restarted = await serve();
    try {
      expect((await create('alice', twoClusterYaml('quota-a3'), restarted.port)).status).toBe(429);
      await deleteAndWait('quota-a1');
      await until('a place for alice', async () => {
        const again = await create('alice', twoClusterYaml('quota-a3'), restarted.port);
        return again.status === 202 ? again : undefined;
      });
    } finally {
      await restarted.close();
    }
    for (const m of ['quota-a2', 'quota-a3', 'quota-b1']) await deleteAndWait(m);
  });

  test('concurrent creates of one token never pass the limit', async () => {
    const answers = await Promise.all(
      ['race-1', 'race-2', 'race-3', 'race-4'].map((m) => create('carol', twoClusterYaml(m))),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([202, 202, 429, 429]);
    for (const [i, a] of answers.entries()) if (a.status === 202) await deleteAndWait(`race-${i + 1}`);
  });

  test('event streams: past the limit 429 with Retry-After; a closed stream frees its place', async () => {
    expect((await create('bob', twoClusterYaml('streams'))).status).toBe(202);
    const streams = [openStream(api.port, '/v1/meshes/streams/events', SECRETS.alice)];
    streams.push(openStream(api.port, '/v1/meshes/streams/events', SECRETS.alice));
    expect(await Promise.all(streams.map((s) => s.status))).toEqual([200, 200]);
    const third = await call(api.port, 'GET', '/v1/meshes/streams/events', as('alice'));
    expect(third.status).toBe(429);
    expect(third.headers['retry-after']).toBe('5');
    expect(third.json.error.message).toBe(
      'token alice holds 2 event streams, the most MESHFLOW_API_MAX_EVENT_STREAMS allows (2): close one first',
    );
    const bobs = openStream(api.port, '/v1/meshes/streams/events', SECRETS.bob);
    expect(await bobs.status).toBe(200);
    streams[0].close();
    const fourth = await until('a freed stream', async () => {
      const s = openStream(api.port, '/v1/meshes/streams/events', SECRETS.alice);
      if ((await s.status) === 200) return s;
      s.close();
      await sleep(100);
      return undefined;
    });
    for (const s of [streams[1], bobs, fourth]) s.close();
    await deleteAndWait('streams');
  });
});

describe('the document says what the server does', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let doc: any;
  beforeAll(async () => {
    doc = (await call(api.port, 'GET', '/openapi.json', { token: null })).json;
  });

  test('an undeclared method on a known path is 405 with Allow; on an unknown path 404', async () => {
    for (const [method, p, allow] of [
      ['PUT', '/v1/meshes', 'GET, HEAD, POST'],
      ['TRACE', '/v1/meshes/demo', 'DELETE, GET, HEAD, PUT'],
      ['PATCH', '/v1/schedules/meshflow-sweep', 'DELETE, GET, HEAD'],
      ['GET', '/codec/decode', 'POST'],
    ]) {
      const res = await call(api.port, method, p, as('bob'));
      expect({ method, p, status: res.status, allow: res.headers.allow, code: res.json?.error.code }).toEqual({
        method,
        p,
        status: 405,
        allow,
        code: 'method_not_allowed',
      });
    }
    expect((await call(api.port, 'TRACE', '/v2/x', as('bob'))).status).toBe(404);
  });

  test('415 on /codec, 429 with Retry-After on create and events, 413 on schedule create are documented', () => {
    for (const p of ['/codec/decode', '/codec/encode']) expect(doc.paths[p].post.responses).toHaveProperty('415');
    for (const op of [doc.paths['/v1/meshes'].post, doc.paths['/v1/meshes/{name}/events'].get])
      expect(op.responses['429'].headers['Retry-After'].schema.type).toBe('integer');
    expect(doc.paths['/v1/schedules'].post.responses).toHaveProperty('413');
  });

  test("request schemas refuse what the handlers refuse: durations, base64, file paths, schedules' rules", async () => {
    const s = doc.components.schemas;
    const sample = async (pattern: string, value: string, accepted: boolean) =>
      expect({ value, matches: new RegExp(pattern).test(value) }).toEqual({ value, matches: accepted });
    for (const [by, ok] of [
      ['2h', true],
      ['1h30m', true],
      ['0h', false],
      ['-1h', false],
      ['2 h', false],
    ] as const) {
      await sample(s.ExtendRequest.properties.by.pattern, by, ok);
      const res = await call(
        api.port,
        'POST',
        '/v1/meshes/none/extend',
        as('bob', { body: JSON.stringify({ by }), type: 'application/json' }),
      );
      expect({ by, refused: res.status === 400 }).toEqual({ by, refused: !ok });
    }
    for (const [data, ok] of [
      ['AAAA', true],
      ['AA==', true],
      ['AAA', false],
      ['A===', false],
      ['**==', false],
    ] as const) {
      await sample(s.Payload.properties.data.pattern, data, ok);
      const res = await call(
        api.port,
        'POST',
        '/codec/decode',
        as('bob', { body: JSON.stringify({ payloads: [{ data }] }), type: 'application/json' }),
      );
      expect({ data, refused: res.status === 400 }).toEqual({ data, refused: !ok });
    }
    expect(s.MeshSpec.properties.trust.properties.rootCa.properties.keyFile.pattern).toBe('^/');
    expect(s.MeshSpec.properties.ttl.pattern).toBeDefined();
    // A cluster's provider settings and a remote's primary: one variant per provider, remote or not.
    expect(s.MeshSpec.properties.clusters.items.allOf.map((a: { oneOf: unknown[] }) => a.oneOf.length)).toEqual([3, 2]);
    expect(s.CreateSchedule.allOf[0]).toEqual({ oneOf: [{ required: ['every'] }, { required: ['cron'] }] });
    const both = await call(
      api.port,
      'POST',
      '/v1/schedules',
      as('bob', { body: JSON.stringify({ kind: 'sweep', every: '5m', cron: '* * * * *' }), type: 'application/json' }),
    );
    expect(both.status).toBe(400);
  });
});

describe('malformed requests', () => {
  const named = { name: 'carol', token: SECRETS.carol };
  // The cases are named when the file loads, and built once the directories exist.
  const corpus = (dirs = { root, otherMeshCa }) =>
    malformedRequests({ ...dirs, linkOut: path.join(dirs.root, 'link'), named, readyMesh: 'corpus-ready' });
  const names = corpus({ root: '/r', otherMeshCa: '/o' }).map((c) => c.name);
  let before: string[];
  beforeAll(async () => {
    expect((await create('bob', twoClusterYaml('corpus-ready'))).status).toBe(202);
    // Visibility lists a run a moment after its start.
    before = await until('corpus-ready listed', async () => {
      const runs = await allRuns();
      return runs.some((r) => r.startsWith('mesh/corpus-ready@')) ? runs : undefined;
    });
  });

  test('the corpus has path, size, quota and named-token cases', () => {
    const codes = corpus().map((c) => c.code);
    const all = ['file_not_allowed', 'body_too_large', 'quota_exceeded', 'unauthorized', 'method_not_allowed'];
    for (const code of [...all, 'invalid_spec']) expect(codes).toContain(code);
  });

  test.each(names)('%s', async (name) => {
    const c = corpus().find((x) => x.name === name)!;
    const held: Array<{ close(): void }> = [];
    const filled: string[] = [];
    if (c.precondition === 'open-meshes-full') {
      for (let i = 0; i < LIMITS.openMeshes; i++) {
        expect((await create('carol', twoClusterYaml(`corpus-full-${i}`))).status).toBe(202);
        filled.push(`corpus-full-${i}`);
      }
    }
    if (c.precondition === 'event-streams-full') {
      for (let i = 0; i < LIMITS.eventStreams; i++)
        held.push(openStream(api.port, `/v1/meshes/corpus-ready/events`, SECRETS.carol));
      await Promise.all(held.map((s) => (s as ReturnType<typeof openStream>).status));
    }
    try {
      const token = 'raw' in c.token ? c.token.raw : SECRETS[c.token.name as keyof typeof SECRETS];
      const res = await call(api.port, c.method, c.path, { body: c.body, type: c.type, token });
      expect({ status: res.status, code: res.json?.error?.code }).toEqual({ status: c.status, code: c.code });
      const problems = (res.json.error.problems ?? []).map((x: { text: string }) => x.text).join('\n');
      expect(`${res.json.error.message}\n${problems}`).toMatch(c.reason);
      for (const [h, value] of Object.entries(c.headers ?? {})) expect(res.headers[h]).toMatch(value);
      if (c.absent) expect(res.text).not.toContain(c.absent);
    } finally {
      for (const s of held) s.close();
      for (const m of filled) await deleteAndWait(m);
    }
    before = [...before, ...(await allRuns()).filter((r) => filled.some((m) => r.startsWith(`mesh/${m}@`)))].sort();
  });

  test('none of them started a workflow', async () => {
    expect(await allRuns()).toEqual([...new Set(before)].sort());
    await deleteAndWait('corpus-ready');
  });
});
