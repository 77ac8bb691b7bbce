// `meshflow doctor` and `meshflow setup`, run as a user runs them (the compiled CLI).
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { ISTIO_BUILDS } from '../src/istio/version';
import { PermanentError } from '../src/util/errors';
import { buildLane, buildSlots, expectedBuildMinutes, setupToolNames } from '../src/tools/install';
import { istioToolsOf } from '../src/tools/istio-builds';
import { TOOLS, istioToolName, toolSpec } from '../src/tools/specs';
import { goTracePhases, unionMs } from '../src/bench/cold';
import { scratchDir } from './helpers/env';

const cli = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');
const meshflow = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  execa(process.execPath, [cli, ...args], { reject: false, env: { ...process.env, ...env }, extendEnv: false });

test('doctor --json reports every pinned tool ready at its pinned version', async () => {
  const r = await meshflow(['doctor', '--json']);
  expect(r.exitCode).toBe(0);
  const { tools } = JSON.parse(r.stdout) as {
    tools: Array<{ name: string; wanted: string; found: string; path: string; ok: boolean }>;
  };
  expect(tools.map((t) => t.name)).toEqual([
    'temporal',
    'kube-apiserver',
    'etcd',
    'kube-controller-manager',
    'kube-scheduler',
    'kwok',
    'pilot-discovery-1.30',
    'istioctl-1.30',
    'pilot-discovery',
    'istioctl',
    'temporal-test-server',
    'temporal-server',
    'temporal-sql-tool',
    'temporal-server-1.30',
    'temporal-sql-tool-1.30',
    'temporal-ui-server',
    'composecheck',
    'actionlint',
  ]);
  for (const t of tools) {
    expect(t).toMatchObject({ ok: true, found: t.wanted });
    expect(fs.existsSync(t.path)).toBe(true);
  }
  // kwok carries the stages it plays: nodes become Ready, pods Running with IPs.
  const kwok = tools.find((t) => t.name === 'kwok')!;
  const stages = fs.readFileSync(path.join(path.dirname(kwok.path), 'stages.yaml'), 'utf8');
  for (const stage of ['node-initialize', 'pod-ready', 'pod-delete']) expect(stages).toContain(`name: ${stage}`);
  // Each istioctl carries Istio's addon manifests of the same module.
  for (const name of ['istioctl', 'istioctl-1.30']) {
    const istioctl = tools.find((t) => t.name === name)!;
    expect(fs.readdirSync(path.join(path.dirname(istioctl.path), 'addons')).sort()).toEqual([
      'grafana.yaml',
      'jaeger.yaml',
      'kiali.yaml',
      'prometheus.yaml',
    ]);
    // And the Gateway API CRDs (standard channel) its build's go.mod requires: CRDs only, each once.
    const crds = fs.readFileSync(path.join(path.dirname(istioctl.path), 'gateway-api-crds.yaml'), 'utf8');
    const kinds = [...crds.matchAll(/^kind: (\S+)$/gm)].map((m) => m[1]);
    expect(new Set(kinds)).toEqual(new Set(['CustomResourceDefinition']));
    expect(crds).toContain('name: gateways.gateway.networking.k8s.io');
    expect(crds).toMatch(/gateway\.networking\.k8s\.io\/bundle-version: v1\.\d+\.\d+/);
  }
  // Each Istio build's binaries report the build they are of.
  for (const [name, stamp] of [
    ['pilot-discovery-1.30', '1.30-9739e10eb9d7'],
    ['istioctl-1.30', '1.30-9739e10eb9d7'],
    ['pilot-discovery', '1.31-eed52ebb66ad'],
    ['istioctl', '1.31-eed52ebb66ad'],
  ]) {
    expect(tools.find((t) => t.name === name)).toMatchObject({ ok: true, wanted: stamp, found: stamp });
  }
});

