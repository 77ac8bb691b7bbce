// Finds each pinned tool (a user's copy named by env var, a KUBEBUILDER_ASSETS directory, PATH,
// then our own build in the cache) and builds what is missing. A build happens in a scratch
// directory next to its final place and is renamed into place only when complete, so the cache
// never holds a half-installed tool; a build that fails leaves nothing behind.
import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { toolsDir } from '../paths';
import { ISTIO_ADDONS, type IstioBuild } from '../istio/version';
import { withLock } from '../util/lock';
import { canConnect, freePort, sleep } from '../util/net';
import { type Progress, formatDuration, stderrProgress } from '../util/progress';
import {
  ACTIONLINT_VERSION,
  KUBERNETES_VERSION,
  KWOK_VERSION,
  TEMPORAL_CLI_VERSION,
  TEMPORAL_TEST_SERVER_VERSION,
  TEMPORAL_UI_VERSION,
  TOOLS,
  type IstioCommand,
  type Prerequisite,
  type ToolSpec,
  composecheckModuleDir,
  istioWrapperDir,
  kubeModuleDir,
  testServerPomDir,
  toolSpec,
} from './specs';

export type ToolSource = 'env' | 'assets' | 'path' | 'cache';

export interface ToolStatus {
  name: string;
  wanted: string;
  found: string | null;
  path: string | null;
  source: ToolSource | null;
  ok: boolean;
  /** Why the tool is not ok, when it is not. */
  problem?: string;
}

export class ToolSetupError extends Error {
  override name = 'ToolSetupError';
}

async function probeVersion(spec: ToolSpec, file: string): Promise<string | undefined> {
  const r = await execa(file, spec.versionArgs, { reject: false, timeout: 30_000, all: true });
  return spec.parseVersion(r.all ?? '');
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not in this PATH entry
    }
  }
  return undefined;
}

export function cachedPath(spec: ToolSpec): string {
  return path.join(toolsDir(), spec.cacheKey(), spec.binary);
}

/** Where the tool is and which version it is, without building anything. */
export async function inspectTool(spec: ToolSpec): Promise<ToolStatus> {
  const base = { name: spec.name, wanted: spec.wanted };
  const explicit = process.env[spec.envVar];
  if (explicit) {
    // An explicit choice is used as it is or reported as wrong; we never fall back silently.
    if (!fs.existsSync(explicit)) {
      return { ...base, found: null, path: explicit, source: 'env', ok: false, problem: `${spec.envVar} names a missing file` };
    }
    const found = (await probeVersion(spec, explicit)) ?? null;
    const ok = found !== null && spec.accepts(found);
    return { ...base, found, path: explicit, source: 'env', ok, ...(ok ? {} : { problem: `${spec.envVar}: version ${found ?? 'unknown'}, want ${spec.wanted}` }) };
  }
  const candidates: Array<[string, ToolSource]> = [
    ...(spec.extraCandidates?.() ?? []).map((p): [string, ToolSource] => [p, 'assets']),
    ...spec.pathNames.flatMap((n): Array<[string, ToolSource]> => {
      const p = onPath(n);
      return p ? [[p, 'path']] : [];
    }),
  ];
  for (const [file, source] of candidates) {
    if (!fs.existsSync(file)) continue;
    const found = await probeVersion(spec, file);
    if (found && spec.accepts(found)) return { ...base, found, path: file, source, ok: true };
  }
  const mine = cachedPath(spec);
  if (fs.existsSync(mine)) {
    const found = (await probeVersion(spec, mine)) ?? null;
    const ok = found !== null && spec.accepts(found);
    return { ...base, found, path: mine, source: 'cache', ok, ...(ok ? {} : { problem: `cached build reports ${found ?? 'no version'}` }) };
  }
  const problem = spec.onDemand
    ? `not built yet: built on first use, or by \`meshflow setup --all\``
    : 'not installed (run `npm run setup`)';
  return { ...base, found: null, path: null, source: null, ok: false, problem };
}

export async function inspectTools(): Promise<ToolStatus[]> {
  return Promise.all(TOOLS.map(inspectTool));
}

const PREREQ_HELP: Record<Prerequisite, string> = {
  go: 'Go (1.24 or newer; newer toolchains are fetched by Go itself when a module asks for one)',
  java: 'a Java runtime (17 or newer)',
  mvn: 'Apache Maven (3.6 or newer)',
};

