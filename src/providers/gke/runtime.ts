// GKE clusters through Google's own client (@google-cloud/container): created in the spec's
// project and location, labelled as this mesh's, polled through their Operation with the
// operation's name kept in the step's heartbeat (a retried create resumes polling instead of
// creating again), and deleted only when they carry this mesh's labels. Firewall rules for
// clusters that share a VPC go through @google-cloud/compute. Against meshflow's GKE emulator
// (GKE_EMULATOR_HOST) the same code runs over the same wire protocols.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import YAML from 'yaml';
import type { protos as containerProtos } from '@google-cloud/container';
import type { protos as computeProtos } from '@google-cloud/compute';
import { type GkeClients, gkeClients, gkeEndpoints } from '../../gke/clients';
import { EmulatedIstiod } from '../../emulators/gke/istiod';
import { localTools } from '../../local/tools';
import { gkeClusterName } from '../../spec/names';
import type { ClusterSpec } from '../../spec/schema';
import { ClusterGoneError, NotOursError, PermanentError } from '../../util/errors';
import type { ClusterAccess } from '../../adapters/access';
import { pause } from '../../adapters/kube';
import type { IstiodRunner } from '../../local/istiod-runner';
import type {
  ClusterProvider,
  GarbageSearch,
  NetworkRules,
  PreflightContext,
  ProviderContext,
  ProviderEnv,
} from '../contract';
import { scanGke } from './garbage';
import { GKE_CLUSTER_LABEL, GKE_MANAGED_BY, GKE_MESH_LABEL, firewallName, ruleDescription } from './names';

type Cluster = containerProtos.google.container.v1.ICluster;
type Operation = containerProtos.google.container.v1.IOperation;
type Firewall = computeProtos.google.cloud.compute.v1.IFirewall;

export { GKE_CLUSTER_LABEL, GKE_MANAGED_BY, GKE_MESH_LABEL } from './names';

/** gRPC status codes (google.rpc.Code). */
const Code = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export interface PollPolicy {
  /** The first wait between GetOperation calls. */
  initialMs: number;
  /** Each wait is the previous one times this... */
  factor: number;
  /** ...up to this. */
  maxMs: number;
}

/**
 * GKE takes minutes to create (about 5) and delete (about 3) a cluster: 1 s, growing by 1.5 up
 * to 15 s, asks about 25 times for a 5-minute create and 5 times for a 5-second emulated one.
 */
export const DEFAULT_POLL: PollPolicy = { initialMs: 1000, factor: 1.5, maxMs: 15_000 };

export interface GkeProviderOptions {
  poll?: PollPolicy;
  /** The clients (default: from the environment, made on first use). */
  clients?: GkeClients;
  /**
   * The emulator's clusters run no pods (kwok plays them): meshflow runs their istiod beside them
   * as it does for local clusters. Set only against the emulator.
   */
  istiodRunner?: IstiodRunner;
}

interface ClusterRef {
  project: string;
  location: string;
  name: string;
}

const refOf = (mesh: string, c: ClusterSpec): ClusterRef => ({
  project: c.gke!.project,
  location: c.gke!.location,
  name: gkeClusterName(mesh, c),
});
const parentOf = (r: ClusterRef) => `projects/${r.project}/locations/${r.location}`;
const pathOf = (r: ClusterRef) => `${parentOf(r)}/clusters/${r.name}`;
const opPath = (r: ClusterRef, op: string) => `${parentOf(r)}/operations/${op.split('/').pop()}`;
const describe = (r: ClusterRef) => `GKE cluster ${r.name} (project ${r.project}, location ${r.location})`;

export function grpcCode(err: unknown): number | undefined {
  const c = (err as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
}

/**
 * Compute's REST errors reach the caller as HTTP statuses (gaxios throws before gax maps them, and
 * its body is the message): as the gRPC code they stand for, so one mapping serves both APIs.
 */
function computeError(err: unknown): unknown {
  const e = err as { code?: unknown; status?: unknown; message?: string };
  const status = typeof e.status === 'number' ? e.status : typeof e.code === 'number' ? e.code : undefined;
  if (status === undefined || status < 400) return err;
  const byStatus: Record<number, number> = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    409: Code.ALREADY_EXISTS,
    412: Code.FAILED_PRECONDITION,
    429: Code.RESOURCE_EXHAUSTED,
    503: Code.UNAVAILABLE,
    504: Code.DEADLINE_EXCEEDED,
  };
  let message = e.message ?? '';
  try {
    message = (JSON.parse(message) as { error?: { message?: string } }).error?.message ?? message;
  } catch {
    // not JSON: keep it
  }
  return Object.assign(new Error(message), { code: byStatus[status] ?? (status >= 500 ? Code.UNAVAILABLE : status) });
}

