// The pinned external tools meshflow runs, each declared once: the version we want, where a
// user-provided copy may be found, and how to build ours from a package registry.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../paths';

export type Prerequisite = 'go' | 'java' | 'mvn';

export interface ToolSpec {
  /** The name users see in `meshflow doctor`. */
  name: string;
  /** The pinned version, as `meshflow doctor` shows it. */
  wanted: string;
  /** What the tool is for, one line. */
  purpose: string;
  /** Environment variable that names an existing binary to use instead of ours. */
  envVar: string;
  /** Other places an existing binary may be (a KUBEBUILDER_ASSETS directory, for instance). */
  extraCandidates?: () => string[];
  /** Command names looked up on PATH. */
  pathNames: string[];
  /** Arguments that make the binary print its version. */
  versionArgs: string[];
  /** Pulls the version out of what `versionArgs` printed; undefined when it is not there. */
  parseVersion: (output: string) => string | undefined;
  /** Whether a found version is the pinned one (or one we accept in its place). */
  accepts: (found: string) => boolean;
  /** The directory name of our build in the tool cache; changes whenever what we build changes. */
  cacheKey: () => string;
  /** The file inside that directory that is the tool. */
  binary: string;
  requires: Prerequisite[];
  /** Rough cold build time, for the progress line. */
  coldBuild: string;
}

export const TEMPORAL_CLI_VERSION = '1.5.1';
export const KUBERNETES_VERSION = 'v1.34.4';
export const ETCD_VERSION = '3.6.4';
export const TEMPORAL_TEST_SERVER_VERSION = '1.38.0';
/**
 * istioctl is built from the istio.io/istio Go module at a pinned commit (Istio tags lack the
 * `v` prefix, so `go install` takes a pseudo-version). This is the 1.31 line's commit of 2026-08-27,
 * the newest one whose whole dependency graph the Go module proxy serves.
 */
export const ISTIO_MODULE_VERSION = 'v0.0.0-20260827124520-eed52ebb66ad';
export const ISTIO_VERSION = '1.31-eed52ebb66ad';
/** kwok simulates nodes and the pods scheduled to them (no containers run) against a real API server. */
export const KWOK_VERSION = 'v0.8.0';
/** The compose-spec loader (what Docker Compose v2 loads compose files with), for checking docker-compose.yml. */
export const COMPOSE_GO_VERSION = 'v2.16.2';
/** actionlint checks GitHub Actions workflows and the local action (action.yml) they use. */
export const ACTIONLINT_VERSION = 'v1.7.12';

/** Hash of the files in a repository folder, so that editing the wrapper module rebuilds it. */
function hashOf(dir: string, files: string[]): string {
  const h = crypto.createHash('sha256');
  for (const f of files) h.update(f).update(fs.readFileSync(path.join(dir, f)));
  return h.digest('hex').slice(0, 12);
}

export const kubeModuleDir = path.join(packageRoot, 'tools', 'kube');
export const testServerPomDir = path.join(packageRoot, 'tools', 'test-server');
export const composecheckModuleDir = path.join(packageRoot, 'tools', 'composecheck');

function kubebuilderAsset(name: string): string[] {
  const dir = process.env.KUBEBUILDER_ASSETS;
  return dir ? [path.join(dir, name)] : [];
}

const kubeKey = () => `kube-${KUBERNETES_VERSION}-${hashOf(kubeModuleDir, ['go.mod', 'go.sum', 'main.go'])}`;