async function checkPrerequisites(spec: ToolSpec): Promise<void> {
  for (const p of spec.requires) {
    const args = p === 'go' ? ['version'] : p === 'java' ? ['-version'] : ['-v'];
    const r = await execa(p, args, { reject: false, timeout: 60_000 });
    if (r.exitCode !== 0) {
      throw new ToolSetupError(
        `${spec.name} ${spec.wanted} is not installed and cannot be built here: ${PREREQ_HELP[p]} was not found on PATH. ` +
          `Install it and run \`${setupCommand(spec)}\` again, ` +
          `or point ${spec.envVar} at an existing ${spec.name} ${spec.wanted}.`,
      );
    }
  }
}

const goEnv = (gobin?: string) => ({
  CGO_ENABLED: '0',
  GOFLAGS: '-modcacherw',
  ...(gobin ? { GOBIN: gobin } : {}),
});

/** The tool a build's commands are for, so that their traces carry its name. */
const buildOf = new AsyncLocalStorage<string>();
let traces = 0;

/**
 * With MESHFLOW_GO_TRACE_DIR set (the cold-setup bench sets it), each Go command of a build writes
 * its trace there (`go -debug-trace`, the Chrome trace format: module fetches, each compile and
 * link as spans), in a file named after the tool.
 */
function traced(file: string, args: string[]): string[] {
  const dir = process.env.MESHFLOW_GO_TRACE_DIR;
  if (!dir || file !== 'go') return args;
  fs.mkdirSync(dir, { recursive: true });
  const name = `${buildOf.getStore() ?? 'go'}.${++traces}.${args[0]}.json`;
  return [args[0], `-debug-trace=${path.join(dir, name)}`, ...args.slice(1)];
}

async function run(file: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const r = await execa(file, traced(file, args), { ...opts, reject: false, all: true });
  if (r.exitCode !== 0) {
    const tail = (r.all ?? '').split('\n').filter((l) => !l.startsWith('go: downloading')).slice(-25).join('\n');
    throw new ToolSetupError(`\`${file} ${args.join(' ')}\` failed (exit ${r.exitCode}):\n${tail}`);
  }
}

type Builder = (dir: string) => Promise<void>;

const ISTIO_PACKAGES: Record<IstioCommand, string> = {
  istioctl: 'istio.io/istio/istioctl/cmd/istioctl',
  'pilot-discovery': 'istio.io/istio/pilot/cmd/pilot-discovery',
};

/**
 * A command of an Istio build, its version stamped as the build's: `go install` at the pinned
 * pseudo-version, or `go build` inside the build's wrapper module. istioctl gets Istio's
 * observability addons of the same module beside it, for specs that ask for them.
 */
async function buildIstioCommand(build: IstioBuild, command: IstioCommand, dir: string): Promise<void> {
  const v = 'istio.io/istio/pkg/version';
  const ldflags = `-ldflags=-s -w -X ${v}.buildVersion=${build.stamp} -X ${v}.buildStatus=Clean`;
  const pkg = ISTIO_PACKAGES[command];
  const wrapper = istioWrapperDir(build);
  if (wrapper) {
    await run('go', ['build', '-mod=readonly', '-trimpath', ldflags, '-o', path.join(dir, command), pkg], {
      cwd: wrapper,
      env: goEnv(),
    });
  } else {
    await run('go', ['install', '-trimpath', ldflags, `${pkg}@${build.module}`], { env: goEnv(dir) });
  }
  if (command !== 'istioctl') return;
  const addons = path.join(dir, ISTIO_ADDONS_DIR);
  fs.mkdirSync(addons);
  const samples = path.join(await moduleDir(`istio.io/istio@${build.module}`), 'samples', 'addons');
  for (const addon of ISTIO_ADDONS) {
    fs.copyFileSync(path.join(samples, `${addon}.yaml`), path.join(addons, `${addon}.yaml`));
  }
  fs.writeFileSync(path.join(dir, GATEWAY_API_CRDS), await gatewayApiCrds(build));
}

/**
 * The Gateway API CRDs (standard channel) at the version the Istio build's go.mod requires, from
 * that module: what ambient meshes need before istiod starts (its GatewayClasses, east-west
 * Gateways and waypoints are Gateway API objects). Istio ships none itself.
 */