/** A Compute call, its errors as gRPC codes. */
async function compute<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    throw computeError(err);
  }
}

/** The message of a Google API error without the "3 INVALID_ARGUMENT: " prefix gax adds. */
function reason(err: unknown): string {
  const e = err as { details?: unknown; message?: string };
  const details = typeof e.details === 'string' && e.details ? e.details : undefined;
  return (details ?? e.message ?? String(err)).replace(/^\d+ [A-Z_]+: /, '');
}

/**
 * A Google API error as a step failure: what no retry fixes is a PermanentError that says what to
 * do; UNAVAILABLE, DEADLINE_EXCEEDED and anything unknown stay retryable.
 */
export function gkeError(err: unknown, doing: string, project: string): Error {
  const why = reason(err);
  switch (grpcCode(err)) {
    case Code.INVALID_ARGUMENT:
      return new PermanentError(`GKE refused to ${doing}: ${why}. Fix the cluster's gke settings in the spec.`);
    case Code.PERMISSION_DENIED:
      return new PermanentError(
        `GKE refused to ${doing} (permission denied: ${why}). The credentials need roles/container.admin ` +
          `(and roles/compute.securityAdmin for firewall rules) in project ${project}, and the APIs must be on: ` +
          `gcloud services enable container.googleapis.com compute.googleapis.com --project ${project}`,
      );
    case Code.UNAUTHENTICATED:
      return new PermanentError(
        `GKE refused to ${doing}: the credentials are not valid (${why}). ` +
          'Run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key.',
      );
    case Code.RESOURCE_EXHAUSTED:
      return new PermanentError(
        `GKE could not ${doing}: quota exhausted (${why}). Ask for more quota in project ${project} ` +
          '(IAM & Admin > Quotas), or choose a smaller nodeCount or machineType, or another location.',
      );
    case Code.FAILED_PRECONDITION:
      return new PermanentError(`GKE could not ${doing}: ${why}`);
    case Code.NOT_FOUND:
      return new PermanentError(
        `GKE could not ${doing}: ${why}. Check that project ${project} and the location exist.`,
      );
    default:
      return new Error(`GKE could not ${doing} (will retry): ${why}`);
  }
}

/** Against the GKE emulator (GKE_EMULATOR_HOST), meshflow runs the emulated clusters' istiod as it does local ones'. */
export function gkeRuntime(env: ProviderEnv): GkeProvider {
  const endpoints = gkeEndpoints();
  return new GkeProvider(
    env.stateDir,
    // The emulated clusters' istiod needs the local tools (a worker has them; gc's search does not).
    endpoints.emulator && env.tools['pilot-discovery']
      ? { istiodRunner: new EmulatedIstiod(endpoints, localTools(env.tools)) }
      : {},
  );
}

export class GkeProvider implements ClusterProvider {
  private made?: GkeClients;
  private readonly poll: PollPolicy;
  readonly istiodRunner?: IstiodRunner;
  /** GetCluster answers, briefly: access() is asked for the same cluster many times per step. */
  private readonly cache = new Map<string, { cluster: Cluster; at: number }>();
  /** GetOperation calls per cluster path, for the bench. */
  readonly operationCalls = new Map<string, number>();

  constructor(
    private readonly stateDir: string,
    private readonly options: GkeProviderOptions = {},
  ) {
    this.poll = options.poll ?? DEFAULT_POLL;
    this.istiodRunner = options.istiodRunner;
  }

  get clients(): GkeClients {
    this.made ??= this.options.clients ?? gkeClients();
    return this.made;
  }

  async close(): Promise<void> {
    await this.made?.close();
  }

  /** The emulator's clusters are on this machine; GKE's never are. */
  async onThisMachine(): Promise<boolean> {
    return this.clients.emulated;
  }

