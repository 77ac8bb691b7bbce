// `npm run chaos [-- --kills N --ambient-kills N --server-kills N --api-faults N --concurrent N --apply-kills N --rotate-kills N
// --upgrade-kills N --kubelet-kills N --takeovers N --team-faults N --seed S]`: breaks meshflow on purpose and prints, per fault,
// how the runs ended, as a table (0 skips a row).
//  1. worker SIGKILL at a random point of a 3-cluster mesh's life (restarted at once, same host);
//  2. dev server SIGKILL mid-run, restarted on the same database a second later;
//  3. Kubernetes API faults at a rate (503s, resets, slow answers, writes whose answer is lost)
//     from a fault-injecting proxy in front of each local API server;
//  4. several meshes started at once on one worker;
//  5. worker SIGKILL during `apply`: one ready 2-cluster mesh grows to 3 clusters and shrinks back,
//     round after round, the worker killed at a random moment of each update and restarted at once
//     (./apply-kills.ts); each round must end as exactly one of the two specs, verified, nothing
//     of the other left;
//  5b. worker SIGKILL during rotation: one ready 2-cluster mesh goes through a root rotation's
//     first stages, its last (--finish) and an intermediate rotation, round after round, the worker
//     killed at a random moment of each (./rotate-kills.ts); each round must end applied, the mesh
//     verified (the trust-chain CSR check included) and trusting exactly the roots the store holds;
//  5c. worker SIGKILL during `upgrade`: one ready 2-cluster mesh started on Istio 1.30.8 goes to
//     1.31.4 and back, round after round, the worker killed at a random moment of each upgrade
//     (./upgrade-kills.ts); each round must end applied or rolled back, verified, every sample pod
//     on the revision the default tag names, one istiod (Deployment and local process) per cluster;
//  5d. kubelet SIGKILL during verify: one ready 2-cluster mesh verified round after round, one
//     cluster's kwok (the kubelet of local clusters: port-forwards and execs go through it)
//     SIGKILLed at a random moment of each; its supervisor starts it again (./kubelet-kills.ts);
//     each round must end with every check passed, never a false failure;
//  6. one of two workers SIGKILLed for good while GKE (emulated) meshes with the Kubernetes trust
//     store provision: the other worker, and the one that replaces it, finish every mesh;
//  6b. the team deployment (`meshflow team up` on free ports in a scratch folder: PostgreSQL, the
//     Temporal server, two workers, the API): per round a 2-cluster mesh created through the API and,
//     at a random step of its provisioning, one service SIGKILLed (the mesh's worker, the server or
//     PostgreSQL; its supervisor restarts it); the mesh must end ready and its DELETE end `deleted`
//     with no process of it left (./team-faults.ts);
//  1b. worker SIGKILL at a random point of an ambient mesh's life (the ambient example with a
//     waypoint: two networks, east-west Gateways and the waypoint deployed by istiod);
//  7. the malformed-spec corpus: every spec refused, naming its field, nothing started.
// A row counts runs, runs that ended ready, runs fully compensated (everything removed after
// `down` or a failure), duplicates (a second cluster or root for one mesh) and runs that left
// clusters, processes or files behind. The apply row counts rounds instead: 'ended ready' = the
// update ended applied or rolled back and the mesh verified as one of the two specs; 'fully
// compensated' = that, with nothing of the other spec left (and the final `down` in its cell);
// 'duplicates' = clusters on disk other than status.clusters names; 'left behind' = rounds that
// left a process, ledger entry or retired cluster of a removed cluster (and the final `down` if
// it left anything); the fault cell says how many rounds ended as each spec. The upgrade row counts
// rounds too: 'ended ready' = applied or rolled back, verified, one revision everywhere; 'duplicates'
// = a second istiod Deployment or process in a cluster; 'left behind' = another revision's istiod,
// PID or port file, or an upgrade ledger entry (and the final `down` if it left anything).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../paths';
import { SpecError, loadMeshSpec, parseMeshSpec } from '../spec/load';
import { LOCAL_TOOL_NAMES, localTools } from '../local/tools';
import { ensureTools } from '../tools/install';
import { stderrProgress } from '../util/progress';
import { NativeConnection } from '@temporalio/worker';
import type { LocalProvider } from '../providers/local/runtime';
import { activityDeps, createWorker } from '../worker';
import { TASK_QUEUE } from '../workflows/definitions';
import type { Fault } from './fault-proxy';
import { FaultyLocalProvider } from './faulty-provider';
import { type ApplyKillsResult, type ApplyRound, applyKillRounds, applySpecs } from './apply-kills';
import { kubeletKillRounds } from './kubelet-kills';
import { rotateKillRounds } from './rotate-kills';
import { UPGRADE_VERSIONS, type UpgradeRound, upgradeKillRounds } from './upgrade-kills';
import { ChaosBench, type RunResult, seeded } from './harness';
import { malformedSpecs } from './malformed-specs';
import { takeoverRuns } from './takeover';
import { teamFaultRuns } from './team-faults';

