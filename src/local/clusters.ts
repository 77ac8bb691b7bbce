// Local clusters: each is a real kube-apiserver with its own port, CA, serving and admin
// certificates, service-account keys and RBAC, all backed by one etcd (each cluster under its own
// --etcd-prefix); beside it, given the tools, a real kube-controller-manager and kube-scheduler
// and kwok, which plays the cluster's node: pods are scheduled to it and reach Running with IPs
// from the cluster's pod CIDR, though no container runs. Everything lives under
// <stateDir>/local; processes run detached, so clusters outlive the command that started them and
// are found again from their PID files. What no component here does (load-balancer addresses) is
// left to src/sim.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { SharedTlsKubeConfig } from '../util/kube-config';
import YAML from 'yaml';
import { freePort, sleep } from '../util/net';
import { type Progress, silent } from '../util/progress';
import {
  logFileOf,
  logTail,
  runningPid,
  startDaemon,
  startSupervisedDaemon,
  stopDaemon,
  stopDaemons,
} from '../util/daemon';
import { withLock } from '../util/lock';
import { CURL_SHIM } from '../sim/exec-double';
import { type ClusterPki, ensureClusterPki, pkiPaths } from './pki';
import { revisionLabel } from '../istio/version';
import { istiodDeployment } from '../istio/manifests';

export interface LocalTools {
  kubeApiserver: string;
  etcd: string;
  /** The controllers, the scheduler and kwok; without them a cluster is an API server alone (some tests want that). */
  workloads?: WorkloadTools;
  /** istiod, run beside the clusters whose control plane meshflow installs. */
  pilotDiscovery?: string;
}

export interface WorkloadTools {
  kubeControllerManager: string;
  kubeScheduler: string;
  kwok: string;
  /** kwok's stage definitions (installed beside our kwok build). */
  kwokStages: string;
  /** kwok's PortForward and ClusterExec CRDs (installed beside our kwok build), which configure its kubelet API. */
  kwokCrds: string;
}

/** The processes of a local cluster besides its API server, in the order they are stopped. */
export const COMPONENTS = ['istiod', 'kwok', 'scheduler', 'controller-manager', 'simulated-data-plane'] as const;

/** The name kwok's node of every local cluster has. */
export const NODE_NAME = 'kwok-node-0';

export interface LocalCluster {
  name: string;
  /** Position in creation order; the simulated data plane derives address pools from it. */
  index: number;
  port: number;
  server: string;
  kubeconfig: string;
  pki: ClusterPki;
  /** The CIDR the pods of its node get their IPs from. */
  podCidr: string;
  /**
   * Where kwok serves the kubelet API of the cluster's node (exec, port-forward), as the API server
   * reaches it at the node's InternalIP, 127.0.0.1.
   */
  kubeletPort: number;
}

interface ClusterRecord {
  name: string;
  index: number;
  port: number;
  podCidr?: string;
  /** Absent in clusters made before kwok served the kubelet API: one is chosen when they start. */
  kubeletPort?: number;
}

export interface StartOptions {
  /** Pod CIDR by cluster name, for clusters created now (default: 10.<128 + index>.0.0/16). */
  podCidrs?: Record<string, string | undefined>;
  /**
   * A bearer token by cluster name, for clusters created now: the API server takes it as a member
   * of system:masters (the GKE emulator's clusters accept its stand-in Google access token).
   */
  tokens?: Record<string, string | undefined>;
  /**
   * Whether to wait for the API server's bootstrap objects (default true). False: the clusters are
   * returned once the rest of their readiness holds (see BOOTSTRAP_HOOKS); their RBAC roles and
   * bindings and system priority classes follow within a second or two. Until then a service
   * account may not review its own rights (system:basic-user); system:masters may do anything.
   */
  untilBootstrapped?: boolean;
}

interface EtcdRecord {
  clientPort: number;
  peerPort: number;
}

const NAME = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/;
const SERVICE_CIDR = '10.96.0.0/16';
const KUBERNETES_SERVICE_IP = '10.96.0.1';

export class LocalClusterError extends Error {
  override name = 'LocalClusterError';
}

export class LocalClusters {
  readonly root: string;

  constructor(
    stateDir: string,
    private readonly tools: LocalTools,
    private readonly progress: Progress = silent,
  ) {
    this.root = path.join(stateDir, 'local');
  }

  private clusterDir(name: string): string {
    return path.join(this.root, 'clusters', name);
  }

  private get etcdDir(): string {
    return path.join(this.root, 'etcd');
  }

