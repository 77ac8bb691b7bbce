// POST /v1/meshes/{name}/upgrade and /upgrade/decision: a running mesh's Istio upgraded through the
// API, as `meshflow upgrade` does it. The upgrade is answered 202 once the workflow has accepted it
// and is followed in the status (its waves and stage, then its entry in `updates`); refusals are
// 400s (the version, the waves) or 409s (another update, nothing waiting for a decision), each with
// the reason; an unknown mesh is a 404. Real mesh workflow on the dev server, TEST DOUBLE activities
// (installRevision, switchRevision, stopRevision record what they are asked; failSwitch fails one).
import { specQuery } from '../src/workflows/definitions';
import type { MeshStatus, UpdateRecord } from '../src/workflows/types';
import { type Answer, call } from './helpers/api-http';
import { until } from './helpers/env';
import { FakeActivities, type Script, twoClusterYaml } from './helpers/fake-activities';
import { withFakeApi } from './helpers/fake-worker';

const TOKEN = 'upgrade-token-0123456789';
const fake = new FakeActivities();
const rig = withFakeApi(fake, { tokens: [{ name: 'ci', token: TOKEN }] });

/** The version the meshes of these tests run (the default), and the patch release they are upgraded to. */
const FROM = '1.31.4';
const TO = '1.31.5';

const post = (path: string, body: unknown): Promise<Answer> =>
  call(rig.api().port, 'POST', path, { token: TOKEN, type: 'application/json', body: JSON.stringify(body) });
const upgrade = (name: string, body: unknown) => post(`/v1/meshes/${name}/upgrade`, body);
const decide = (name: string, decision: string) => post(`/v1/meshes/${name}/upgrade/decision`, { decision });
const status = async (name: string): Promise<MeshStatus> =>
  (await call(rig.api().port, 'GET', `/v1/meshes/${name}`, { token: TOKEN })).json as MeshStatus;
const updateOf = (s: MeshStatus, id: string): UpdateRecord | undefined => s.updates?.find((u) => u.id === id);

/** Starts the mesh through the API (no sample app) and waits until it is ready. */
async function startReady(name: string, script: Script = {}): Promise<void> {
  fake.scripts.set(name, script);
  const body = twoClusterYaml(name, 'app: { sample: none }\n');
  expect((await call(rig.api().port, 'POST', '/v1/meshes', { token: TOKEN, type: 'text/yaml', body })).status).toBe(
    202,
  );
  await until(`mesh ${name} ready`, async () => ((await status(name)).phase === 'ready' ? true : undefined));
}

/** Polls the status until the update has ended; the status then. */
const ended = (name: string, id: string) =>
  until(`update ${id} of ${name} ended`, async () => {
    const s = await status(name);
    return updateOf(s, id) && updateOf(s, id)!.state !== 'running' ? s : undefined;
  });

const down = (name: string) => call(rig.api().port, 'DELETE', `/v1/meshes/${name}`, { token: TOKEN });

/** Starts the upgrade of `name`, whose first wave's verify is held, and checks what a client sees meanwhile; its id. */
async function inProgress(name: string): Promise<string> {
  const res = await upgrade(name, { to: TO });
  expect(res.status).toBe(202);
  expect(res.json).toEqual({
    name,
    update: expect.any(String),
    status: `/v1/meshes/${name}`,
    events: `/v1/meshes/${name}/events`,
  });
  const id: string = res.json.update;

  const during = await until('the first wave verifying', async () => {
    const s = await status(name);
    return s.upgrade?.stage === 'verifying' ? s : undefined;
  });
  expect(during.phase).toBe('updating');
  expect(during.upgrade).toMatchObject({
    from: { version: FROM },
    to: { version: TO, revision: '1-31-5' },
    waves: [['east'], ['west']],
    wave: 0,
    passed: 0,
    approveEach: false,
  });
  expect(updateOf(during, id)).toMatchObject({ state: 'running', summary: expect.stringContaining(`to ${TO}`) });

  // One update at a time: a second upgrade is a 409 naming the one that runs; nothing waits for a decision.
  const again = await upgrade(name, { to: '1.31.6' });
  expect(again.status).toBe(409);
  expect(again.json.error.code).toBe('update_in_progress');
  expect(again.json.error.message).toContain(`update ${id}`);
  expect(again.json.error.message).toContain('one update at a time');
  const early = await decide(name, 'continue');
  expect(early.status).toBe(409);
  expect(early.json.error).toMatchObject({ code: 'not_awaiting_approval' });
  expect(early.json.error.message).toContain('is verifying, not waiting for approval');
  return id;
}

