// Local control-plane-only clusters: each is a real kube-apiserver with its own port, CA,
// serving and admin certificates, service-account keys and RBAC, all backed by one etcd (each
// cluster under its own --etcd-prefix). Everything lives under <stateDir>/local; processes run
// detached, so clusters outlive the command that started them and are found again from their
// PID files. Nothing here runs pods: see src/sim for the simulated data plane.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, sleep } from '../util/net';
import { type Progress, silent } from '../util/progress';
import { logTail, runningPid, startDaemon, stopDaemon } from '../util/daemon';
import { withLock } from '../util/lock';
import { type ClusterPki, ensureClusterPki, pkiPaths } from './pki';

export interface LocalTools {
  kubeApiserver: string;
  etcd: string;
}

export interface LocalCluster {
  name: string;
  /** Position in creation order; the simulated data plane derives address pools from it. */
  index: number;
  port: number;
  server: string;
  kubeconfig: string;
  pki: ClusterPki;
}

interface ClusterRecord {
  name: string;
  index: number;
  port: number;
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
  async start(names: string[]): Promise<LocalCluster[]> {
    for (const n of names) {
      if (!NAME.test(n))
        throw new LocalClusterError(`invalid local cluster name "${n}": use 1-40 lowercase letters, digits and '-'`);
    }
    // etcd and the cluster records are shared by every caller (several activities may start
    // clusters at once): one at a time, so there is one etcd and each cluster its own index.
    const { etcd, records } = await withLock(this.root, async () => {
      const etcd = await this.ensureEtcd();
      const records: ClusterRecord[] = [];
      for (const n of names) records.push(await this.record(n));
      return { etcd, records };
    });
    return Promise.all(records.map((r) => this.ensureApiserver(r, etcd)));
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
      const targets = names ?? this.list().map((c) => c.name);
      await Promise.all(targets.map((n) => stopDaemon(this.apiserverPid(n), this.clusterDir(n))));
      if (this.list().every((c) => !c.running)) await stopDaemon(path.join(this.etcdDir, 'etcd.pid'), this.etcdDir);
    });
  }

  /** Stops the named clusters and removes their data, keys in etcd included. */
  async delete(names: string[]): Promise<void> {
    await withLock(this.root, () => this.deleteLocked(names));
  }

  private async deleteLocked(names: string[]): Promise<void> {
    const existing = names.filter((n) => fs.existsSync(this.clusterDir(n)));
    if (existing.length === 0) return;
    await Promise.all(existing.map((n) => stopDaemon(this.apiserverPid(n), this.clusterDir(n))));
    const etcd = await this.ensureEtcd();
    for (const n of existing) {
      await deleteEtcdPrefix(etcd.clientPort, etcdPrefix(n));
      fs.rmSync(this.clusterDir(n), { recursive: true, force: true });
    }
    if (this.list().length === 0) {
      await stopDaemon(path.join(this.etcdDir, 'etcd.pid'), this.etcdDir);
      fs.rmSync(this.root, { recursive: true, force: true });
    } else if (this.list().every((c) => !c.running)) {
      await stopDaemon(path.join(this.etcdDir, 'etcd.pid'), this.etcdDir);
    }
  }

  private apiserverPid(name: string): string {
    return path.join(this.clusterDir(name), 'apiserver.pid');
  }

  private async record(name: string): Promise<ClusterRecord> {
    const file = path.join(this.clusterDir(name), 'cluster.json');
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterRecord;
    const index = Math.max(-1, ...this.list().map((c) => c.index)) + 1;
    fs.mkdirSync(this.clusterDir(name), { recursive: true, mode: 0o700 });
    const rec: ClusterRecord = { name, index, port: await freePort() };
    fs.writeFileSync(file, JSON.stringify(rec, null, 2) + '\n');
    return rec;
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

  private async ensureApiserver(rec: ClusterRecord, etcd: EtcdRecord): Promise<LocalCluster> {
    const dir = this.clusterDir(rec.name);
    const pidFile = this.apiserverPid(rec.name);
    const pki = await ensureClusterPki(path.join(dir, 'pki'), rec.name, KUBERNETES_SERVICE_IP);
    const cluster = { ...this.describe(rec), pki };
    writeKubeconfig(cluster);
    if (runningPid(pidFile, dir) !== undefined && (await readyz(cluster))) return cluster;
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
        // No controller manager runs to fill ServiceAccount token secrets, so the admission
        // plugin that waits for them is off; tokens come from the TokenRequest API.
        '--disable-admission-plugins=ServiceAccount',
        '--allow-privileged=true',
        '--endpoint-reconciler-type=none',
        '--profiling=false',
      ],
    });
    const ok = await waitFor(
      () => readyz(cluster),
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
}

function etcdPrefix(name: string): string {
  return `/meshflow/${name}`;
}

/** Polls `check` until it is true, the deadline passes, or `alive` says the process died. */
async function waitFor(check: () => Promise<boolean>, timeoutMs: number, alive: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
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

export function readyz(cluster: LocalCluster): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port: cluster.port,
        path: '/readyz',
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
