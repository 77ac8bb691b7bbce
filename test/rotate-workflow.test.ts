// Rotation on the mesh workflow, against the Temporal dev server with the activities' TEST DOUBLE
// (its cacerts steps and rotations report an intermediate's generation and expiry, its links a
// token's): `rotate intermediates` runs each cluster's next generation then verify; one not taken
// up fails the update and leaves that cluster on its previous one; `rotate readers` runs the links
// again; bad requests are refused before anything runs; a ready mesh rotates an intermediate by
// itself within trust.rotateBefore of its expiry; POST /v1/meshes/{name}/rotate does what the CLI does.
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { parseMeshSpec } from '../src/spec/load';
import { meshWorkflowId, rotateUpdate, specQuery, statusQuery, teardownSignal } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import type { MeshStatus, RotateRequest } from '../src/workflows/types';
import { TASK_QUEUE } from '../src/workflows/definitions';
import { FakeActivities, type Script, twoClusterYaml } from './helpers/fake-activities';
import { statusUntil, withFakeApi } from './helpers/fake-worker';
import { call } from './helpers/api-http';
import { recordHistory } from './helpers/histories';

const TOKEN = 'rotate-token-0123456789';
const fake = new FakeActivities();
const rig = withFakeApi(fake, { tokens: [{ name: 'ci', token: TOKEN }] });

const HOUR = 3_600_000;

async function startReady(name: string, script: Script = {}, extra = '') {
  fake.scripts.set(name, { realistic: true, caValidityMs: 730 * 24 * HOUR, tokenLifetimeMs: 24 * HOUR, ...script });
  const handle = await rig.env().client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: TASK_QUEUE,
    workflowId: meshWorkflowId(name),
    args: [{ spec: parseMeshSpec(twoClusterYaml(name, `app: { sample: none }\n${extra}`)) }],
  });
  await statusUntil(handle, (s) => s.phase === 'ready');
  return handle;
}

const rotate = (handle: WorkflowHandle, req: RotateRequest) => handle.executeUpdate(rotateUpdate, { args: [req] });
const generations = (s: MeshStatus) => Object.fromEntries(s.trust!.intermediates.map((i) => [i.cluster, i.generation]));

async function down(handle: WorkflowHandle) {
  await handle.signal(teardownSignal);
  const end = (await handle.result()) as MeshStatus;
  expect(end.phase).toBe('deleted');
  expect(end.ledger).toEqual([]);
}

test('intermediates rotate cluster by cluster to the next generation, then verify; status shows each', async () => {
  const name = 'rot-int';
  const handle = await startReady(name);
  const before = await handle.query(statusQuery);
  expect(generations(before)).toEqual({ east: 1, west: 1 });
  expect(before.trust).toMatchObject({ rotateBefore: '30d', due: [] });
  expect(before.trust!.readers.map((r) => `${r.source}->${r.target}`).sort()).toEqual(['east->west', 'west->east']);

  const mark = fake.callsOf(name).length;
  const out = await rotate(handle, { what: 'intermediates' });
  expect(out.update).toMatchObject({
    state: 'applied',
    summary: 'rotate intermediates of east, west',
    rerun: ['cacerts:east', 'cacerts:west'],
  });
  const calls = fake.callsOf(name).slice(mark);
  expect(calls.slice(0, 2).sort()).toEqual(['rotate east g2', 'rotate west g2']);
  expect(calls.slice(2)).toEqual(['run verify']);
  const after = await handle.query(statusQuery);
  expect(after.phase).toBe('ready');
  expect(generations(after)).toEqual({ east: 2, west: 2 });
  expect(after.trust!.intermediates[0].rotatedAt).toBeDefined();

  // One cluster only: the next generation of its own count.
  const west = await rotate(handle, { what: 'intermediates', clusters: ['west'] });
  expect(west.update).toMatchObject({ state: 'applied', rerun: ['cacerts:west'] });
  expect(generations(await handle.query(statusQuery))).toEqual({ east: 2, west: 3 });
  await down(handle);
  await recordHistory(handle, 'v5-rotate-intermediates');
});

