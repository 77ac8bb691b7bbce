// PUT /v1/meshes/{name} and POST /v1/meshes/{name}/plan: a running mesh changed through the API, as
// `meshflow apply` changes it. Refused changes are 400s naming field and line, the change survives
// continue-as-new (the dev server suggests it early here, after 40 events), an unknown mesh is a
// 404. Real mesh workflow on the dev server, TEST DOUBLE activities.
import { sleep } from '../src/util/net';
import { specQuery } from '../src/workflows/definitions';
import { call } from './helpers/api-http';
import { FakeActivities, twoClusterYaml } from './helpers/fake-activities';
import { withFakeApi } from './helpers/fake-worker';

const TOKEN = 'apply-token-0123456789';
const fake = new FakeActivities();
const rig = withFakeApi(
  fake,
  { tokens: [{ name: 'ci', token: TOKEN }] },
  { 'limit.historyCount.suggestContinueAsNew': 40 },
);

const as = { token: TOKEN, type: 'text/yaml' };
const two = (name: string) => twoClusterYaml(name, 'app: { sample: none }\n');
const three = (name: string) =>
  two(name).replace(
    '  - { name: west, provider: local, network: n2 }\n',
    '  - { name: west, provider: local, network: n2 }\n  - { name: south, provider: local, network: n3 }\n',
  );

async function ready(name: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const s = await call(rig.api().port, 'GET', `/v1/meshes/${name}`, { token: TOKEN });
    if (s.json.phase === 'ready') return;
    await sleep(50);
  }
  throw new Error(`mesh ${name} did not become ready`);
}

test('a mesh grows and shrinks through PUT; plan says what would change; refusals name field and line', async () => {
  expect((await call(rig.api().port, 'POST', '/v1/meshes', { ...as, body: two('grow') })).status).toBe(202);
  await ready('grow');

  const plan = await call(rig.api().port, 'POST', '/v1/meshes/grow/plan', { ...as, body: three('grow') });
  expect(plan.status).toBe(200);
  expect(plan.json).toMatchObject({ name: 'grow', empty: false, addedClusters: ['south'], removedClusters: [] });
  expect(plan.json.text).toContain('+ create-cluster:south');
  expect(plan.json.added.map((s: { id: string }) => s.id)).toContain('link:south->east');

  // west moves to another network: refused at its line (west stands on line 6 of the YAML).
  const moved = await call(rig.api().port, 'PUT', '/v1/meshes/grow', {
    ...as,
    body: two('grow').replace('network: n2', 'network: n9'),
  });
  expect(moved.status).toBe(400);
  expect(moved.json.error.code).toBe('change_refused');
  expect(moved.json.error.problems).toEqual([
    expect.objectContaining({
      path: 'clusters[1].network',
      line: 6,
      message: expect.stringContaining('--replace west'),
    }),
  ]);
  const renamed = await call(rig.api().port, 'PUT', '/v1/meshes/grow', { ...as, body: two('other') });
  expect(renamed.status).toBe(400);
  expect(renamed.json.error.problems[0]).toMatchObject({ path: 'name', line: 3 });
  expect((await call(rig.api().port, 'PUT', '/v1/meshes/nosuch', { ...as, body: two('nosuch') })).status).toBe(404);
  const unknown = await call(rig.api().port, 'PUT', '/v1/meshes/grow?replace=nosuch', { ...as, body: two('grow') });
  expect(unknown.status).toBe(400);
  expect(unknown.json.error.message).toMatch(/--replace nosuch: the running mesh has no cluster nosuch/);

  const grown = await call(rig.api().port, 'PUT', '/v1/meshes/grow', { ...as, body: three('grow') });
  expect(grown.status).toBe(200);
  expect(grown.json).toMatchObject({ name: 'grow', phase: 'ready', clusters: ['east', 'west', 'south'] });
  expect(grown.json.update).toMatchObject({ state: 'applied', summary: expect.stringMatching(/^add south/) });

  // Continue-as-new carries the new spec: the next run answers with three clusters, and shrinks from there.
  const handle = rig.env().client.workflow.getHandle('mesh/grow');
  const first = (await handle.describe()).runId;
  for (let i = 0; i < 100 && (await handle.describe()).runId === first; i++) {
    await call(rig.api().port, 'POST', '/v1/meshes/grow/extend', {
      token: TOKEN,
      body: '{"by":"1m"}',
      type: 'application/json',
    });
    await sleep(50);
  }
  expect((await handle.describe()).runId).not.toBe(first);
  expect((await handle.query(specQuery)).clusters.map((c) => c.name)).toEqual(['east', 'west', 'south']);
  const shrunk = await call(rig.api().port, 'PUT', '/v1/meshes/grow', { ...as, body: two('grow') });
  expect(shrunk.status).toBe(200);
  expect(shrunk.json.clusters).toEqual(['east', 'west']);
  expect(fake.undosOf('grow')).toContain('create-cluster:south');
  expect((await call(rig.api().port, 'GET', '/v1/meshes/grow', { token: TOKEN })).json.updates).toHaveLength(2);

  expect((await call(rig.api().port, 'DELETE', '/v1/meshes/grow', { token: TOKEN })).status).toBe(202);
});
