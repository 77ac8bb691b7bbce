// A rig for meshes that any worker runs: its own dev server, the GKE emulator, a management
// cluster whose namespace `meshflow-trust` is the Kubernetes trust store, and `meshflow worker`
// processes (each its own host id and state directory, all with that store) that can be
// SIGKILLed for good. Used by the bench (section 10) and chaos (the takeover row).
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { GKE_COMPUTE_EMULATOR_HOST, GKE_EMULATOR_HOST } from '../gke/clients';
import { GkeEmulator } from '../emulators/gke/emulator';
import { LocalClusters } from '../local/clusters';
import { localTools } from '../local/tools';
import { packageRoot } from '../paths';
import { parseMeshSpec } from '../spec/load';
import type { MeshSpec } from '../spec/schema';
import { DEV_SERVER_ARGS } from '../temporal/connection';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import { sleep } from '../util/net';
import { TASK_QUEUE } from '../workflows/definitions';

export const STORE_NAMESPACE = 'meshflow-trust';

export interface RigWorker {
  host: string;
  proc: ChildProcess;
  state: string;
}

export class SharedStoreRig {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-shared-store-'));
  env?: TestWorkflowEnvironment;
  emulator?: GkeEmulator;
  private management?: LocalClusters;
  private storeKubeconfig = '';
  private endpoints = { grpc: '', compute: '' };
  readonly workers: RigWorker[] = [];

  /** `latency`: the emulator's share of GKE's durations (0.05: a create takes about 15 s). */
  constructor(
    private readonly tools: Record<string, string>,
    private readonly latency = 0.05,
  ) {}

  async start(): Promise<void> {
    this.env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: this.tools.temporal },
        ip: '127.0.0.1',
        ui: false,
        searchAttributes: Object.values(MESH_SEARCH_ATTRIBUTES),
        log: { format: 'pretty', level: 'error' },
        extraArgs: DEV_SERVER_ARGS,
      },
    });
    const local = localTools(this.tools);
    this.emulator = new GkeEmulator({ stateDir: path.join(this.dir, 'emulator'), tools: local, latency: this.latency });
    this.endpoints = await this.emulator.start();
    this.management = new LocalClusters(path.join(this.dir, 'management'), local);
    const [mgmt] = await this.management.start(['mgmt']);
    this.storeKubeconfig = mgmt.kubeconfig;
    await this.core().createNamespace({ body: { metadata: { name: STORE_NAMESPACE } } });
  }

  get client() {
    return this.env!.client;
  }

  /** The management cluster's core API (the store's Secrets). */
  core(): k8s.CoreV1Api {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(this.storeKubeconfig);
    return kc.makeApiClient(k8s.CoreV1Api);
  }

  /** Starts a `meshflow worker` process for `host`; its output goes to `<state>/worker.log`. */
  startWorker(host: string, env: NodeJS.ProcessEnv = {}): RigWorker {
    const state = path.join(this.dir, 'hosts', host);
    fs.mkdirSync(state, { recursive: true });
    const log = fs.openSync(path.join(state, 'worker.log'), 'a');
    const proc = spawn(process.execPath, [path.join(packageRoot, 'dist', 'cli', 'main.js'), 'worker'], {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: this.env!.address,
        TEMPORAL_NAMESPACE: 'default',
        MESHFLOW_STATE_DIR: state,
        MESHFLOW_HOST_ID: host,
        MESHFLOW_TRUST_STORE: `kubernetes:${this.storeKubeconfig}/${STORE_NAMESPACE}`,
        [GKE_EMULATOR_HOST]: this.endpoints.grpc,
        [GKE_COMPUTE_EMULATOR_HOST]: this.endpoints.compute,
        ...env,
      },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    const worker = { host, proc, state };
    this.workers.push(worker);
    return worker;
  }

  /** Whether the worker process polls the shared queue. */
  async polls(w: RigWorker): Promise<boolean> {
    const r = await this.client.workflowService.describeTaskQueue({
      namespace: 'default',
      taskQueue: { name: TASK_QUEUE, kind: 1 },
      taskQueueType: 1,
    });
    return (r.pollers ?? []).some((p) => (p.identity ?? '').startsWith(`${w.proc.pid}@`));
  }

  async untilPolling(w: RigWorker, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.polls(w).catch(() => false))) {
      if (Date.now() > deadline || w.proc.exitCode !== null) throw new Error(`worker ${w.host} does not poll`);
      await sleep(250);
    }
  }

  /** SIGKILLs the worker and waits until its process is gone. */
  async kill(w: RigWorker): Promise<void> {
    w.proc.kill('SIGKILL');
    while (w.proc.exitCode === null && w.proc.signalCode === null) await sleep(50);
  }

  /** A one-cluster GKE mesh (app none) in a project of its own. */
  static gkeMesh(name: string): MeshSpec {
    return parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: ${name}
clusters:
  - { name: c1, provider: gke, network: n1, gke: { project: ${name}-project, location: us-central1-a, nodeCount: 1 } }
app: { sample: none }
`);
  }

  /** What a mesh left: its emulated clusters, and its Secret in the store. */
  async leftovers(mesh: string): Promise<string[]> {
    const left = this.emulator!.clusters()
      .filter((c) => c.resourceLabels?.['meshflow-mesh'] === mesh)
      .map((c) => `GKE cluster ${c.name}`);
    const secrets = await this.core().listNamespacedSecret({ namespace: STORE_NAMESPACE });
    for (const s of secrets.items)
      if (s.metadata?.name === `meshflow-trust-${mesh}`) left.push(`Secret ${s.metadata.name}`);
    return left;
  }

  async stop(): Promise<void> {
    for (const w of this.workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    await this.emulator?.reset().finally(() => this.emulator?.stop());
    await this.management?.delete(this.management.list().map((c) => c.name));
    await this.env?.teardown();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