  /** Starts (or finds running) the named clusters; creates those that do not exist yet. */
  async start(names: string[], options: StartOptions = {}): Promise<LocalCluster[]> {
    for (const n of names) {
      if (!NAME.test(n))
        throw new LocalClusterError(`invalid local cluster name "${n}": use 1-40 lowercase letters, digits and '-'`);
    }
    // etcd and the cluster records are shared by every caller (several activities may start
    // clusters at once): one at a time, so there is one etcd and each cluster its own index.
    const { etcd, records } = await withLock(this.root, async () => {
      const etcd = await this.ensureEtcd();
      const records: ClusterRecord[] = [];
      for (const n of names) {
        records.push(await this.record(n, options.podCidrs?.[n], options.tokens?.[n]));
        // Until its API server runs, a cluster being started looks stopped: this keeps etcd up meanwhile.
        markBusy(this.clusterDir(n), STARTING);
      }
      return { etcd, records };
    });
    return Promise.all(
      records.map(async (r) => {
        try {
          const cluster = await this.ensureApiserver(
            r,
            etcd,
            options.untilBootstrapped === false ? BOOTSTRAP_HOOKS : [],
          );
          if (this.tools.workloads) await this.ensureWorkloads(cluster, this.tools.workloads);
          return cluster;
        } finally {
          fs.rmSync(path.join(this.clusterDir(r.name), STARTING), { force: true });
        }
      }),
    );
  }

  /** A component's PID file in the cluster's directory (`apiserver`, or one of COMPONENTS). */
  pidFile(name: string, component: string): string {
    return path.join(this.clusterDir(name), `${component}.pid`);
  }

  /**
   * Stops every process of the clusters together. `graceMs` bounds the graceful exit of all of
   * them at once (0: none); an API server still watched by another cluster's istiod (through its
   * remote secret) waits out the whole grace before it exits.
   */
  private async stopComponents(names: string[], graceMs?: number): Promise<void> {
    const components = (n: string) => ['apiserver', ...COMPONENTS, ...this.revisionIstiods(n)];
    await stopDaemons(
      names.flatMap((n) => components(n).map((c) => ({ pidFile: this.pidFile(n, c), marker: this.clusterDir(n) }))),
      graceMs,
    );
  }

  /** Whether no cluster runs or is being started, so that etcd may stop. */
  private allStopped(): boolean {
    return this.list().every((c) => !c.running && !isBusy(this.clusterDir(c.name), STARTING));
  }

  /** The clusters that exist in the state directory (running or not). */
  list(): Array<LocalCluster & { running: boolean }> {
    const dir = path.join(this.root, 'clusters');
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((n) => fs.existsSync(path.join(dir, n, 'cluster.json')))
      .map((n) => {
        const r = JSON.parse(fs.readFileSync(path.join(dir, n, 'cluster.json'), 'utf8')) as ClusterRecord;
        return { ...this.describe(r), running: runningPid(this.apiserverPid(n), this.clusterDir(n)) !== undefined };
      })
      .sort((a, b) => a.index - b.index);
  }

  get(name: string): LocalCluster | undefined {
    return this.list().find((c) => c.name === name);
  }

  /** Stops the named clusters (all when none are named), keeping their data; etcd stops with the last one. */
  async stop(names?: string[]): Promise<void> {
    await withLock(this.root, async () => {
      await this.stopComponents(names ?? this.list().map((c) => c.name));
      if (this.allStopped()) await stopDaemon(path.join(this.etcdDir, 'etcd.pid'), this.etcdDir);
    });
  }

  /**
   * Stops the named clusters and removes their data, keys in etcd included. Clusters deleted by
   * concurrent calls go in parallel: the lock is held only while the shared etcd and the cluster
   * records change, not while processes stop or directories are removed.
   */
  async delete(names: string[]): Promise<void> {
    const existing = names.filter((n) => fs.existsSync(this.clusterDir(n)));
    if (existing.length === 0) return;
    for (const n of existing) markBusy(this.clusterDir(n), DELETING);
    let trash: string[] = [];
    try {
      // Their data goes next, so there is nothing for a graceful shutdown to keep. The API servers
      // are gone before their keys are deleted: none writes any back.
      await this.stopComponents(existing, 0);
      trash = await withLock(this.root, () => this.forget(existing));
    } finally {
      for (const n of existing) fs.rmSync(path.join(this.clusterDir(n), DELETING), { force: true });
    }
    await Promise.all(trash.map((d) => fs.promises.rm(d, { recursive: true, force: true })));
  }