const example = (file: string, name: string) => ({ ...loadMeshSpec(path.join(packageRoot, 'examples', file)), name });

function row(fault: string, results: RunResult[]): Record<string, string | number> {
  return {
    fault,
    runs: results.length,
    'ended ready': results.filter((r) => r.endedReady).length,
    'fully compensated': results.filter((r) => r.fullyCompensated).length,
    duplicates: results.filter((r) => r.duplicates.length).length,
    'left behind': results.filter((r) => r.leftovers.length).length,
    'gave up': results.filter((r) => r.gaveUp).length,
  };
}

/** The apply row: rounds, and the final `down` of the one mesh they ran on (see the header). */
function applyRow(out: ApplyKillsResult, asked: number): Record<string, string | number> {
  const r = out.rounds;
  const as = (n: 2 | 3) => r.filter((x) => x.endedAs === n).length;
  const during = r.filter((x) => x.killedDuring).length;
  const resent = r.reduce((sum, x) => sum + x.resent, 0);
  const rolledBack = r.filter((x) => x.state === 'rolled-back').length;
  const notRun = r.length < asked ? `; ${asked - r.length} round(s) not run` : '';
  const compensated = r.filter((x) => x.fullyCompensated).length;
  return {
    ...row(
      `worker SIGKILL during apply (2 <-> 3 clusters; ended as 2: ${as(2)}, as 3: ${as(3)}; ` +
        `${rolledBack} rolled back; killed mid-update ${during}/${r.length}; re-sent ${resent}${notRun})`,
      r,
    ),
    'fully compensated': `${compensated}, down: ${out.down.fullyCompensated ? 'yes' : 'NO'}`,
    'left behind': r.filter((x) => x.leftovers.length).length + (out.down.leftovers.length ? 1 : 0),
  };
}

/** What was found, as the report lines of the other rows end. */
const findings = (error: string | undefined, duplicates: string[], leftovers: string[]) =>
  [
    error ? ` (${error})` : '',
    duplicates.length ? ` duplicates: ${duplicates.join('; ')}` : '',
    leftovers.length ? ` left: ${leftovers.join('; ')}` : '',
  ].join('');

function reportRound(r: ApplyRound): void {
  const bad = !r.fullyCompensated || r.error;
  const ended = `${r.state ?? 'no outcome'}${r.resent ? ` (re-sent ${r.resent})` : ''}`;
  const as = r.endedAs ? `as ${r.endedAs} clusters` : 'as neither spec';
  process.stderr.write(
    `  ${bad ? 'FAIL' : 'ok  '} ${r.mesh}: ${r.fault}; ${ended}, ${as}${r.endedReady ? ', verified' : ''}` +
      `${findings(r.error, r.duplicates, r.leftovers)}\n`,
  );
}

function reportUpgradeRound(r: UpgradeRound): void {
  const bad = !r.fullyCompensated || r.error;
  const ended = `${r.state ?? 'no outcome'}${r.resent ? ` (re-sent ${r.resent})` : ''}`;
  const on = r.endedOn ? `on revision ${r.endedOn}` : 'on no one revision';
  process.stderr.write(
    `  ${bad ? 'FAIL' : 'ok  '} ${r.mesh}: ${r.fault}; ${ended}, ${on}${r.endedReady ? ', verified' : ''}` +
      `${findings(r.error, r.duplicates, r.leftovers)}\n`,
  );
}

function reportDown(out: ApplyKillsResult): void {
  const { add, remove } = out.expectedMs;
  const bad = !out.down.fullyCompensated || out.down.leftovers.length;
  process.stderr.write(
    `  ${bad ? 'FAIL' : 'ok  '} apply rounds (kills within add ${(add / 1000).toFixed(1)}s, ` +
      `remove ${(remove / 1000).toFixed(1)}s): down ${out.down.fullyCompensated ? 'compensated' : 'NOT compensated'}` +
      `${findings(out.down.error, [], out.down.leftovers)}\n`,
  );
}

function table(rows: Array<Record<string, string | number>>): void {
  const cols = Object.keys(rows[0]);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(width[i])).join(' | ') + ' |';
  process.stdout.write(
    [line(cols), line(width.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => String(r[c]))))].join(
      '\n',
    ) + '\n',
  );
}

