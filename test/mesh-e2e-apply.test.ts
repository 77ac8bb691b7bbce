// A mesh that lives, end to end on local clusters with the real workflow, activities and istiod:
// a ready two-cluster mesh grows to three (a third network) and verify passes with the new
// cluster's endpoints in every istiod's answer; it shrinks back and no istiod lists the removed
// cluster or hands out its endpoints; an add whose control plane fails (a fault injected after
// the real install ran) leaves the two-cluster mesh ready and verified, and nothing of the third;
// the app moves (v1 and v2 swap clusters) and nothing of the old placement stays.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { applyMesh, meshStatus, startMesh, teardownMesh } from '../src/client';
import { LocalClusters } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';
import type { StepRequest } from '../src/steps/contract';
import type { ApplyResult, MeshStatus } from '../src/workflows/types';
import { tool } from './helpers/env';
import { recordHistory } from './helpers/histories';
import { waitPhase, withRealWorker } from './helpers/mesh';

const MESH = 'live';
const QUEUE = 'e2e-apply';
/** Whether the control plane of cluster3 fails (after the real install has run). */
let failCluster3 = false;
const rig = withRealWorker(QUEUE, MESH, (real) => ({
  ...real,
  // FAULT INJECTION around the real activity: it installs, then reports a failure.
  installControlPlane: async (req: StepRequest) => {
    const out = await real.installControlPlane(req);
    if (failCluster3 && req.step.cluster === 'cluster3')
      throw ApplicationFailure.create({
        type: 'PermanentError',
        message: 'injected fault in the control plane of cluster3',
        nonRetryable: true,
        details: [{ resources: out.resources }],
      });
    return out;
  },
}));

function specOf(clusters: 2 | 3): MeshSpec {
  const spec = {
    ...parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', 'examples', 'two-clusters.yaml'), 'utf8')),
    name: MESH,
  };
  if (clusters === 3) {
    spec.clusters = [...spec.clusters, { ...spec.clusters[1], name: 'cluster3', network: 'network3' }];
    spec.app = { ...spec.app, placement: { ...spec.app.placement, cluster3: ['v2'] } };
  }
  return spec;
}

async function apply(spec: MeshSpec): Promise<ApplyResult> {
  const update = await applyMesh(rig.env().client, spec);
  return update.result();
}

const local = () => new LocalClusters(rig.state(), { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
const mine = () =>
  local()
    .list()
    .filter((c) => c.name.startsWith(`${MESH}-`))
    .map((c) => c.name.slice(MESH.length + 1))
    .sort();

/** What each primary's istiod lists in /debug/clusterz. */
async function clusterz(s: MeshStatus): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const st of s.steps.filter((x) => x.kind === 'control-plane' && x.outputs?.istiodDebug)) {
    const r = await fetch(`${st.outputs!.istiodDebug}/debug/clusterz`);
    out[st.cluster!] = ((await r.json()) as Array<{ id: string }>).map((e) => e.id).sort();
  }
  return out;
}

const failedChecks = (checks: MeshStatus['checks']) =>
  checks.filter((c) => c.status === 'failed').map((c) => `${c.name}/${c.cluster ?? ''}: ${c.detail}`);