export const TOOLS: readonly ToolSpec[] = [
  {
    name: 'temporal',
    wanted: TEMPORAL_CLI_VERSION,
    purpose: 'Temporal CLI: `temporal server start-dev` (server, SQLite, Web UI)',
    envVar: 'MESHFLOW_TEMPORAL_BIN',
    pathNames: ['temporal'],
    versionArgs: ['--version'],
    parseVersion: (out) => /temporal version (\S+)/.exec(out)?.[1],
    accepts: (v) => v === TEMPORAL_CLI_VERSION,
    cacheKey: () => `temporal-${TEMPORAL_CLI_VERSION}`,
    binary: 'temporal',
    requires: ['go'],
    coldBuild: '3-6 min',
  },
  {
    name: 'kube-apiserver',
    wanted: KUBERNETES_VERSION,
    purpose: 'Kubernetes API server for local clusters',
    envVar: 'MESHFLOW_KUBE_APISERVER_BIN',
    extraCandidates: () => kubebuilderAsset('kube-apiserver'),
    pathNames: ['kube-apiserver'],
    versionArgs: ['--version'],
    parseVersion: (out) => /Kubernetes (v\d+\.\d+\.\d+\S*)/.exec(out)?.[1],
    accepts: (v) => v.startsWith('v1.34.'),
    cacheKey: kubeKey,
    binary: 'kube-apiserver',
    requires: ['go'],
    coldBuild: '10-20 min',
  },
  {
    name: 'etcd',
    wanted: ETCD_VERSION,
    purpose: 'etcd behind the local API servers (one serves them all)',
    envVar: 'MESHFLOW_ETCD_BIN',
    extraCandidates: () => kubebuilderAsset('etcd'),
    pathNames: ['etcd'],
    versionArgs: ['--version'],
    parseVersion: (out) => /etcd Version: (\S+)/.exec(out)?.[1],
    accepts: (v) => v.startsWith('3.6.'),
    cacheKey: kubeKey,
    binary: 'etcd',
    requires: ['go'],
    coldBuild: 'built with kube-apiserver',
  },
  ...(['kube-controller-manager', 'kube-scheduler'] as const).map(
    (name): ToolSpec => ({
      name,
      wanted: KUBERNETES_VERSION,
      purpose:
        name === 'kube-controller-manager'
          ? 'Kubernetes controllers for local clusters (Deployments, EndpointSlices, namespace deletion, GC)'
          : 'Kubernetes scheduler for local clusters (places pods on their simulated nodes)',
      envVar: name === 'kube-controller-manager' ? 'MESHFLOW_KUBE_CONTROLLER_MANAGER_BIN' : 'MESHFLOW_KUBE_SCHEDULER_BIN',
      pathNames: [name],
      versionArgs: ['--version'],
      parseVersion: (out) => /Kubernetes (v\d+\.\d+\.\d+\S*)/.exec(out)?.[1],
      accepts: (v) => v.startsWith('v1.34.'),
      cacheKey: kubeKey,
      binary: name,
      requires: ['go'],
      coldBuild: 'built with kube-apiserver',
    }),
  ),
  {
    name: 'kwok',
    wanted: KWOK_VERSION,
    purpose: 'simulated nodes for local clusters: scheduled pods get Running with IPs from the pod CIDR',
    envVar: 'MESHFLOW_KWOK_BIN',
    // Only our build: it carries the stage definitions (stages.yaml) kwok runs with.
    pathNames: [],
    versionArgs: ['--version'],
    parseVersion: (out) => /(v\d+\.\d+\.\d+)/.exec(out)?.[1],
    accepts: (v) => v === KWOK_VERSION,
    cacheKey: () => `kwok-${KWOK_VERSION}-r1`,
    binary: 'kwok',
    requires: ['go'],
    coldBuild: '2-4 min',
  },
  {
    name: 'pilot-discovery',
    wanted: ISTIO_VERSION,
    purpose: 'istiod, run as a process for the primaries of local clusters',
    envVar: 'MESHFLOW_PILOT_DISCOVERY_BIN',
    pathNames: ['pilot-discovery'],
    versionArgs: ['version', '--short'],
    parseVersion: (out) => /client version: (\d+\.\d+[^\s]*)/.exec(out)?.[1],
    accepts: (v) => v === ISTIO_VERSION,
    cacheKey: () => `pilot-discovery-${ISTIO_VERSION}`,
    binary: 'pilot-discovery',
    requires: ['go'],
    coldBuild: '5-10 min (1-2 after istioctl)',
  },
  {
    name: 'istioctl',
    wanted: ISTIO_VERSION,
    purpose: 'renders Istio manifests and diagnoses meshes',
    envVar: 'MESHFLOW_ISTIOCTL_BIN',
    pathNames: ['istioctl'],
    versionArgs: ['version', '--remote=false', '--short'],
    parseVersion: (out) => /(?:client version: )?(\d+\.\d+[^\s]*)/.exec(out)?.[1],
    accepts: (v) => v === ISTIO_VERSION,
    // r2: Istio's addon manifests are installed beside it.
    cacheKey: () => `istioctl-${ISTIO_VERSION}-r2`,
    binary: 'istioctl',
    requires: ['go'],
    coldBuild: '5-10 min',
  },
  {
    name: 'temporal-test-server',
    wanted: TEMPORAL_TEST_SERVER_VERSION,
    purpose: "Temporal's time-skipping test server (Java), for workflow tests with long timers",
    envVar: 'MESHFLOW_TEMPORAL_TEST_SERVER_BIN',
    pathNames: [],
    versionArgs: ['--version'],
    parseVersion: (out) => /temporal-test-server (\S+)/.exec(out)?.[1],
    accepts: (v) => v === TEMPORAL_TEST_SERVER_VERSION,
    // The `r2` names the wrapper script's revision (see install.ts): a new one reinstalls.
    cacheKey: () => `temporal-test-server-${TEMPORAL_TEST_SERVER_VERSION}-r3-${hashOf(testServerPomDir, ['pom.xml'])}`,
    binary: 'temporal-test-server',
    requires: ['java', 'mvn'],
    coldBuild: '1-2 min',
  },
  {
    name: 'composecheck',
    wanted: COMPOSE_GO_VERSION,
    purpose: 'loads and validates docker-compose.yml with the compose-spec loader (compose-go), as Docker Compose does',
    envVar: 'MESHFLOW_COMPOSECHECK_BIN',
    pathNames: [],
    versionArgs: ['--version'],
    parseVersion: (out) => /composecheck compose-go (\S+)/.exec(out)?.[1],
    accepts: (v) => v === COMPOSE_GO_VERSION,
    cacheKey: () =>
      `composecheck-${COMPOSE_GO_VERSION}-${hashOf(composecheckModuleDir, ['go.mod', 'go.sum', 'main.go'])}`,
    binary: 'composecheck',
    requires: ['go'],
    coldBuild: 'under 1 min',
  },
  {
    name: 'actionlint',
    wanted: ACTIONLINT_VERSION,
    purpose: 'lints GitHub Actions workflows and the local action they use (action.yml), as in CI',
    envVar: 'MESHFLOW_ACTIONLINT_BIN',
    pathNames: ['actionlint'],
    versionArgs: ['--version'],
    // A `go install` of a tagged module reports its module version on the first line.
    parseVersion: (out) => /^(v\d+\.\d+\.\d+)\s*$/m.exec(out)?.[1],
    accepts: (v) => v === ACTIONLINT_VERSION,
    cacheKey: () => `actionlint-${ACTIONLINT_VERSION}`,
    binary: 'actionlint',
    requires: ['go'],
    coldBuild: 'under 1 min',
  },
];

export function toolSpec(name: string): ToolSpec {
  const spec = TOOLS.find((t) => t.name === name);
  if (!spec) throw new Error(`unknown tool ${name}`);
  return spec;
}
