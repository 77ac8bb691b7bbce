// Istio upgraded on a real primary-remote mesh (three local clusters, the real istiods of both
// pinned builds): the remotes go in their primary's wave, their injection webhooks move to the
// primary's new istiod, every sample pod of the three clusters comes back with the new revision's
// proxy, and the new istiod of the primary reads every cluster; nothing of the old revision stays.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { meshStatus, startMesh, startUpgrade, teardownMesh } from '../src/client';
import { LocalClusters } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';
import { tool, until } from './helpers/env';
import { recordHistory } from './helpers/histories';
import { waitPhase, withRealWorker } from './helpers/mesh';

const MESH = 'upgrade-hub';
const CLUSTERS = ['cluster1', 'cluster2', 'cluster3'];
const rig = withRealWorker('e2e-upgrade-remote', MESH);

const spec = (): MeshSpec => {
  const s = parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', 'examples', 'primary-remote.yaml'), 'utf8'));
  return { ...s, name: MESH, istio: { ...s.istio, version: '1.30.8' }, drift: { every: 'off', repair: true } };
};
const local = () => new LocalClusters(rig.state(), { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
const kc = (cluster: string) => {
  const k = new k8s.KubeConfig();
  k.loadFromFile(local().get(`${MESH}-${cluster}`)!.kubeconfig);
  return k;
};
const podRevisions = async (cluster: string) => {
  const pods = await kc(cluster).makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace: 'sample' });
  return [
    ...new Set(
      pods.items
        .filter((p) => !p.metadata?.deletionTimestamp)
        .map((p) => JSON.parse(p.metadata?.annotations?.['sidecar.istio.io/status'] ?? '{}').revision as string),
    ),
  ];
};

test('a primary-remote mesh upgrades in one wave: the remotes follow their primary', async () => {
  const handle = await startMesh(rig.env().client, spec(), 'e2e-upgrade-remote');
  expect((await waitPhase(rig.env().client, MESH, ['ready', 'failed', 'deleted'], 300_000)).phase).toBe('ready');
  for (const c of CLUSTERS) expect(await podRevisions(c)).toEqual(['default']);

  const id = await startUpgrade(rig.env().client, MESH, { to: '1.31.4' });
  const running = await meshStatus(rig.env().client, MESH);
  expect(running.upgrade?.waves).toEqual([['cluster1', 'cluster2', 'cluster3']]);
  const done = await until(
    'the upgrade ended',
    async () => {
      const u = (await meshStatus(rig.env().client, MESH)).updates?.find((x) => x.id === id);
      return u?.state !== 'running' ? u : undefined;
    },
    300_000,
  );
  expect([done.state, done.error]).toEqual(['applied', undefined]);
  const s = await meshStatus(rig.env().client, MESH);
  expect(s.checks.filter((c) => c.status === 'failed')).toEqual([]);
  for (const c of CLUSTERS) expect(await podRevisions(c)).toEqual(['1-31-4']);

  // The remotes' injection goes to the primary's istiod of the new revision; they run no istiod.
  const https = (await local().istiodPorts(`${MESH}-cluster1`, '1-31-4')).https;
  for (const remote of ['cluster2', 'cluster3']) {
    const hooks = await kc(remote).makeApiClient(k8s.AdmissionregistrationV1Api).listMutatingWebhookConfiguration();
    expect(hooks.items.map((h) => h.metadata?.name).sort()).toEqual([
      'istio-revision-tag-default',
      'istio-sidecar-injector-1-31-4',
    ]);
    const tag = hooks.items.find((h) => h.metadata?.name === 'istio-revision-tag-default')!;
    for (const w of tag.webhooks ?? [])
      expect(w.clientConfig.url).toBe(
        `https://127.0.0.1:${https}/inject/cluster/${remote}/net/${
          spec().clusters.find((c) => c.name === remote)!.network
        }`,
      );
    const deployments = await kc(remote)
      .makeApiClient(k8s.AppsV1Api)
      .listNamespacedDeployment({ namespace: 'istio-system' });
    expect(deployments.items.filter((d) => d.metadata?.name?.startsWith('istiod'))).toEqual([]);
  }
  const debug = local().istiod(`${MESH}-cluster1`)!.debug;
  const clusterz = (await (await fetch(`${debug}/debug/clusterz`)).json()) as Array<{ id: string }>;
  expect(clusterz.map((c) => c.id).sort()).toEqual(CLUSTERS);
  // The old istiod is gone: only the new revision's runs for the primary.
  const dir = path.join(rig.state(), 'local', 'clusters', `${MESH}-cluster1`);
  expect(fs.readdirSync(dir).filter((f) => /^istiod.*\.pid$/.test(f))).toEqual(['istiod-1-31-4.pid']);

  await teardownMesh(rig.env().client, MESH);
  const final = await handle.result();
  expect([final.phase, final.leftBehind, final.ledger]).toEqual(['deleted', [], []]);
  await recordHistory(handle, 'v6-e2e-upgrade-primary-remote');
}, 900_000);