async function gatewayApiCrds(build: IstioBuild): Promise<string> {
  const istio = await moduleDir(`istio.io/istio@${build.module}`);
  const version = /^\s*sigs\.k8s\.io\/gateway-api (v\S+)/m.exec(fs.readFileSync(path.join(istio, 'go.mod'), 'utf8'))?.[1];
  if (!version) throw new ToolSetupError(`istio.io/istio@${build.module} requires no sigs.k8s.io/gateway-api`);
  const dir = path.join(await moduleDir(`sigs.k8s.io/gateway-api@${version}`), 'config', 'crd', 'standard');
  // The CRDs only: not the ValidatingAdmissionPolicy that guards their upgrades (vap_*).
  const files = fs.readdirSync(dir).filter((f) => /^gateway\.networking\.k8s\.io_(?!vap_).*\.yaml$/.test(f)).sort();
  return files.map((f) => fs.readFileSync(path.join(dir, f), 'utf8').replace(/^---\n/, '').trim()).join('\n---\n') + '\n';
}

/** The folder beside the team deployment's server and UI that holds the config template their images render. */
export const TEMPORAL_CONFIG_DIR = 'config';

/**
 * Commands of a Go module installed under the names their images give them (`packages`: the
 * package's path in the module -> the name), with the module's config/docker.yaml beside them:
 * the template the `temporalio/server` and `temporalio/ui` images render from their environment.
 */
async function installWithTemplate(dir: string, module: string, version: string, packages: Record<string, string>) {
  const pkgs = Object.keys(packages).map((p) => `${module}/${p}@${version}`);
  await run('go', ['install', '-trimpath', '-ldflags=-s -w', ...pkgs], { env: goEnv(dir) });
  for (const [pkg, name] of Object.entries(packages)) {
    fs.renameSync(path.join(dir, path.basename(pkg)), path.join(dir, name));
  }
  const template = path.join(await moduleDir(`${module}@${version}`), 'config', 'docker.yaml');
  fs.mkdirSync(path.join(dir, TEMPORAL_CONFIG_DIR));
  fs.copyFileSync(template, path.join(dir, TEMPORAL_CONFIG_DIR, 'docker.yaml'));
}

/** Temporal server and temporal-sql-tool of one release: one `go install` (they share most of the module). */
const buildTemporalServer = (version: string, dir: string) =>
  installWithTemplate(dir, 'go.temporal.io/server', `v${version}`, {
    'cmd/server': 'temporal-server',
    'cmd/tools/sql': 'temporal-sql-tool',
  });