  /**
   * Under the lock: deletes the clusters' keys, moves their directories aside (their records go
   * with them, in one rename each) and returns where to, for removal after the lock; stops etcd
   * when no cluster is left to use it (or every one left is stopped) and no other delete is
   * still under way, which stops it in its turn.
   */
  private async forget(names: string[]): Promise<string[]> {
    const etcd = await this.ensureEtcd();
    const trashRoot = path.join(this.root, 'deleting');
    fs.mkdirSync(trashRoot, { recursive: true });
    const trash: string[] = [];
    for (const n of names) {
      await deleteEtcdPrefix(etcd.clientPort, etcdPrefix(n));
      if (!fs.existsSync(this.clusterDir(n))) continue; // deleted meanwhile by another call
      const to = fs.mkdtempSync(path.join(trashRoot, `${n}-`));
      fs.renameSync(this.clusterDir(n), path.join(to, n));
      trash.push(to);
    }
    const left = this.list();
    if (left.length === 0) {
      // Nothing in etcd is kept: no grace. The whole local root goes, trash included.
      await stopDaemon(path.join(this.etcdDir, 'etcd.pid'), this.etcdDir, 0);
      fs.rmSync(this.root, { recursive: true, force: true });
      return [];
    }
    const deleting = left.filter((c) => isBusy(this.clusterDir(c.name), DELETING)).map((c) => c.name);
    if (deleting.length === 0 && this.allStopped()) {
      await stopDaemon(path.join(this.etcdDir, 'etcd.pid'), this.etcdDir);
    }
    return trash;
  }

  private apiserverPid(name: string): string {
    return path.join(this.clusterDir(name), 'apiserver.pid');
  }

  private async record(name: string, podCidr: string | undefined, token: string | undefined): Promise<ClusterRecord> {
    const file = path.join(this.clusterDir(name), 'cluster.json');
    if (fs.existsSync(file)) {
      const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterRecord;
      if (rec.kubeletPort) return rec;
      const withPort = { ...rec, kubeletPort: await freePort() };
      fs.writeFileSync(file, JSON.stringify(withPort, null, 2) + '\n');
      return withPort;
    }
    const index = Math.max(-1, ...this.list().map((c) => c.index)) + 1;
    fs.mkdirSync(this.clusterDir(name), { recursive: true, mode: 0o700 });
    if (token) fs.writeFileSync(this.tokenFile(name), `${token},gke-user,gke-user,system:masters\n`, { mode: 0o600 });
    const rec: ClusterRecord = {
      name,
      index,
      port: await freePort(),
      podCidr: podCidr ?? defaultPodCidr(index),
      kubeletPort: await freePort(),
    };
    fs.writeFileSync(file, JSON.stringify(rec, null, 2) + '\n');
    return rec;
  }

  /** The API server's static bearer tokens (--token-auth-file), when the cluster was created with one. */
  private tokenFile(name: string): string {
    return path.join(this.clusterDir(name), 'tokens.csv');
  }

  private describe(r: ClusterRecord): LocalCluster {
    const dir = this.clusterDir(r.name);
    return {
      name: r.name,
      index: r.index,
      port: r.port,
      server: `https://127.0.0.1:${r.port}`,
      kubeconfig: path.join(dir, 'kubeconfig'),
      pki: pkiPaths(path.join(dir, 'pki')),
      podCidr: r.podCidr ?? defaultPodCidr(r.index),
      kubeletPort: r.kubeletPort ?? 0,
    };
  }

  private async ensureEtcd(): Promise<EtcdRecord> {
    const dir = this.etcdDir;
    const pidFile = path.join(dir, 'etcd.pid');
    const recFile = path.join(dir, 'etcd.json');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    let rec: EtcdRecord = fs.existsSync(recFile)
      ? (JSON.parse(fs.readFileSync(recFile, 'utf8')) as EtcdRecord)
      : { clientPort: await freePort(), peerPort: await freePort() };
    if (runningPid(pidFile, dir) !== undefined && (await etcdHealthy(rec.clientPort))) return rec;
    if (!fs.existsSync(recFile)) fs.writeFileSync(recFile, JSON.stringify(rec) + '\n');
    for (let attempt = 0; ; attempt++) {
      const client = `http://127.0.0.1:${rec.clientPort}`;
      const peer = `http://127.0.0.1:${rec.peerPort}`;
      this.progress(`starting etcd on ${client}`);
      startDaemon({
        file: this.tools.etcd,
        pidFile,
        marker: dir,
        args: [
          '--name=meshflow',
          `--data-dir=${path.join(dir, 'data')}`,
          `--listen-client-urls=${client}`,
          `--advertise-client-urls=${client}`,
          `--listen-peer-urls=${peer}`,
          `--initial-advertise-peer-urls=${peer}`,
          `--initial-cluster=meshflow=${peer}`,
          // Local clusters are disposable: trade durability on power loss for speed.
          '--unsafe-no-fsync',
          // One member elects itself after an election timeout: at etcd's default (1 s) that is
          // most of its start, the machine idle meanwhile; 200 ms (heartbeats every 20 ms) is ~0.1 s.
          '--heartbeat-interval=20',
          '--election-timeout=200',
          '--log-level=warn',
        ],
      });
      if (
        await waitFor(
          () => etcdHealthy(rec.clientPort),
          30_000,
          () => runningPid(pidFile, dir) !== undefined,
        )
      )
        return rec;
      await stopDaemon(pidFile, dir);
      // A port taken by another program since the last run: pick new ones once.
      if (attempt === 0 && /address already in use/.test(logTail(pidFile))) {
        rec = { clientPort: await freePort(), peerPort: await freePort() };
        fs.writeFileSync(recFile, JSON.stringify(rec) + '\n');
        continue;
      }
      throw new LocalClusterError(`etcd did not become healthy; last log lines:\n${logTail(pidFile)}`);
    }
  }

