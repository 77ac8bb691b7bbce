// The chaos row "worker SIGKILL during apply": one ready two-cluster mesh is changed round after
// round between two specs, two clusters (A) and three (B: cluster3 on network3, helloworld v2 in
// it too), and the worker is SIGKILLed at a random moment of each update and restarted at once.
// After each round the mesh must be exactly one of the two specs: ready, its clusters one of the
// two lists, the update ended applied or rolled back, `verify` without a failed check, and nothing
// of the other spec left (no local cluster on disk that status.clusters does not name, no process
// of a removed cluster, no ledger entry or retired cluster naming one). At the end the mesh is
// torn down and checked for leftovers as every other row's runs are.
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { applyMesh, meshHandle, startMesh, teardownMesh, verifyMesh } from '../client';
import type { MeshSpec } from '../spec/schema';
import { localClusterName } from '../spec/names';
import { sleep } from '../util/net';
import type { MeshStatus, UpdateRecord } from '../workflows/types';
import type { ChaosBench, RunResult } from './harness';

/** One round: the spec sent, how its update ended, and what the mesh was afterwards. */
export interface ApplyRound extends RunResult {
  /** 'add' sends B to a mesh that is A, 'remove' sends A to a mesh that is B. */
  change: 'add' | 'remove';
  /** How the update ended, as its record says. */
  state?: UpdateRecord['state'];
  /** The spec the mesh ended as, by its cluster count (undefined: neither). */
  endedAs?: 2 | 3;
  /** Whether the kill landed while the update ran (false: the update had ended before). */
  killedDuring: boolean;
  /** How often the round's spec was sent again because the wait for its update was lost. */
  resent: number;
}

/** Everything the row reports: the rounds, and the mesh's final `down`. */
export interface ApplyKillsResult {
  rounds: ApplyRound[];
  /** The calibration updates (no kill): how long an add and a remove took, ms. */
  expectedMs: { add: number; remove: number };
  /** The final `down`: everything removed, and what was left on disk or running. */
  down: { fullyCompensated: boolean; leftovers: string[]; error?: string };
}

/** The two specs the rounds alternate between, from the two-cluster example. */
export function applySpecs(two: MeshSpec): { a: MeshSpec; b: MeshSpec } {
  const b: MeshSpec = {
    ...two,
    clusters: [...two.clusters, { ...two.clusters[1], name: 'cluster3', network: 'network3' }],
    app: { ...two.app, placement: { ...two.app.placement, cluster3: ['v2'] } },
  };
  return { a: two, b };
}

const names = (spec: MeshSpec) => spec.clusters.map((c) => c.name).sort();
const same = (x: string[], y: string[]) => JSON.stringify([...x].sort()) === JSON.stringify([...y].sort());

/**
 * Runs `rounds` rounds on one mesh (`a` brought up first). Each round sends the spec the mesh is
 * not (so a rolled-back add is tried again by the next round), kills the worker at a random time
 * within the calibrated duration of that change, and checks the mesh once the update has ended.
 */
