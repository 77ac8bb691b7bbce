// Traffic checks: requests from a client pod (exec) that every placed cluster must answer, and
// HTTP GETs through ingress gateways. On real clusters real pods answer. On clusters on this
// machine (local, the GKE emulator's) kwok plays the kubelet: the exec goes the same way, through
// the API server to kwok, whose `curl` is a test double answering as helloworld would
// (sim/curl-double.ts): that proves the exec path and the check's reasoning, not Envoy, and the
// result says so. Other samples and the ingress GET are not supported there, never passed. The
// pod and HTTP access go through TrafficPort.
import { Writable } from 'node:stream';
import * as k8s from '@kubernetes/client-node';
import { type ClusterAccess, kubeFor } from '../adapters/providers';
import { type Heartbeat, loadBalancerAddress } from '../adapters/kube';
import { ISTIO_NAMESPACE } from '../istio/manifests';
import { SAMPLE_APPS, type IngressProbe, type TrafficProbe } from '../istio/sample-apps';
import { appPlacement } from '../plan/plan';
import type { MeshSpec } from '../spec/schema';
import type { CheckResult } from '../steps/contract';
import { messageOf } from '../adapters/port-forward';
import { ChecksUnavailableError } from './result';
import { allSettledInOrder, limiter } from '../util/limit';

export const INGRESS_SERVICE = 'istio-ingressgateway';

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface TrafficPort {
  /** Runs `command` in `container` of the first running pod matching `selector`. */
  exec(
    access: ClusterAccess,
    namespace: string,
    selector: string,
    container: string,
    command: string[],
  ): Promise<ExecResult>;
  /** The names of the pods in a namespace of a cluster (which cluster answered a request naming its pod). */
  podNames(access: ClusterAccess, namespace: string, cluster: string): Promise<string[]>;
  /** The ingress gateway's load balancer address, or undefined while it has none. */
  ingressAddress(access: ClusterAccess): Promise<string | undefined>;
  /** An HTTP GET from the worker. */
  get(url: string): Promise<{ status: number; body: string }>;
}

class NoPodError extends Error {}

/** Tries of an exec the API server refuses to open for now (5xx, 429) before verify is retried whole. */
const EXEC_ATTEMPTS = 4;

/** An exec the API server or kubelet could not open now: its WebSocket upgrade answered 5xx or 429, or no connection. */
export function execUnavailable(err: unknown): boolean {
  const e = err as { code?: string; statusCode?: number };
  const m = /Unexpected server response: (\d+)/.exec(messageOf(err));
  const status = m ? Number(m[1]) : e?.statusCode;
  if (status !== undefined) return status >= 500 || status === 429;
  return ['ECONNREFUSED', 'ECONNRESET'].includes(e?.code ?? '');
}

/** How long one exec'd request may take. */
const EXEC_TIMEOUT_MS = 30_000;
/** Requests of one check in flight at once (each its own exec). */
const EXEC_PARALLEL = 4;

function collect(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

/** The real port: exec over the Kubernetes API (WebSocket), GET with fetch. */
export const kubeTraffic: TrafficPort = {
  async exec(access, namespace, selector, container, command) {
    const kube = kubeFor(access);
    const pods = await kube.core.listNamespacedPod({
      namespace,
      labelSelector: selector,
      fieldSelector: 'status.phase=Running',
    });
    const pod = pods.items[0]?.metadata?.name;
    if (!pod) throw new NoPodError(`no running pod ${selector} in namespace ${namespace}`);
    const out = collect();
    const err = collect();
    let socket: { close(): void } | undefined;
    let timer: NodeJS.Timeout | undefined;
    const status = await new Promise<k8s.V1Status>((resolve, reject) => {
      // A request that hangs is one failed request, not a check that never ends.
      timer = setTimeout(() => {
        socket?.close();
        reject(new Error(`${command.join(' ')} did not finish within ${EXEC_TIMEOUT_MS / 1000}s`));
      }, EXEC_TIMEOUT_MS);
      new k8s.Exec(kube.config)
        .exec(namespace, pod, container, command, out.stream, err.stream, null, false, resolve)
        .then((ws) => (socket = ws), reject);
    }).finally(() => clearTimeout(timer));
    // A command that exited non-zero: a kubelet says NonZeroExitCode with the code as a cause; kwok
    // says InternalError "error executing command in container: ... exit status N".
    const exited = /error executing command in container: .*exit status (\d+)/.exec(status.message ?? '')?.[1];
    if (status.status !== 'Success' && status.reason !== 'NonZeroExitCode' && exited === undefined) {
      // Not the command's exit: the exec itself failed (the kubelet gone, the API server unable to reach it).
      throw Object.assign(new Error(`exec failed: ${status.message ?? status.reason ?? 'no reason given'}`), {
        statusCode: status.code,
      });
    }
    const code =
      status.status === 'Success'
        ? 0
        : Number(status.details?.causes?.find((c) => c.reason === 'ExitCode')?.message ?? exited ?? 1);
    return { stdout: out.text(), stderr: err.text(), exitCode: code };
  },

  async podNames(access, namespace) {
    const pods = await kubeFor(access).core.listNamespacedPod({ namespace });
    return pods.items.map((p) => p.metadata?.name ?? '');
  },

  async ingressAddress(access) {
    return loadBalancerAddress(
      await kubeFor(access).core.readNamespacedService({ name: INGRESS_SERVICE, namespace: ISTIO_NAMESPACE }),
    );
  },

  async get(url) {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.text() };
  },
};

