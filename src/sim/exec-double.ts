// TEST DOUBLE: `curl` as an exec in a pod runs it on local clusters (and the GKE emulator's).
// kwok plays the kubelet there: it serves the exec through the API server, as a kubelet does, and
// runs the command on this machine (its ClusterExec), with CURL_SHIM first on its PATH as `curl`.
// The shim asks the cluster's simulated data plane, which serves answerCurl on 127.0.0.1: an exec
// costs a shell and one request, not a Kubernetes client's start. It answers as the
// helloworld sample would, from a pod Envoy could pick: round robin over the ready endpoints of
// the Service in every cluster the client's istiod reads (the primary's own, and each one its
// remote secrets name, read with those secrets' credentials). It proves the exec path and the
// traffic check's reasoning, not Envoy; what Envoy would be told across networks is the
// cross-network-endpoints check's.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ISTIO_NAMESPACE } from '../istio/manifests';
import { SharedTlsKubeConfig } from '../util/kube-config';

interface Reader {
  server: string;
  kc: k8s.KubeConfig;
}

// Shared TLS agents: every answer reads a few lists from each cluster; a new agent per request was
// a full TLS handshake each, on a machine the mesh's own components keep busy.
const load = (text: string): Reader => {
  const kc = new SharedTlsKubeConfig();
  kc.loadFromString(text);
  return { kc, server: kc.getCurrentCluster()?.server ?? '' };
};

/** The kubeconfigs of a cluster's remote secrets: the clusters its istiod reads besides its own. */
async function remoteReaders(r: Reader): Promise<Reader[]> {
  const secrets = await r.kc
    .makeApiClient(k8s.CoreV1Api)
    .listNamespacedSecret({ namespace: ISTIO_NAMESPACE, labelSelector: 'istio/multiCluster=true' })
    .catch(() => ({ items: [] as k8s.V1Secret[] }));
  return secrets.items.flatMap((s) =>
    Object.values(s.data ?? {}).map((v) => load(Buffer.from(v, 'base64').toString())),
  );
}

/** The clusters the client's istiod reads: its own cluster's if it is a primary, else its primary's. */
async function meshReaders(ownFile: string): Promise<{ own: Reader; readers: Reader[] }> {
  const own = load(fs.readFileSync(ownFile, 'utf8'));
  const ownRemotes = await remoteReaders(own);
  if (ownRemotes.length) return { own, readers: [own, ...ownRemotes] };
  // A remote cluster (or a mesh of one): the primary is the local cluster whose remote secrets name it.
  const root = path.dirname(path.dirname(ownFile));
  for (const dir of fs.readdirSync(root)) {
    const file = path.join(root, dir, 'kubeconfig');
    if (file === ownFile || !fs.existsSync(file)) continue;
    const primary = load(fs.readFileSync(file, 'utf8'));
    const remotes = await remoteReaders(primary);
    if (remotes.some((r) => r.server === own.server)) return { own, readers: [primary, ...remotes] };
  }
  return { own, readers: [own] };
}

export interface CurlAnswer {
  stdout: string;
  stderr: string;
  code: number;
}

/**
 * What `curl <args>` prints and exits with, run in a pod of the cluster whose kubeconfig is
 * `ownFile`; `onlyOwn`: answer from that cluster's endpoints only (a broken path across clusters).
 */