  private async ensureApiserver(
    rec: ClusterRecord,
    etcd: EtcdRecord,
    exclude: readonly string[],
  ): Promise<LocalCluster> {
    const dir = this.clusterDir(rec.name);
    const pidFile = this.apiserverPid(rec.name);
    const pki = await ensureClusterPki(path.join(dir, 'pki'), rec.name, KUBERNETES_SERVICE_IP);
    const cluster = { ...this.describe(rec), pki };
    writeKubeconfig(cluster);
    if (runningPid(pidFile, dir) !== undefined && (await readyz(cluster, exclude))) return cluster;
    await stopDaemon(pidFile, dir);
    this.progress(`starting kube-apiserver for local cluster ${rec.name} on ${cluster.server}`);
    startDaemon({
      file: this.tools.kubeApiserver,
      pidFile,
      marker: dir,
      args: [
        `--etcd-servers=http://127.0.0.1:${etcd.clientPort}`,
        `--etcd-prefix=${etcdPrefix(rec.name)}`,
        `--cert-dir=${path.join(dir, 'pki')}`,
        `--tls-cert-file=${pki.servingCert}`,
        `--tls-private-key-file=${pki.servingKey}`,
        `--client-ca-file=${pki.caCert}`,
        `--secure-port=${rec.port}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${pki.saPublicKey}`,
        `--service-account-signing-key-file=${pki.saPrivateKey}`,
        // Without a controller manager nothing makes the `default` ServiceAccount the admission
        // plugin waits for; tokens come from the TokenRequest API either way.
        ...(this.tools.workloads ? [] : ['--disable-admission-plugins=ServiceAccount']),
        '--allow-privileged=true',
        '--endpoint-reconciler-type=none',
        // kwok's node has no resolvable name: exec and port-forward reach its kubelet API by address.
        '--kubelet-preferred-address-types=InternalIP',
        '--profiling=false',
        ...(fs.existsSync(this.tokenFile(rec.name)) ? [`--token-auth-file=${this.tokenFile(rec.name)}`] : []),
      ],
    });
    const ok = await waitFor(
      () => readyz(cluster, exclude),
      90_000,
      () => runningPid(pidFile, dir) !== undefined,
    );
    if (!ok) {
      const tail = logTail(pidFile);
      await stopDaemon(pidFile, dir);
      throw new LocalClusterError(
        `kube-apiserver for local cluster ${rec.name} did not become ready; last log lines:\n${tail}`,
      );
    }
    return cluster;
  }

  /** The istiods of revisions (`istiod-<revision>`) meshflow has run for the cluster, by component name. */
  private revisionIstiods(name: string): string[] {
    const dir = this.clusterDir(name);
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((f) => /^istiod-[a-z0-9-]+\.json$/.test(f))
      .map((f) => f.slice(0, -'.json'.length));
  }

  /**
   * The ports of the cluster's istiod of `revision` (undefined: Istio's default revision), chosen
   * once and kept in its directory, so that what was rendered for it (webhook URLs) stays true
   * across restarts.
   */
  async istiodPorts(name: string, revision?: string): Promise<IstiodPorts> {
    const file = path.join(this.clusterDir(name), `${istiodComponent(revision)}.json`);
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as IstiodPorts;
    if (!fs.existsSync(this.clusterDir(name))) throw new LocalClusterError(`no local cluster ${name}`);
    const ports: IstiodPorts = {
      http: await freePort(),
      grpc: await freePort(),
      secureGrpc: await freePort(),
      https: await freePort(),
      monitoring: await freePort(),
      ctrlz: await freePort(),
    };
    fs.writeFileSync(file, JSON.stringify(ports, null, 2) + '\n');
    return ports;
  }

  /**
   * The revision whose istiod serves the cluster's workloads (the one its `default` tag names), as
   * the last upgrade step left it: checks ask that one. Undefined: Istio's default revision.
   */
  servingRevision(name: string): string | undefined {
    const file = path.join(this.clusterDir(name), SERVING_FILE);
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() || undefined : undefined;
  }

  /** Records which revision's istiod serves the cluster now (an upgrade moved its tag). */
  serveRevision(name: string, revision: string | undefined): void {
    const file = path.join(this.clusterDir(name), SERVING_FILE);
    if (!fs.existsSync(this.clusterDir(name))) throw new LocalClusterError(`no local cluster ${name}`);
    fs.writeFileSync(`${file}.tmp`, `${revision ?? ''}\n`);
    fs.renameSync(`${file}.tmp`, file);
  }