export async function applyKillRounds(
  bench: ChaosBench,
  specs: { a: MeshSpec; b: MeshSpec },
  rounds: number,
  random: () => number,
  timeoutMs: number,
  report: (round: ApplyRound) => void,
): Promise<ApplyKillsResult> {
  const { a, b } = specs;
  const mesh = a.name;
  const client = bench.client!;
  const result: ApplyKillsResult = {
    rounds: [],
    expectedMs: { add: 0, remove: 0 },
    down: { fullyCompensated: false, leftovers: [] },
  };
  try {
    await startMesh(client, a, bench.taskQueue);
    const up = await waitPhase(bench, mesh, (s) => s.phase !== 'provisioning', timeoutMs);
    if (up?.phase !== 'ready')
      throw new Error(`mesh ${mesh} did not come up: ${up?.phase ?? 'no status'} ${up?.error ?? ''}`);
    // Calibration: one add and one remove without a kill, to know when a kill lands inside an update.
    for (const change of ['add', 'remove'] as const) {
      const t0 = Date.now();
      const record = await follow(bench, applied(bench, change === 'add' ? b : a), timeoutMs);
      result.expectedMs[change] = Date.now() - t0;
      if (record.state !== 'applied')
        throw new Error(`calibration ${change} ended ${record.state}: ${record.error ?? ''}`);
      process.stderr.write(
        `[chaos] apply calibration: ${change} took ${(result.expectedMs[change] / 1000).toFixed(1)}s\n`,
      );
    }
    let now: 2 | 3 = 2;
    for (let i = 0; i < rounds; i++) {
      const round = await oneRound(bench, specs, now === 2 ? 'add' : 'remove', i, random, result.expectedMs, timeoutMs);
      result.rounds.push(round);
      report(round);
      if (round.gaveUp || !round.endedAs) break; // the mesh is neither spec: the rounds after it would test nothing
      now = round.endedAs;
    }
  } finally {
    result.down = await finalDown(bench, a, timeoutMs);
  }
  return result;
}

/** A row's final `down`, whatever happened: nothing of the mesh may outlive the row. */
export async function finalDown(
  bench: ChaosBench,
  spec: MeshSpec,
  timeoutMs: number,
): Promise<ApplyKillsResult['down']> {
  const down: ApplyKillsResult['down'] = { fullyCompensated: false, leftovers: [] };
  try {
    await teardownMesh(bench.client!, spec.name);
    const final = await bench.finalStatus(spec.name, timeoutMs);
    down.fullyCompensated = final.phase === 'deleted' && !final.ledger.length && !final.leftBehind.length;
    if (!down.fullyCompensated) down.error = `${final.phase}: ${final.error ?? ''} ${JSON.stringify(final.leftBehind)}`;
  } catch (err) {
    down.error = (err as Error).message;
  }
  down.leftovers = bench.leftovers(spec);
  return down;
}

async function oneRound(
  bench: ChaosBench,
  { a, b }: { a: MeshSpec; b: MeshSpec },
  change: 'add' | 'remove',
  i: number,
  random: () => number,
  expectedMs: { add: number; remove: number },
  timeoutMs: number,
): Promise<ApplyRound> {
  const mesh = a.name;
  const target = change === 'add' ? b : a;
  const round: ApplyRound = {
    mesh: `${mesh} round ${i}`,
    change,
    fault: '',
    endedReady: false,
    fullyCompensated: false,
    duplicates: [],
    leftovers: [],
    killedDuring: false,
    resent: 0,
  };
  try {
    const killAt = Math.round(random() * expectedMs[change]);
    const sent = Date.now();
    const outcome = applied(bench, target, round);
    Object.assign(round, await killWhile(bench, mesh, outcome, killAt, change, sent));
    const record = await follow(bench, outcome, timeoutMs);
    round.fault += `, update ended at ${((Date.now() - sent) / 1000).toFixed(1)}s`;
    round.state = record.state;
    if (record.state !== 'applied' && record.state !== 'rolled-back')
      round.error = `the update ended ${record.state}: ${record.error ?? ''}`;
    else if (record.state === 'rolled-back') round.ended = `rolled back: ${record.error ?? ''}`;
  } catch (err) {
    if (err instanceof GaveUp) {
      round.gaveUp = true;
      round.error = err.message;
      return round;
    }
    round.error = (err as Error).message;
  }
  await check(bench, { a, b }, round);
  return round;
}

