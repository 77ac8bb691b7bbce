// `meshflow doctor` and `meshflow setup`, run as a user runs them (the compiled CLI).
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { ISTIO_BUILDS } from '../src/istio/version';
import { PermanentError } from '../src/steps/errors';
import { setupToolNames } from '../src/tools/install';
import { istioToolsOf } from '../src/tools/istio-builds';
import { TOOLS, istioToolName, toolSpec } from '../src/tools/specs';
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

test('setup without Go names the missing prerequisite and the retry command, and installs nothing', async () => {
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
  expect(fs.existsSync(path.join(cache, 'tools'))).toBe(false);
});

test('a build that fails leaves no half-installed tool in the cache', async () => {
  const cache = scratchDir('cache-fail');
  // No module proxy and an empty module cache: `go install` must fail while fetching.
  const r = await meshflow(['setup'], {
    MESHFLOW_CACHE_DIR: cache,
    GOPROXY: 'off',
    GOMODCACHE: path.join(cache, 'gomod'),
    GOFLAGS: '',
  });
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain('building temporal 1.5.1');
  expect(r.stderr).toContain('Nothing was installed');
  expect(fs.existsSync(path.join(cache, 'tools'))).toBe(true);
  expect(fs.readdirSync(path.join(cache, 'tools'))).toEqual([]);
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
