// `meshflow doctor` and `meshflow setup`, run as a user runs them (the compiled CLI).
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
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
    'pilot-discovery',
    'istioctl',
    'temporal-test-server',
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
  // istioctl carries Istio's addon manifests of the same module.
  const istioctl = tools.find((t) => t.name === 'istioctl')!;
  expect(fs.readdirSync(path.join(path.dirname(istioctl.path), 'addons')).sort()).toEqual([
    'grafana.yaml',
    'jaeger.yaml',
    'kiali.yaml',
    'prometheus.yaml',
  ]);
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