test('202 once accepted; the status shows it in progress, then the update applied on the new version', async () => {
  const name = 'up-api';
  let release!: () => void;
  // The first wave's verify waits, so that the upgrade is seen in progress.
  await startReady(name, { holdVerify: new Promise<void>((r) => (release = r)) });
  const mark = fake.callsOf(name).length;
  let id: string;
  try {
    id = await inProgress(name);
  } finally {
    release(); // also when it failed: a held activity would keep the worker from stopping
  }
  const after = await ended(name, id);
  expect(updateOf(after, id)).toMatchObject({ state: 'applied' });
  expect(after.phase).toBe('ready');
  expect(after.upgrade).toBeUndefined();
  expect(after.checks.filter((c) => c.status === 'failed')).toEqual([]);
  // Each wave's clusters went to the new revision, then the old revision was stopped everywhere.
  const calls = fake.callsOf(name).slice(mark);
  const revisions = calls.filter((c) => /^(install-revision|switch|stop-revision) /.test(c));
  expect([...revisions.slice(0, 4), revisions.slice(4).sort()]).toEqual([
    'install-revision east 1-31-5',
    'switch east 1-31-5',
    'install-revision west 1-31-5',
    'switch west 1-31-5',
    ['stop-revision east default', 'stop-revision west default'],
  ]);

  // The mesh runs the new version: its spec says so, and another upgrade to it is refused as such.
  const handle = rig.env().client.workflow.getHandle(`mesh/${name}`);
  expect((await handle.query(specQuery)).istio).toMatchObject({ version: TO, revision: '1-31-5' });
  const same = await upgrade(name, { to: TO });
  expect(same.status).toBe(400);
  expect(same.json.error.message).toBe(`mesh ${name} runs Istio ${TO} already`);
  expect((await down(name)).status).toBe(202);
});

test('refusals name what is wrong: a version with no build, bad waves, nothing waiting, no mesh', async () => {
  const name = 'up-bad';
  await startReady(name);
  const mark = fake.callsOf(name).length;

  const version = await upgrade(name, { to: '1.29.0' });
  expect(version.status).toBe(400);
  expect(version.json.error.message).toContain('"1.29.0" is not a version meshflow pins a build of');
  expect(version.json.error.problems).toEqual([expect.objectContaining({ path: 'to' })]);

  for (const [waves, reason] of [
    [[['east']], 'every primary must be in a wave: west is in none'],
    [[['east'], ['north']], `mesh ${name} has no cluster north; its primaries: east, west`],
    [[['east', 'west'], ['west']], 'west is in two waves'],
  ] as const) {
    const res = await upgrade(name, { to: TO, waves });
    expect({ waves, status: res.status, code: res.json.error.code, message: res.json.error.message }).toEqual({
      waves,
      status: 400,
      code: 'bad_request',
      message: reason,
    });
  }
  const typo = await upgrade(name, { to: TO, approve_each: true });
  expect(typo.status).toBe(400);
  expect(typo.json.error.message).toContain('unknown field "approve_each"');

  const nothing = await decide(name, 'continue');
  expect(nothing.status).toBe(409);
  expect(nothing.json.error).toEqual({
    code: 'not_awaiting_approval',
    message: `mesh ${name} has no upgrade in progress`,
  });
  expect((await decide(name, 'later')).status).toBe(400);

  for (const res of [await upgrade('up-none', { to: TO }), await decide('up-none', 'continue')])
    expect({ status: res.status, code: res.json.error.code }).toEqual({ status: 404, code: 'mesh_not_found' });

  // Nothing ran, and no update was recorded.
  expect(fake.callsOf(name).slice(mark)).toEqual([]);
  const s = await status(name);
  expect({ phase: s.phase, updates: s.updates ?? [] }).toEqual({ phase: 'ready', updates: [] });
  expect((await down(name)).status).toBe(202);
});

