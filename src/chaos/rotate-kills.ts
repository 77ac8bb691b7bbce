// The chaos row "worker SIGKILL during rotation": one ready two-cluster mesh goes through rotation
// after rotation, in turn a root rotation's first stages (`rotate root`: both roots trusted, every
// intermediate from the new one), its last (`rotate root --finish`: the old root dropped) and an
// intermediate rotation, and the worker is SIGKILLed at a random moment of each and restarted at
// once. After each round the mesh must be ready and verify (the trust-chain check has each istiod
// sign a CSR that must verify to the roots in the store), every cluster must trust exactly the
// roots the trust store holds (its published istio-ca-root-cert), and a root rotation must be in
// progress exactly while two roots are stored. At the end the mesh is torn down and checked for
// leftovers as every other row's runs are.
import fs from 'node:fs';
import { X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { WorkflowUpdateStage } from '@temporalio/client';
import { meshHandle, startMesh, verifyMesh } from '../client';
import type { MeshSpec } from '../spec/schema';
import { localClusterName } from '../spec/names';
import { caDir } from '../trust-store/state-dir';
import { rotateUpdate } from '../workflows/definitions';
import type { RotateRequest, UpdateRecord } from '../workflows/types';
import { GaveUp, finalDown, follow, killWhile, untilEnded, waitPhase } from './apply-kills';
import type { ChaosBench, RunResult } from './harness';

export type RotationKind = 'root' | 'finish' | 'intermediates';

export interface RotateRound extends RunResult {
  kind: RotationKind;
  state?: UpdateRecord['state'];
  killedDuring: boolean;
  resent: number;
}

export interface RotateKillsResult {
  rounds: RotateRound[];
  /** The calibration rotations (no kill): how long each kind took, ms. */
  expectedMs: Record<RotationKind, number>;
  down: { fullyCompensated: boolean; leftovers: string[]; error?: string };
}

const ORDER: RotationKind[] = ['root', 'finish', 'intermediates'];
const request = (kind: RotationKind): RotateRequest =>
  kind === 'root' ? { what: 'root', grace: '1h' } : kind === 'finish' ? { what: 'root', finish: true } : { what: kind };

export async function rotateKillRounds(
  bench: ChaosBench,
  spec: MeshSpec,
  rounds: number,
  random: () => number,
  timeoutMs: number,
  report: (round: RotateRound) => void,
): Promise<RotateKillsResult> {
  const mesh = spec.name;
  const result: RotateKillsResult = {
    rounds: [],
    expectedMs: { root: 0, finish: 0, intermediates: 0 },
    down: { fullyCompensated: false, leftovers: [] },
  };
  try {
    await startMesh(bench.client!, spec, bench.taskQueue);
    const up = await waitPhase(bench, mesh, (s) => s.phase !== 'provisioning', timeoutMs);
    if (up?.phase !== 'ready')
      throw new Error(`mesh ${mesh} did not come up: ${up?.phase ?? 'no status'} ${up?.error ?? ''}`);
    for (const kind of ORDER) {
      const t0 = Date.now();
      const record = await follow(bench, rotated(bench, mesh, kind), timeoutMs);
      result.expectedMs[kind] = Date.now() - t0;
      if (record.state !== 'applied') throw new Error(`calibration ${kind} ended ${record.state}: ${record.error}`);
      process.stderr.write(
        `[chaos] rotate calibration: ${kind} took ${(result.expectedMs[kind] / 1000).toFixed(1)}s\n`,
      );
    }
    for (let i = 0; i < rounds; i++) {
      const round = await oneRound(bench, spec, ORDER[i % ORDER.length], i, random, result.expectedMs, timeoutMs);
      result.rounds.push(round);
      report(round);
      if (round.gaveUp) break;
    }
  } finally {
    result.down = await finalDown(bench, spec, timeoutMs);
  }
  return result;
}

async function oneRound(
  bench: ChaosBench,
  spec: MeshSpec,
  kind: RotationKind,
  i: number,
  random: () => number,
  expectedMs: Record<RotationKind, number>,
  timeoutMs: number,
): Promise<RotateRound> {
  const mesh = spec.name;
  const round: RotateRound = {
    mesh: `${mesh} round ${i}`,
    kind,
    fault: '',
    endedReady: false,
    fullyCompensated: false,
    duplicates: [],
    leftovers: [],
    killedDuring: false,
    resent: 0,
  };
  try {
    const killAt = Math.round(random() * expectedMs[kind]);
    const sent = Date.now();
    const outcome = rotated(bench, mesh, kind, round);
    Object.assign(round, await killWhile(bench, mesh, outcome, killAt, kind, sent));
    const record = await follow(bench, outcome, timeoutMs);
    round.fault += `, ended at ${((Date.now() - sent) / 1000).toFixed(1)}s`;
    round.state = record.state;
    if (record.state !== 'applied') round.error = `the rotation ended ${record.state}: ${record.error ?? ''}`;
  } catch (err) {
    if (err instanceof GaveUp) {
      round.gaveUp = true;
      round.error = err.message;
      return round;
    }
    round.error = (err as Error).message;
  }
  await check(bench, spec, round);
  return round;
}

/** The roots' fingerprints in a PEM bundle, sorted. */
const fingerprints = (pem: string) =>
  (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [])
    .map((p) => new X509Certificate(p).fingerprint256)
    .sort();

async function check(bench: ChaosBench, spec: MeshSpec, round: RotateRound): Promise<void> {
  const mesh = spec.name;
  const s = await bench.status(mesh);
  if (!s) {
    round.error = [round.error, 'no status'].filter(Boolean).join('; ');
    return;
  }
  const problems: string[] = [];
  if (s.phase !== 'ready') problems.push(`phase ${s.phase}`);
  else {
    try {
      const checks = await verifyMesh(bench.client!, mesh);
      for (const c of checks.filter((x) => x.status === 'failed')) problems.push(`${c.name}/${c.cluster}: ${c.detail}`);
    } catch (err) {
      problems.push(`verify: ${(err as Error).message}`);
    }
  }
  // The roots the store holds are the roots every cluster trusts, and two only while a rotation runs.
  const dir = caDir(bench.state, mesh);
  const stored = fs
    .readdirSync(dir)
    .filter((f) => /^root(\.g\d+)?-cert\.pem$/.test(f))
    .map((f) => fs.readFileSync(`${dir}/${f}`, 'utf8'))
    .flatMap(fingerprints)
    .sort();
  if ((stored.length === 2) !== Boolean(s.rootRotation))
    round.duplicates.push(`${stored.length} root(s) stored, root rotation ${s.rootRotation?.stage ?? 'none'}`);
  for (const c of spec.clusters) {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(bench.local.get(localClusterName(mesh, c.name))!.kubeconfig);
    const cm = await kc
      .makeApiClient(k8s.CoreV1Api)
      .readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'istio-system' })
      .catch(() => undefined);
    const trusted = fingerprints(cm?.data?.['root-cert.pem'] ?? '');
    if (JSON.stringify(trusted) !== JSON.stringify(stored))
      problems.push(`${c.name} trusts ${trusted.length} root(s), not the ${stored.length} stored`);
  }
  if (problems.length) round.error = [round.error, `not verified: ${problems.join('; ')}`].filter(Boolean).join('; ');
  round.endedReady = !problems.length && round.state === 'applied';
  round.fullyCompensated = round.endedReady && !round.duplicates.length && !round.leftovers.length;
}

/**
 * Sends the rotation and answers its record once it has ended (untilEnded); a root rotation that is
 * refused because it already reached its stage counts as that stage, applied.
 */
function rotated(bench: ChaosBench, mesh: string, kind: RotationKind, round?: RotateRound): Promise<UpdateRecord> {
  const start = () =>
    meshHandle(bench.client!, mesh).startUpdate(rotateUpdate, {
      args: [request(kind)],
      waitForStage: WorkflowUpdateStage.ACCEPTED,
    });
  const done =
    kind === 'root' ? /waits to drop the old root/ : kind === 'finish' ? /no root rotation waiting/ : undefined;
  return untilEnded(bench, mesh, start, { round, done });
}