/** What the round finds: which spec the mesh is, whether it verifies, and what of the other spec is left. */
async function check(bench: ChaosBench, { a, b }: { a: MeshSpec; b: MeshSpec }, round: ApplyRound): Promise<void> {
  const mesh = a.name;
  const s = await bench.status(mesh);
  if (!s) {
    round.error = [round.error, 'no status'].filter(Boolean).join('; ');
    return;
  }
  round.endedAs = same(s.clusters, names(a)) ? 2 : same(s.clusters, names(b)) ? 3 : undefined;
  if (!round.endedAs) round.duplicates.push(`status.clusters ${s.clusters.join(',')}: neither spec`);
  const onDisk = bench.local
    .list()
    .map((c) => c.name)
    .filter((n) => n.startsWith(`${mesh}-`))
    .sort();
  const want = s.clusters.map((c) => localClusterName(mesh, c)).sort();
  if (!same(onDisk, want)) round.duplicates.push(`clusters on disk ${onDisk.join(',')} (status: ${want.join(',')})`);
  if (s.ledger.filter((l) => l.resource.type === 'file').length > 1) round.duplicates.push('two CA directories');
  const removed = [...new Set([...names(a), ...names(b)])].filter((c) => !s.clusters.includes(c));
  const ledger = JSON.stringify(s.ledger);
  for (const c of removed) {
    if (new RegExp(`\\b${c}\\b`).test(ledger)) round.leftovers.push(`ledger names ${c}`);
    for (const pid of processesOf(bench, localClusterName(mesh, c))) round.leftovers.push(`process ${pid} of ${c}`);
  }
  if (s.retiredClusters?.length) round.leftovers.push(`retired: ${s.retiredClusters.map((c) => c.name).join(',')}`);
  for (const l of s.leftBehind) round.leftovers.push(`leftBehind ${JSON.stringify(l.resource)}: ${l.error}`);
  let failed: string[] = [];
  if (s.phase === 'ready') {
    try {
      const checks = await verifyMesh(bench.client!, mesh);
      failed = checks.filter((c) => c.status === 'failed').map((c) => `${c.name}/${c.cluster ?? ''}: ${c.detail}`);
    } catch (err) {
      failed = [`verify: ${(err as Error).message}`];
    }
  } else failed = [`phase ${s.phase}`];
  if (failed.length) round.error = [round.error, `not verified: ${failed.join('; ')}`].filter(Boolean).join('; ');
  round.endedReady = !failed.length && !!round.endedAs && (round.state === 'applied' || round.state === 'rolled-back');
  // "Compensated" for a round: the mesh is exactly one spec, nothing of the other one left.
  round.fullyCompensated = round.endedReady && !round.duplicates.length && !round.leftovers.length;
}

/**
 * SIGKILLs the worker `killAt` ms after an update was sent (or once it has ended, if sooner), and says
 * when and what it hit: the update's running steps, or that it had ended.
 */
export async function killWhile(
  bench: ChaosBench,
  mesh: string,
  outcome: Promise<unknown>,
  killAt: number,
  label: string,
  sent: number,
): Promise<{ killedDuring: boolean; fault: string }> {
  // Settled either way: a failure is read by the caller, through `follow`.
  const ended = await Promise.race([
    outcome.then(
      () => true,
      () => true,
    ),
    sleep(killAt).then(() => false),
  ]);
  const running = ended ? [] : await runningNow(bench, mesh);
  await bench.killWorker();
  return {
    killedDuring: !ended,
    fault:
      `${label}, worker SIGKILL at ${((Date.now() - sent) / 1000).toFixed(1)}s` +
      (ended ? ' (after the update ended)' : ` (${running.join(',') || '?'})`),
  };
}

/**
 * What the update was doing: an upgrade's wave and stage first, then its running steps, else the
 * activities pending (an undo, the forgotten proof, an upgrade's revision activities).
 */
export async function runningNow(bench: ChaosBench, mesh: string): Promise<string[]> {
  const s = await bench.status(mesh);
  const up = s?.upgrade;
  const stage = up ? [`wave ${up.wave + 1}/${up.waves.length} ${up.stage}`] : [];
  const steps = s?.steps.filter((x) => x.state === 'running' || x.state === 'undoing').map((x) => x.id) ?? [];
  if (steps.length) return [...stage, ...steps];
  try {
    const desc = await meshHandle(bench.client!, mesh).describe();
    return [...stage, ...(desc.raw.pendingActivities ?? []).map((a) => a.activityType?.name ?? '?')];
  } catch {
    return [...stage, s?.phase ?? '?'];
  }
}