  /**
   * Where the cluster's istiod of `revision` (default: the serving one) answers, once meshflow has
   * run one for it; whether it runs now.
   */
  istiod(
    name: string,
    revision = this.servingRevision(name),
  ): (IstiodEndpoint & { running: boolean; log: string; revision?: string }) | undefined {
    const component = istiodComponent(revision);
    const file = path.join(this.clusterDir(name), `${component}.json`);
    const pidFile = this.pidFile(name, component);
    if (!fs.existsSync(file) || !fs.existsSync(logFileOf(pidFile))) return undefined;
    return {
      ...istiodEndpoint(JSON.parse(fs.readFileSync(file, 'utf8')) as IstiodPorts),
      running: runningPid(pidFile, this.clusterDir(name)) !== undefined,
      log: logFileOf(pidFile),
      ...(revision ? { revision } : {}),
    };
  }

  /** Stops the cluster's istiod of `revision` (an upgrade removed that revision) and forgets its ports and files. */
  async stopIstiod(name: string, revision: string | undefined): Promise<void> {
    const component = istiodComponent(revision);
    const dir = this.clusterDir(name);
    if (!fs.existsSync(dir)) return;
    await stopDaemon(this.pidFile(name, component), dir);
    // A supervisor killed from outside leaves its child's PID file behind.
    fs.rmSync(`${this.pidFile(name, component)}.child`, { force: true });
    fs.rmSync(path.join(dir, component), { recursive: true, force: true });
    fs.rmSync(path.join(dir, `${component}.json`), { force: true });
  }

  /**
   * Runs istiod (pilot-discovery) for the cluster as a process on this machine, with the
   * cluster's admin kubeconfig, its plugged-in CA (the `cacerts` files, written 0600 into the
   * cluster's directory) and the ports of istiodPorts(); waits until it says it is ready. Mesh
   * config and the injection template come from the cluster's `istio` and `istio-sidecar-injector`
   * ConfigMaps, as for an istiod in the cluster. It runs under a supervisor that starts it again
   * when it exits abnormally (giving up after repeated quick failures). Already running: left as it is.
   */
  async startIstiod(name: string, opts: IstiodOptions): Promise<IstiodEndpoint> {
    const bin = opts.pilotDiscovery ?? this.tools.pilotDiscovery;
    if (!bin) throw new LocalClusterError('pilot-discovery is not among the local tools');
    const dir = this.clusterDir(name);
    const component = istiodComponent(opts.revision);
    const pidFile = this.pidFile(name, component);
    const ports = await this.istiodPorts(name, opts.revision);
    const endpoint = istiodEndpoint(ports);
    if (runningPid(pidFile, dir) !== undefined && (await istiodReady(endpoint))) return endpoint;
    await stopDaemon(pidFile, dir);
    const home = path.join(dir, component);
    const caDir = path.join(home, 'cacerts');
    fs.mkdirSync(caDir, { recursive: true, mode: 0o700 });
    for (const [file, pem] of Object.entries(opts.cacerts)) {
      fs.writeFileSync(path.join(caDir, file), pem, { mode: 0o600 });
    }
    const cluster = this.get(name);
    if (!cluster) throw new LocalClusterError(`no local cluster ${name}`);
    this.progress(`starting ${component} for local cluster ${name} (debug ${endpoint.debug})`);
    // Supervised: an istiod that dies (OOM, a crash) is started again, as its Deployment would be.
    startSupervisedDaemon({
      file: bin,
      pidFile,
      marker: dir,
      cwd: home,
      env: {
        PATH: process.env.PATH,
        HOME: home,
        REVISION: revisionLabel(opts.revision),
        PILOT_CERT_PROVIDER: 'istiod',
        // A new root bundle in the plugged-in CA files is taken up live (a root rotation), not refused.
        ISTIO_MULTIROOT_MESH: 'true',
        ...opts.env,
        POD_NAMESPACE: 'istio-system',
        POD_NAME: `${component}-${name}`,
        ROOT_CA_DIR: caDir,
        CLUSTER_ID: opts.clusterId,
        // Its serving certificate names 127.0.0.1, where the API server reaches its webhooks.
        ISTIOD_CUSTOM_HOST: '127.0.0.1',
      },
      args: [
        'discovery',
        `--kubeconfig=${cluster.kubeconfig}`,
        `--clusterID=${opts.clusterId}`,
        `--httpAddr=127.0.0.1:${ports.http}`,
        `--grpcAddr=127.0.0.1:${ports.grpc}`,
        `--secureGRPCAddr=127.0.0.1:${ports.secureGrpc}`,
        `--httpsAddr=127.0.0.1:${ports.https}`,
        `--monitoringAddr=127.0.0.1:${ports.monitoring}`,
        `--ctrlz_port=${ports.ctrlz}`,
        '--ctrlz_address=127.0.0.1',
        // No files: mesh config and networks come from the `istio` ConfigMap.
        `--meshConfig=${path.join(home, 'no-mesh-file')}`,
        `--networksConfig=${path.join(home, 'no-networks-file')}`,
        '--log_output_level=default:info',
        // No Envoy connects to it to drain: stop in a second, not the default ten.
        '--shutdownDuration=1s',
      ],
    });
    const ok = await waitFor(
      () => istiodReady(endpoint),
      90_000,
      () => runningPid(pidFile, dir) !== undefined,
      opts.signal,
    );
    if (!ok) {
      const tail = logTail(pidFile);
      await stopDaemon(pidFile, dir);
      throw new LocalClusterError(
        `${component} for local cluster ${name} did not become ready; last log lines:\n${tail}`,
      );
    }
    return endpoint;
  }

