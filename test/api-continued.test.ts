// A mesh the API started keeps its creator across continue-as-new (the dev server suggests it
// early here, after 40 events): the new run's memo and MeshCreatedBy still name the token, the
// status still says createdBy, and the token's open-mesh count still holds it. Real mesh workflow,
// TEST DOUBLE activities.
import { MESH_SEARCH_ATTRIBUTES } from '../src/temporal/search-attributes';
import { sleep } from '../src/util/net';
import { call } from './helpers/api-http';
import { FakeActivities, twoClusterYaml } from './helpers/fake-activities';
import { withFakeApi } from './helpers/fake-worker';

const TOKEN = 'continued-token-0123456789';
const rig = withFakeApi(
  new FakeActivities(),
  { tokens: [{ name: 'ci', token: TOKEN }], limits: { openMeshes: 1 } },
  { 'limit.historyCount.suggestContinueAsNew': 40 },
);

const as = { token: TOKEN };

test('after continue-as-new the run still names its creator and still counts against its quota', async () => {
  const created = await call(rig.api().port, 'POST', '/v1/meshes', {
    ...as,
    body: twoClusterYaml('cont'),
    type: 'text/yaml',
  });
  expect(created.status).toBe(202);
  const handle = rig.env().client.workflow.getHandle('mesh/cont');
  for (let i = 0; i < 100 && (await handle.describe()).runId === created.json.runId; i++) {
    await call(rig.api().port, 'POST', '/v1/meshes/cont/extend', {
      ...as,
      body: '{"by":"1m"}',
      type: 'application/json',
    });
    await sleep(50);
  }
  const latest = await handle.describe();
  expect(latest.runId).not.toBe(created.json.runId);
  expect(latest.memo?.createdBy).toBe('ci');
  expect(latest.typedSearchAttributes.get(MESH_SEARCH_ATTRIBUTES.createdBy)).toBe('ci');
  expect((await call(rig.api().port, 'GET', '/v1/meshes/cont', as)).json.createdBy).toBe('ci');
  const second = await call(rig.api().port, 'POST', '/v1/meshes', {
    ...as,
    body: twoClusterYaml('cont2'),
    type: 'text/yaml',
  });
  expect(second.status).toBe(429);
  await call(rig.api().port, 'DELETE', '/v1/meshes/cont', as);
});