const NOT_ON_LOCAL =
  "the pods of clusters on this machine (local, or the GKE emulator's) are played by kwok: no container and no Envoy runs, so no request can cross clusters here " +
  '(cross-network-endpoints shows what Envoy would be told); run the mesh on real clusters for this check';

/** The sample whose answers kwok's exec test double gives on clusters on this machine. */
const EXEC_DOUBLE_SAMPLE = 'helloworld';
const BY_EXEC_DOUBLE =
  "; answered by meshflow's exec test double (kwok plays these clusters' kubelet): this proves the exec path " +
  'and which clusters the mesh spreads requests to, not Envoy';

/** Requests from each cluster's client pod (MF0501). */
export async function execProbes(
  spec: MeshSpec,
  access: (cluster: string) => ClusterAccess,
  port: TrafficPort,
  heartbeat: Heartbeat,
): Promise<CheckResult[]> {
  if (spec.app.sample === 'none') {
    return [
      {
        name: 'traffic',
        status: 'not-supported',
        detail: 'app.sample is none: there is no sample app to send requests to',
      },
    ];
  }
  // Each client cluster's requests at once; the results keep the probes' order.
  return allSettledInOrder(
    SAMPLE_APPS[spec.app.sample].probes(appPlacement(spec)).exec.map(async (probe): Promise<CheckResult> => {
      const involved = [probe.fromCluster, ...Object.keys(probe.answers)];
      const local = involved.some((c) => access(c).local);
      if (local && spec.app.sample !== EXEC_DOUBLE_SAMPLE) {
        return { name: 'traffic', cluster: probe.fromCluster, status: 'not-supported', detail: NOT_ON_LOCAL };
      }
      heartbeat({ traffic: probe.fromCluster });
      const result = await execProbe(spec, probe, access, port);
      return local ? { ...result, detail: result.detail + BY_EXEC_DOUBLE } : result;
    }),
  );
}

/** A request to each ingress gateway (MF0502). */
export async function ingressProbes(
  spec: MeshSpec,
  access: (cluster: string) => ClusterAccess,
  port: TrafficPort,
  heartbeat: Heartbeat,
): Promise<CheckResult[]> {
  if (spec.app.sample === 'none') return [];
  const results: CheckResult[] = [];
  for (const probe of SAMPLE_APPS[spec.app.sample].probes(appPlacement(spec)).ingress) {
    heartbeat({ ingress: probe.cluster });
    results.push(
      access(probe.cluster).local
        ? { name: 'ingress', cluster: probe.cluster, status: 'not-supported', detail: NOT_ON_LOCAL }
        : await ingressProbe(probe, access, port),
    );
  }
  return results;
}

