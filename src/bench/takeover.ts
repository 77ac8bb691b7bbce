// Bench section 10: another worker takes over. A GKE (emulated) mesh whose CAs are in the
// Kubernetes trust store runs on the shared queue; worker A, a `meshflow worker` process, is
// SIGKILLed inside the create and never comes back, and worker B (another host id and state
// directory, started at the kill) finishes it. Measured: kill to B polling, kill to the create's
// retry started on B, kill to ready.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { meshHandle, meshStatus, startMesh, teardownMesh } from '../client';
import { GKE_COMPUTE_EMULATOR_HOST, GKE_EMULATOR_HOST } from '../gke/clients';
import { GkeEmulator } from '../gke/emulator';
import { LocalClusters } from '../local/clusters';
import { localTools } from '../local/tools';
import { parseMeshSpec } from '../spec/load';
import { sleep } from '../util/net';
import { TASK_QUEUE } from '../workflows/definitions';

type Row = Record<string, string | number>;
type Stopper = (stop: () => Promise<unknown>) => () => Promise<void>;

export async function takeoverAfterKill(
  env: TestWorkflowEnvironment,
  tools: Record<string, string>,
  stopOnInterrupt: Stopper,
): Promise<Row[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-takeover-'));
  const emulator = new GkeEmulator({ stateDir: path.join(dir, 'emulator'), tools: localTools(tools), latency: 0.05 });
  const endpoints = await emulator.start();
  const management = new LocalClusters(path.join(dir, 'management'), localTools(tools));
  const workers: ChildProcess[] = [];
  const stop = stopOnInterrupt(async () => {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    await emulator.reset().finally(() => emulator.stop());
    await management.delete(management.list().map((c) => c.name));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  try {
    const [mgmt] = await management.start(['mgmt']);
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(mgmt.kubeconfig);
    await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'meshflow-trust' } } });
    const startWorker = (host: string) => {
      const state = path.join(dir, host);
      fs.mkdirSync(state, { recursive: true });
      const log = fs.openSync(path.join(state, 'worker.log'), 'a');
      const proc = spawn(process.execPath, [path.join(__dirname, '..', 'cli', 'main.js'), 'worker'], {
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: env.address,
          TEMPORAL_NAMESPACE: 'default',
          MESHFLOW_STATE_DIR: state,
          MESHFLOW_HOST_ID: host,
          MESHFLOW_TRUST_STORE: `kubernetes:${mgmt.kubeconfig}/meshflow-trust`,
          [GKE_EMULATOR_HOST]: endpoints.grpc,
          [GKE_COMPUTE_EMULATOR_HOST]: endpoints.compute,
        },
        stdio: ['ignore', log, log],
      });
      fs.closeSync(log);
      workers.push(proc);
      return proc;
    };
    const polls = async (pid: number) =>
      (
        await env.client.workflowService.describeTaskQueue({
          namespace: 'default',
          taskQueue: { name: TASK_QUEUE, kind: 1 },
          taskQueueType: 1,
        })
      ).pollers?.some((p) => (p.identity ?? '').startsWith(`${pid}@`)) ?? false;
    const a = startWorker('bench-a');
    while (!(await polls(a.pid!))) await sleep(250);
    const spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: takeover
clusters:
  - { name: c1, provider: gke, network: n1, gke: { project: takeover-1, location: us-central1-a, nodeCount: 1 } }
app: { sample: none }
`);
    const t0 = Date.now();
    await startMesh(env.client, spec);
    for (;;) {
      const s = await meshStatus(env.client, spec.name).catch(() => undefined);
      const create = s?.steps.find((st) => st.id === 'create-cluster:c1');
      if (create?.state === 'running' && Date.now() - Date.parse(create.startedAt!) > 2000) break;
      await sleep(250);
    }
    a.kill('SIGKILL');
    const killedAt = Date.now();
    const b = startWorker('bench-b');
    let pollingAt = 0;
    let retryAt = 0;
    for (;;) {
      if (!pollingAt && (await polls(b.pid!).catch(() => false))) pollingAt = Date.now();
      if (!retryAt) {
        const desc = await meshHandle(env.client, spec.name).describe();
        const retry = desc.raw.pendingActivities?.find((x) => (x.attempt ?? 0) > 1 && x.state === 2);
        if (retry) retryAt = Date.now();
      }
      const s = await meshStatus(env.client, spec.name).catch(() => undefined);
      if (s && s.phase !== 'provisioning') {
        if (s.phase !== 'ready') throw new Error(`takeover bench: mesh ended ${s.phase}: ${s.error}`);
        break;
      }
      if (Date.now() - t0 > 5 * 60_000) throw new Error('takeover bench: mesh not ready in 5 minutes');
      await sleep(250);
    }
    const readyAt = Date.now();
    const seconds = (t: number) => (t ? ((t - killedAt) / 1000).toFixed(1) : 'not seen');
    await teardownMesh(env.client, spec.name);
    await meshHandle(env.client, spec.name).result();
    return [
      {
        'killed during': 'create-cluster:c1',
        'kill to B polling s': seconds(pollingAt),
        'kill to retry started on B s': seconds(retryAt),
        'kill to ready s': seconds(readyAt),
        'up to ready s': ((readyAt - t0) / 1000).toFixed(1),
        'CreateCluster calls': emulator.calls().CreateCluster ?? 0,
      },
    ];
  } finally {
    await stop();
  }
}