test('an intermediate its istiod does not take up fails the update; that cluster keeps its previous one', async () => {
  const name = 'rot-fail';
  const handle = await startReady(name, { failRotate: ['west'] });
  const out = await rotate(handle, { what: 'intermediates' });
  expect(out.update.state).toBe('failed');
  expect(out.update.error).toContain(
    'cacerts:west: RotationNotTakenUp: injected: the new intermediate of west was not taken up',
  );
  const s = await handle.query(statusQuery);
  expect(s.phase).toBe('ready');
  expect(generations(s)).toEqual({ east: 2, west: 1 });
  // Verify still ran: the mesh is checked as it is.
  expect(fake.callsOf(name).at(-1)).toBe('run verify');
  await down(handle);
  await recordHistory(handle, 'v5-rotate-not-taken-up');
});

test('readers: the links from or to the clusters run again with fresh tokens', async () => {
  const name = 'rot-read';
  const handle = await startReady(name);
  const before = await handle.query(statusQuery);
  const mark = fake.callsOf(name).length;
  const out = await rotate(handle, { what: 'readers', clusters: ['east'] });
  expect(out.update).toMatchObject({ state: 'applied', rerun: ['link:east->west', 'link:west->east'] });
  expect(
    fake
      .callsOf(name)
      .slice(mark)
      .filter((c) => c.startsWith('run link'))
      .sort(),
  ).toEqual(['run link:east->west', 'run link:west->east']);
  const after = await handle.query(statusQuery);
  for (const r of after.trust!.readers) {
    const old = before.trust!.readers.find((o) => o.source === r.source)!;
    expect(r.rotatedAt).toBeDefined();
    expect(Date.parse(r.expiresAt)).toBeGreaterThan(Date.parse(old.expiresAt));
  }
  await down(handle);
  await recordHistory(handle, 'v5-rotate-readers');
});

