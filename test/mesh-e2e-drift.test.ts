// Drift on a real two-cluster mesh (local clusters, the real workflow, activities and istiods):
// objects of the mesh broken by hand (a remote secret deleted, istio-system's network label
// changed, the east-west Service deleted, the cross-network Gateway edited) are each found by the
// next check and repaired by the step that owns them, and verify passes again; with
// `repair: false` the same break is reported and left; an object of someone else's put in the
// place of one of ours is reported and never taken over.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { applyMesh, driftMesh, startMesh, teardownMesh, verifyMesh } from '../src/client';
import { LocalClusters } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';
import { tool } from './helpers/env';
import { waitPhase, withRealWorker } from './helpers/mesh';

const MESH = 'drifty';
const QUEUE = 'e2e-drift';
const rig = withRealWorker(QUEUE, MESH);

function spec(repair: boolean): MeshSpec {
  return {
    ...parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', 'examples', 'two-clusters.yaml'), 'utf8')),
    name: MESH,
    // Checks on request only here, so each break is found by the check the test asks for.
    drift: { every: 'off', repair },
  };
}

const kube = (cluster: string) => {
  const local = new LocalClusters(rig.state(), { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(local.get(`${MESH}-${cluster}`)!.kubeconfig);
  return { core: kc.makeApiClient(k8s.CoreV1Api), custom: kc.makeApiClient(k8s.CustomObjectsApi) };
};
const gateway = { group: 'networking.istio.io', version: 'v1', namespace: 'istio-system', plural: 'gateways' };
const byHand = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const failed = async () =>
  (await verifyMesh(rig.env().client, MESH)).filter((c) => c.status === 'failed').map((c) => `${c.name}/${c.cluster}`);

test('drift is repaired by the owning steps; repair: false only reports; a foreign object is left', async () => {
  const handle = await startMesh(rig.env().client, spec(true), QUEUE);
  expect((await waitPhase(rig.env().client, MESH, ['ready', 'failed', 'deleted'], 240_000)).phase).toBe('ready');
  const c1 = kube('cluster1');
  const c2 = kube('cluster2');

  // The baseline is there before anything is broken (the live loop takes it once the mesh is ready:
  // a break made while it is read would become part of it). A first check finds nothing.
  expect((await driftMesh(rig.env().client, MESH)).state).toBe('clean');
  // Four breaks by hand.
  await c1.core.deleteNamespacedSecret({ name: 'istio-remote-secret-cluster2', namespace: 'istio-system' });
  await c2.core.patchNamespace(
    { name: 'istio-system', body: { metadata: { labels: { 'topology.istio.io/network': 'network1' } } } },
    byHand,
  );
  await c2.core.deleteNamespacedService({ name: 'istio-eastwestgateway', namespace: 'istio-system' });
  await c1.custom.patchNamespacedCustomObject(
    {
      ...gateway,
      name: 'cross-network-gateway',
      body: { spec: { servers: [{ port: { number: 15444, name: 'tls', protocol: 'TLS' }, hosts: ['*.local'] }] } },
    },
    byHand,
  );
  const report = await driftMesh(rig.env().client, MESH);
  const found = report.items.map((i) => `${i.kind} ${i.object}`);
  expect(found).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/^missing cluster1\/v1\/Secret\/istio-system\/istio-remote-secret-cluster2$/),
      expect.stringMatching(/^changed cluster2\/v1\/Namespace\/\/istio-system$/),
      expect.stringMatching(/^missing cluster2\/v1\/Service\/istio-system\/istio-eastwestgateway$/),
      expect.stringMatching(
        /^changed cluster1\/networking.istio.io\/v1\/Gateway\/istio-system\/cross-network-gateway$/,
      ),
    ]),
  );
  expect(report.state).toBe('repaired');
  expect(report.repaired).toEqual(
    expect.arrayContaining([
      'link:cluster2->cluster1',
      'cacerts:cluster2',
      'eastwest-gateway:cluster2',
      'expose-services:cluster1',
    ]),
  );
  // Repaired: each object as meshflow applied it, and every check passes.
  await c1.core.readNamespacedSecret({ name: 'istio-remote-secret-cluster2', namespace: 'istio-system' });
  expect((await c2.core.readNamespace({ name: 'istio-system' })).metadata?.labels?.['topology.istio.io/network']).toBe(
    'network2',
  );
  await c2.core.readNamespacedService({ name: 'istio-eastwestgateway', namespace: 'istio-system' });
  const gw = (await c1.custom.getNamespacedCustomObject({ ...gateway, name: 'cross-network-gateway' })) as {
    spec: { servers: Array<{ port: { number: number } }> };
  };
  expect(gw.spec.servers[0].port.number).toBe(15443);
  expect(await failed()).toEqual([]);
  // The next check finds nothing.
  expect((await driftMesh(rig.env().client, MESH)).state).toBe('clean');

  // repair: false (an apply that changes only the drift settings): found, reported, left as it is.
  expect((await (await applyMesh(rig.env().client, spec(false))).result()).update.state).toBe('applied');
  await c1.core.deleteNamespacedSecret({ name: 'istio-remote-secret-cluster2', namespace: 'istio-system' });
  const reported = await driftMesh(rig.env().client, MESH);
  expect(reported.state).toBe('drifted');
  expect(reported.repaired).toEqual([]);
  expect(reported.items.map((i) => i.kind)).toEqual(['missing']);
  await expect(
    c1.core.readNamespacedSecret({ name: 'istio-remote-secret-cluster2', namespace: 'istio-system' }),
  ).rejects.toMatchObject({ code: 404 });

  // A foreign object in the place of ours: reported, never taken over; the missing secret is repaired.
  expect((await (await applyMesh(rig.env().client, spec(true))).result()).update.state).toBe('applied');
  await c1.custom.deleteNamespacedCustomObject({ ...gateway, name: 'cross-network-gateway' });
  await c1.custom.createNamespacedCustomObject({
    ...gateway,
    body: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: { name: 'cross-network-gateway', namespace: 'istio-system', labels: { owner: 'someone-else' } },
      spec: { selector: { istio: 'eastwestgateway' }, servers: [] },
    },
  });
  const foreign = await driftMesh(rig.env().client, MESH);
  expect(foreign.items.map((i) => `${i.kind} ${i.object.split('/').at(-1)}`).sort()).toEqual([
    'foreign cross-network-gateway',
    'missing istio-remote-secret-cluster2',
  ]);
  expect(foreign.repaired).toEqual(['link:cluster2->cluster1']);
  expect(foreign.state).toBe('unrepaired');
  const theirs = (await c1.custom.getNamespacedCustomObject({ ...gateway, name: 'cross-network-gateway' })) as {
    metadata: { labels: Record<string, string> };
  };
  expect(theirs.metadata.labels).toEqual({ owner: 'someone-else' });
  await c1.core.readNamespacedSecret({ name: 'istio-remote-secret-cluster2', namespace: 'istio-system' });

  await teardownMesh(rig.env().client, MESH);
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expect(final.ledger).toEqual([]);
}, 400_000);
