// The pinned external tools meshflow runs, each declared once: the version we want, where a
// user-provided copy may be found, and how to build ours from a package registry.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ISTIO_BUILDS, ISTIO_DEFAULT_LINE, type IstioBuild } from '../istio/version';
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
  /**
   * CPU-minutes a cold build took on the reference machine (2 cores, empty Go caches; for a build
   * that follows another in its lane, after it): what the expected setup time is made of.
   * 0 for the names built with another (etcd with kube-apiserver).
   */
  coldCpuMinutes: number;
  /** For istioctl and pilot-discovery: the Istio build they are of. */
  istio?: { build: IstioBuild; command: IstioCommand };
  /**
   * Built only when something needs it (a mesh of that Istio line, `meshflow setup --all`), not by
   * a plain `meshflow setup`: `meshflow doctor` lists it without counting it missing.
   */
  onDemand?: boolean;
  /** For temporal-server and temporal-sql-tool: the server release they are of. */
  temporalServer?: string;
}

export type IstioCommand = 'istioctl' | 'pilot-discovery';

export const TEMPORAL_CLI_VERSION = '1.5.1';
export const KUBERNETES_VERSION = 'v1.34.4';
export const ETCD_VERSION = '3.6.4';
export const TEMPORAL_TEST_SERVER_VERSION = '1.38.0';
/** kwok simulates nodes and the pods scheduled to them (no containers run) against a real API server. */
export const KWOK_VERSION = 'v0.8.0';
/** The compose-spec loader (what Docker Compose v2 loads compose files with), for checking docker-compose.yml. */
export const COMPOSE_GO_VERSION = 'v2.16.2';
/** actionlint checks GitHub Actions workflows and the local action (action.yml) they use. */
export const ACTIONLINT_VERSION = 'v1.7.12';
/**
 * The Temporal server of the team deployment (`meshflow team`): the version inside the pinned CLI,
 * which the compose file's images pin too, and the next minor release, which the server-upgrade
 * test moves to (Temporal upgrades one minor version at a time).
 */
export const TEMPORAL_SERVER_VERSION = '1.29.1';
export const TEMPORAL_SERVER_NEXT_VERSION = '1.30.8';
export const TEMPORAL_SERVER_VERSIONS = [TEMPORAL_SERVER_VERSION, TEMPORAL_SERVER_NEXT_VERSION] as const;
/** The Temporal Web UI server inside the pinned CLI, and the compose file's `temporalio/ui` image. */
export const TEMPORAL_UI_VERSION = '2.42.1';

/**
 * CPU-minutes of each cold build, measured here (2 cores, empty Go module and build caches, the
 * builds of one command side by side): the input of the expected setup time printed before builds.
 */
const COLD = {
  temporal: 7.4,
  kube: 11.9,
  kwok: 3.0,
  pilotDiscovery: 8.3,
  istioctl: 1.0,
  testServer: 0.5,
  temporalServer: 5.0,
  uiServer: 0.4,
  composecheck: 0.2,
  actionlint: 0.2,
};

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

/** The folder of an Istio build's wrapper module (tools/<wrapper>), when it is built through one. */
export function istioWrapperDir(build: IstioBuild): string | undefined {
  return build.wrapper ? path.join(packageRoot, 'tools', build.wrapper) : undefined;
}

/** A command of an Istio build as `ensureTools` names it: plain for the default line's, else `<command>-<line>`. */
export function istioToolName(command: IstioCommand, line: string): string {
  return line === ISTIO_DEFAULT_LINE ? command : `${command}-${line}`;
}

/** pilot-discovery and istioctl of one Istio build, each in a cache folder of its own. */
function istioTools(build: IstioBuild): ToolSpec[] {
  const envSuffix = build.line === ISTIO_DEFAULT_LINE ? '' : `_${build.line.replace('.', '_')}`;
  const wrapper = istioWrapperDir(build);
  // A build through a wrapper module is built again when the wrapper changes.
  const wrapperKey = () => (wrapper ? `-${hashOf(wrapper, ['go.mod', 'go.sum', 'tools.go'])}` : '');
  const common = {
    wanted: build.stamp,
    accepts: (v: string) => v === build.stamp,
    requires: ['go'] as Prerequisite[],
    ...(build.line === ISTIO_DEFAULT_LINE ? {} : { onDemand: true }),
  };
  return [
    {
      ...common,
      name: istioToolName('pilot-discovery', build.line),
      purpose: `istiod of Istio ${build.line} (${build.source}), run as a process for the primaries of local clusters`,
      envVar: `MESHFLOW_PILOT_DISCOVERY${envSuffix}_BIN`,
      pathNames: ['pilot-discovery'],
      versionArgs: ['version', '--short'],
      parseVersion: (out) => /client version: (\d+\.\d+[^\s]*)/.exec(out)?.[1],
      cacheKey: () => `pilot-discovery-${build.stamp}${wrapperKey()}`,
      binary: 'pilot-discovery',
      // Measured for 1.30 on a busy 2-core machine, niced: istioctl 9m20s, then pilot-discovery 2m30s.
      coldCpuMinutes: COLD.pilotDiscovery,
      istio: { build, command: 'pilot-discovery' },
    },
    {
      ...common,
      name: istioToolName('istioctl', build.line),
      purpose: `istioctl of Istio ${build.line} (${build.source}): renders its manifests and diagnoses meshes`,
      envVar: `MESHFLOW_ISTIOCTL${envSuffix}_BIN`,
      pathNames: ['istioctl'],
      versionArgs: ['version', '--remote=false', '--short'],
      parseVersion: (out) => /(?:client version: )?(\d+\.\d+[^\s]*)/.exec(out)?.[1],
      // r2: Istio's addon manifests are installed beside it; r3: and the Gateway API CRDs its build wants.
      cacheKey: () => `istioctl-${build.stamp}${wrapperKey()}-r3`,
      binary: 'istioctl',
      coldCpuMinutes: COLD.istioctl,
      istio: { build, command: 'istioctl' },
    },
  ];
}

