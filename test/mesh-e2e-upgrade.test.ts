// Istio upgraded on a real two-network mesh (local clusters, the real workflow and activities, the
// real istiods of both pinned builds): canary by revision, one cluster a wave. A wave is approved
// by hand; the new revision's istiod of the first wave is then killed and kept down, so the second
// wave fails its verify: every wave is rolled back and the mesh is ready on the old revision. The
// same upgrade then runs to the end: every sample pod carries the new revision's proxy, the new
// istiods hold every cluster, nothing of the old revision is left, the gateways run the new
// version. Back to the other build (a revision replacing a revision), `down` in the middle of it
// leaves nothing.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { meshStatus, decideUpgrade, startMesh, startUpgrade, teardownMesh } from '../src/client';
import { innermostMessage } from '../src/api/errors';
import { LocalClusters } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';
import type { MeshStatus, UpdateRecord } from '../src/workflows/types';
import { sleep } from '../src/util/net';
import { tool, until } from './helpers/env';
import { recordHistory, historyPayloadText } from './helpers/histories';
import { waitPhase, withRealWorker } from './helpers/mesh';

const MESH = 'upgrader';
const CLUSTERS = ['cluster1', 'cluster2'];
const rig = withRealWorker('e2e-upgrade', MESH);

const spec = (): MeshSpec => {
  const s = parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', 'examples', 'two-clusters.yaml'), 'utf8'));
  return { ...s, name: MESH, istio: { ...s.istio, version: '1.30.8' }, drift: { every: 'off', repair: true } };
};