export async function answerCurl(ownFile: string, args: string[], onlyOwn: boolean): Promise<CurlAnswer> {
  const target = args.find((a) => !a.startsWith('-'));
  if (!target) return { stdout: '', stderr: 'curl: no URL specified\n', code: 2 };
  const url = new URL(/^[a-z]+:\/\//.test(target) ? target : `http://${target}`);
  const [service, namespace = 'default'] = url.hostname.split('.');
  if (service !== 'helloworld') {
    const why = "meshflow's exec test double answers the helloworld sample only";
    return { stdout: '', stderr: `curl: (6) Could not resolve host: ${url.hostname} (${why})\n`, code: 6 };
  }
  // Read for every request: a cluster an `apply` just linked answers the very next one.
  const { own, readers } = await meshReaders(ownFile);
  const asked = onlyOwn ? readers.filter((r) => r.server === own.server) : readers;
  const endpoints = (
    await Promise.all(
      asked.map(async (r) => {
        const [slices, pods] = await Promise.all([
          r.kc
            .makeApiClient(k8s.DiscoveryV1Api)
            .listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${service}` }),
          r.kc.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace }),
        ]);
        const version = new Map(pods.items.map((p) => [p.metadata?.name, p.metadata?.labels?.version ?? '']));
        return slices.items
          .flatMap((sl) => sl.endpoints ?? [])
          .filter((e) => e.conditions?.ready !== false && e.targetRef?.kind === 'Pod' && e.targetRef.name)
          .map((e) => ({ server: r.server, pod: e.targetRef!.name!, version: version.get(e.targetRef!.name) ?? '' }));
      }),
    )
  ).flat();
  // What Envoy answers when the cluster has no healthy endpoint.
  if (!endpoints.length) return { stdout: 'no healthy upstream', stderr: '', code: 0 };
  endpoints.sort((a, b) => `${a.server} ${a.pod}`.localeCompare(`${b.server} ${b.pod}`));
  const pick = endpoints[turns++ % endpoints.length];
  return { stdout: `Hello version: ${pick.version}, instance: ${pick.pod}\n`, stderr: '', code: 0 };
}

/** Requests answered so far: the round robin's position. */
let turns = 0;

/** Where the cluster's simulated data plane serves the answers (its port, in the cluster's directory). */
export const execDoublePortFile = (kubeconfig: string) => path.join(path.dirname(kubeconfig), 'exec-double.port');

/**
 * Serves answerCurl on 127.0.0.1 for the cluster's CURL_SHIM: the arguments come tab-separated in
 * `X-Args`; the body is curl's output, `X-Exit-Code` its exit code, `X-Stderr` its error line.
 */
export async function serveExecDouble(kubeconfig: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const args = String(req.headers['x-args'] ?? '').split('\t');
    const reply = (a: CurlAnswer) => {
      res.setHeader('X-Exit-Code', String(a.code));
      if (a.stderr.trim()) res.setHeader('X-Stderr', a.stderr.trim().split('\n')[0]);
      res.end(a.stdout);
    };
    // As curl's own --max-time would: an answer that takes too long is exit code 28.
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<CurlAnswer>((resolve) => {
      timer = setTimeout(
        () => resolve({ stdout: '', stderr: 'curl: (28) Operation timed out after 10000 milliseconds', code: 28 }),
        10_000,
      );
    });
    const answer = answerCurl(kubeconfig, args, req.headers['x-only-own'] === '1');
    Promise.race([answer, timedOut])
      .finally(() => clearTimeout(timer))
      .then(reply, (err: unknown) =>
        reply({ stdout: '', stderr: `curl: (7) ${err instanceof Error ? err.message : String(err)}`, code: 7 }),
      );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fs.writeFileSync(execDoublePortFile(kubeconfig), `${(server.address() as AddressInfo).port}\n`);
  return server;
}

/** The file beside a local cluster's kubeconfig that makes its exec test double answer from that cluster only. */
export const EXEC_DOUBLE_ONLY_OWN = 'exec-double.only-own';

/**
 * The `curl` kwok runs for an exec: bash, which asks the cluster's simulated data plane over
 * /dev/tcp and prints its answer as curl would. MESHFLOW_SIM_KUBECONFIG (from the ClusterExec)
 * names the cluster; a file `exec-double.only-own` beside that kubeconfig asks for answers from
 * the client's own cluster only, as a mesh whose path across clusters is broken would give.
 */
export const CURL_SHIM = `#!/bin/bash
# TEST DOUBLE: curl as an exec in a pod runs it on this machine (kwok plays the kubelet). The answer
# comes from the cluster's simulated data plane (meshflow's sim/exec-double): as helloworld would give it.
dir=$(dirname "$MESHFLOW_SIM_KUBECONFIG")
port=$(cat "$dir/exec-double.port") || exit 7
only_own=0
[ -e "$dir/${EXEC_DOUBLE_ONLY_OWN}" ] && only_own=1
if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
  echo "curl: (7) the simulated data plane does not answer" >&2
  exit 7
fi
IFS=$'\\t'
printf 'GET / HTTP/1.0\\r\\nX-Args: %s\\r\\nX-Only-Own: %s\\r\\n\\r\\n' "$*" "$only_own" >&3
code=7
while IFS= read -r line <&3; do
  line=\${line%$'\\r'}
  [ -z "$line" ] && break
  case $line in
    X-Exit-Code:*) code=\${line#X-Exit-Code: } ;;
    X-Stderr:*) printf '%s\\n' "\${line#X-Stderr: }" >&2 ;;
  esac
done
cat <&3
exit "$code"
`;
