// The chaos row "worker SIGKILL during upgrade": one ready two-cluster mesh started on Istio 1.30.8
// is upgraded round after round to the other pinned version (1.31.4, then back to 1.30.8, ...), and
// the worker is SIGKILLed at a random moment of each upgrade and restarted at once. After each round
// the update must have ended applied or rolled back, the mesh must be ready and verify, and it must
// run one revision and nothing half-installed: in each cluster every sample pod injected by the
// revision the `default` tag names (Istio's default revision when there is no tag), that revision
// the mesh's spec runs, the one istiod Deployment in istio-system and the one istiod process (and
// PID file) on this machine its own, no upgrade ledger entry left. At the end the mesh is torn down
// and checked for leftovers as every other row's runs are.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { WorkflowUpdateStage } from '@temporalio/client';
import { podRevision, tagOf } from '../istio/revisions';
import { meshHandle, runningSpec, startMesh, verifyMesh } from '../client';
import { istiodDeployment } from '../istio/manifests';
import { SAMPLE_NAMESPACE } from '../istio/apps/helloworld';
import { revisionLabel } from '../istio/version';
import { istiodComponent } from '../local/clusters';
import type { MeshSpec } from '../spec/schema';
import { localClusterName } from '../spec/names';
import { upgradeUpdate } from '../workflows/definitions';
import type { UpdateRecord } from '../workflows/types';
import { GaveUp, finalDown, follow, killWhile, untilEnded, waitPhase } from './apply-kills';
import type { ChaosBench, RunResult } from './harness';

/** The versions the rounds go between; the mesh starts on the first. */
export const UPGRADE_VERSIONS = ['1.30.8', '1.31.4'] as const;
type Version = (typeof UPGRADE_VERSIONS)[number];

export interface UpgradeRound extends RunResult {
  /** The version the round's upgrade was to. */
  to: Version;
  state?: UpdateRecord['state'];
  /** The revision every cluster ended on (its `default` tag's), when they agree. */
  endedOn?: string;
  killedDuring: boolean;
  resent: number;
}

export interface UpgradeKillsResult {
  rounds: UpgradeRound[];
  /** The calibration upgrades (no kill): how long each direction took, ms. */
  expectedMs: Record<Version, number>;
  down: { fullyCompensated: boolean; leftovers: string[]; error?: string };
}

const other = (v: string): Version => (v === UPGRADE_VERSIONS[1] ? UPGRADE_VERSIONS[0] : UPGRADE_VERSIONS[1]);

/**
 * Brings `spec` up on the first version, calibrates an upgrade each way without a kill, then runs
 * `rounds` rounds, each to the version the mesh does not run (a rolled-back round is tried again).
 */
export async function upgradeKillRounds(
  bench: ChaosBench,
  spec: MeshSpec,
  rounds: number,
  random: () => number,
  timeoutMs: number,
  report: (round: UpgradeRound) => void,
): Promise<UpgradeKillsResult> {
  const mesh = spec.name;
  const start: MeshSpec = { ...spec, istio: { ...spec.istio, version: UPGRADE_VERSIONS[0] } };
  const result: UpgradeKillsResult = {
    rounds: [],
    expectedMs: { [UPGRADE_VERSIONS[0]]: 0, [UPGRADE_VERSIONS[1]]: 0 } as Record<Version, number>,
    down: { fullyCompensated: false, leftovers: [] },
  };
  try {
    await startMesh(bench.client!, start, bench.taskQueue);
    const up = await waitPhase(bench, mesh, (s) => s.phase !== 'provisioning', timeoutMs);
    if (up?.phase !== 'ready')
      throw new Error(`mesh ${mesh} did not come up: ${up?.phase ?? 'no status'} ${up?.error ?? ''}`);
    for (const to of [UPGRADE_VERSIONS[1], UPGRADE_VERSIONS[0]]) {
      const t0 = Date.now();
      const record = await follow(bench, upgraded(bench, mesh, to), timeoutMs);
      result.expectedMs[to] = Date.now() - t0;
      if (record.state !== 'applied') throw new Error(`calibration to ${to} ended ${record.state}: ${record.error}`);
      process.stderr.write(
        `[chaos] upgrade calibration: to ${to} took ${(result.expectedMs[to] / 1000).toFixed(1)}s\n`,
      );
    }
    for (let i = 0; i < rounds; i++) {
      const to = other((await runningSpec(bench.client!, mesh)).istio.version);
      const round = await oneRound(bench, start, to, i, random, result.expectedMs[to], timeoutMs);
      result.rounds.push(round);
      report(round);
      if (round.gaveUp || !round.endedOn) break; // the mesh is on no one revision: later rounds would test nothing
    }
  } finally {
    result.down = await finalDown(bench, start, timeoutMs);
  }
  return result;
}