/** Processes whose command line names the local cluster's directory (API server, istiod, data plane). */
function processesOf(bench: ChaosBench, cluster: string): number[] {
  const marker = path.join(bench.state, 'local', 'clusters', cluster);
  const pids: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.split('\0').some((arg) => arg === marker || arg.includes(`${marker}/`))) pids.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export class GaveUp extends Error {}

/** Sends `spec` as an update and answers its record once it has ended (see untilEnded). */
function applied(bench: ChaosBench, spec: MeshSpec, round?: ApplyRound): Promise<UpdateRecord> {
  return untilEnded(bench, spec.name, () => applyMesh(bench.client!, spec), { round });
}

/**
 * Sends an update (`start` answers once it is accepted) and answers its record once it has ended.
 * A kill can lose the client's wait only before the update is accepted (the wait itself is on the
 * server, not in the worker): then, and while the mesh refuses because it is still updating, it is
 * sent again (counted in `round.resent`); a re-sent update refused with a reason `done` matches has
 * already done its work (answered as applied). A wait lost after acceptance is answered from the
 * mesh's update record, by the update's id.
 */
export async function untilEnded(
  bench: ChaosBench,
  mesh: string,
  start: () => Promise<{ updateId: string; result(): Promise<{ update: UpdateRecord }> }>,
  opts: { round?: { resent: number }; done?: RegExp },
): Promise<UpdateRecord> {
  for (let attempt = 0; ; attempt++) {
    let handle: Awaited<ReturnType<typeof start>>;
    try {
      handle = await start();
    } catch (err) {
      const refused = err instanceof WorkflowUpdateFailedError;
      const reason = innermost(err);
      if (refused && attempt > 0 && opts.done?.test(reason))
        return {
          id: 'sent-again',
          requestedAt: '',
          state: 'applied',
          summary: reason,
          added: [],
          rerun: [],
          removed: [],
        };
      if (attempt >= 5 || (refused && !/one update at a time|is updating|renewing/.test(reason))) throw err;
      if (opts.round) opts.round.resent++;
      await waitPhase(bench, mesh, (s) => s.phase !== 'updating', 10 * 60_000);
      continue;
    }
    try {
      return (await handle.result()).update;
    } catch (err) {
      // Ended but not applied (cancelled throws), or the wait was lost: the record says which.
      const s = await waitPhase(
        bench,
        mesh,
        (x) => x.updates?.some((u) => u.id === handle.updateId && u.state !== 'running') ?? false,
        10 * 60_000,
      );
      const record = s?.updates?.find((u) => u.id === handle.updateId);
      if (!record) throw err;
      return record;
    }
  }
}

export const innermost = (err: unknown): string => {
  let e = err as Error & { cause?: unknown };
  while (e.cause instanceof Error) e = e.cause as Error & { cause?: unknown };
  return e.message;
};

/** Waits for `p`, keeping the worker alive meanwhile (it may die on its own, as in the other rows). */
export async function follow<T>(bench: ChaosBench, p: Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let done = false;
  const settled = p.finally(() => (done = true));
  settled.catch(() => undefined);
  while (!done) {
    if (Date.now() > deadline) throw new GaveUp(`the update did not end in ${timeoutMs / 1000}s`);
    bench.keepWorkerAlive();
    await Promise.race([settled.catch(() => undefined), sleep(500)]);
  }
  return settled;
}

/** Polls the mesh's status until `done` holds (undefined status: the server may be restarting). */
export async function waitPhase(
  bench: ChaosBench,
  mesh: string,
  done: (s: MeshStatus) => boolean,
  timeoutMs: number,
): Promise<MeshStatus | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    bench.keepWorkerAlive();
    const s = await bench.status(mesh);
    if (s && done(s)) return s;
    if (Date.now() > deadline)
      throw new GaveUp(`mesh ${mesh} still ${s?.phase ?? 'unknown'} after ${timeoutMs / 1000}s`);
    await sleep(500);
  }
}