  /** A VPC firewall rule per mesh network of two or more clusters. */
  readonly networkRules: NetworkRules = {
    ref: (mesh, network, clusters) => ({
      network,
      project: clusters[0].gke!.project,
      name: firewallName(mesh, network),
    }),
    ensure: async (mesh, network, clusters, ctx) => {
      const rule = await this.ensureFirewall(mesh, network, clusters, ctx);
      return { rule: `${rule.project}/${rule.name}`, sourceRanges: rule.sourceRanges.join(',') };
    },
    delete: (mesh, rule, ctx) => this.deleteFirewall(mesh, rule.network, rule.project, ctx),
  };

  /** gc --provider gke --project P: meshflow's clusters (by their labels) and firewall rules in a project. */
  readonly garbage: GarbageSearch = { scope: 'GCP project', scan: (project) => scanGke(this, project) };

  private body(mesh: string, c: ClusterSpec, ref: ClusterRef): Cluster {
    const g = c.gke!;
    return {
      name: ref.name,
      description: `meshflow mesh ${mesh}, cluster ${c.name}`,
      resourceLabels: { [GKE_MANAGED_BY]: 'meshflow', [GKE_MESH_LABEL]: mesh, [GKE_CLUSTER_LABEL]: c.name },
      releaseChannel: { channel: g.releaseChannel },
      network: g.network,
      ...(g.subnetwork ? { subnetwork: g.subnetwork } : {}),
      // VPC-native: pods and services get ranges of the VPC, so a firewall rule can name them.
      ipAllocationPolicy: {
        useIpAliases: true,
        ...(c.podCidr ? { clusterIpv4CidrBlock: c.podCidr } : {}),
        ...(c.serviceCidr ? { servicesIpv4CidrBlock: c.serviceCidr } : {}),
      },
      nodePools: [
        {
          name: 'default-pool',
          initialNodeCount: g.nodeCount,
          config: { machineType: g.machineType, oauthScopes: ['https://www.googleapis.com/auth/cloud-platform'] },
        },
      ],
    };
  }

  private ours(cluster: Cluster, mesh: string): boolean {
    const l = cluster.resourceLabels ?? {};
    return l[GKE_MANAGED_BY] === 'meshflow' && l[GKE_MESH_LABEL] === mesh;
  }

  private async getCluster(ref: ClusterRef): Promise<Cluster | undefined> {
    try {
      const [cluster] = await this.clients.clusters.getCluster({ name: pathOf(ref) });
      this.cache.set(pathOf(ref), { cluster, at: Date.now() });
      return cluster;
    } catch (err) {
      if (grpcCode(err) === Code.NOT_FOUND) return undefined;
      throw gkeError(err, `read ${describe(ref)}`, ref.project);
    }
  }

  /** The unfinished operation on a cluster (one at a time on GKE), if any. */
  private async runningOperation(ref: ClusterRef): Promise<string | undefined> {
    const [list] = await this.clients.clusters
      .listOperations({ parent: parentOf(ref) })
      .catch((err: unknown) => Promise.reject(gkeError(err, `list operations in ${parentOf(ref)}`, ref.project)));
    const op = (list.operations ?? []).find(
      (o) => o.status !== 'DONE' && (o.targetLink ?? '').endsWith(`/clusters/${ref.name}`),
    );
    return op?.name ?? undefined;
  }

  /** Polls an operation to its end (with backoff and heartbeats); its error, if any, is permanent. */
  private async wait(ref: ClusterRef, opName: string, ctx: ProviderContext, doing: string): Promise<Operation> {
    let delay = this.poll.initialMs;
    const name = opPath(ref, opName);
    for (;;) {
      let op: Operation;
      try {
        [op] = await this.clients.clusters.getOperation({ name });
      } catch (err) {
        throw gkeError(err, `read operation ${opName} (${doing})`, ref.project);
      } finally {
        this.operationCalls.set(pathOf(ref), (this.operationCalls.get(pathOf(ref)) ?? 0) + 1);
      }
      ctx.heartbeat({ operation: opName, doing, status: op.status, progress: op.progress?.name ?? undefined });
      if (op.status === 'DONE') {
        if (op.error?.code) {
          throw new PermanentError(
            `GKE could not ${doing}: operation ${opName} failed: ${op.error.message ?? op.statusMessage ?? `code ${op.error.code}`}`,
          );
        }
        return op;
      }
      await pause(delay, ctx.signal);
      delay = Math.min(delay * this.poll.factor, this.poll.maxMs);
    }
  }