async function execProbe(
  spec: MeshSpec,
  probe: TrafficProbe,
  access: (cluster: string) => ClusterAccess,
  port: TrafficPort,
): Promise<CheckResult> {
  const base = { name: 'traffic', cluster: probe.fromCluster };
  const requests = spec.verify.traffic.requests;
  const answered = new Map(Object.keys(probe.answers).map((c) => [c, 0]));
  const patterns = Object.entries(probe.answers).map(([c, re]) => [c, new RegExp(re, 'm')] as const);
  let errors = 0;
  let lastError = '';
  // Which cluster runs the pod a body names, where the probe says how to read it.
  const podCluster = new Map<string, string>();
  if (probe.instance) {
    for (const c of Object.keys(probe.answers))
      for (const pod of await port.podNames(access(c), probe.namespace, c)) podCluster.set(pod, c);
  }
  const instance = probe.instance ? new RegExp(probe.instance, 'm') : undefined;
  const answerer = (body: string): string | undefined => {
    const named = podCluster.get(instance?.exec(body)?.[1] ?? '');
    const matching = patterns.filter(([, re]) => re.test(body)).map(([c]) => c);
    return named && matching.includes(named) ? named : matching[0];
  };
  // One request: its result, or the NoPodError that ends the check (the requests not yet sent are not sent).
  let noPod: NoPodError | undefined;
  const one = async (): Promise<ExecResult | NoPodError> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await port.exec(
          access(probe.fromCluster),
          probe.namespace,
          probe.podSelector,
          probe.container,
          probe.command,
        );
      } catch (err) {
        if (err instanceof NoPodError) return (noPod = err);
        // The API server (or the kubelet behind it) could not open the exec now: no request was
        // sent, so nothing is known about the mesh. Tried again; still so, verify is retried whole.
        if (execUnavailable(err)) {
          if (attempt < EXEC_ATTEMPTS) {
            await new Promise((r) => setTimeout(r, 500 * attempt));
            continue;
          }
          throw new ChecksUnavailableError(
            `traffic (${probe.fromCluster}): the exec into the client pod could not be opened ${EXEC_ATTEMPTS} ` +
              `times: ${messageOf(err)}`,
          );
        }
        // One exec lost (a dropped WebSocket) is one failed request, not a failed check.
        return { stdout: '', stderr: `exec: ${messageOf(err)}`, exitCode: -1 };
      }
    }
  };
  // EXEC_PARALLEL requests in flight, the next one sent as soon as one ends.
  const slot = limiter(EXEC_PARALLEL);
  const all = await allSettledInOrder(Array.from({ length: requests }, () => slot(async () => noPod ?? (await one()))));
  for (const r of all) {
    if (r instanceof NoPodError) {
      return {
        ...base,
        status: 'failed',
        detail: `cannot run ${probe.command.join(' ')}: ${r.message}`,
        hint:
          `kubectl -n ${probe.namespace} get pods -l ${probe.podSelector} ` +
          '(image pulls, sidecar injection, resources)',
      };
    }
    const who = answerer(r.stdout);
    if (r.exitCode === 0 && who) answered.set(who, answered.get(who)! + 1);
    else {
      errors++;
      lastError = (r.stderr || r.stdout).trim().split('\n')[0];
    }
  }
  const counts = [...answered].map(([c, n]) => `${c} ${n}`).join(', ');
  const silent = [...answered].filter(([, n]) => n === 0).map(([c]) => c);
  const detail = `${requests} requests from ${probe.fromCluster} (${probe.command.join(' ')}): ${counts}${errors ? `, ${errors} failed (${lastError})` : ''}`;
  if (!silent.length) return { ...base, status: 'passed', detail };
  return {
    ...base,
    status: 'failed',
    detail: `${silent.join(', ')} never answered; ${detail}`,
    hint: silentHint(spec, probe.fromCluster, silent),
  };
}

/** Why a cluster's pods never answered: the path the requests take decides what to look at. */
function silentHint(spec: MeshSpec, from: string, silent: string[]): string {
  const network = (c: string) => spec.clusters.find((x) => x.name === c)!.network;
  const crossing = silent.filter((c) => network(c) !== network(from));
  const flat = silent.filter((c) => network(c) === network(from));
  const hints: string[] = [];
  if (crossing.length) {
    hints.push(
      `requests to ${crossing.join(', ')} cross networks through the east-west gateway: check that its address (status) is reachable from ${from} on port ${spec.istio.dataPlane === 'ambient' ? '15008 (HBONE)' : '15443'}, ` +
        'that every cluster has the same root (same-root check), and `istioctl proxy-config endpoint` on the client for the remote endpoints',
    );
  }
  if (flat.length) {
    const cidrs = [from, ...flat]
      .map((c) => spec.clusters.find((x) => x.name === c)!.podCidr ?? `${c}'s pod range`)
      .join(', ');
    hints.push(
      `${from} and ${flat.join(', ')} share network ${network(from)}, so pods talk directly: open the firewall between the pod ranges (${cidrs}); ` +
        "on GKE in one VPC, add an ingress rule that allows all clusters' pod CIDRs",
    );
  }
  hints.push('`istioctl remote-clusters` on each primary should say synced for every other cluster');
  return hints.join('. ');
}

async function ingressProbe(
  probe: IngressProbe,
  access: (cluster: string) => ClusterAccess,
  port: TrafficPort,
): Promise<CheckResult> {
  const base = { name: 'ingress', cluster: probe.cluster };
  let address: string | undefined;
  try {
    address = await port.ingressAddress(access(probe.cluster));
  } catch (err) {
    return {
      ...base,
      status: 'failed',
      detail: `no ingress gateway: ${(err as Error).message.split('\n')[0]}`,
      hint: `install an ingress gateway in ${probe.cluster} (istio.profile default or demo)`,
    };
  }
  if (!address)
    return {
      ...base,
      status: 'failed',
      detail: 'the ingress gateway has no address (load balancer pending)',
      hint: 'the cluster needs a load balancer implementation, or set spec.externalIPs on the Service',
    };
  const url = `http://${address}${probe.path}`;
  try {
    const res = await port.get(url);
    if (res.status === 200 && new RegExp(probe.expect, 'm').test(res.body))
      return { ...base, status: 'passed', detail: `GET ${url}: 200, the expected page` };
    return {
      ...base,
      status: 'failed',
      detail: `GET ${url}: ${res.status}, not the expected page`,
      hint: 'check the Gateway and VirtualService of the app and that its pods are ready (a 503 means no healthy endpoint)',
    };
  } catch (err) {
    return {
      ...base,
      status: 'failed',
      detail: `GET ${url}: ${(err as Error).message}`,
      hint: `the ingress address is not reachable from this worker: check firewalls in front of ${probe.cluster}'s load balancer`,
    };
  }
}
