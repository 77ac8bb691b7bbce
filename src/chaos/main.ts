// `npm run chaos [-- --kills N --server-kills N --concurrent N --seed S]`: breaks meshflow on
// purpose and prints, per fault, how the runs ended, as a table.
//  1. worker SIGKILL at a random point of a 3-cluster mesh's life (restarted at once, same host);
//  2. dev server SIGKILL mid-run, restarted on the same database a second later;
//  3. several meshes started at once on one worker;
//  4. the malformed-spec corpus: every spec refused, naming its field, nothing started.
// A row counts runs, runs that ended ready, runs fully compensated (everything removed after
// `down` or a failure), duplicates (a second cluster or root for one mesh) and runs that left
// clusters, processes or files behind.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../paths';
import { SpecError, loadMeshSpec, parseMeshSpec } from '../spec/load';
import { ensureTools } from '../tools/install';
import { stderrProgress } from '../util/progress';
import { ChaosBench, type RunResult, seeded } from './harness';
import { malformedSpecs } from './malformed-specs';

const example = (file: string, name: string) => ({ ...loadMeshSpec(path.join(packageRoot, 'examples', file)), name });

function row(fault: string, results: RunResult[]): Record<string, string | number> {
  return {
    fault,
    runs: results.length,
    'ended ready': results.filter((r) => r.endedReady).length,
    'fully compensated': results.filter((r) => r.fullyCompensated).length,
    duplicates: results.filter((r) => r.duplicates.length).length,
    'left behind': results.filter((r) => r.leftovers.length).length,
  };
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
      `  ${bad ? 'FAIL' : 'ok  '} ${r.mesh}: ${r.fault}; ${r.endedReady ? 'ready, ' : ''}${r.fullyCompensated ? 'compensated' : 'NOT compensated'}` +
        `${r.error ? ` (${r.error})` : ''}${r.duplicates.length ? ` duplicates: ${r.duplicates.join('; ')}` : ''}${r.leftovers.length ? ` left: ${r.leftovers.join('; ')}` : ''}\n`,
    );
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kills: { type: 'string', default: '20' },
      'server-kills': { type: 'string', default: '3' },
      concurrent: { type: 'string', default: '10' },
      seed: { type: 'string', default: String(Date.now() % 100_000) },
    },
  });
  const seed = Number(values.seed);
  const random = seeded(seed);
  process.stderr.write(`[chaos] seed ${seed} (repeat with --seed ${seed})\n`);
  const tools = await ensureTools(['temporal', 'kube-apiserver', 'etcd', 'istioctl'], stderrProgress);
  const bench = new ChaosBench({ temporal: tools.temporal, kubeApiserver: tools['kube-apiserver'], etcd: tools.etcd });
  const rows: Array<Record<string, string | number>> = [];
  try {
    await bench.startServer();
    bench.startWorker();

    const kills: RunResult[] = [];
    for (let i = 0; i < Number(values.kills); i++) {
      const at = Math.round(500 + random() * 30_000);
      kills.push(
        await bench.run(
          example('three-clusters.yaml', `kill${i}`),
          'worker SIGKILL',
          (ms) => ms >= at,
          () => bench.killWorker(),
        ),
      );
      report(kills.slice(-1));
    }
    if (kills.length) rows.push(row('worker SIGKILL (3 clusters)', kills));

    const serverKills: RunResult[] = [];
    for (let i = 0; i < Number(values['server-kills']); i++) {
      const at = Math.round(500 + random() * 25_000);
      serverKills.push(
        await bench.run(
          example('three-clusters.yaml', `srv${i}`),
          'dev server SIGKILL + restart',
          (ms) => ms >= at,
          () => bench.killServer(),
        ),
      );
      report(serverKills.slice(-1));
    }
    if (serverKills.length) rows.push(row('dev server SIGKILL + restart (3 clusters)', serverKills));

    const n = Number(values.concurrent);
    if (n > 0) {
      const t0 = Date.now();
      const together = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          bench.run(example('two-clusters.yaml', `many${i}`), `${n} at once`, undefined, undefined, 15 * 60_000),
        ),
      );
      report(together);
      rows.push({
        ...row(`${n} meshes at once (2 clusters each, ${Math.round((Date.now() - t0) / 1000)}s)`, together),
      });
    }
  } finally {
    await bench.stop();
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
  });
  table(rows);
  process.stderr.write(`[chaos] worker restarts after a crash of its own: ${bench.workerRestarts}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