  async create(mesh: string, c: ClusterSpec, ctx: ProviderContext): Promise<void> {
    const ref = refOf(mesh, c);
    const doing = `create ${describe(ref)}`;
    const previous = (ctx.previous as { operation?: string; doing?: string } | undefined) ?? {};
    let opName = previous.doing === doing ? previous.operation : undefined;
    if (!opName) {
      try {
        const [op] = await this.clients.clusters.createCluster({
          parent: parentOf(ref),
          cluster: this.body(mesh, c, ref),
        });
        opName = op.name!;
      } catch (err) {
        if (grpcCode(err) !== Code.ALREADY_EXISTS) throw gkeError(err, doing, ref.project);
        // Ours (an earlier attempt whose answer was lost, or a resumed run): adopt it; else refuse.
        const found = await this.getCluster(ref);
        if (!found) throw new Error(`GKE said ${describe(ref)} exists, and then that it does not (will retry)`);
        if (!this.ours(found, mesh)) {
          throw new NotOursError(
            `${describe(ref)} already exists and is not mesh ${mesh}'s (its labels: ${JSON.stringify(found.resourceLabels ?? {})}); ` +
              `meshflow neither takes it over nor deletes it: set clusters[${c.name}].gke.clusterName to another name`,
          );
        }
        if (found.status === 'RUNNING') return;
        if (found.status === 'ERROR' || found.status === 'DEGRADED')
          throw new PermanentError(`${describe(ref)} exists in state ${found.status}: ${found.statusMessage ?? ''}`);
        opName = await this.runningOperation(ref);
        if (!opName) throw new Error(`${describe(ref)} is ${found.status} with no operation running (will retry)`);
      }
    }
    ctx.heartbeat({ operation: opName, doing });
    await this.wait(ref, opName, ctx, doing);
    const cluster = await this.getCluster(ref);
    if (cluster?.status !== 'RUNNING')
      throw new PermanentError(`${describe(ref)} is ${cluster?.status ?? 'gone'} after its create finished`);
  }

  async delete(mesh: string, c: ClusterSpec, ctx: ProviderContext): Promise<void> {
    const ref = refOf(mesh, c);
    const doing = `delete ${describe(ref)}`;
    this.cache.delete(pathOf(ref));
    const previous = (ctx.previous as { operation?: string; doing?: string } | undefined) ?? {};
    if (previous.doing === doing && previous.operation) {
      await this.wait(ref, previous.operation, ctx, doing);
      return this.forget(mesh, c);
    }
    for (;;) {
      const found = await this.getCluster(ref);
      if (!found) return this.forget(mesh, c); // gone already
      if (!this.ours(found, mesh)) {
        throw new NotOursError(
          `${describe(ref)} is not mesh ${mesh}'s (its labels: ${JSON.stringify(found.resourceLabels ?? {})}): left in place`,
        );
      }
      // A create (or another delete) still running: GKE runs one operation at a time; wait it out.
      const running = await this.runningOperation(ref);
      if (running) {
        // How that operation ended does not matter (a failed create leaves a cluster to delete too),
        // but a cancel of this step does: it ends the loop. Looking again waits a poll first.
        await this.wait(ref, running, ctx, `finish the operation running on ${describe(ref)}`).catch((err: unknown) => {
          if (ctx.signal?.aborted) throw err;
        });
        await pause(this.poll.initialMs, ctx.signal);
        continue;
      }
      try {
        const [op] = await this.clients.clusters.deleteCluster({ name: pathOf(ref) });
        ctx.heartbeat({ operation: op.name, doing });
        await this.wait(ref, op.name!, ctx, doing);
        return this.forget(mesh, c);
      } catch (err) {
        if (grpcCode(err) === Code.NOT_FOUND) return this.forget(mesh, c);
        if (grpcCode(err) === Code.FAILED_PRECONDITION) {
          await pause(this.poll.initialMs, ctx.signal); // an operation started meanwhile: look again shortly
          continue;
        }
        throw err instanceof PermanentError ? err : gkeError(err, doing, ref.project);
      }
    }
  }