  /**
   * Rewrites the plugged-in CA files of the cluster's istiod, each by an atomic rename, so that
   * istiod (which watches the directory) reloads them; a restart by its supervisor reads them too.
   * Undefined when no istiod was started for the cluster.
   */
  async updateIstiodCacerts(name: string, cacerts: Record<string, string>): Promise<IstiodEndpoint | undefined> {
    // Every revision's istiod (an upgrade runs two side by side) issues from the cluster's CA.
    let updated = false;
    for (const component of ['istiod', ...this.revisionIstiods(name)]) {
      const home = path.join(this.clusterDir(name), component);
      const caDir = path.join(home, 'cacerts');
      if (!fs.existsSync(caDir)) continue;
      for (const [file, pem] of Object.entries(cacerts)) {
        const tmp = path.join(home, `.${file}.tmp`);
        fs.writeFileSync(tmp, pem, { mode: 0o600 });
        fs.renameSync(tmp, path.join(caDir, file));
      }
      updated = true;
    }
    return updated ? istiodEndpoint(await this.istiodPorts(name, this.servingRevision(name))) : undefined;
  }

  /**
   * The controller manager, the scheduler and kwok beside a running API server, and the node kwok
   * plays. Each is started when it is not running; all of them only talk to the API server.
   */
  private async ensureWorkloads(cluster: LocalCluster, tools: WorkloadTools): Promise<void> {
    const dir = path.dirname(cluster.kubeconfig);
    const kc = cluster.kubeconfig;
    const daemons: Array<{ component: string; file: string; args: string[]; env?: NodeJS.ProcessEnv }> = [
      {
        component: 'controller-manager',
        file: tools.kubeControllerManager,
        args: [
          `--kubeconfig=${kc}`,
          '--secure-port=0',
          '--leader-elect=false',
          `--cluster-name=${cluster.name}`,
          `--service-account-private-key-file=${cluster.pki.saPrivateKey}`,
          `--root-ca-file=${cluster.pki.caCert}`,
          '--use-service-account-credentials=false',
          '--kube-api-qps=200',
          '--kube-api-burst=400',
          '--v=1',
        ],
      },
      {
        component: 'scheduler',
        file: tools.kubeScheduler,
        args: [`--kubeconfig=${kc}`, '--secure-port=0', '--leader-elect=false', '--v=1'],
      },
      {
        component: 'kwok',
        file: tools.kwok,
        args: [
          `--kubeconfig=${kc}`,
          `--config=${tools.kwokStages}`,
          `--config=${writeExecConfig(cluster)}`,
          '--manage-all-nodes=false',
          `--manage-nodes-with-annotation-selector=${KWOK_ANNOTATION}=fake`,
          `--cidr=${cluster.podCidr}`,
          '--node-lease-duration-seconds=40',
          // The kubelet API: port-forwards as PortForward objects say (the simulated data plane
          // makes one per istiod pod); every exec as the ClusterExec in the file above says.
          `--enable-crds=${KWOK_CRD_KINDS.join(',')}`,
          '--node-ip=127.0.0.1',
          `--node-port=${cluster.kubeletPort}`,
          `--server-address=127.0.0.1:${cluster.kubeletPort}`,
        ],
        // An exec in a pod runs on this machine (as kwok's ClusterExec says); `curl` there is the
        // test double that answers as the sample would (sim/curl-double.ts).
        env: { ...process.env, PATH: `${execDoubleBin(dir)}${path.delimiter}${process.env.PATH ?? ''}` },
      },
    ];
    if (runningPid(this.pidFile(cluster.name, 'kwok'), dir) === undefined)
      await ensureKwokCrds(cluster, tools.kwokCrds);
    for (const d of daemons) {
      const pidFile = this.pidFile(cluster.name, d.component);
      if (runningPid(pidFile, dir) !== undefined) continue;
      this.progress(`starting ${d.component} for local cluster ${cluster.name}`);
      // kwok is the node's kubelet (its API serves port-forwards and execs): one that dies is
      // started again, as a node's kubelet is by systemd. So is the controller manager, as its
      // static pod would be: it exits when the API server is not healthy within 10 s of its start
      // (it starts before the bootstrap hooks end; on a loaded machine they may take that long).
      const start = SUPERVISED.includes(d.component) ? startSupervisedDaemon : startDaemon;
      start({ file: d.file, args: d.args, pidFile, marker: dir, env: d.env });
    }
    await ensureNode(cluster);
  }
}

