// `npm run chaos` ends whatever its rows ended with: an API-fault run given up on while its mesh
// is still provisioning is torn down (nothing left behind, counted as given up), and the process
// exits on its own, with nothing left open (its fault proxies closed), once it printed its table.
// The API-fault runs get the istiod the real local provider runs (its injection webhook is what
// lets pods of injected namespaces be created on a local cluster).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { LocalProvider } from '../src/providers/local/runtime';
import { FaultyLocalProvider } from '../src/chaos/faulty-provider';
import { LocalClusters } from '../src/local/clusters';
import { scratchDir, testLocalTools } from './helpers/env';

const main = path.resolve(__dirname, '..', 'dist', 'chaos', 'main.js');

test('a run given up on while provisioning is torn down, and the harness exits', async () => {
  const off = [
    '--kills',
    '--ambient-kills',
    '--server-kills',
    '--concurrent',
    '--takeovers',
    '--apply-kills',
    '--rotate-kills',
    '--upgrade-kills',
    '--kubelet-kills',
    '--team-faults',
  ].flatMap((f) => [f, '0']);
  const args = [...off, '--api-faults', '1'];
  // 8 s: the mesh is still creating its clusters when the harness gives up on it.
  const child = spawn(process.execPath, [main, ...args, '--run-timeout', '8', '--seed', '7'], {
    env: { ...process.env, TMPDIR: scratchDir('chaos-exit') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const limit = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 200_000).unref());
  const code = await Promise.race([exited, limit]);
  if (code === 'still running') child.kill('SIGTERM');
  expect(code).toBe(0);
  expect(stderr).not.toContain('still open after the run');
  expect(stderr).toMatch(/FAIL api0: API faults; compensated \(still provisioning after 8s/);
  const row = stdout.split('\n').find((l) => l.startsWith('| API faults'));
  // runs, ended ready, fully compensated, duplicates, left behind, gave up
  expect(
    row
      ?.split('|')
      .slice(2, 8)
      .map((c) => c.trim()),
  ).toEqual(['1', '0', '1', '0', '0', '1']);
}, 240_000);

test('the faulty provider runs istiod beside primaries as the real one does', () => {
  const real = new LocalProvider(scratchDir('faulty-provider'), testLocalTools());
  const faulty = new FaultyLocalProvider(
    real,
    new LocalClusters(scratchDir('faulty-clusters'), testLocalTools()),
    () => [],
  );
  expect(real.istiodRunner).toBeDefined();
  expect(faulty.istiodRunner).toBe(real.istiodRunner);
});