  /** Removes the kubeconfig meshflow wrote for a deleted cluster (and the mesh's folder once empty). */
  private forget(mesh: string, c: ClusterSpec): void {
    this.cache.delete(pathOf(refOf(mesh, c)));
    const dir = path.join(this.stateDir, 'gke', mesh);
    fs.rmSync(path.join(dir, c.name), { recursive: true, force: true });
    try {
      fs.rmdirSync(dir);
      fs.rmdirSync(path.dirname(dir));
    } catch {
      // not empty: other clusters' kubeconfigs
    }
  }

  /** The cluster as GKE describes it, at most a minute old. */
  async cluster(mesh: string, c: ClusterSpec): Promise<Cluster> {
    const ref = refOf(mesh, c);
    const hit = this.cache.get(pathOf(ref));
    const cluster = hit && Date.now() - hit.at < 60_000 ? hit.cluster : await this.getCluster(ref);
    if (!cluster) throw new ClusterGoneError(`${describe(ref)} of mesh ${mesh} does not exist`);
    return cluster;
  }

  async access(mesh: string, c: ClusterSpec): Promise<ClusterAccess> {
    const ref = refOf(mesh, c);
    const cluster = await this.cluster(mesh, c);
    if (!cluster.endpoint || !cluster.masterAuth?.clusterCaCertificate)
      throw new Error(`${describe(ref)} is ${cluster.status} and has no endpoint yet (will retry)`);
    const server = `https://${cluster.endpoint}`;
    const caData = cluster.masterAuth.clusterCaCertificate;
    const emulated = this.clients.emulated;
    return {
      kubeconfig: this.writeKubeconfig(mesh, c, ref, server, caData, emulated),
      apiServer: c.apiServerAddress ?? server,
      caData,
      token: await this.clients.accessToken(),
      // The emulator's clusters are on this machine, as local clusters are.
      local: emulated,
      ...(this.istiodRunner instanceof EmulatedIstiod ? { istiod: await this.istiodRunner.running(mesh, c) } : {}),
    };
  }

