// A test double of Google Kubernetes Engine that the real Google client libraries talk to over
// their real wire protocols: ClusterManager over gRPC (src/gke/emulator-container.ts) and Compute's
// firewall rules over REST (src/gke/emulator-compute.ts), both on 127.0.0.1. Each GKE cluster is
// played by a local cluster (src/local/clusters.ts) that accepts the emulator's access token as a
// cluster admin. Operations take GKE's durations scaled by `latency`; state.json keeps clusters,
// operations and firewall rules, so a restarted emulator carries on where it stopped.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type LocalCluster, LocalClusters, type LocalTools } from '../../local/clusters';
import { startSimulatedDataPlane } from '../../sim/start';
import { EMULATOR_ACCESS_TOKEN } from '../../gke/clients';
import { setClusterStatus } from './cluster';
import { computeHandler } from './compute';
import { clusterManagerHandlers, clusterManagerMethods, clusterManagerService } from './container';
import {
  ApiError,
  backingPodCidr,
  type EmulatorCore,
  type EmulatorFault,
  type EmulatorState,
  emptyState,
  loadState,
  parseFault,
  type RpcStatus,
  saveState,
  type StoredCluster,
  type StoredComputeOperation,
  type StoredOperation,
  type Timeline,
} from './model';

export type { EmulatorFault } from './model';

export interface GkeEmulatorOptions {
  /** State goes to <stateDir>/gke-emulator/state.json, backing local clusters to <stateDir>/local. */
  stateDir: string;
  tools: LocalTools;
  /** Scale of GKE's real durations (create 300 s, delete 180 s, firewall insert/delete 10 s); default 0.01. */
  latency?: number;
  /** 0 (the default): any free port. */
  grpcPort?: number;
  /** 0 (the default): any free port. */
  computePort?: number;
  log?: (line: string) => void;
}

export interface EmulatedCluster {
  project: string;
  location: string;
  name: string;
  status: string;
  resourceLabels: Record<string, string>;
  /** The local cluster that plays it. */
  localName: string;
  /** `127.0.0.1:<port>` once it runs. */
  endpoint?: string;
  clusterIpv4Cidr: string;
  /** The backing cluster's admin kubeconfig, while the cluster is RUNNING. */
  kubeconfig?: string;
}

export interface EmulatedFirewall {
  project: string;
  name: string;
  network: string;
  sourceRanges: string[];
  targetTags?: string[];
  description?: string;
}

const DEFAULT_LATENCY = 0.01;
/** The share of an operation's time it spends PENDING before RUNNING. */
const PENDING_SHARE = 0.05;
const BACKING_NAME = /^gke-[0-9a-f]{10}$/;

const FAULT_MESSAGES: Record<string, string> = {
  UNAVAILABLE: 'The service is currently unavailable.',
  RESOURCE_EXHAUSTED: 'Quota exceeded for quota metric "Requests" of service "container.googleapis.com".',
  PERMISSION_DENIED: 'The caller does not have permission.',
  DEADLINE_EXCEEDED: 'Deadline exceeded.',
  INVALID_ARGUMENT: 'Request contains an invalid argument.',
  FAILED_PRECONDITION: 'Precondition check failed.',
};

export class GkeEmulator {
  private readonly file: string;
  private readonly pidFile: string;
  private readonly local: LocalClusters;
  private readonly latency: number;
  private readonly log: (line: string) => void;
  private state: EmulatorState = emptyState();
  private loaded = false;
  private faults: Array<{ fault: EmulatorFault; left: number }> = [];
  private counts: Record<string, number> = {};
  /** Aborted by stop() and reset(): operations in progress stop where they are (and resume on start). */
  private run = new AbortController();
  private readonly work = new Set<Promise<void>>();
  private grpcServer?: grpc.Server;
  private httpServer?: http.Server;

  constructor(private readonly opts: GkeEmulatorOptions) {
    this.file = path.join(opts.stateDir, 'gke-emulator', 'state.json');
    this.pidFile = path.join(opts.stateDir, 'gke-emulator', 'emulator.pid');
    this.log = opts.log ?? (() => undefined);
    this.local = new LocalClusters(opts.stateDir, opts.tools, this.log);
    this.latency = opts.latency ?? DEFAULT_LATENCY;
    if (!(this.latency >= 0)) throw new Error(`latency must be a number >= 0, not ${opts.latency}`);
  }