const KWOK_ANNOTATION = 'kwok.x-k8s.io/node';

/** The cluster's processes restarted by a supervisor when they exit. */
const SUPERVISED = ['kwok', 'controller-manager'];

/**
 * Files in a cluster's directory saying which process is starting or deleting it (its PID), so
 * that etcd is not stopped under it; they count only while that process lives.
 */
const STARTING = 'starting';
const DELETING = 'deleting';

function markBusy(dir: string, what: string): void {
  try {
    fs.writeFileSync(path.join(dir, what), `${process.pid}\n`);
  } catch (err) {
    // A cluster deleted meanwhile by another call: its delete is under way.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function isBusy(dir: string, what: string): boolean {
  try {
    process.kill(Number(fs.readFileSync(path.join(dir, what), 'utf8')), 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface IstiodPorts {
  http: number;
  grpc: number;
  secureGrpc: number;
  https: number;
  monitoring: number;
  ctrlz: number;
}

/** How to reach an istiod meshflow runs on this machine. */
export interface IstiodEndpoint {
  /** Its debug HTTP address: `curl <debug>/debug/clusterz`. */
  debug: string;
  /** Its plaintext xDS address (host:port). */
  xds: string;
  /** Its TLS gRPC address (host:port): xDS for proxies and the CA (IstioCertificateService). */
  secureGrpc: string;
  /** Base URL of its injection and validation webhooks. */
  webhook: string;
}

export interface IstiodOptions {
  /** The Istio cluster ID (the spec's cluster name). */
  clusterId: string;
  /** The control-plane revision it is (undefined: Istio's default revision); each runs as its own process. */
  revision?: string;
  /** The plugged-in CA: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem. */
  cacerts: Record<string, string>;
  /** The environment an in-cluster istiod would get (REVISION, PILOT_*, EXTERNAL_ISTIOD, ...). */
  env?: Record<string, string>;
  /** The pilot-discovery of the mesh's Istio build (default: the local tools' one). */
  pilotDiscovery?: string;
  signal?: AbortSignal;
}

/** The component name of a revision's istiod: its Deployment's, `istiod` or `istiod-<revision>` (its ports file too). */
export const istiodComponent = istiodDeployment;

const SERVING_FILE = 'istiod-serving';

export function istiodEndpoint(p: IstiodPorts): IstiodEndpoint {
  return {
    debug: `http://127.0.0.1:${p.http}`,
    xds: `127.0.0.1:${p.grpc}`,
    secureGrpc: `127.0.0.1:${p.secureGrpc}`,
    webhook: `https://127.0.0.1:${p.https}`,
  };
}

async function istiodReady(e: IstiodEndpoint): Promise<boolean> {
  try {
    const r = await fetch(`${e.debug}/ready`, { signal: AbortSignal.timeout(2000) });
    return r.ok;
  } catch {
    return false;
  }
}

export function defaultPodCidr(index: number): string {
  return `10.${128 + (index % 64)}.0.0/16`;
}

/** The kinds of kwok's kubelet API configuration it reads from the API server (the rest from its config files). */
const KWOK_CRD_KINDS = ['PortForward'];

/**
 * The CRDs of KWOK_CRD_KINDS, established before kwok starts watching them. The ClusterExec is not
 * one of them: the API server holds every create of a custom resource made within 2 s of its CRD
 * being established for 2 s (apiextensions-apiserver's customresource_handler, for HA servers),
 * which was most of a local cluster's start; kwok reads it from a file instead.
 */
async function ensureKwokCrds(cluster: LocalCluster, file: string): Promise<void> {
  const kc = new SharedTlsKubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const crds = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as k8s.V1CustomResourceDefinition)
    .filter((crd) => KWOK_CRD_KINDS.includes(crd.spec.names.kind));
  for (const crd of crds) {
    try {
      await api.createCustomResourceDefinition({ body: crd });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
  }
  const established = async () => {
    for (const crd of crds) {
      const got = await api.readCustomResourceDefinition({ name: crd.metadata!.name! });
      if (!got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return false;
    }
    return true;
  };
  if (!(await waitFor(established, 30_000, () => true)))
    throw new LocalClusterError(`kwok's CRDs were not established in local cluster ${cluster.name} within 30s`);
}

/** The ClusterExec kwok runs every exec by (envs of the exec test double). */
const EXEC_DOUBLE = 'meshflow-exec-double';

/**
 * Writes the kwok configuration (in the cluster's directory) that runs every exec in a pod on this
 * machine, with the cluster's kubeconfig at hand for the exec test double; returns its path.
 */
function writeExecConfig(cluster: LocalCluster): string {
  const file = path.join(path.dirname(cluster.kubeconfig), 'kwok-exec.yaml');
  const clusterExec = {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'ClusterExec',
    metadata: { name: EXEC_DOUBLE },
    spec: { execs: [{ local: { envs: [{ name: 'MESHFLOW_SIM_KUBECONFIG', value: cluster.kubeconfig }] } }] },
  };
  fs.writeFileSync(file, YAML.stringify(clusterExec));
  return file;
}

/** Writes the cluster's directory whose `curl` is the exec test double, first on kwok's PATH; returns it. */
function execDoubleBin(clusterDir: string): string {
  const bin = path.join(clusterDir, 'exec-double');
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, 'curl'), CURL_SHIM, { mode: 0o755 });
  return bin;
}

/** The node kwok plays: its pod CIDR is the cluster's, so pods get their IPs from it. */
async function ensureNode(cluster: LocalCluster): Promise<void> {
  const kc = new SharedTlsKubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const node: k8s.V1Node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: NODE_NAME,
      annotations: { [KWOK_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        type: 'kwok',
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/os': 'linux',
        'kubernetes.io/hostname': NODE_NAME,
        'node-role.kubernetes.io/agent': '',
        'topology.kubernetes.io/region': 'local',
        'topology.kubernetes.io/zone': 'local-a',
      },
    },
    spec: { podCIDR: cluster.podCidr, podCIDRs: [cluster.podCidr] },
    status: {
      allocatable: { cpu: '64', memory: '256Gi', pods: '500' },
      capacity: { cpu: '64', memory: '256Gi', pods: '500' },
    },
  };
  for (let attempt = 0; ; attempt++) {
    try {
      await core.createNode({ body: node });
      return;
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 409) return;
      if (attempt >= 20)
        throw new LocalClusterError(`cannot create node ${NODE_NAME} in ${cluster.name}: ${String(err)}`);
      await sleep(250);
    }
  }
}

function etcdPrefix(name: string): string {
  return `/meshflow/${name}`;
}

/** Polls `check` until it is true, the deadline passes, or `alive` says the process died. */
async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  alive: () => boolean,
  signal?: AbortSignal,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    if (await check()) return true;
    if (!alive()) return false;
    await sleep(100);
  }
  return false;
}