test('two clusters grow to three and shrink back to two; a failing add leaves the two as they were', async () => {
  const handle = await startMesh(rig.env().client, specOf(2), QUEUE);
  const ready = await waitPhase(rig.env().client, MESH, ['ready', 'failed', 'deleted'], 240_000);
  expect(ready.phase).toBe('ready');

  // Grow: cluster3 on network3 joins; nothing of cluster1 or cluster2 is made again.
  const grown = await apply(specOf(3));
  expect({ state: grown.update.state, error: grown.update.error }).toEqual({ state: 'applied' });
  expect(failedChecks(grown.checks)).toEqual([]);
  expect(grown.update.added).toEqual(expect.arrayContaining(['create-cluster:cluster3', 'link:cluster3->cluster1']));
  expect(grown.update.added.filter((id) => !id.includes('cluster3'))).toEqual([]);
  expect(mine()).toEqual(['cluster1', 'cluster2', 'cluster3']);
  let s = await meshStatus(rig.env().client, MESH);
  expect(await clusterz(s)).toEqual({
    cluster1: ['cluster1', 'cluster2', 'cluster3'],
    cluster2: ['cluster1', 'cluster2', 'cluster3'],
    cluster3: ['cluster1', 'cluster2', 'cluster3'],
  });
  // Every istiod hands out network3's gateway for helloworld (v2 runs in cluster3 too).
  const xds = grown.checks.filter((c) => c.name === 'cross-network-endpoints');
  expect(xds.map((c) => [c.cluster, c.status])).toEqual([
    ['cluster1', 'passed'],
    ['cluster2', 'passed'],
    ['cluster3', 'passed'],
  ]);
  for (const c of xds.filter((x) => x.cluster !== 'cluster3')) expect(c.detail).toContain('network3 gateway');
  expect(grown.checks.find((c) => c.name === 'discovery' && c.cluster === 'cluster1')?.detail).toMatch(/cluster3 \d/);

  // Shrink: cluster3 leaves; no istiod lists it or hands out its endpoints, and it is gone.
  const shrunk = await apply(specOf(2));
  expect(shrunk.update.state).toBe('applied');
  expect(failedChecks(shrunk.checks)).toEqual([]);
  expect(shrunk.update.forgotten).toEqual([
    expect.objectContaining({ cluster: 'cluster3', afterMs: expect.any(Number) }),
  ]);
  expect(shrunk.update.forgotten![0].detail).toMatch(/no istiod of cluster1, cluster2 knows cluster3/);
  s = await meshStatus(rig.env().client, MESH);
  expect(await clusterz(s)).toEqual({ cluster1: ['cluster1', 'cluster2'], cluster2: ['cluster1', 'cluster2'] });
  expect(mine()).toEqual(['cluster1', 'cluster2']);
  expect(JSON.stringify(s.ledger)).not.toContain('cluster3');

  // A failing add: cluster3's control plane is installed, then fails; everything of cluster3 is undone.
  failCluster3 = true;
  const failed = await apply(specOf(3));
  expect(failed.update.state).toBe('rolled-back');
  expect(failed.update.error).toMatch(/injected fault in the control plane of cluster3/);
  expect(failed.clusters).toEqual(['cluster1', 'cluster2']);
  expect(failedChecks(failed.checks)).toEqual([]);
  expect(mine()).toEqual(['cluster1', 'cluster2']);
  s = await meshStatus(rig.env().client, MESH);
  expect(s.phase).toBe('ready');
  expect(await clusterz(s)).toEqual({ cluster1: ['cluster1', 'cluster2'], cluster2: ['cluster1', 'cluster2'] });
  expect(JSON.stringify(s.ledger)).not.toContain('cluster3');
  expect(s.leftBehind).toEqual([]);

  // The app moves: v1 and v2 swap clusters; each deploy runs again and what it no longer applies is deleted.
  failCluster3 = false;
  const swapped = specOf(2);
  swapped.app = { ...swapped.app, placement: { cluster1: ['v2'], cluster2: ['v1'] } };
  const moved = await apply(swapped);
  expect(moved.update.state).toBe('applied');
  expect([...moved.update.rerun].sort()).toEqual(['deploy-app:cluster1', 'deploy-app:cluster2']);
  expect(moved.update.added).toEqual([]);
  expect(failedChecks(moved.checks)).toEqual([]);
  for (const [cluster, want] of [
    ['cluster1', ['helloworld-v2']],
    ['cluster2', ['helloworld-v1']],
  ] as const) {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(local().get(`${MESH}-${cluster}`)!.kubeconfig);
    const items = (await kc.makeApiClient(k8s.AppsV1Api).listNamespacedDeployment({ namespace: 'sample' })).items;
    expect(
      items
        .map((d) => d.metadata!.name!)
        .filter((n) => n.startsWith('helloworld'))
        .sort(),
    ).toEqual(want);
  }

  await teardownMesh(rig.env().client, MESH);
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expect(final.ledger).toEqual([]);
  expect(mine()).toEqual([]);
  await recordHistory(handle, 'v3-e2e-apply');
}, 600_000);

test('a primary-remote mesh gains a remote: its istiod serves it, every check passes', async () => {
  const name = 'hub-live';
  const full = {
    ...parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', 'examples', 'primary-remote.yaml'), 'utf8')),
    name,
  };
  const small: MeshSpec = {
    ...full,
    clusters: full.clusters.filter((c) => c.name !== 'cluster3'),
    app: { ...full.app, placement: { cluster1: ['v1'], cluster2: ['v2'] } },
  };
  const handle = await startMesh(rig.env().client, small, QUEUE);
  try {
    expect((await waitPhase(rig.env().client, name, ['ready', 'failed', 'deleted'], 240_000)).phase).toBe('ready');
    const grown = await (await applyMesh(rig.env().client, full)).result();
    expect(grown.update.state).toBe('applied');
    expect(failedChecks(grown.checks)).toEqual([]);
    // A remote is linked to its primary only, and its control plane is the primary's istiod.
    expect(grown.update.added.filter((id) => id.startsWith('link:'))).toEqual(['link:cluster3->cluster1']);
    expect(grown.checks.find((c) => c.name === 'discovery')?.detail).toMatch(/reads cluster1, cluster2, cluster3/);
    expect(await clusterz(await meshStatus(rig.env().client, name))).toEqual({
      cluster1: ['cluster1', 'cluster2', 'cluster3'],
    });
  } finally {
    await teardownMesh(rig.env().client, name);
  }
  const final = await handle.result();
  expect(final.ledger).toEqual([]);
}, 400_000);