  /** Serves both APIs; loads state.json when there is one and resumes unfinished operations. */
  async start(): Promise<{ grpc: string; compute: string }> {
    if (this.grpcServer) throw new Error('the GKE emulator is already started');
    this.claim();
    this.load();
    this.counts = {};
    this.run = new AbortController();
    const core = this.core();
    const server = new grpc.Server();
    server.addService(clusterManagerService(), clusterManagerHandlers(core, this.log));
    const grpcPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.opts.grpcPort ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err
          ? reject(new Error(`the GKE emulator cannot listen on 127.0.0.1:${this.opts.grpcPort ?? 0}: ${err.message}`))
          : resolve(port),
      ),
    );
    const web = http.createServer(computeHandler(core, this.controls(), this.log));
    try {
      await new Promise<void>((resolve, reject) => {
        web.once('error', reject);
        web.listen(this.opts.computePort ?? 0, '127.0.0.1', () => resolve());
      });
    } catch (err) {
      server.forceShutdown();
      this.release();
      throw new Error(
        `the GKE emulator cannot listen on 127.0.0.1:${this.opts.computePort ?? 0}: ${(err as Error).message}`,
      );
    }
    this.grpcServer = server;
    this.httpServer = web;
    for (const op of this.state.operations) if (op.op.status !== 'DONE') this.drive(op);
    for (const op of this.state.computeOperations) if (op.op.status !== 'DONE') this.driveCompute(op);
    this.revive();
    const computePort = (web.address() as { port: number }).port;
    this.log(`GKE emulator: ClusterManager on 127.0.0.1:${grpcPort}, Compute on 127.0.0.1:${computePort}`);
    return { grpc: `127.0.0.1:${grpcPort}`, compute: `127.0.0.1:${computePort}` };
  }

  /** Closes the servers and pauses operations; state and backing clusters stay (they are the emulated cloud). */
  async stop(): Promise<void> {
    this.run.abort(new Error('the GKE emulator stopped'));
    const server = this.grpcServer;
    const web = this.httpServer;
    this.grpcServer = undefined;
    this.httpServer = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 1000).unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    }
    if (web) {
      const closed = new Promise((resolve) => web.close(resolve));
      web.closeAllConnections();
      await closed;
    }
    await this.settle();
    this.release();
  }

  /** Aims a fault at the next calls of a method (see EmulatorFault). */
  fault(f: EmulatorFault): void {
    const fault = parseFault(f, clusterManagerMethods());
    this.faults.push({ fault, left: fault.times ?? 1 });
  }

  /** Calls per method since start, e.g. { CreateCluster: 1, GetOperation: 7, 'firewalls.insert': 1 }. */
  calls(): Record<string, number> {
    return { ...this.counts };
  }

  clusters(): EmulatedCluster[] {
    return this.state.clusters.map((c) => ({
      project: c.project,
      location: c.location,
      name: c.name,
      status: c.cluster.status,
      resourceLabels: (c.cluster.resourceLabels ?? {}) as Record<string, string>,
      localName: c.localName,
      endpoint: c.cluster.endpoint as string | undefined,
      clusterIpv4Cidr: c.cluster.clusterIpv4Cidr,
      kubeconfig: c.cluster.status === 'RUNNING' ? this.local.get(c.localName)?.kubeconfig : undefined,
    }));
  }

  firewalls(): EmulatedFirewall[] {
    return this.state.firewalls.map((f) => {
      const r = f.resource as { network: string; sourceRanges?: string[]; targetTags?: string[]; description?: string };
      return {
        project: f.project,
        name: f.name,
        network: r.network,
        sourceRanges: r.sourceRanges ?? [],
        ...(r.targetTags ? { targetTags: r.targetTags } : {}),
        ...(r.description ? { description: r.description } : {}),
      };
    });
  }

  /** The local cluster that plays a GKE cluster, once it exists. */
  backing(project: string, location: string, name: string): { localName: string; kubeconfig: string } | undefined {
    const c = this.state.clusters.find((x) => x.project === project && x.location === location && x.name === name);
    const local = c && this.local.get(c.localName);
    return local ? { localName: local.name, kubeconfig: local.kubeconfig } : undefined;
  }

  /** Deletes every cluster (and backing local cluster) and firewall rule: for test cleanup and `--reset`. */
  async reset(): Promise<void> {
    this.claim();
    this.run.abort(new Error('the GKE emulator was reset'));
    await this.settle();
    this.load();
    const names = new Set([
      ...this.state.clusters.map((c) => c.localName),
      ...this.local.list().flatMap((c) => (BACKING_NAME.test(c.name) ? [c.name] : [])),
    ]);
    await this.local.delete([...names]);
    this.state = emptyState();
    this.faults = [];
    this.save();
    this.run = new AbortController();
    if (!this.grpcServer) this.release();
  }

  /** One emulator process per state directory: two would overwrite each other's state.json. */
  private claim(): void {
    fs.mkdirSync(path.dirname(this.pidFile), { recursive: true, mode: 0o700 });
    const holder = fs.existsSync(this.pidFile) ? Number(fs.readFileSync(this.pidFile, 'utf8')) : undefined;
    if (holder && holder !== process.pid && alive(holder)) {
      throw new Error(`another GKE emulator (pid ${holder}) uses ${path.dirname(this.pidFile)}; stop it first`);
    }
    fs.writeFileSync(this.pidFile, String(process.pid));
  }

  private release(): void {
    if (fs.existsSync(this.pidFile) && Number(fs.readFileSync(this.pidFile, 'utf8')) === process.pid) {
      fs.rmSync(this.pidFile, { force: true });
    }
  }

  private load(): void {
    if (this.loaded) return;
    this.state = loadState(this.file);
    this.loaded = true;
  }

  private save(): void {
    saveState(this.file, this.state);
  }

  private async settle(): Promise<void> {
    while (this.work.size) await Promise.allSettled([...this.work]);
  }

  private core(): EmulatorCore {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      get state() {
        return self.state;
      },
      get signal() {
        return self.run.signal;
      },
      enter: (method, authorization, required) => this.enter(method, authorization, required),
      takeFault: (method, kind) => this.takeFault(method, kind),
      timeline: (seconds) => this.timeline(seconds),
      save: () => this.save(),
      drive: (op) => this.drive(op),
      driveCompute: (op) => this.driveCompute(op),
    };
  }

  private controls() {
    return {
      fault: (f: unknown) => this.fault(f as EmulatorFault),
      clusters: () => this.clusters(),
      calls: () => this.calls(),
      firewalls: () => this.firewalls(),
      info: () => ({ stateDir: path.resolve(this.opts.stateDir) }),
    };
  }

  private enter(method: string, authorization: string | undefined, required: boolean): void {
    this.counts[method] = (this.counts[method] ?? 0) + 1;
    if (authorization === undefined ? required : authorization !== `Bearer ${EMULATOR_ACCESS_TOKEN}`) {
      const what = authorization === undefined ? 'is missing required' : 'had invalid';
      throw new ApiError(
        'UNAUTHENTICATED',
        `Request ${what} authentication credentials. ` +
          'Expected OAuth 2 access token, login cookie or other valid authentication credential.',
      );
    }
    const i = this.faults.findIndex((f) => f.fault.method === method && !('kind' in f.fault));
    if (i < 0) return;
    const fault = this.consume(i) as Extract<EmulatorFault, { code: string }>;
    this.log(`fault: ${method} fails with ${fault.code}`);
    throw new ApiError(fault.code, `${FAULT_MESSAGES[fault.code]} (injected by the GKE emulator)`);
  }

  private takeFault(method: string, kind: 'operation-error' | 'lose-answer'): EmulatorFault | undefined {
    const i = this.faults.findIndex((f) => f.fault.method === method && 'kind' in f.fault && f.fault.kind === kind);
    if (i < 0) return undefined;
    this.log(`fault: ${method} gets ${kind}`);
    return this.consume(i);
  }

  private consume(i: number): EmulatorFault {
    const f = this.faults[i];
    if (--f.left <= 0) this.faults.splice(i, 1);
    return f.fault;
  }

  private timeline(seconds: number): Timeline {
    const now = Date.now();
    const total = seconds * 1000 * this.latency;
    return { pendingUntil: now + total * PENDING_SHARE, doneAfter: now + total };
  }

  /** Runs background work until it ends, or until the run it belongs to is aborted. */
  private track(what: string, work: Promise<void>): void {
    const signal = this.run.signal;
    const p = work
      .catch((err: unknown) => {
        if (!signal.aborted) this.log(`${what} failed: ${(err as Error).stack ?? String(err)}`);
      })
      .finally(() => this.work.delete(p));
    this.work.add(p);
  }

  /** Resolves at `time` (epoch ms); rejects when the run is aborted first. */
  private until(time: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason as Error);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      };
      const timer = setTimeout(
        () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        Math.max(0, time - Date.now()),
      ).unref();
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private drive(op: StoredOperation): void {
    this.track(`operation ${op.op.name}`, this.advance(op));
  }

  /**
   * A cluster operation: PENDING, then RUNNING while the backing local cluster is started (create)
   * or deleted (delete), DONE once that is done and GKE's time has passed.
   */
  private async advance(entry: StoredOperation): Promise<void> {
    const signal = this.run.signal;
    await this.until(entry.timeline.pendingUntil, signal);
    if (entry.op.status === 'PENDING') {
      entry.op.status = 'RUNNING';
      this.save();
    }
    const c = this.state.clusters.find(
      (x) => x.project === entry.project && x.location === entry.location && x.name === entry.cluster,
    );
    let failure: RpcStatus | undefined = c
      ? entry.failure
      : { code: grpc.status.NOT_FOUND, message: 'Cluster vanished.' };
    let backing: LocalCluster | undefined;
    if (c && !failure) {
      try {
        if (entry.kind === 'create') backing = await this.startBacking(c);
        else await this.local.delete([c.localName]);
      } catch (err) {
        if (signal.aborted) return;
        failure = { code: grpc.status.INTERNAL, message: `Internal error: ${(err as Error).message}` };
      }
    }
    await this.until(entry.timeline.doneAfter, signal);
    if (c && entry.kind === 'create' && backing && !failure) {
      c.cluster.endpoint = `127.0.0.1:${backing.port}`;
      const ca = fs.readFileSync(backing.pki.caCert).toString('base64');
      c.cluster.masterAuth = { ...(c.cluster.masterAuth as object), clusterCaCertificate: ca };
      setClusterStatus(c, 'RUNNING');
    } else if (c && entry.kind === 'delete' && !failure) {
      this.state.clusters = this.state.clusters.filter((x) => x !== c);
    } else if (c && failure) {
      setClusterStatus(c, 'ERROR', failure.message);
    }
    Object.assign(entry.op, { status: 'DONE', endTime: new Date().toISOString() });
    if (failure) Object.assign(entry.op, { error: failure, statusMessage: failure.message });
    this.save();
    this.log(
      `${entry.op.operationType as string} ${entry.cluster}: DONE${failure ? ` with error: ${failure.message}` : ''}`,
    );
  }

  private async startBacking(c: StoredCluster): Promise<LocalCluster> {
    const [local] = await this.local.start([c.localName], {
      podCidrs: { [c.localName]: backingPodCidr(c.cluster.clusterIpv4Cidr) },
      tokens: { [c.localName]: EMULATOR_ACCESS_TOKEN },
    });
    // GKE gives LoadBalancer Services their addresses itself: so does the emulator.
    startSimulatedDataPlane(local);
    return local;
  }

  /** Starts again the backing clusters of RUNNING clusters whose processes are gone (after a reboot). */
  private revive(): void {
    for (const c of this.state.clusters) {
      if (c.cluster.status !== 'RUNNING' || this.local.list().some((l) => l.name === c.localName && l.running))
        continue;
      this.log(`starting the local cluster ${c.localName} of GKE cluster ${c.name} again`);
      this.track(
        `restarting ${c.localName}`,
        this.startBacking(c).then((local) => {
          c.cluster.endpoint = `127.0.0.1:${local.port}`;
          this.save();
        }),
      );
    }
  }

  private driveCompute(op: StoredComputeOperation): void {
    this.track(`operation ${op.op.name}`, this.advanceCompute(op));
  }

  /** A firewall operation: the rule appears (insert) or goes (delete) when it is DONE. */
  private async advanceCompute(entry: StoredComputeOperation): Promise<void> {
    const signal = this.run.signal;
    await this.until(entry.timeline.pendingUntil, signal);
    if (entry.op.status === 'PENDING') {
      entry.op.status = 'RUNNING';
      this.save();
    }
    await this.until(entry.timeline.doneAfter, signal);
    const same = (f: { project: string; name: string }) => f.project === entry.project && f.name === entry.firewall;
    if (entry.op.operationType === 'insert') {
      if (this.state.firewalls.some(same)) {
        const message = `The resource 'projects/${entry.project}/global/firewalls/${entry.firewall}' already exists`;
        entry.op.error = { errors: [{ code: 'RESOURCE_ALREADY_EXISTS', message }] };
        Object.assign(entry.op, { httpErrorStatusCode: 409, httpErrorMessage: 'CONFLICT' });
      } else {
        this.state.firewalls.push({ project: entry.project, name: entry.firewall, resource: entry.resource ?? {} });
      }
    } else {
      this.state.firewalls = this.state.firewalls.filter((f) => !same(f));
    }
    Object.assign(entry.op, { status: 'DONE', progress: 100, endTime: new Date().toISOString() });
    this.save();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