async function etcdHealthy(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    return r.ok && ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** Removes every key under `prefix` through etcd's JSON gateway. */
async function deleteEtcdPrefix(port: number, prefix: string): Promise<void> {
  const key = Buffer.from(prefix + '/');
  const end = Buffer.from(key);
  end[end.length - 1] += 1; // range end: the prefix with its last byte incremented
  const r = await fetch(`http://127.0.0.1:${port}/v3/kv/deleterange`, {
    method: 'POST',
    body: JSON.stringify({ key: key.toString('base64'), range_end: end.toString('base64') }),
  });
  if (!r.ok) throw new LocalClusterError(`etcd refused to delete ${prefix}: ${r.status} ${await r.text()}`);
}

/**
 * The API server's post-start hooks that write its bootstrap objects (the RBAC roles and bindings,
 * the system priority classes). Each first waits a whole second (wait.Poll, not PollImmediate), the
 * machine idle meanwhile. A caller that acts as system:masters for its first seconds (a mesh's
 * create-cluster step) need not wait for them: StartOptions.untilBootstrapped.
 */
const BOOTSTRAP_HOOKS = [
  'poststarthook/rbac/bootstrap-roles',
  'poststarthook/scheduling/bootstrap-system-priority-classes',
];

/** Whether the API server is ready (`/readyz`), leaving out the `exclude` checks. */
export function readyz(cluster: LocalCluster, exclude: readonly string[] = []): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port: cluster.port,
        path:
          '/readyz' + (exclude.length ? `?${exclude.map((c) => `exclude=${encodeURIComponent(c)}`).join('&')}` : ''),
        ca: fs.readFileSync(cluster.pki.caCert),
        cert: fs.readFileSync(cluster.pki.adminCert),
        key: fs.readFileSync(cluster.pki.adminKey),
        timeout: 2000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

function writeKubeconfig(c: LocalCluster): void {
  const b64 = (file: string) => fs.readFileSync(file).toString('base64');
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: c.name, cluster: { server: c.server, 'certificate-authority-data': b64(c.pki.caCert) } }],
    users: [
      {
        name: `${c.name}-admin`,
        user: { 'client-certificate-data': b64(c.pki.adminCert), 'client-key-data': b64(c.pki.adminKey) },
      },
    ],
    contexts: [{ name: c.name, context: { cluster: c.name, user: `${c.name}-admin` } }],
    'current-context': c.name,
  };
  fs.writeFileSync(c.kubeconfig, YAML.stringify(doc), { mode: 0o600 });
}