test('bad requests are refused before anything runs, naming what is wrong', async () => {
  const name = 'rot-bad';
  const handle = await startReady(name);
  const mark = fake.callsOf(name).length;
  const refused = async (req: RotateRequest) => {
    const err = await rotate(handle, req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    return (err as WorkflowUpdateFailedError).cause?.message;
  };
  expect(await refused({ what: 'roots' as RotateRequest['what'] })).toContain(
    'must be one of intermediates, readers, root (got "roots")',
  );
  expect(await refused({ what: 'intermediates', clusters: ['north'] })).toBe(
    'mesh rot-bad has no cluster north; its clusters: east, west',
  );
  expect(fake.callsOf(name).slice(mark)).toEqual([]);
  expect((await handle.query(statusQuery)).updates ?? []).toEqual([]);

  // The API: a bad body is a 400 from the schema; a good one answers with the update.
  const port = rig.api().port;
  const body = (b: object) => ({ token: TOKEN, type: 'application/json', body: JSON.stringify(b) });
  const bad = await call(port, 'POST', `/v1/meshes/${name}/rotate`, body({ what: 'roots' }));
  expect(bad.status).toBe(400);
  const unknown = await call(port, 'POST', `/v1/meshes/${name}/rotate`, body({ what: 'readers', clusters: ['north'] }));
  expect(unknown.status).toBe(400);
  expect(unknown.json.error.message).toContain('has no cluster north');
  const ok = await call(port, 'POST', `/v1/meshes/${name}/rotate`, body({ what: 'intermediates' }));
  expect(ok.status).toBe(200);
  expect(ok.json).toMatchObject({ name, update: { state: 'applied', rerun: ['cacerts:east', 'cacerts:west'] } });
  const status = await call(port, 'GET', `/v1/meshes/${name}`, { token: TOKEN });
  expect(status.json.trust.intermediates.map((i: { generation: number }) => i.generation)).toEqual([2, 2]);
  // /metrics: each credential's expiry, read from the mesh's status at scrape.
  const metrics = (await call(port, 'GET', '/metrics', { token: TOKEN })).text;
  const notAfter = Date.parse(status.json.trust.intermediates[0].notAfter) / 1000;
  expect(metrics).toContain(
    `meshflow_credential_expiry_timestamp_seconds{mesh="${name}",kind="intermediate",name="east"} ${notAfter}`,
  );
  expect(metrics).toMatch(
    new RegExp(
      `meshflow_credential_expiry_timestamp_seconds\\{mesh="${name}",kind="reader-token",name="east->west"\\} \\d+`,
    ),
  );
  const gone = await call(port, 'POST', '/v1/meshes/nope/rotate', body({ what: 'readers' }));
  expect(gone.status).toBe(404);
  await down(handle);
});

test('a ready mesh rotates an intermediate by itself within trust.rotateBefore of its expiry', async () => {
  const name = 'rot-auto';
  // Intermediates that expire 5 minutes and 4 seconds after they are made, rotated 5 minutes before.
  const handle = await startReady(name, { caValidityMs: 5 * 60_000 + 4000 }, 'trust: { rotateBefore: 5m }\n');
  const s = await statusUntil(handle, (x) => (x.updates ?? []).some((u) => u.state === 'applied'));
  const auto = s.updates!.find((u) => u.state === 'applied')!;
  expect(auto.summary).toBe('rotate intermediates of east, west (due: within trust.rotateBefore, 5m, of expiry)');
  expect(auto.id).toMatch(/^rotate-\d+$/);
  const later = await handle.query(statusQuery);
  expect(Math.min(...Object.values(generations(later)))).toBeGreaterThanOrEqual(2);
  await down(handle);
  await recordHistory(handle, 'v7-rotate-together');
});

test('root: a new root trusted beside the old, intermediates from it, the old dropped after the grace', async () => {
  const name = 'rot-root';
  const handle = await startReady(name);
  const refused = async (req: RotateRequest) =>
    ((await rotate(handle, req).catch((e: unknown) => e)) as WorkflowUpdateFailedError).cause?.message;
  expect(await refused({ what: 'root', clusters: ['east'] })).toBe(
    'a root rotation covers every cluster: drop --cluster',
  );
  expect(await refused({ what: 'root', finish: true })).toBe(
    'mesh rot-root has no root rotation waiting to drop its old root',
  );

  const mark = fake.callsOf(name).length;
  const out = await rotate(handle, { what: 'root', grace: '1h' });
  expect(out.update).toMatchObject({ state: 'applied', rerun: ['cacerts:east', 'cacerts:west'] });
  // Stage by stage: the new root, both trusted everywhere, then the intermediates, then verify.
  const calls = fake.callsOf(name).slice(mark);
  expect([calls[0], calls.slice(1, 3).sort(), calls.slice(3, 5).sort(), calls[5]]).toEqual([
    'add root g2',
    ['trust east root-1+root-2', 'trust west root-1+root-2'],
    ['rotate east g2', 'rotate west g2'],
    'run verify',
  ]);
  const s = await handle.query(statusQuery);
  expect(s.rootRotation).toMatchObject({ from: 1, to: 2, oldRoot: 'root-1', newRoot: 'root-2', stage: 'switched' });
  expect(Date.parse(s.rootRotation!.dropAt!) - Date.now()).toBeGreaterThan(50 * 60_000);
  expect(s.trust!.root).toMatchObject({ fingerprint: 'root-2' });
  expect(await refused({ what: 'root' })).toContain('waits to drop the old root root-1 at');

  const finish = await rotate(handle, { what: 'root', finish: true });
  expect(finish.update).toMatchObject({
    state: 'applied',
    summary: 'rotate root: drop the old root root-1 (requested)',
  });
  expect(
    fake
      .callsOf(name)
      .slice(mark + 6, mark + 9)
      .sort(),
  ).toEqual(['retire roots before g2', 'trust east root-2', 'trust west root-2']);
  expect((await handle.query(statusQuery)).rootRotation).toBeUndefined();

  // Left to itself, the old root is dropped when the grace ends.
  await rotate(handle, { what: 'root', grace: '2s' });
  // The old root leaves status.rootRotation once it is out of every bundle; the update then ends after verify.
  const dropped = await statusUntil(
    handle,
    (x) => x.rootRotation === undefined && /grace ended/.test(x.updates!.at(-1)!.summary) && x.phase === 'ready',
  );
  expect(dropped.updates!.at(-1)).toMatchObject({
    state: 'applied',
    summary: 'rotate root: drop the old root root-2 (its grace ended)',
  });
  expect(fake.callsOf(name)).toContain('retire roots before g3');
  await down(handle);
  await recordHistory(handle, 'v5-rotate-root');
});

test('root, your own: the new one you give trusted beside the old, then signing, then alone', async () => {
  const name = 'rot-byo';
  fake.scripts.set(name, { realistic: true, caValidityMs: 730 * 24 * HOUR, tokenLifetimeMs: 24 * HOUR });
  // As `up` records it: the files' names for messages, the copy in the trust store.
  const parsed = parseMeshSpec(twoClusterYaml(name, 'app: { sample: none }\n'));
  const rootCa = { certFile: '/pki/old.pem', keyFile: '/pki/old.key', stored: 'files/up/root-ca' };
  const spec = { ...parsed, trust: { ...parsed.trust, rootCa } };
  const handle = await rig.env().client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: TASK_QUEUE,
    workflowId: meshWorkflowId(name),
    args: [{ spec }],
  });
  await statusUntil(handle, (s) => s.phase === 'ready');
  const refused = async (req: RotateRequest) =>
    ((await rotate(handle, req).catch((e: unknown) => e)) as WorkflowUpdateFailedError).cause?.message;
  const next = { stored: 'files/new/root-ca', certFile: '/pki/new.pem', keyFile: '/pki/new.key' };
  expect(await refused({ what: 'root' })).toBe(
    `mesh ${name} uses your own root CA (trust.rootCa): meshflow does not make one; give the new root with ` +
      `\`meshflow rotate ${name} root --root-cert FILE --root-key FILE [--root-chain FILE]\``,
  );
  expect(await refused({ what: 'intermediates', newRoot: next })).toContain('they are for `rotate rot-byo root`');
  expect(await refused({ what: 'root', newRoot: next, finish: true })).toContain('--finish drops the old root');
  expect(await refused({ what: 'root', newRoot: { stored: '' } })).toContain('newRoot.stored');
  // The same root again: the activity refuses it; nothing changed.
  const same = await rotate(handle, { what: 'root', newRoot: { ...next, certFile: '/pki/old.pem' } });
  expect(same.update.state).toBe('failed');
  expect(same.update.error).toContain('is the root CA mesh rot-byo uses already');
  expect((await handle.query(statusQuery)).rootRotation).toBeUndefined();

  const mark = fake.callsOf(name).length;
  const out = await rotate(handle, { what: 'root', grace: '1h', newRoot: next });
  expect(out.update).toMatchObject({ state: 'applied', rerun: ['cacerts:east', 'cacerts:west'] });
  const calls = fake.callsOf(name).slice(mark);
  expect([calls[0], calls.slice(1, 3).sort(), calls.slice(3, 5).sort(), calls[5]]).toEqual([
    'add user root /pki/new.pem over /pki/old.pem',
    ['trust east fp:/pki/old.pem+fp:/pki/new.pem', 'trust west fp:/pki/old.pem+fp:/pki/new.pem'],
    ['rotate east g2', 'rotate west g2'],
    'run verify',
  ]);
  // The new intermediates are the new root's; the spec names it from now on (the store's copy).
  expect(fake.signers.filter((x) => x.startsWith(`${name} `)).sort()).toEqual([
    `${name} east g2: /pki/new.pem`,
    `${name} west g2: /pki/new.pem`,
  ]);
  expect((await handle.query(specQuery)).trust.rootCa).toEqual(next);
  const s = await handle.query(statusQuery);
  expect(s.rootRotation).toMatchObject({
    oldRoot: expect.any(String),
    newRoot: 'fp:/pki/new.pem',
    stage: 'switched',
    userRoot: { new: next, trusted: ['fp:/pki/old.pem', 'fp:/pki/new.pem'], after: 'fp:/pki/new.pem' },
  });
  expect(await refused({ what: 'root', newRoot: next })).toContain('waits to drop the old root');

  const finish = await rotate(handle, { what: 'root', finish: true });
  expect(finish.update.state).toBe('applied');
  expect(
    fake
      .callsOf(name)
      .slice(mark + 6, mark + 9)
      .sort(),
  ).toEqual(['retire user roots but /pki/new.pem', 'trust east fp:/pki/new.pem', 'trust west fp:/pki/new.pem']);
  expect((await handle.query(statusQuery)).rootRotation).toBeUndefined();
  await down(handle);
  await recordHistory(handle, 'v6-rotate-byo-root');
});