/** `temporal-server` or `temporal-sql-tool` of a server release: plain for the pinned one, else `<name>-<minor>`. */
export function temporalServerToolName(command: TemporalServerCommand, version: string): string {
  return version === TEMPORAL_SERVER_VERSION ? command : `${command}-${version.split('.').slice(0, 2).join('.')}`;
}

export type TemporalServerCommand = 'temporal-server' | 'temporal-sql-tool';

/**
 * The Temporal server and its SQL schema tool of one release, built together by one `go install`
 * of `go.temporal.io/server` into one folder, with the server image's config template
 * (config/docker.yaml, the file `temporalio/server` renders from its environment) beside them.
 */
function temporalServerTools(version: string): ToolSpec[] {
  const common = {
    wanted: version,
    accepts: (v: string) => v === version,
    cacheKey: () => `temporal-server-${version}-r1`,
    requires: ['go'] as Prerequisite[],
    versionArgs: ['--version'],
    coldCpuMinutes: COLD.temporalServer,
    onDemand: true,
    temporalServer: version,
  };
  const suffix = version === TEMPORAL_SERVER_VERSION ? '' : `_${version.split('.').slice(0, 2).join('_')}`;
  return [
    {
      ...common,
      name: temporalServerToolName('temporal-server', version),
      purpose: `Temporal server ${version} (frontend, history, matching, worker) for \`meshflow team\`, on PostgreSQL`,
      envVar: `MESHFLOW_TEMPORAL_SERVER${suffix}_BIN`,
      pathNames: ['temporal-server'],
      parseVersion: (out) => /^temporal version (\d+\.\d+\.\d+)\s*$/m.exec(out)?.[1],
      binary: 'temporal-server',
    },
    {
      ...common,
      name: temporalServerToolName('temporal-sql-tool', version),
      purpose: `Temporal's SQL schema tool ${version}: creates and updates the team deployment's databases`,
      envVar: `MESHFLOW_TEMPORAL_SQL_TOOL${suffix}_BIN`,
      pathNames: ['temporal-sql-tool'],
      parseVersion: (out) => /temporal-sql-tool version (\d+\.\d+\.\d+)/.exec(out)?.[1],
      binary: 'temporal-sql-tool',
      coldCpuMinutes: 0,
    },
  ];
}

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
    coldCpuMinutes: COLD.temporal,
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
    coldCpuMinutes: COLD.kube,
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
    coldCpuMinutes: 0,
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
      coldCpuMinutes: 0,
    }),
  ),
  {
    name: 'kwok',
    wanted: KWOK_VERSION,
    purpose: 'simulated nodes for local clusters: scheduled pods get Running with IPs from the pod CIDR',
    envVar: 'MESHFLOW_KWOK_BIN',
    // Only our build: it carries the stage definitions (stages.yaml) and CRDs (crds.yaml) kwok runs with.
    pathNames: [],
    versionArgs: ['--version'],
    parseVersion: (out) => /(v\d+\.\d+\.\d+)/.exec(out)?.[1],
    accepts: (v) => v === KWOK_VERSION,
    cacheKey: () => `kwok-${KWOK_VERSION}-r2`,
    binary: 'kwok',
    requires: ['go'],
    coldCpuMinutes: COLD.kwok,
  },
  ...ISTIO_BUILDS.flatMap(istioTools),
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
    coldCpuMinutes: COLD.testServer,
  },
  ...TEMPORAL_SERVER_VERSIONS.flatMap(temporalServerTools),
  {
    name: 'temporal-ui-server',
    wanted: TEMPORAL_UI_VERSION,
    purpose: "Temporal Web UI server for `meshflow team`: the `temporalio/ui` image's program and config template",
    envVar: 'MESHFLOW_TEMPORAL_UI_SERVER_BIN',
    pathNames: [],
    versionArgs: ['--version'],
    parseVersion: (out) => /version v?(\d+\.\d+\.\d+)/.exec(out)?.[1],
    accepts: (v) => v === TEMPORAL_UI_VERSION,
    cacheKey: () => `temporal-ui-server-${TEMPORAL_UI_VERSION}-r1`,
    binary: 'temporal-ui-server',
    requires: ['go'],
    coldCpuMinutes: COLD.uiServer,
    onDemand: true,
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
    coldCpuMinutes: COLD.composecheck,
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
    coldCpuMinutes: COLD.actionlint,
  },
];

export function toolSpec(name: string): ToolSpec {
  const spec = TOOLS.find((t) => t.name === name);
  if (!spec) throw new Error(`unknown tool ${name}`);
  return spec;
}