const BUILDERS: Record<string, Builder> = {
  'temporal-ui-server': (dir) =>
    installWithTemplate(dir, 'github.com/temporalio/ui-server/v2', `v${TEMPORAL_UI_VERSION}`, {
      'cmd/server': 'temporal-ui-server',
    }),

  temporal: (dir) =>
    run('go', ['install', '-trimpath', `-ldflags=-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`,
      `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`], { env: goEnv(dir) }),

  'kube-apiserver': async (dir) => {
    const [major, minor] = KUBERNETES_VERSION.slice(1).split('.');
    const v = 'k8s.io/component-base/version';
    await run('go', ['build', '-mod=readonly', '-trimpath',
      `-ldflags=-s -w -X ${v}.gitVersion=${KUBERNETES_VERSION} -X ${v}.gitMajor=${major} -X ${v}.gitMinor=${minor} -X ${v}.gitTreeState=clean`,
      '-o', path.join(dir, 'meshflow-kube'), '.'], { cwd: kubeModuleDir, env: goEnv() });
    for (const role of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd']) {
      fs.symlinkSync('meshflow-kube', path.join(dir, role));
    }
  },

  kwok: async (dir) => {
    await run('go', ['install', '-trimpath', '-ldflags=-s -w', `sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}`], {
      env: goEnv(dir),
    });
    fs.writeFileSync(path.join(dir, KWOK_STAGES), await kwokStages());
    fs.writeFileSync(path.join(dir, KWOK_CRDS), await kwokCrds());
  },

  composecheck: (dir) =>
    run('go', ['build', '-mod=readonly', '-trimpath', '-ldflags=-s -w', '-o', path.join(dir, 'composecheck'), '.'], {
      cwd: composecheckModuleDir,
      env: goEnv(),
    }),

  // Checked against the Go checksum database like the other `go install`s: the module is pinned by its tag's hash.
  actionlint: (dir) =>
    run('go', ['install', '-trimpath', '-ldflags=-s -w',
      `github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}`], { env: goEnv(dir) }),

  'temporal-test-server': async (dir) => {
    const lib = path.join(dir, 'lib');
    await run('mvn', ['-B', '-q', '-f', path.join(testServerPomDir, 'pom.xml'), 'dependency:copy-dependencies',
      '-DincludeScope=runtime', `-DoutputDirectory=${lib}`]);
    const wrapper = path.join(dir, 'temporal-test-server');
    // The SDK starts this file as `<file> <port>` and SIGKILLs it on teardown, so it must exec the
    // JVM (no shell left behind holding the port). Time skipping is left to the SDK, which locks
    // and unlocks it around each wait; started with --enable-time-skipping the server would skip
    // ahead before the worker even polls. A class-data archive made at install time keeps the JVM start well
    // inside the SDK's 5 s readiness window.
    fs.writeFileSync(wrapper, [
      '#!/bin/sh',
      '# Temporal time-skipping test server, installed by meshflow.',
      'here=$(dirname "$0")',
      `if [ "$1" = --version ]; then echo "temporal-test-server ${TEMPORAL_TEST_SERVER_VERSION}"; exit 0; fi`,
      'cds=""',
      'if [ -f "$here/app.jsa" ]; then cds="-XX:SharedArchiveFile=$here/app.jsa -Xshare:auto"; fi',
      '# The class path is relative so that it matches the one the archive was made with.',
      'cd "$here" || exit 1',
      'exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss512k $cds $MESHFLOW_TEST_SERVER_JAVA_OPTS \\',
      '  -cp "lib/*" io.temporal.testserver.TestServer "$@"',
      '',
    ].join('\n'), { mode: 0o755 });
    await makeClassDataArchive(dir);
  },
};
BUILDERS.etcd = BUILDERS['kube-controller-manager'] = BUILDERS['kube-scheduler'] = BUILDERS['kube-apiserver'];

/** Where the Go module cache holds a module's source (fetched when missing). */
async function moduleDir(moduleAtVersion: string): Promise<string> {
  const r = await execa('go', ['mod', 'download', '-json', moduleAtVersion], { env: goEnv() });
  return (JSON.parse(r.stdout) as { Dir: string }).Dir;
}

/** The directory beside our istioctl that holds Istio's addon manifests (samples/addons of the same module). */
export const ISTIO_ADDONS_DIR = 'addons';

/** The file beside our istioctl that holds the Gateway API CRDs its Istio build wants. */
export const GATEWAY_API_CRDS = 'gateway-api-crds.yaml';

/** The file beside our kwok that holds the stages it plays (kwok itself ships none outside kwokctl). */
export const KWOK_STAGES = 'stages.yaml';

/** The file beside our kwok that holds the CRDs of its kubelet API's configuration (PortForward, ClusterExec). */
export const KWOK_CRDS = 'crds.yaml';

/** kwok's PortForward and ClusterExec CRDs, from the same module as the binary. */
async function kwokCrds(): Promise<string> {
  const dir = await moduleDir(`sigs.k8s.io/kwok@${KWOK_VERSION}`);
  const files = ['kwok.x-k8s.io_portforwards.yaml', 'kwok.x-k8s.io_clusterexecs.yaml'];
  return files
    .map((f) => fs.readFileSync(path.join(dir, 'kustomize', 'crd', 'bases', f), 'utf8').replace(/^---\n/, '').trim())
    .join('\n---\n') + '\n';
}

/**
 * kwok's own "fast" stages, as kwokctl runs them: nodes become Ready and renew their lease; pods
 * go Running with IPs from their node's pod CIDR, complete, and go away when deleted. Read from
 * the kwok module that `go install` just fetched, so they always match the binary.
 */
async function kwokStages(): Promise<string> {
  const dir = await moduleDir(`sigs.k8s.io/kwok@${KWOK_VERSION}`);
  const files = [
    'node/fast/node-initialize.yaml',
    'node/heartbeat-with-lease/node-heartbeat-with-lease.yaml',
    'pod/fast/pod-ready.yaml',
    'pod/fast/pod-complete.yaml',
    'pod/fast/pod-delete.yaml',
  ];
  return files.map((f) => fs.readFileSync(path.join(dir, 'kustomize', 'stage', f), 'utf8').trim()).join('\n---\n') + '\n';
}