test('each pinned Istio build has its istioctl and pilot-discovery, side by side in the tool cache', () => {
  expect(ISTIO_BUILDS.map((b) => [b.line, b.module, b.stamp, b.defaultVersion])).toEqual([
    ['1.30', 'v0.0.0-20260826214018-9739e10eb9d7', '1.30-9739e10eb9d7', '1.30.8'],
    ['1.31', 'v0.0.0-20260827124520-eed52ebb66ad', '1.31-eed52ebb66ad', '1.31.4'],
  ]);
  // The 1.31 build keeps the tool names and cache folders it had as the only build: nothing is rebuilt.
  // (istioctl's r3: the Gateway API CRDs its build wants are installed beside it, for ambient meshes.)
  expect(toolSpec('istioctl').cacheKey()).toBe('istioctl-1.31-eed52ebb66ad-r3');
  expect(toolSpec('pilot-discovery').cacheKey()).toBe('pilot-discovery-1.31-eed52ebb66ad');
  expect(toolSpec('istioctl').envVar).toBe('MESHFLOW_ISTIOCTL_BIN');
  // 1.30 is built through its wrapper module, whose files are in its cache keys.
  expect(toolSpec('istioctl-1.30').cacheKey()).toMatch(/^istioctl-1\.30-9739e10eb9d7-[0-9a-f]{12}-r3$/);
  expect(toolSpec('pilot-discovery-1.30').cacheKey()).toMatch(/^pilot-discovery-1\.30-9739e10eb9d7-[0-9a-f]{12}$/);
  expect(toolSpec('istioctl-1.30').envVar).toBe('MESHFLOW_ISTIOCTL_1_30_BIN');
  const istio = TOOLS.filter((t) => t.istio);
  expect(istio.map((t) => t.name)).toEqual(
    ISTIO_BUILDS.flatMap((b) => [istioToolName('pilot-discovery', b.line), istioToolName('istioctl', b.line)]),
  );
  expect(new Set(istio.map((t) => t.cacheKey())).size).toBe(istio.length);
  for (const t of istio) expect(t.accepts(t.istio!.build.stamp) && !t.accepts('1.31-b01690e6db7d')).toBe(true);
  // A plain `meshflow setup` builds the default line's; `--all` (and a mesh of 1.30, on first use) the other.
  expect(setupToolNames()).not.toContain('istioctl-1.30');
  expect(setupToolNames(true)).toEqual(TOOLS.map((t) => t.name));
});

test('doctor says what is wrong with a tool named by env var, and exits non-zero', async () => {
  const r = await meshflow(['doctor'], { MESHFLOW_TEMPORAL_BIN: '/nonexistent/temporal' });
  expect(r.exitCode).toBe(1);
  expect(r.stdout).toMatch(/temporal\s+1\.5\.1\s+-\s+NO\s+MESHFLOW_TEMPORAL_BIN names a missing file/);
  expect(r.stdout).toContain('some tools are missing');
});

test('setup without Go names the missing prerequisite and the retry command, and builds nothing', async () => {
  const cache = scratchDir('cache-nogo');
  const node = path.dirname(process.execPath);
  const r = await meshflow(['setup'], {
    MESHFLOW_CACHE_DIR: cache,
    PATH: `${node}:/usr/bin:/bin`,
    MESHFLOW_TEMPORAL_BIN: '',
  });
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain('temporal 1.5.1 is not installed and cannot be built here: Go');
  expect(r.stderr).toContain('npm run setup');
  // The builds that need Go wrote nothing (not even a lock); only the test server (Java, Maven) may have landed.
  const left = fs.existsSync(path.join(cache, 'tools')) ? fs.readdirSync(path.join(cache, 'tools')) : [];
  expect(left.filter((f) => f !== toolSpec('temporal-test-server').cacheKey())).toEqual([]);
});

test('builds that fail leave no half-installed tool in the cache, and each failure is named', async () => {
  const cache = scratchDir('cache-fail');
  // A scratch folder a killed build left behind is cleared by the next build of that tool.
  fs.mkdirSync(path.join(cache, 'tools', `.building-${toolSpec('kwok').cacheKey()}-x1y2z3`, 'partial'), {
    recursive: true,
  });
  // No module proxy and an empty module cache: every `go install` must fail while fetching.
  const r = await meshflow(['setup'], {
    MESHFLOW_CACHE_DIR: cache,
    GOPROXY: 'off',
    GOMODCACHE: path.join(cache, 'gomod'),
    GOFLAGS: '',
  });
  expect(r.exitCode).toBe(1);
  // The plan first: what is built, at once, and how long it is expected to take.
  const plan =
    /building \d+ pinned tools from source into \S+ \((.*)\): expected to take about \d+ min here \(\d+ cores, \d+ at a time\)/.exec(
      r.stderr,
    );
  expect(plan?.[1].split(', ')).toEqual(expect.arrayContaining(['temporal', 'kube-apiserver', 'kwok', 'istioctl']));
  expect(r.stderr).toContain('building temporal 1.5.1');
  expect(r.stderr).toContain('Nothing was installed');
  expect(r.stderr).toMatch(/other builds? failed too: .*kube-apiserver/);
  // Only a build that needs no Go module (the test server, from Maven) may have landed, whole.
  const left = fs.readdirSync(path.join(cache, 'tools'));
  expect(left.filter((f) => f !== toolSpec('temporal-test-server').cacheKey())).toEqual([]);
});

