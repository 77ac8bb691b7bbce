// End to end on the Temporal dev server and local clusters, for the classic topologies (two
// clusters on two networks, three clusters on two networks, primary-remote): the real workflow
// and activities (istioctl, API servers) reach ready with every control-plane check passing, and
// teardown leaves no cluster, CA file or process behind and no secret in history.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { meshStatus, startMesh, teardownMesh } from '../src/client';
import { createWorker } from '../src/worker';
import { linkPairs } from '../src/plan/plan';
import { parseMeshSpec } from '../src/spec/load';
import { sleep } from '../src/util/net';
import { LocalClusters } from '../src/local/clusters';
import type { MeshStatus } from '../src/workflows/types';
import { scratchDir, tool } from './helpers/env';
import { realDeps } from './helpers/mesh';
import { devServer } from './helpers/temporal';

let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
let state: string;

beforeAll(async () => {
  env = await devServer();
  state = scratchDir('e2e');
  worker = await createWorker(env.nativeConnection, 'default', realDeps(state), 'e2e');
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
});

async function waitPhase(mesh: string, phases: string[], timeoutMs = 150_000): Promise<MeshStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await meshStatus(env.client, mesh);
    if (phases.includes(s.phase)) return s;
    if (Date.now() > deadline) throw new Error(`mesh ${mesh} stuck in ${s.phase}: ${JSON.stringify(s.steps.filter((x) => x.state !== 'done'))}`);
    await sleep(500);
  }
}

test.each([
  ['two-clusters.yaml', 'e2e-two'],
  ['three-clusters.yaml', 'e2e-three'],
  ['primary-remote.yaml', 'e2e-pr'],
])('%s on local clusters reaches ready with every control-plane check passing, and down leaves nothing behind', async (example, mesh) => {
  const spec = { ...parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', 'examples', example), 'utf8')), name: mesh };
  const handle = await startMesh(env.client, spec, 'e2e');
  const ready = await waitPhase(mesh, ['ready', 'failed', 'deleted']);
  expect(ready.error).toBeUndefined();
  expect(ready.phase).toBe('ready');
  expect(ready.steps.every((s) => s.state === 'done')).toBe(true);
  const controlPlane = ready.checks.filter((c) => c.name !== 'traffic');
  expect(controlPlane.filter((c) => c.status !== 'passed')).toEqual([]);
  expect(new Set(controlPlane.map((c) => c.name))).toEqual(new Set(['cacerts', 'same-root', 'network-label', 'eastwest-address', 'cross-network-gateway', 'remote-secret', 'istiod-available']));
  expect(ready.checks.filter((c) => c.name === 'traffic').map((c) => c.status)).toEqual(spec.clusters.map(() => 'not-supported'));
  // Every ordered pair the topology needs has a working remote secret.
  expect(controlPlane.filter((c) => c.name === 'remote-secret')).toHaveLength(linkPairs(spec).length);

  const local = new LocalClusters(state, { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
  const mine = local.list().filter((c) => c.name.startsWith(`${mesh}-`));
  expect(mine.map((c) => c.name).sort()).toEqual(spec.clusters.map((c) => `${mesh}-${c.name}`).sort());
  expect(new Set(mine.map((c) => c.index)).size).toBe(spec.clusters.length); // each its own load balancer pool
  const [source, target] = linkPairs(spec)[0];
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(local.get(`${mesh}-${target}`)!.kubeconfig);
  const secret = await kc.makeApiClient(k8s.CoreV1Api).readNamespacedSecret({ name: `istio-remote-secret-${source}`, namespace: 'istio-system' });
  expect(secret.metadata?.annotations?.['networking.istio.io/cluster']).toBe(source);
  if (spec.istio.topology === 'primary-remote') {
    const remote = spec.clusters.find((c) => c.role === 'remote')!;
    const rkc = new k8s.KubeConfig();
    rkc.loadFromFile(local.get(`${mesh}-${remote.name}`)!.kubeconfig);
    const ns = await rkc.makeApiClient(k8s.CoreV1Api).readNamespace({ name: 'istio-system' });
    expect(ns.metadata?.annotations?.['topology.istio.io/controlPlaneClusters']).toBe(remote.primary);
  }

  await teardownMesh(env.client, mesh);
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expect(final.leftBehind).toEqual([]);
  expect(final.ledger).toEqual([]);
  expect(local.list().filter((c) => c.name.startsWith(`${mesh}-`))).toEqual([]);
  expect(fs.existsSync(path.join(state, 'meshes', mesh, 'ca'))).toBe(false);

  // Secrets never entered history: decode every payload and look for keys, tokens, kubeconfigs.
  const history = JSON.parse(historyToJSON(await handle.fetchHistory()));
  const texts: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'data' && typeof x === 'string') texts.push(Buffer.from(x, 'base64').toString());
        else walk(x);
      }
    }
  };
  walk(history);
  const all = texts.join('\n');
  expect(all).toContain('"phase":"deleted"'); // the payloads were decoded
  expect(all).not.toMatch(/PRIVATE KEY/);
  expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./); // a JWT
  expect(all).not.toMatch(/client-key-data|certificate-authority-data|"token"/);

  const leftover = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(state);
    } catch {
      return false;
    }
  });
  expect(leftover.map((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').slice(0, 2).join(' '))).toEqual([]);
});
