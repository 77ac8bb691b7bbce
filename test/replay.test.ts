// Replays recorded histories against today's workflow code: release 1's (ready then expired,
// failed and compensated, an undo failure, tokens renewed, checks re-run) and release 2's (the
// same, plus a kept mesh, teardown and expiry while provisioning, a continue-as-new, and real
// runs of each topology on local clusters): a change that makes the workflow
// non-deterministic fails here instead of breaking meshes that are already running. The replay
// runs in `meshflow replay` (a plain Node process: protobufjs's reflection does not survive
// Jest's module registry).
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';

const dir = path.join(__dirname, 'histories');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
const cli = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');

test('histories were recorded for every release and every kind of run', () => {
  const release1 = [
    'failed-and-compensated',
    'ready-then-expired',
    'tokens-renewed-and-extended',
    'undo-failure-reported',
    'verified-on-request',
  ];
  const release2 = [
    ...release1.map((f) => `v2-${f}`),
    'v2-kept-then-down',
    'v2-undo-lanes',
    'v2-down-while-provisioning',
    'v2-expired-while-provisioning',
    'v2-continued-as-new-then-down',
    'v2-e2e-two-clusters',
    'v2-e2e-three-clusters',
    'v2-e2e-one-network',
    'v2-e2e-primary-remote',
  ];
  // Release 4: files of the spec in the trust store (an existing cluster on no host; a root CA given as PEM),
  // and a drift check that repaired what it found (the meshflow-v4-drift patch).
  const release4 = ['v4-store-files-existing-cluster', 'v4-store-files-pem-root', 'v4-drift-repaired'];
  // Release 5: credentials rotated on a running mesh (meshflow-v5-trust): intermediates on request, one not
  // taken up, reader tokens, and intermediates rotated by the mesh itself within trust.rotateBefore.
  const release5 = [
    'v5-rotate-intermediates',
    'v5-rotate-not-taken-up',
    'v5-rotate-readers',
    'v5-rotate-by-itself',
    'v5-rotate-root',
  ];
  // Release 7: intermediates due within a tenth of trust.rotateBefore rotate together (meshflow-rotate-together).
  const release7 = ['v7-rotate-together'];
  // Release 8: verify of some checks by code (the verify update's argument), beside a verify of all.
  const release8 = ['v8-verified-by-code'];
  const all = [...release1, ...release2, ...release4, ...release5, ...release7, ...release8];
  expect(files).toEqual(expect.arrayContaining(all.map((f) => `${f}.json`)));
});

test('every history replays without non-determinism', async () => {
  // One `meshflow replay` for all: the workflow code is bundled once.
  const r = await execa(process.execPath, [cli, 'replay', ...files.map((f) => path.join(dir, f))], { reject: false });
  expect(r.stderr).not.toMatch(/DeterminismViolation|Nondeterminism/i);
  expect(r.exitCode).toBe(0);
  for (const file of files) expect(r.stdout).toContain(`${path.join(dir, file)}: replayed without non-determinism`);
});

test('a history from a different workflow shape fails the replay', async () => {
  // The same history with the second activity's type changed: what a reordered step list looks like.
  const history = JSON.parse(fs.readFileSync(path.join(dir, 'ready-then-expired.json'), 'utf8'));
  const scheduled = history.events.filter(
    (e: { activityTaskScheduledEventAttributes?: unknown }) => e.activityTaskScheduledEventAttributes,
  );
  scheduled[0].activityTaskScheduledEventAttributes.activityType.name = 'deployApp';
  const tampered = path.join(fs.mkdtempSync(path.join(process.env.MESHFLOW_TEST_ROOT!, 'replay-')), 'tampered.json');
  fs.writeFileSync(tampered, JSON.stringify(history));
  const r = await execa(process.execPath, [cli, 'replay', tampered], { reject: false });
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toMatch(/nondetermin/i);
});