/** Runs the test server once with -XX:ArchiveClassesAtExit so later starts load classes from the archive. */
async function makeClassDataArchive(dir: string): Promise<void> {
  const port = await freePort();
  const child = execa('java', ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Xss512k',
    '-XX:ArchiveClassesAtExit=app.jsa', '-cp', 'lib/*',
    'io.temporal.testserver.TestServer', String(port)], { cwd: dir, reject: false, forceKillAfterDelay: false });
  const deadline = Date.now() + 60_000;
  while (!(await canConnect(port)) && Date.now() < deadline) await sleep(200);
  await sleep(1000);
  child.kill('SIGTERM');
  await child;
}

/** The command that builds a tool: `npm run setup`, or `meshflow setup --all` for those built on demand. */
const setupCommand = (spec: ToolSpec) => (spec.onDemand ? 'meshflow setup --all' : 'npm run setup');

/** The tools `meshflow setup` makes ready: all of them, or (by default) those not built on demand. */
export const setupToolNames = (all = false) => TOOLS.filter((t) => all || !t.onDemand).map((t) => t.name);

/**
 * Makes sure the named tools are ready, building ours where needed. Returns their paths.
 *
 * Missing tools are built at once, as far as the machine allows (`buildSlots`): a cold Go build
 * alone kept 2 cores 93% busy here, so side by side the builds take what one leaves idle (module
 * downloads, links, the ends of dependency chains): 14m46s instead of 16.9 min for the tools of
 * `start-workflow`, close to their CPU floor. Builds that share most of their compilation run one
 * after another in one lane (`buildLane`), so the second finds the first's packages in the Go
 * build cache. `alongside` names tools the caller
 * will need soon: their builds start now too, but are not waited for (a later call waits for
 * them). Before the first build the plan is printed with how long it is expected to take.
 *
 * A tool is built once at a time: concurrent calls here wait for the same build, and other
 * processes (workers sharing the cache) for its lock.
 */
export async function ensureTools(
  names: string[] = setupToolNames(),
  progress: Progress = stderrProgress,
  opts: { alongside?: string[] } = {},
): Promise<Record<string, string>> {
  const wanted = [...new Set([...names, ...(opts.alongside ?? [])])].map(toolSpec);
  const statuses = new Map(await Promise.all(wanted.map(async (s) => [s.name, await inspectTool(s)] as const)));
  for (const name of names) {
    const status = statuses.get(name)!;
    if (!status.ok && status.source === 'env') throw new ToolSetupError(`${name}: ${status.problem}`);
  }
  const missing = longestFirst(
    uniqueBuilds(wanted.filter((s) => !statuses.get(s.name)!.ok && statuses.get(s.name)!.source !== 'env')),
  );
  const fresh = missing.filter((s) => !building.has(s.cacheKey()));
  if (fresh.length > 0) announceBuilds(fresh, progress);
  const builds = new Map(missing.map((s) => [s.cacheKey(), buildOnce(s, progress)]));
  // A build that fails is reported by whoever waits for it (alongside builds: a later call).
  for (const build of builds.values()) build.catch(() => undefined);
  await settleNeeded(names, builds, progress);
  const paths: Record<string, string> = {};
  for (const name of names) {
    const spec = toolSpec(name);
    let status = statuses.get(name)!;
    if (!status.ok) {
      status = await inspectTool(spec);
      if (!status.ok) throw new ToolSetupError(`${spec.name} was built but does not work: ${status.problem}`);
    }
    paths[name] = status.path!;
  }
  return paths;
}

/**
 * Waits for the builds `names` need. When one fails, says so at once, waits for the others (each
 * either lands whole in the cache or leaves nothing) and throws the first failure, naming the
 * other builds that failed.
 */
