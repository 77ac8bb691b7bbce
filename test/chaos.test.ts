// The chaos harness in small (`npm run chaos` runs it at length): a real dev server and a real
// worker process; the worker is SIGKILLed while a mesh's control planes are being installed, a
// new one takes the mesh's host queue back, and the mesh still ends ready, is torn down by
// `down`, and leaves no cluster, process or file behind.
import path from 'node:path';
import { ChaosBench } from '../src/chaos/harness';
import { loadMeshSpec } from '../src/spec/load';
import { testLocalTools, tool } from './helpers/env';

let bench: ChaosBench;

beforeAll(async () => {
  bench = new ChaosBench({ temporal: tool('temporal'), local: testLocalTools() }, process.env.MESHFLOW_TEST_ROOT);
  await bench.startServer();
  bench.startWorker();
});

afterAll(async () => {
  await bench?.stop();
});

test('a worker killed mid-step: the mesh ends ready, no duplicate, and down leaves nothing', async () => {
  const spec = { ...loadMeshSpec(path.join(__dirname, '..', 'examples', 'two-clusters.yaml')), name: 'chaos-kill' };
  const midControlPlane = (_ms: number, s?: { steps: Array<{ kind: string; state: string }> }) =>
    Boolean(s?.steps.some((x) => x.kind === 'control-plane' && x.state === 'running'));
  const r = await bench.run(spec, 'worker SIGKILL', midControlPlane, () => bench.killWorker(), 240_000);
  expect(r.fault).toContain('control-plane');
  expect(r.error).toBeUndefined();
  expect(r).toMatchObject({ endedReady: true, fullyCompensated: true, duplicates: [], leftovers: [] });
}, 300_000);