const local = () => new LocalClusters(rig.state(), { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
const kc = (cluster: string) => {
  const k = new k8s.KubeConfig();
  k.loadFromFile(local().get(`${MESH}-${cluster}`)!.kubeconfig);
  return k;
};
const clusterDir = (cluster: string) => path.join(rig.state(), 'local', 'clusters', `${MESH}-${cluster}`);

/** What a user would look at in a cluster: revisions of the sample pods, istiods, webhooks, gateway images. */
async function look(cluster: string) {
  const core = kc(cluster).makeApiClient(k8s.CoreV1Api);
  const apps = kc(cluster).makeApiClient(k8s.AppsV1Api);
  const admission = kc(cluster).makeApiClient(k8s.AdmissionregistrationV1Api);
  const pods = (await core.listNamespacedPod({ namespace: 'sample' })).items.filter(
    (p) => !p.metadata?.deletionTimestamp,
  );
  const deployments = (await apps.listNamespacedDeployment({ namespace: 'istio-system' })).items;
  const hooks = (await admission.listMutatingWebhookConfiguration()).items;
  return {
    podRevisions: [
      ...new Set(
        pods.map((p) => JSON.parse(p.metadata?.annotations?.['sidecar.istio.io/status'] ?? '{}').revision as string),
      ),
    ],
    proxyImages: [
      ...new Set(pods.map((p) => p.spec!.containers.find((c) => c.name === 'istio-proxy')?.image ?? 'none')),
    ],
    istiods: deployments
      .filter((d) => d.metadata?.labels?.app === 'istiod')
      .map((d) => `${d.metadata!.name}=${d.spec!.template.spec!.containers[0].image}`)
      .sort(),
    gateways: deployments
      .filter((d) => d.metadata?.name?.endsWith('gateway'))
      .map((d) => `${d.metadata!.name}@${d.metadata?.labels?.['istio.io/rev']}`)
      .sort(),
    injectors: hooks.map((h) => h.metadata!.name!).sort(),
    /** Whether the default revision's injector matches anything (an upgrade deactivates it). */
    defaultInjectorActive: hooks
      .find((h) => h.metadata?.name === 'istio-sidecar-injector')
      ?.webhooks?.some((w) => !JSON.stringify(w.namespaceSelector ?? {}).includes('never-match')),
    istiodSelector: (await core.readNamespacedService({ name: 'istiod', namespace: 'istio-system' })).spec?.selector,
    /** The istiod processes meshflow runs for the cluster on this machine. */
    processes: fs
      .readdirSync(clusterDir(cluster))
      .filter((f) => /^istiod(-[a-z0-9-]+)?\.pid$/.test(f))
      .map((f) => f.slice(0, -4))
      .sort(),
  };
}

/** The status, once `check` holds (the upgrade runs on in the workflow). */
const statusWhen = (what: string, check: (s: MeshStatus) => boolean, ms = 300_000) =>
  until(
    what,
    async () => {
      const s = await meshStatus(rig.env().client, MESH);
      return check(s) ? s : undefined;
    },
    ms,
  );

const ended = async (id: string): Promise<UpdateRecord> =>
  (
    await statusWhen(`update ${id} ended`, (s) => s.updates?.find((u) => u.id === id)?.state !== 'running')
  ).updates!.find((u) => u.id === id)!;

test('Istio upgraded by revision in waves: approved, rolled back when a wave fails, then all the way', async () => {
  const handle = await startMesh(rig.env().client, spec(), 'e2e-upgrade');
  expect((await waitPhase(rig.env().client, MESH, ['ready', 'failed', 'deleted'], 240_000)).phase).toBe('ready');
  for (const c of CLUSTERS) {
    const seen = await look(c);
    expect(seen).toMatchObject({
      podRevisions: ['default'],
      proxyImages: ['docker.io/istio/proxyv2:1.30.8'],
      istiods: ['istiod=docker.io/istio/pilot:1.30.8'],
      processes: ['istiod'],
    });
  }

  // Refused before anything changes: a version meshflow does not pin, a remote or unknown wave, the same version.
  const refused = (req: Parameters<typeof startUpgrade>[2]) =>
    startUpgrade(rig.env().client, MESH, req).then(
      () => 'accepted',
      (err: Error) => innermostMessage(err),
    );
  expect(await refused({ to: '1.29.3' })).toMatch(
    /not a version meshflow pins a build of: a patch release of 1\.30, 1\.31/,
  );
  expect(await refused({ to: '1.30.8' })).toMatch(/runs Istio 1\.30\.8 already/);
  expect(await refused({ to: '1.31.4', waves: [['cluster1']] })).toMatch(/every primary must be in a wave: cluster2/);
  expect(await refused({ to: '1.31.4', waves: [['cluster1', 'cluster9'], ['cluster2']] })).toMatch(
    /no cluster cluster9/,
  );

  // 1. Approve each wave: after the first, cluster1 runs the new revision and cluster2 the old one.
  const first = await startUpgrade(rig.env().client, MESH, { to: '1.31.4', approveEach: true });
  const waiting = await statusWhen('the first wave passed', (s) => s.upgrade?.stage === 'awaiting-approval');
  expect(waiting.upgrade).toMatchObject({ waves: [['cluster1'], ['cluster2']], wave: 0, passed: 1 });
  expect(waiting.phase).toBe('updating');
  expect(waiting.conditions?.find((c) => c.type === 'Updating')?.reason).toBe('AwaitingApproval');
  expect(await look('cluster1')).toMatchObject({
    podRevisions: ['1-31-4'],
    proxyImages: ['docker.io/istio/proxyv2:1.31.4'],
    istiods: ['istiod-1-31-4=docker.io/istio/pilot:1.31.4', 'istiod=docker.io/istio/pilot:1.30.8'],
    defaultInjectorActive: false,
    processes: ['istiod', 'istiod-1-31-4'],
  });
  expect(await look('cluster2')).toMatchObject({ podRevisions: ['default'], processes: ['istiod'] });
  expect(waiting.checks.filter((c) => c.status === 'failed')).toEqual([]);
  // The new istiod of cluster1 reads both clusters.
  const debug = local().istiod(`${MESH}-cluster1`, '1-31-4')!.debug;
  const clusterz = (await (await fetch(`${debug}/debug/clusterz`)).json()) as Array<{ id: string }>;
  expect(clusterz.map((c) => c.id).sort()).toEqual(CLUSTERS);

  // 2. Broken on purpose: cluster1's new istiod killed (its supervisor first) and kept down.
  const pidFile = path.join(clusterDir('cluster1'), 'istiod-1-31-4.pid');
  for (const f of [pidFile, `${pidFile}.child`]) process.kill(Number(fs.readFileSync(f, 'utf8').trim()), 'SIGKILL');
  expect(await decideUpgrade(rig.env().client, MESH, 'continue')).toMatch(/wave 2 of 2 starts/);
  const rolled = await ended(first);
  expect(rolled.state).toBe('rolled-back');
  expect(rolled.error).toMatch(/wave 2 \(cluster2\) failed: verify failed: .*cluster1/);
  expect(rolled.error).toMatch(/rolled back: every cluster runs Istio 1\.30\.8 \(revision default\) again/);
  const back = await meshStatus(rig.env().client, MESH);
  expect(back.phase).toBe('ready');
  expect(back.upgrade).toBeUndefined();
  expect(back.checks.filter((c) => c.status === 'failed')).toEqual([]);
  for (const c of CLUSTERS) {
    const seen = await look(c);
    expect(seen).toMatchObject({
      podRevisions: ['default'],
      proxyImages: ['docker.io/istio/proxyv2:1.30.8'],
      istiods: ['istiod=docker.io/istio/pilot:1.30.8'],
      injectors: ['istio-sidecar-injector'],
      defaultInjectorActive: true,
      istiodSelector: { app: 'istiod', istio: 'pilot' },
      processes: ['istiod'],
    });
  }
  expect(back.ledger.filter((l) => l.step.startsWith('upgrade:'))).toEqual([]);
  const specNow = await handle.query('spec');
  expect(specNow).toMatchObject({ istio: { version: '1.30.8' } });

  // 3. The same upgrade, all the way (cluster2 first this time).
  const second = await startUpgrade(rig.env().client, MESH, { to: '1.31.4', waves: [['cluster2'], ['cluster1']] });
  const applied = await ended(second);
  expect([applied.state, applied.error]).toEqual(['applied', undefined]);
  const up = await meshStatus(rig.env().client, MESH);
  expect(up.phase).toBe('ready');
  expect(up.checks.filter((c) => c.status === 'failed')).toEqual([]);
  expect(up.checks.find((c) => c.name === 'injection' && c.cluster === 'cluster1')?.detail).toContain(
    'of revision 1-31-4',
  );
  for (const c of CLUSTERS) {
    expect(await look(c)).toMatchObject({
      podRevisions: ['1-31-4'],
      proxyImages: ['docker.io/istio/proxyv2:1.31.4'],
      istiods: ['istiod-1-31-4=docker.io/istio/pilot:1.31.4'],
      gateways: ['istio-eastwestgateway@1-31-4', 'istio-ingressgateway@1-31-4'],
      injectors: ['istio-revision-tag-default', 'istio-sidecar-injector-1-31-4'],
      istiodSelector: { app: 'istiod', 'istio.io/rev': '1-31-4' },
      processes: ['istiod-1-31-4'],
    });
    // The 1.31 build answers as the serving istiod, and it reads every cluster.
    const e = local().istiod(`${MESH}-${c}`)!;
    expect(e.revision).toBe('1-31-4');
    const ports = await local().istiodPorts(`${MESH}-${c}`, '1-31-4');
    expect(await (await fetch(`http://127.0.0.1:${ports.monitoring}/version`)).text()).toMatch(/^1\.31-/);
  }
  expect(await handle.query('spec')).toMatchObject({ istio: { version: '1.31.4', revision: '1-31-4' } });
  // The ledger holds the new revision as the control-plane steps' (a rerun renders it).
  expect(up.ledger.some((l) => l.step.startsWith('upgrade:'))).toBe(false);
  expect(up.steps.filter((s) => s.kind === 'control-plane').map((s) => s.outputs?.deployments)).toEqual([
    'istio-ingressgateway,istiod-1-31-4',
    'istio-ingressgateway,istiod-1-31-4',
  ]);

  // 4. A revision replacing a revision (back to the 1.30 build), torn down in the middle.
  const third = await startUpgrade(rig.env().client, MESH, { to: '1.30.8' });
  await statusWhen('the third upgrade switching', (s) => s.upgrade?.stage === 'switching' || s.upgrade?.wave === 1);
  await teardownMesh(rig.env().client, MESH);
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expect(final.leftBehind).toEqual([]);
  expect(final.ledger).toEqual([]);
  expect(final.updates?.find((u) => u.id === third)?.state).toBe('cancelled');
  expect(
    local()
      .list()
      .filter((c) => c.name.startsWith(`${MESH}-`)),
  ).toEqual([]);
  await sleep(500);
  const leftover = fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(clusterDir(''));
      } catch {
        return false;
      }
    });
  expect(leftover).toEqual([]);
  const all = await historyPayloadText(handle);
  expect(all).not.toMatch(/PRIVATE KEY/);
  expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./);
  await recordHistory(handle, 'v6-e2e-upgrade');
}, 900_000);