async function settleNeeded(names: string[], builds: Map<string, Promise<void>>, progress: Progress): Promise<void> {
  const needed = uniqueBuilds(names.map(toolSpec)).filter((s) => builds.has(s.cacheKey()));
  const failures: Array<{ spec: ToolSpec; err: unknown }> = [];
  await Promise.all(
    needed.map((spec) =>
      builds.get(spec.cacheKey())!.catch((err: unknown) => {
        failures.push({ spec, err });
        const others = needed.filter((s) => s !== spec && building.has(s.cacheKey())).map((s) => s.name);
        if (others.length > 0) {
          progress(`building ${spec.name} failed; waiting for ${others.join(', ')} so that nothing is left half-built`);
        }
      }),
    ),
  );
  if (failures.length === 0) return;
  const first = failures.sort((a, b) => needed.indexOf(a.spec) - needed.indexOf(b.spec))[0];
  if (failures.length > 1 && first.err instanceof Error) {
    first.err.message += `\n(${failures.length - 1} other build${failures.length > 2 ? 's' : ''} failed too: ${failures
      .slice(1)
      .map((f) => f.spec.name)
      .join(', ')})`;
  }
  throw first.err;
}

/**
 * The builds in the order they take the slots: the lanes with the most work first, so that what
 * is left at the end is short (a lane's own order kept: pilot-discovery, then istioctl).
 */
function longestFirst(specs: ToolSpec[]): ToolSpec[] {
  const lanes = new Map<string, ToolSpec[]>();
  for (const s of specs) lanes.set(buildLane(s), [...(lanes.get(buildLane(s)) ?? []), s]);
  const work = (lane: ToolSpec[]) => lane.reduce((sum, s) => sum + s.coldCpuMinutes, 0);
  return [...lanes.values()].sort((a, b) => work(b) - work(a)).flat();
}

/** One spec per build: the names that share a build (kube-apiserver, etcd, ...) are built once. */
export function uniqueBuilds(specs: ToolSpec[]): ToolSpec[] {
  const byKey = new Map<string, ToolSpec>();
  for (const s of specs) if (!byKey.has(s.cacheKey())) byKey.set(s.cacheKey(), s);
  return [...byKey.values()];
}

/**
 * Builds that share most of what they compile go one after another in one lane: the two commands
 * of an Istio build (one module, one build list), so the second finds most packages compiled.
 * Other builds share little (each module resolves its dependencies to versions of its own) and
 * each has a lane of its own.
 */
export function buildLane(spec: ToolSpec): string {
  return spec.istio ? `istio-${spec.istio.build.line}` : spec.cacheKey();
}

/**
 * How many builds run at once: one per core and one more (a build leaves its cores idle a third
 * of the time), as memory allows (a cold Go build of the larger tools peaks near 2.5 GiB).
 * MESHFLOW_BUILD_JOBS sets it.
 */
export function buildSlots(): number {
  const set = Number(process.env.MESHFLOW_BUILD_JOBS);
  if (Number.isInteger(set) && set > 0) return set;
  const byMemory = Math.floor(os.totalmem() / (2.5 * 2 ** 30));
  return Math.max(1, Math.min(os.cpus().length + 1, byMemory));
}

/**
 * The expected wall time of builds started together: their CPU spread over the cores, but no less
 * than the longest lane takes alone (one Go build keeps about 1.4 cores busy).
 */
export function expectedBuildMinutes(specs: ToolSpec[], cores = os.cpus().length): number {
  const lanes = new Map<string, number>();
  for (const s of specs) lanes.set(buildLane(s), (lanes.get(buildLane(s)) ?? 0) + s.coldCpuMinutes);
  const total = [...lanes.values()].reduce((a, b) => a + b, 0);
  const longest = Math.max(0, ...lanes.values());
  return Math.max(total / cores, longest / Math.min(cores, 1.4));
}

function announceBuilds(specs: ToolSpec[], progress: Progress): void {
  const minutes = Math.max(1, Math.round(expectedBuildMinutes(specs)));
  expectedUntil = Math.max(expectedUntil, Date.now() + minutes * 60_000);
  const names = specs.map((s) => s.name).join(', ');
  progress(
    `building ${specs.length} pinned tool${specs.length === 1 ? '' : 's'} from source into ${toolsDir()} ` +
      `(${names}): expected to take about ${minutes} min here (${os.cpus().length} cores, ` +
      `${Math.min(buildSlots(), specs.length)} at a time); later runs reuse them`,
  );
}

const building = new Map<string, Promise<void>>();
const lanes = new Map<string, Promise<unknown>>();
let slotsInUse = 0;
const slotWaiters: Array<() => void> = [];

async function withBuildSlot<T>(work: () => Promise<T>): Promise<T> {
  while (slotsInUse >= buildSlots()) await new Promise<void>((resolve) => slotWaiters.push(resolve));
  slotsInUse++;
  try {
    return await work();
  } finally {
    slotsInUse--;
    slotWaiters.shift()?.();
  }
}

