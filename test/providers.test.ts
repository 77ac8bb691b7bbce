// The provider contract, proven by a provider added from outside: test/fixtures/lab-provider.ts is
// one file that registers itself in one line, loaded as a user loads theirs (MESHFLOW_PROVIDERS).
// With nothing else changed, its spec section is checked with its rules, the plan shows its
// steps, a real worker (its workflows bundled with the provider) on the Temporal dev server takes
// a mesh of its clusters to ready, verify passes, gc's search finds its leases, and teardown
// returns every lease and leaves no cluster behind.
import fs from 'node:fs';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { meshStatus, startMesh, teardownMesh, verifyMesh } from '../src/client';
import { collectGarbage } from '../src/gc';
import { buildPlan } from '../src/plan/plan';
import { loadProviderModules } from '../src/providers/load';
import { providerIds } from '../src/providers/registry';
import { parseMeshSpec } from '../src/spec/load';
import { type MeshWorker, createWorker } from '../src/worker';
import type { MeshStatus } from '../src/workflows/types';
import { scratchDir } from './helpers/env';
import { realDeps, waitPhase as waitForPhase } from './helpers/mesh';
import { devServer } from './helpers/temporal';

jest.setTimeout(300_000);

const LAB = path.join(__dirname, 'fixtures', 'lab-provider.ts');
const QUEUE = 'providers';

let env: TestWorkflowEnvironment;
let worker: MeshWorker;
let running: Promise<void>;
let state: string;
let deps: ReturnType<typeof realDeps>;

const waitPhase = (mesh: string, phases: string[]): Promise<MeshStatus> =>
  waitForPhase(env.client, mesh, phases, 180_000);

const spec = (clusters: string) => `apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: leased
clusters:
${clusters}`;

const TWO = `  - { name: a, provider: lab, network: n1, lab: { bench: rack-1 } }
  - { name: b, provider: lab, network: n2, lab: { bench: rack-2, hours: 2 } }
`;

beforeAll(async () => {
  expect(loadProviderModules(LAB)).toEqual([LAB]);
  env = await devServer();
  state = scratchDir('providers');
  deps = realDeps(state);
  worker = await createWorker(env.nativeConnection, 'default', deps, QUEUE);
  running = worker.run();
});

afterAll(async () => {
  await teardownMesh(env.client, 'leased').catch(() => undefined);
  worker?.shutdown();
  await running;
  await env?.teardown();
});

test("a provider's spec section is checked with its own rules, and the plan shows its steps", () => {
  expect(providerIds()).toEqual(['local', 'existing', 'gke', 'lab']);
  expect(() => parseMeshSpec(spec('  - { name: a, provider: lab, network: n1 }\n'), 'lab.yaml')).toThrow(
    'lab.yaml:5:5 clusters[0].lab: provider "lab" needs a "lab:" section',
  );
  expect(() =>
    parseMeshSpec(
      spec(
        '  - { name: a, provider: lab, network: n1, lab: { bench: rack-1 } }\n' +
          '  - { name: b, provider: lab, network: n2, lab: { bench: rack-1 } }\n',
      ),
      'lab.yaml',
    ),
  ).toThrow('clusters[1].lab.bench: bench rack-1 is leased to clusters[0]');
  expect(() =>
    parseMeshSpec(spec('  - { name: a, provider: lab, network: n1, lab: { bench: Rack } }\n'), 'lab.yaml'),
  ).toThrow('clusters[0].lab.bench: must be a bench name such as rack-3');
  expect(() => parseMeshSpec(spec('  - { name: a, provider: labs, network: n1 }\n'), 'lab.yaml')).toThrow(
    /clusters\[0\]\.provider: .*"local"\|"existing"\|"gke"\|"lab"/,
  );

  const mesh = parseMeshSpec(spec(TWO));
  const plan = buildPlan(mesh);
  expect(plan.steps[0]).toMatchObject({ id: 'preflight', creates: expect.stringContaining('a, b: the bench is open') });
  expect(plan.steps.find((s) => s.id === 'create-cluster:b')).toMatchObject({
    creates: 'lab cluster b, leased from bench rack-2 for 2h',
    undo: 'return the lease of b',
  });
});

test('a mesh of its clusters is made by a real worker, verified, found by gc, and torn down whole', async () => {
  const closed = parseMeshSpec(spec('  - { name: a, provider: lab, network: n1, lab: { bench: closed-4 } }\n'));
  await startMesh(env.client, { ...closed, name: 'refused' }, QUEUE);
  const refused = await waitPhase('refused', ['deleted', 'failed', 'ready']);
  expect(refused.phase).toBe('deleted');
  expect(refused.error).toContain('- a: bench closed-4 is closed: pick another');

  const handle = await startMesh(env.client, parseMeshSpec(spec(TWO)), QUEUE);
  const ready = await waitPhase('leased', ['ready', 'failed', 'deleted']);
  expect(ready.error).toBeUndefined();
  expect(ready.phase).toBe('ready');
  expect(ready.provider).toBe('lab');
  expect(ready.steps.find((s) => s.id === 'create-cluster:a')?.state).toBe('done');

  const checks = await verifyMesh(env.client, 'leased');
  expect(checks.filter((c) => c.status !== 'passed')).toEqual([]);
  expect(checks.map((c) => c.code)).toEqual(expect.arrayContaining(['MF0101', 'MF0202', 'MF0301']));

  // gc searches the provider's cloud as it searches GKE's: the open mesh's leases are kept.
  const search = deps.providers.lab.garbage!;
  const isOpen = async (mesh: string) => mesh === 'leased';
  const found = await collectGarbage({
    stateDir: state,
    isOpen,
    dryRun: true,
    clouds: [{ provider: 'lab', scopes: ['rack-1', 'rack-2'], search }],
  });
  expect(found.findings.filter((f) => f.kind === 'lab-lease').map((f) => [f.where, f.what, f.action])).toEqual([
    ['bench rack-1', 'a', 'kept'],
    ['bench rack-2', 'b', 'kept'],
  ]);

  await teardownMesh(env.client, 'leased');
  await handle.result().catch(() => undefined);
  const gone = await meshStatus(env.client, 'leased');
  expect(gone.phase).toBe('deleted');
  expect(gone.leftBehind).toEqual([]);
  expect(await search.scan('rack-1')).toEqual([]);
  expect(await search.scan('rack-2')).toEqual([]);
  const clustersDir = path.join(state, 'clusters');
  expect(fs.existsSync(clustersDir) ? fs.readdirSync(clustersDir) : []).toEqual([]);
});