function report(results: RunResult[]): void {
  for (const r of results) {
    const bad = !r.fullyCompensated || r.duplicates.length || r.leftovers.length || r.error;
    process.stderr.write(
      `  ${bad ? 'FAIL' : 'ok  '} ${r.mesh}: ${r.fault}; ${r.endedReady ? 'ready, ' : ''}` +
        `${r.fullyCompensated ? 'compensated' : 'NOT compensated'}${findings(r.error, r.duplicates, r.leftovers)}\n`,
    );
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kills: { type: 'string', default: '20' },
      'ambient-kills': { type: 'string', default: '6' },
      'server-kills': { type: 'string', default: '3' },
      concurrent: { type: 'string', default: '10' },
      'api-faults': { type: 'string', default: '3' },
      takeovers: { type: 'string', default: '10' },
      'apply-kills': { type: 'string', default: '10' },
      'rotate-kills': { type: 'string', default: '12' },
      'upgrade-kills': { type: 'string', default: '10' },
      'kubelet-kills': { type: 'string', default: '6' },
      'team-faults': { type: 'string', default: '6' },
      seed: { type: 'string', default: String(Date.now() % 100_000) },
      // How long the harness follows one run before it gives up on it and tears it down.
      'run-timeout': { type: 'string', default: '360' },
    },
  });
  const runTimeoutMs = Number(values['run-timeout']) * 1000;
  const seed = Number(values.seed);
  const random = seeded(seed);
  process.stderr.write(`[chaos] seed ${seed} (repeat with --seed ${seed})\n`);
  const tools = await ensureTools(['temporal', ...LOCAL_TOOL_NAMES, 'istioctl'], stderrProgress);
  const bench = new ChaosBench({ temporal: tools.temporal, local: localTools(tools) });
  // Interrupted (Ctrl-C, a timeout): stop every server, worker and cluster it started first (the
  // bench's, and the takeover row's rig once it runs), then exit.
  const stops = new Set<() => Promise<void>>([() => bench.stop()]);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`[chaos] ${signal}: stopping what the harness started\n`);
      void Promise.allSettled([...stops].map((stop) => stop())).finally(() => process.exit(130));
    });
  }
  const rows: Array<Record<string, string | number>> = [];
  try {
    await bench.startServer();
    bench.startWorker();

    /** `count` runs of a three-cluster mesh, each broken by `fault` at a random time within `withinMs`. */
    const atRandomTimes = async (
      count: number,
      prefix: string,
      withinMs: number,
      name: string,
      fault: () => Promise<void>,
      specOf = (mesh: string) => example('three-clusters.yaml', mesh),
    ) => {
      const results: RunResult[] = [];
      for (let i = 0; i < count; i++) {
        const at = Math.round(500 + random() * withinMs);
        const spec = specOf(`${prefix}${i}`);
        results.push(await bench.run(spec, name, (ms) => ms >= at, fault, runTimeoutMs));
        report(results.slice(-1));
      }
      return results;
    };
    const kills = await atRandomTimes(Number(values.kills), 'kill', 30_000, 'worker SIGKILL', () => bench.killWorker());
    if (kills.length) rows.push(row('worker SIGKILL (3 clusters)', kills));
    const ambientKills = await atRandomTimes(
      Number(values['ambient-kills']),
      'amb',
      30_000,
      'worker SIGKILL, ambient',
      () => bench.killWorker(),
      (mesh) => {
        const spec = example('ambient.yaml', mesh);
        return { ...spec, app: { ...spec.app, waypoint: 'waypoint' } };
      },
    );
    if (ambientKills.length) rows.push(row('worker SIGKILL (ambient, 2 networks, waypoint)', ambientKills));
    const serverKills = await atRandomTimes(
      Number(values['server-kills']),
      'srv',
      25_000,
      'dev server SIGKILL + restart',
      () => bench.killServer(),
    );
    if (serverKills.length) rows.push(row('dev server SIGKILL + restart (3 clusters)', serverKills));

    const apiRuns = Number(values['api-faults']);
    if (apiRuns > 0) {
      // Kubernetes API faults at a rate, on every request of the activities: a worker in this
      // process whose local clusters are reached through fault-injecting proxies.
      const faults = (): Fault[] => [
        { kind: '503', when: () => random() < 0.05, times: Infinity },
        { kind: 'reset', when: () => random() < 0.02, times: Infinity },
        { kind: 'slow', when: () => random() < 0.02, times: Infinity },
        { kind: 'lost-answer', when: (req) => req.method !== 'GET' && random() < 0.03, times: Infinity },
      ];
      const deps = activityDeps(bench.state, tools);
      const real = deps.providers.local as LocalProvider;
      const faulty = new FaultyLocalProvider(real, bench.local, faults);
      const connection = await NativeConnection.connect({ address: bench.address });
      const worker = await createWorker(
        connection,
        'default',
        { ...deps, providers: { ...deps.providers, local: faulty } },
        'faults',
      );
      bench.taskQueue = 'faults';
      const apiFaults: RunResult[] = [];
      try {
        await worker.runUntil(async () => {
          for (let i = 0; i < apiRuns; i++) {
            const spec = example('two-clusters.yaml', `api${i}`);
            apiFaults.push(await bench.run(spec, 'API faults', undefined, undefined, runTimeoutMs));
            report(apiFaults.slice(-1));
          }
        });
      } finally {
        await connection.close();
        // Proxies of clusters a run left (a run given up on) would keep this process alive.
        await faulty.stop();
      }
      bench.taskQueue = TASK_QUEUE;
      rows.push(
        row(
          `API faults: 5% 503, 2% reset, 2% slow, 3% lost write answers (2 clusters; ${faulty.injected()} injected)`,
          apiFaults,
        ),
      );
    }

    const n = Number(values.concurrent);
    if (n > 0) {
      const t0 = Date.now();
      const together = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          bench.run(example('two-clusters.yaml', `many${i}`), `${n} at once`, undefined, undefined, 2.5 * runTimeoutMs),
        ),
      );
      report(together);
      rows.push({
        ...row(`${n} meshes at once (2 clusters each, ${Math.round((Date.now() - t0) / 1000)}s)`, together),
      });
    }

    const applyKills = Number(values['apply-kills']);
    if (applyKills > 0) {
      const specs = applySpecs(example('two-clusters.yaml', 'applyk'));
      const out = await applyKillRounds(bench, specs, applyKills, random, runTimeoutMs, reportRound);
      reportDown(out);
      rows.push(applyRow(out, applyKills));
    }

    const kubeletKills = Number(values['kubelet-kills']);
    if (kubeletKills > 0) {
      const out = await kubeletKillRounds(
        bench,
        example('two-clusters.yaml', 'kubeletk'),
        kubeletKills,
        random,
        runTimeoutMs,
        (r) => report([r]),
      );
      process.stderr.write(
        `  ${out.down.fullyCompensated && !out.down.leftovers.length ? 'ok  ' : 'FAIL'} kubelet rounds (kills ` +
          `within a verify of ${(out.expectedMs / 1000).toFixed(1)}s): ` +
          `down ${out.down.fullyCompensated ? 'compensated' : 'NOT compensated'}${findings(out.down.error, [], out.down.leftovers)}\n`,
      );
      rows.push({
        ...row('kubelet (kwok) SIGKILL during verify (2 clusters; ended ready = every check passed)', out.rounds),
        'fully compensated': `${out.rounds.filter((r) => r.fullyCompensated).length}, down: ${out.down.fullyCompensated ? 'yes' : 'NO'}`,
      });
    }

    const rotateKills = Number(values['rotate-kills']);
    if (rotateKills > 0) {
      const out = await rotateKillRounds(
        bench,
        example('two-clusters.yaml', 'rotatek'),
        rotateKills,
        random,
        runTimeoutMs,
        (r) => report([r]),
      );
      const { root, finish, intermediates } = out.expectedMs;
      process.stderr.write(
        `  ${out.down.fullyCompensated && !out.down.leftovers.length ? 'ok  ' : 'FAIL'} rotation rounds (kills ` +
          `within root ${(root / 1000).toFixed(1)}s, finish ${(finish / 1000).toFixed(1)}s, intermediates ` +
          `${(intermediates / 1000).toFixed(1)}s): ` +
          `down ${out.down.fullyCompensated ? 'compensated' : 'NOT compensated'}` +
          `${findings(out.down.error, [], out.down.leftovers)}\n`,
      );
      const r = out.rounds;
      const kinds = (k: string) => r.filter((x) => x.kind === k).length;
      const during = r.filter((x) => x.killedDuring).length;
      const notRun = r.length < rotateKills ? `; ${rotateKills - r.length} round(s) not run` : '';
      rows.push({
        ...row(
          `worker SIGKILL during rotation (root ${kinds('root')}, finish ${kinds('finish')}, intermediates ` +
            `${kinds('intermediates')}; killed mid-rotation ${during}/${r.length}${notRun})`,
          r,
        ),
        'fully compensated':
          `${r.filter((x) => x.fullyCompensated).length}, ` + `down: ${out.down.fullyCompensated ? 'yes' : 'NO'}`,
        'left behind': r.filter((x) => x.leftovers.length).length + (out.down.leftovers.length ? 1 : 0),
      });
    }

    const upgradeKills = Number(values['upgrade-kills']);
    if (upgradeKills > 0) {
      const out = await upgradeKillRounds(
        bench,
        example('two-clusters.yaml', 'upgradek'),
        upgradeKills,
        random,
        runTimeoutMs,
        reportUpgradeRound,
      );
      const [from, to] = UPGRADE_VERSIONS;
      process.stderr.write(
        `  ${out.down.fullyCompensated && !out.down.leftovers.length ? 'ok  ' : 'FAIL'} upgrade rounds (kills ` +
          `within to ${to} ${(out.expectedMs[to] / 1000).toFixed(1)}s, to ${from} ` +
          `${(out.expectedMs[from] / 1000).toFixed(1)}s): ` +
          `down ${out.down.fullyCompensated ? 'compensated' : 'NOT compensated'}` +
          `${findings(out.down.error, [], out.down.leftovers)}\n`,
      );
      const r = out.rounds;
      const ended = (state: string) => r.filter((x) => x.state === state).length;
      const during = r.filter((x) => x.killedDuring).length;
      const resent = r.reduce((sum, x) => sum + x.resent, 0);
      const notRun = r.length < upgradeKills ? `; ${upgradeKills - r.length} round(s) not run` : '';
      rows.push({
        ...row(
          `worker SIGKILL during upgrade (${from} <-> ${to}, 2 clusters; applied ${ended('applied')}, rolled back ` +
            `${ended('rolled-back')}; killed mid-upgrade ${during}/${r.length}; re-sent ${resent}${notRun})`,
          r,
        ),
        'fully compensated':
          `${r.filter((x) => x.fullyCompensated).length}, ` + `down: ${out.down.fullyCompensated ? 'yes' : 'NO'}`,
        'left behind': r.filter((x) => x.leftovers.length).length + (out.down.leftovers.length ? 1 : 0),
      });
    }
  } finally {
    await bench.stop();
  }

  const takeovers = Number(values.takeovers);
  if (takeovers > 0) {
    // Its own dev server, GKE emulator, management cluster (the trust store) and worker processes.
    const results = await takeoverRuns(
      tools,
      takeovers,
      random,
      (r) => report([r]),
      (stop) => stops.add(stop),
    );
    rows.push(row('one of two workers SIGKILLed for good (GKE emulated, Kubernetes trust store)', results));
  }

  const teamFaults = Number(values['team-faults']);
  if (teamFaults > 0) {
    // Its own team deployment, torn down with its data at the end (and on interrupt).
    const results = await teamFaultRuns(
      teamFaults,
      random,
      runTimeoutMs,
      (r) => report([r]),
      (stop) => stops.add(stop),
    );
    const killed = (what: string) => results.filter((r) => r.fault.startsWith(what)).length;
    rows.push(
      row(
        `team deployment (PostgreSQL, 2 workers, API): a random service SIGKILLed mid-mesh (worker ` +
          `${killed('meshflow-worker')}, server ${killed('temporal ')}, PostgreSQL ${killed('postgres ')})`,
        results,
      ),
    );
  }

  const corpus = malformedSpecs();
  let named = 0;
  for (const m of corpus) {
    try {
      parseMeshSpec(m.text, 'corpus.yaml', { checkFiles: false });
    } catch (err) {
      if (
        err instanceof SpecError &&
        err.problems.some(
          (p) => p.path === m.field || p.path.startsWith(`${m.field}.`) || p.path.startsWith(`${m.field}[`),
        )
      )
        named++;
    }
  }
  rows.push({
    fault: 'malformed specs (refused naming the field)',
    runs: corpus.length,
    'ended ready': 0,
    'fully compensated': `${named} refused`,
    duplicates: 0,
    'left behind': 0,
    'gave up': 0,
  });
  table(rows);
  process.stderr.write(`[chaos] worker restarts after a crash of its own: ${bench.workerRestarts}\n`);
}

/** How long the process may take to exit once the harness stopped everything it started. */
const EXIT_GRACE_MS = 10_000;

main()
  .catch((err: unknown) => {
    process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    // Everything the harness started is stopped by now; whatever still holds the event loop is a
    // leak: say what it is, and exit all the same (unref'd: this timer alone keeps nothing open).
    setTimeout(() => {
      process.stderr.write(`[chaos] still open after the run: ${process.getActiveResourcesInfo().join(', ')}\n`);
      process.exit(process.exitCode || 1);
    }, EXIT_GRACE_MS).unref();
  });