test('builds run side by side, the two commands of an Istio build one after the other', () => {
  expect(buildLane(toolSpec('istioctl'))).toBe(buildLane(toolSpec('pilot-discovery')));
  expect(buildLane(toolSpec('kube-apiserver'))).not.toBe(buildLane(toolSpec('kwok')));
  expect(buildLane(toolSpec('temporal-server'))).toBe(buildLane(toolSpec('temporal-sql-tool')));
  // The expected time: the CPU spread over the cores, never less than the longest lane alone.
  const startWorkflow = ['temporal', 'kube-apiserver', 'kwok', 'pilot-discovery', 'istioctl'].map(toolSpec);
  const cpu = startWorkflow.reduce((sum, s) => sum + s.coldCpuMinutes, 0);
  expect(cpu).toBeGreaterThan(0);
  expect(expectedBuildMinutes(startWorkflow, 2)).toBeGreaterThanOrEqual(cpu / 2);
  expect(expectedBuildMinutes(startWorkflow, 64)).toBeGreaterThanOrEqual(
    (toolSpec('pilot-discovery').coldCpuMinutes + toolSpec('istioctl').coldCpuMinutes) / 1.4,
  );
  const saved = process.env.MESHFLOW_BUILD_JOBS;
  process.env.MESHFLOW_BUILD_JOBS = '1';
  try {
    expect(buildSlots()).toBe(1);
  } finally {
    if (saved === undefined) delete process.env.MESHFLOW_BUILD_JOBS;
    else process.env.MESHFLOW_BUILD_JOBS = saved;
  }
});

test("a worker's Istio build that cannot be built fails its step for good, naming what to run", async () => {
  const saved = { ...process.env };
  const cache = scratchDir('cache-istio');
  // No module proxy and an empty module cache: the build fails at once.
  Object.assign(process.env, { MESHFLOW_CACHE_DIR: cache, GOPROXY: 'off', GOMODCACHE: path.join(cache, 'gomod') });
  try {
    const istio = istioToolsOf({});
    const beats: unknown[] = [];
    const failure = istio('1.30.8', { heartbeat: (d) => beats.push(d) });
    await expect(failure).rejects.toBeInstanceOf(PermanentError);
    await expect(failure).rejects.toThrow(
      /the Istio 1\.30 build \(istioctl-1\.30, pilot-discovery-1\.30\) is not ready/,
    );
    await expect(failure).rejects.toThrow(
      /Run `meshflow setup --all` where the worker runs, or set MESHFLOW_ISTIOCTL_1_30_BIN/,
    );
    // A cancelled step stops waiting at once.
    const cancel = AbortSignal.abort(new Error('step cancelled'));
    await expect(istio('1.30.8', { heartbeat: () => undefined, signal: cancel })).rejects.toThrow('step cancelled');
    // The build it started goes on (and fails here): a step that asks again waits for that one.
    await expect(istio('1.30.8', { heartbeat: () => undefined })).rejects.toBeInstanceOf(PermanentError);
    await expect(istio('1.29.3', { heartbeat: () => undefined })).rejects.toThrow(
      'istio.version 1.29.3 is of no Istio build',
    );
    expect(fs.readdirSync(path.join(cache, 'tools'))).toEqual([]);
  } finally {
    process.env = saved;
  }
});

test("a Go command's trace tells fetching, compiling and linking apart (the cold-setup bench reads it)", async () => {
  const dir = scratchDir('go-trace');
  fs.writeFileSync(path.join(dir, 'go.mod'), 'module example.com/tiny\n\ngo 1.24\n');
  fs.writeFileSync(path.join(dir, 'main.go'), 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hi") }\n');
  const trace = path.join(dir, 'trace.json');
  // A build cache of its own: every package (fmt and what it imports) is compiled, then linked.
  await execa('go', ['build', `-debug-trace=${trace}`, '-o', path.join(dir, 'tiny'), '.'], {
    cwd: dir,
    env: { GOCACHE: path.join(dir, 'gocache'), CGO_ENABLED: '0', GOFLAGS: '' },
  });
  const phases = goTracePhases(fs.readFileSync(trace, 'utf8'));
  expect(phases.compileMs).toBeGreaterThan(0);
  expect(phases.linkMs).toBeGreaterThan(0);
  expect(phases.fetchMs).toBe(0); // the standard library needs no module fetched
  expect(phases.compileMs + phases.linkMs).toBeLessThanOrEqual(phases.wallMs + 1);
  // Overlapping spans count once.
  expect(
    unionMs([
      [0, 10],
      [5, 20],
      [30, 40],
    ]),
  ).toBe(30);
  // A large build's trace (istiod's: hundreds of thousands of events) is read too.
  const many = Array.from({ length: 200_000 }, (_, i) => [
    { name: `Executing action (build p${i})`, ph: 'B', ts: i * 1000, tid: i % 4 },
    { name: `Executing action (build p${i})`, ph: 'E', ts: i * 1000 + 500, tid: i % 4 },
  ]).flat();
  expect(goTracePhases(JSON.stringify(many)).compileMs).toBe(100_000);
});