/** Runs `work` after everything queued before it in `lane`, in a build slot. */
function inLane<T>(lane: string, work: () => Promise<T>): Promise<T> {
  const before = lanes.get(lane) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(() => withBuildSlot(work));
  const tail = mine.catch(() => undefined);
  lanes.set(lane, tail);
  void tail.then(() => {
    if (lanes.get(lane) === tail) lanes.delete(lane);
  });
  return mine;
}

function buildOnce(spec: ToolSpec, progress: Progress): Promise<void> {
  const key = spec.cacheKey();
  let pending = building.get(key);
  if (!pending) {
    // Its place in the lane is taken now, in the order the builds were asked for. Without what the
    // build needs, nothing is written to the cache (not even the lock).
    pending = inLane(buildLane(spec), async () => {
      await checkPrerequisites(spec);
      await withLock(
        path.join(toolsDir(), key),
        async () => {
          // Another process may have built it while this one waited for the lock.
          if (!fs.existsSync(cachedPath(spec)) || !(await inspectTool(spec)).ok) await buildTool(spec, progress);
        },
        BUILD_LOCK_WAIT_MS,
      );
    }).finally(() => building.delete(key));
    building.set(key, pending);
    watchBuilds(progress);
  }
  return pending;
}

/** While builds run: one line every 30 s naming those under way, however many calls wait for them. */
let heartbeat: NodeJS.Timeout | undefined;
const underWay = new Map<string, number>();

function watchBuilds(progress: Progress): void {
  if (heartbeat) return;
  const since = Date.now();
  const timer = setInterval(() => {
    if (building.size === 0) {
      clearInterval(timer);
      heartbeat = undefined;
      return;
    }
    const now = Date.now();
    const running = [...underWay].map(([name, at]) => `${name} (${formatDuration(now - at)})`);
    const queued = building.size - underWay.size;
    const toGo = expectedUntil > now ? `, about ${formatDuration(expectedUntil - now)} to go` : '';
    progress(
      `still building: ${running.join(', ') || 'waiting for a lock'}${queued > 0 ? `; ${queued} queued` : ''} ` +
        `[${formatDuration(now - since)} so far${toGo}]`,
    );
  }, HEARTBEAT_MS);
  timer.unref();
  heartbeat = timer;
}

const HEARTBEAT_MS = 30_000;
/** When the builds under way are expected to be done, as announced. */
let expectedUntil = 0;

/** How long a build waits for another process's build of the same tool (the slowest cold build, with room). */
const BUILD_LOCK_WAIT_MS = 60 * 60_000;

async function buildTool(spec: ToolSpec, progress: Progress): Promise<void> {
  const finalDir = path.dirname(cachedPath(spec));
  fs.mkdirSync(toolsDir(), { recursive: true });
  // Under this tool's lock: a scratch folder of its own is what a killed build left behind.
  for (const stale of fs.readdirSync(toolsDir()).filter((f) => f.startsWith(`.building-${spec.cacheKey()}-`))) {
    fs.rmSync(path.join(toolsDir(), stale), { recursive: true, force: true });
  }
  const scratch = fs.mkdtempSync(path.join(toolsDir(), `.building-${spec.cacheKey()}-`));
  const started = Date.now();
  progress(`building ${spec.name} ${spec.wanted} into ${finalDir}`);
  underWay.set(spec.name, started);
  try {
    const build = buildOf.run(spec.name, () => spec.istio
      ? buildIstioCommand(spec.istio.build, spec.istio.command, scratch)
      : spec.temporalServer
        ? buildTemporalServer(spec.temporalServer, scratch)
        : BUILDERS[spec.name](scratch));
    await build;
    fs.rmSync(finalDir, { recursive: true, force: true });
    fs.renameSync(scratch, finalDir);
  } catch (err) {
    fs.rmSync(scratch, { recursive: true, force: true });
    if (err instanceof ToolSetupError) {
      err.message += `\nNothing was installed. Fix the cause and run \`${setupCommand(spec)}\` again.`;
    }
    throw err;
  } finally {
    underWay.delete(spec.name);
  }
  progress(`built ${spec.name} ${spec.wanted} in ${formatDuration(Date.now() - started)}`);
}