async function oneRound(
  bench: ChaosBench,
  spec: MeshSpec,
  to: Version,
  i: number,
  random: () => number,
  expectedMs: number,
  timeoutMs: number,
): Promise<UpgradeRound> {
  const mesh = spec.name;
  const round: UpgradeRound = {
    mesh: `${mesh} round ${i}`,
    to,
    fault: '',
    endedReady: false,
    fullyCompensated: false,
    duplicates: [],
    leftovers: [],
    killedDuring: false,
    resent: 0,
  };
  try {
    const killAt = Math.round(random() * expectedMs);
    const sent = Date.now();
    const outcome = upgraded(bench, mesh, to, round);
    Object.assign(round, await killWhile(bench, mesh, outcome, killAt, `to ${to}`, sent));
    const record = await follow(bench, outcome, timeoutMs);
    round.fault += `, ended at ${((Date.now() - sent) / 1000).toFixed(1)}s`;
    round.state = record.state;
    if (record.state !== 'applied' && record.state !== 'rolled-back')
      round.error = `the upgrade ended ${record.state}: ${record.error ?? ''}`;
    else if (record.state === 'rolled-back') round.ended = `rolled back: ${record.error ?? ''}`;
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

/** The istiod component (`istiod`, `istiod-<rev>`) of each pilot-discovery running for the cluster's directory. */
function istiodProcesses(clusterDir: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      // The program itself (its supervisor carries the same arguments as one JSON argument).
      if (argv[1] !== 'discovery') continue;
      const home = argv.find((a) => a.startsWith(`--meshConfig=${clusterDir}/`));
      if (home) found.push(path.basename(path.dirname(home.slice('--meshConfig='.length))));
    } catch {
      // gone meanwhile
    }
  }
  return found.sort();
}