  /**
   * A kubeconfig as `gcloud container clusters get-credentials` writes it (credentials from the
   * gke-gcloud-auth-plugin), for istioctl and for the user; meshflow's own calls carry the token
   * in memory. Against the emulator it holds the emulator's fixed token, which is no secret.
   */
  private writeKubeconfig(
    mesh: string,
    c: ClusterSpec,
    ref: ClusterRef,
    server: string,
    caData: string,
    emulated: boolean,
  ): string {
    const name = `gke_${ref.project}_${ref.location}_${ref.name}`;
    const user = emulated
      ? { token: 'gke-emulator-access-token' }
      : {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1beta1',
            command: 'gke-gcloud-auth-plugin',
            provideClusterInfo: true,
            installHint: 'Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin',
          },
        };
    const doc = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name, cluster: { server, 'certificate-authority-data': caData } }],
      users: [{ name, user }],
      contexts: [{ name, context: { cluster: name, user: name } }],
      'current-context': name,
    };
    const file = path.join(this.stateDir, 'gke', mesh, c.name, 'kubeconfig');
    const text = YAML.stringify(doc);
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text, { mode: 0o600 });
    }
    return file;
  }

  async preflight(mesh: string, c: ClusterSpec, ctx: PreflightContext): Promise<string[]> {
    void ctx;
    const ref = refOf(mesh, c);
    const problems: string[] = [];
    try {
      await this.clients.clusters.getServerConfig({ name: parentOf(ref) });
    } catch (err) {
      const e = gkeError(err, `read the server config of ${parentOf(ref)}`, ref.project);
      if (!(e instanceof PermanentError)) throw e;
      problems.push(e.message);
      return problems;
    }
    const found = await this.getCluster(ref).catch((err: unknown) => {
      problems.push((err as Error).message);
      return undefined;
    });
    if (found && !this.ours(found, mesh)) {
      problems.push(
        `${describe(ref)} already exists and is not mesh ${mesh}'s: set clusters[${c.name}].gke.clusterName to another name`,
      );
    }
    return problems;
  }

  // --- Firewall rules (Compute Engine): pod ranges of clusters that share a VPC reach each other. ---

  /** A request id GCE deduplicates on: the same rule asked twice (a lost answer) is made once. */
  private static requestId(mesh: string, name: string, verb: string, nonce: string): string {
    const h = createHash('sha256').update(`${mesh}/${name}/${verb}/${nonce}`).digest('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }

  private async waitCompute(project: string, opName: string, ctx: ProviderContext, doing: string): Promise<void> {
    for (;;) {
      const [op] = await compute(this.clients.operations.wait({ project, operation: opName })).catch((err: unknown) =>
        Promise.reject(gkeError(err, doing, project)),
      );
      ctx.heartbeat({ operation: opName, doing, status: op.status });
      if (op.status === 'DONE') {
        const errors = op.error?.errors ?? [];
        if (errors.length)
          throw new PermanentError(`Compute Engine could not ${doing}: ${errors.map((e) => e.message).join('; ')}`);
        return;
      }
      ctx.signal?.throwIfAborted();
    }
  }

  /**
   * Creates (or finds, when it is this mesh's) the rule that lets the pod ranges of `clusters`
   * reach each other in their VPC.
   */
  async ensureFirewall(
    mesh: string,
    network: string,
    clusters: ClusterSpec[],
    ctx: ProviderContext,
  ): Promise<{ project: string; name: string; sourceRanges: string[] }> {
    const project = clusters[0].gke!.project;
    const vpc = clusters[0].gke!.network;
    const name = firewallName(mesh, network);
    const sourceRanges = [] as string[];
    for (const c of clusters) {
      const cluster = await this.cluster(mesh, c);
      const range = cluster.clusterIpv4Cidr ?? cluster.ipAllocationPolicy?.clusterIpv4CidrBlock;
      if (!range) throw new Error(`GKE cluster of ${c.name} reports no pod range yet (will retry)`);
      sourceRanges.push(range);
    }
    const rule: Firewall = {
      name,
      description: ruleDescription(mesh, network),
      network: `projects/${project}/global/networks/${vpc}`,
      direction: 'INGRESS',
      priority: 900,
      sourceRanges,
      allowed: ['tcp', 'udp', 'icmp', 'esp', 'ah', 'sctp'].map((p) => ({ IPProtocol: p })),
    };
    const doing = `create firewall rule ${name} in project ${project}`;
    const existing = await this.getFirewall(project, name);
    if (existing) {
      if (existing.description !== rule.description)
        throw new NotOursError(
          `firewall rule ${name} in project ${project} exists and is not mesh ${mesh}'s (${existing.description ?? 'no description'}): left in place`,
        );
      return { project, name, sourceRanges };
    }
    try {
      const [op] = await compute(
        this.clients.firewalls.insert({
          project,
          firewallResource: rule,
          requestId: GkeProvider.requestId(mesh, name, 'insert', sourceRanges.join(',')),
        }),
      );
      const opName = (op.latestResponse as { name?: string } | undefined)?.name ?? op.name;
      if (opName) await this.waitCompute(project, opName, ctx, doing);
    } catch (err) {
      if (grpcCode(err) !== Code.ALREADY_EXISTS)
        throw err instanceof PermanentError ? err : gkeError(err, doing, project);
    }
    return { project, name, sourceRanges };
  }

  private async getFirewall(project: string, name: string): Promise<Firewall | undefined> {
    try {
      const [rule] = await compute(this.clients.firewalls.get({ project, firewall: name }));
      return rule;
    } catch (err) {
      if (grpcCode(err) === Code.NOT_FOUND) return undefined;
      throw gkeError(err, `read firewall rule ${name} in project ${project}`, project);
    }
  }

  /** Deletes the rule when it is this mesh's; gone already is fine. */
  async deleteFirewall(mesh: string, network: string, project: string, ctx: ProviderContext): Promise<void> {
    const name = firewallName(mesh, network);
    const doing = `delete firewall rule ${name} in project ${project}`;
    const existing = await this.getFirewall(project, name);
    if (!existing) return;
    if (existing.description !== ruleDescription(mesh, network))
      throw new NotOursError(`firewall rule ${name} in project ${project} is not mesh ${mesh}'s: left in place`);
    try {
      const [op] = await compute(
        this.clients.firewalls.delete({
          project,
          firewall: name,
          requestId: GkeProvider.requestId(mesh, name, 'delete', String(existing.id ?? '')),
        }),
      );
      const opName = (op.latestResponse as { name?: string } | undefined)?.name ?? op.name;
      if (opName) await this.waitCompute(project, opName, ctx, doing);
    } catch (err) {
      if (grpcCode(err) !== Code.NOT_FOUND) throw err instanceof PermanentError ? err : gkeError(err, doing, project);
    }
  }
}