test('approveEach: the upgrade waits after a wave until told continue, then ends applied', async () => {
  const name = 'up-approve';
  await startReady(name);
  const res = await upgrade(name, { to: TO, waves: [['west'], ['east']], approveEach: true });
  expect(res.status).toBe(202);
  const id: string = res.json.update;

  const waiting = await until('awaiting approval', async () => {
    const s = await status(name);
    return s.upgrade?.stage === 'awaiting-approval' ? s : undefined;
  });
  expect(waiting.phase).toBe('updating');
  expect(waiting.upgrade).toMatchObject({
    waves: [['west'], ['east']],
    wave: 0,
    passed: 1,
    approveEach: true,
    awaitingSince: expect.any(String),
  });
  expect(updateOf(waiting, id)?.state).toBe('running');
  // Only the first wave went to the new revision.
  expect(fake.callsOf(name).filter((c) => c.startsWith('switch '))).toEqual(['switch west 1-31-5']);
  // A change of the spec meanwhile is refused as any second update is: 409, naming the upgrade.
  const change = await call(rig.api().port, 'PUT', `/v1/meshes/${name}`, {
    token: TOKEN,
    type: 'text/yaml',
    body: twoClusterYaml(name, 'app: { sample: none }\nonFailure: keep\n'),
  });
  expect(change.status).toBe(409);
  expect(change.json.error).toEqual({
    code: 'update_in_progress',
    message: expect.stringMatching(new RegExp(`^update ${id} \\(upgrade Istio .*\\) has been running since`)),
  });

  const go = await decide(name, 'continue');
  expect(go.status).toBe(200);
  expect(go.json).toEqual({ name, message: 'wave 2 of 2 starts' });
  // Told once: a second decision finds nothing waiting.
  expect((await decide(name, 'continue')).status).toBe(409);

  const after = await ended(name, id);
  expect(updateOf(after, id)).toMatchObject({ state: 'applied' });
  expect(after.upgrade).toBeUndefined();
  expect(fake.callsOf(name).filter((c) => c.startsWith('switch '))).toEqual([
    'switch west 1-31-5',
    'switch east 1-31-5',
  ]);
  const handle = rig.env().client.workflow.getHandle(`mesh/${name}`);
  expect((await handle.query(specQuery)).istio.version).toBe(TO);
  expect((await down(name)).status).toBe(202);
});

test('abort after a wave, or a wave that fails, rolls back: the 202 stands, the status says rolled-back', async () => {
  const name = 'up-abort';
  await startReady(name);
  const res = await upgrade(name, { to: TO, approveEach: true });
  expect(res.status).toBe(202);
  await until('awaiting approval', async () =>
    (await status(name)).upgrade?.stage === 'awaiting-approval' ? true : undefined,
  );
  const stop = await decide(name, 'abort');
  expect(stop.json).toEqual({ name, message: 'rolling back the 1 wave(s) made' });
  const aborted = updateOf(await ended(name, res.json.update), res.json.update)!;
  expect(aborted.state).toBe('rolled-back');
  expect(aborted.error).toContain(`aborted after wave 1 of 2`);
  expect(aborted.error).toContain(`every cluster runs Istio ${FROM} (revision default) again`);

  const failing = 'up-fail';
  await startReady(failing, { failSwitch: ['west'] });
  const res2 = await upgrade(failing, { to: TO });
  expect(res2.status).toBe(202);
  const failed = await ended(failing, res2.json.update);
  expect(failed.phase).toBe('ready');
  expect(updateOf(failed, res2.json.update)).toMatchObject({
    state: 'rolled-back',
    error: expect.stringContaining('wave 2 (west) failed: west: RevisionNotInjecting'),
  });
  for (const n of [name, failing]) {
    const handle = rig.env().client.workflow.getHandle(`mesh/${n}`);
    expect((await handle.query(specQuery)).istio.version).toBe(FROM);
    expect((await down(n)).status).toBe(202);
  }
});

test('/openapi.json describes both operations: their bodies, the 202 and the refusals', async () => {
  const doc = (await call(rig.api().port, 'GET', '/openapi.json', { token: null })).json;
  const start = doc.paths['/v1/meshes/{name}/upgrade'].post;
  const decision = doc.paths['/v1/meshes/{name}/upgrade/decision'].post;
  expect(start.requestBody.content['application/json'].schema).toEqual({
    $ref: '#/components/schemas/MeshUpgradeRequest',
  });
  expect(start.responses['202'].content['application/json'].schema).toEqual({
    $ref: '#/components/schemas/MeshUpgradeStarted',
  });
  expect(decision.responses['200'].content['application/json'].schema).toEqual({
    $ref: '#/components/schemas/MeshUpgradeDecided',
  });
  for (const op of [start, decision])
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['400', '404', '409']));
  const s = doc.components.schemas;
  expect(s.MeshUpgradeRequest).toMatchObject({ required: ['to'], additionalProperties: false });
  expect(s.MeshUpgradeDecision.properties.decision.enum).toEqual(['continue', 'abort']);
  // The pattern the document gives for `to` is what the server takes.
  for (const [to, ok] of [
    [TO, true],
    ['1.30.8', true],
    ['1.29.0', false],
    ['1.31', false],
    ['v1.31.5', false],
  ] as const) {
    const res = await upgrade('up-none', { to });
    expect({
      to,
      matches: new RegExp(s.MeshUpgradeRequest.properties.to.pattern).test(to),
      status: res.status,
    }).toEqual({ to, matches: ok, status: ok ? 404 : 400 });
  }
});