/** What the round finds: one revision everywhere, the tag's, and nothing of the other. */
async function check(bench: ChaosBench, spec: MeshSpec, round: UpgradeRound): Promise<void> {
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
  if (s.upgrade) problems.push(`an upgrade still in progress (${s.upgrade.stage})`);
  const running = await runningSpec(bench.client!, mesh).catch(() => undefined);
  const specRevision = running ? revisionLabel(running.istio.revision) : '?';
  const revisions = new Set<string>();
  for (const c of spec.clusters) {
    const local = localClusterName(mesh, c.name);
    const cluster = bench.local.get(local);
    if (!cluster) {
      problems.push(`${c.name}: no local cluster`);
      continue;
    }
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    let tagged: string;
    try {
      tagged = revisionLabel(await tagOf(kc.makeApiClient(k8s.AdmissionregistrationV1Api)));
      revisions.add(tagged);
      if (tagged !== specRevision) problems.push(`${c.name}: tag on ${tagged}, the mesh's spec on ${specRevision}`);
      // Every sample pod (those on their way out aside) injected by the tagged revision.
      const pods = (
        await kc.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace: SAMPLE_NAMESPACE })
      ).items.filter((p) => !p.metadata?.deletionTimestamp);
      const onPods = new Set(pods.map((p) => podRevision(p) ?? 'no sidecar'));
      if (!pods.length) problems.push(`${c.name}: no sample pod`);
      if (onPods.size > 1) problems.push(`${c.name}: sample pods on ${[...onPods].sort().join(' and ')}`);
      else if (pods.length && !onPods.has(tagged))
        problems.push(`${c.name}: sample pods on ${[...onPods].join()}, the tag on ${tagged}`);
      // One istiod Deployment, the tagged revision's.
      const want = istiodDeployment(tagged === 'default' ? undefined : tagged);
      const deployments = (
        await kc.makeApiClient(k8s.AppsV1Api).listNamespacedDeployment({ namespace: 'istio-system' })
      ).items
        .map((d) => d.metadata!.name!)
        .filter((n) => /^istiod(-[a-z0-9-]+)?$/.test(n))
        .sort();
      if (deployments.length > 1) round.duplicates.push(`${c.name}: istiod Deployments ${deployments.join(', ')}`);
      if (!deployments.includes(want))
        problems.push(`${c.name}: no Deployment ${want} (${deployments.join() || 'none'})`);
      for (const d of deployments.filter((n) => n !== want)) round.leftovers.push(`${c.name}: Deployment ${d}`);
    } catch (err) {
      problems.push(`${c.name}: ${(err as Error).message}`);
      continue;
    }
    if (c.role !== 'primary') continue;
    // On this machine: one istiod process for the cluster, the tagged revision's, with its files only.
    const component = istiodComponent(tagged === 'default' ? undefined : tagged);
    const dir = path.dirname(cluster.kubeconfig);
    const procs = istiodProcesses(dir);
    if (procs.length > 1) round.duplicates.push(`${c.name}: istiod processes ${procs.join(', ')}`);
    if (!procs.includes(component)) problems.push(`${c.name}: no ${component} process (${procs.join() || 'none'})`);
    for (const p of new Set(procs.filter((x) => x !== component))) round.leftovers.push(`${c.name}: process ${p}`);
    const files = fs
      .readdirSync(dir)
      .filter((f) => /^istiod(-[a-z0-9-]+)?\.(pid|pid\.child|json)$/.test(f) && !f.startsWith(`${component}.`));
    if (files.length) round.leftovers.push(`${c.name}: ${files.join(', ')}`);
    const serving = revisionLabel(bench.local.servingRevision(local));
    if (serving !== tagged) problems.push(`${c.name}: istiod-serving names ${serving}, the tag ${tagged}`);
  }
  if (revisions.size > 1) problems.push(`clusters on revisions ${[...revisions].sort().join(' and ')}`);
  if (revisions.size === 1) round.endedOn = [...revisions][0];
  const halfway = s.ledger.filter((l) => l.step.startsWith('upgrade:'));
  if (halfway.length) round.leftovers.push(`${halfway.length} upgrade ledger entr(ies)`);
  for (const l of s.leftBehind) round.leftovers.push(`leftBehind ${JSON.stringify(l.resource)}: ${l.error}`);
  if (problems.length) round.error = [round.error, `not verified: ${problems.join('; ')}`].filter(Boolean).join('; ');
  round.endedReady =
    !problems.length && (round.state === 'applied' || round.state === 'rolled-back') && round.endedOn !== undefined;
  // "Compensated" for a round: on one revision, no second istiod, nothing of the other revision left.
  round.fullyCompensated = round.endedReady && !round.duplicates.length && !round.leftovers.length;
}

/**
 * Sends the upgrade and answers its record once it has ended (untilEnded); re-sent after a kill
 * and refused because the mesh runs that version already, it counts as applied.
 */
function upgraded(bench: ChaosBench, mesh: string, to: Version, round?: UpgradeRound): Promise<UpdateRecord> {
  const start = () =>
    meshHandle(bench.client!, mesh).startUpdate(upgradeUpdate, {
      args: [{ to }],
      waitForStage: WorkflowUpdateStage.ACCEPTED,
    });
  return untilEnded(bench, mesh, start, { round, done: /runs Istio \S+ already/ });
}
