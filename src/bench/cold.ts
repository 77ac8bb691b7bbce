// Bench 16: the first run on a fresh machine. The tools `npm run start-workflow` needs are built
// as that command builds them (ensureTools, side by side), into a scratch tool cache with empty Go
// module and build caches, so every module is fetched from the proxy and every package compiled.
// Each Go command writes its trace (`go -debug-trace`), which tells where a build's time went:
// fetching modules, compiling packages, linking.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LOCAL_TOOL_NAMES } from '../local/tools';
import { ensureTools, expectedBuildMinutes, uniqueBuilds } from '../tools/install';
import { toolSpec } from '../tools/specs';

/** What `npm run start-workflow` builds on a fresh machine. */
export const START_WORKFLOW_TOOLS = ['temporal', ...LOCAL_TOOL_NAMES, 'istioctl'];

interface TraceEvent {
  name: string;
  ph: string;
  ts: number;
  tid?: number;
}

type Interval = [number, number];

/** The length of the union of intervals (ms): time during which at least one was under way. */
export function unionMs(intervals: Interval[]): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let [start, end] = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (const [s, e] of sorted) {
    if (s > end) {
      if (end > start) total += end - start;
      [start, end] = [s, e];
    } else end = Math.max(end, e);
  }
  if (end > start) total += end - start;
  return total;
}

export interface GoTracePhases {
  /** From the first event to the last. */
  wallMs: number;
  /** Module downloads and unzips (modfetch spans). */
  fetchMs: number;
  /** While at least one package compiled. */
  compileMs: number;
  /** While a binary linked. */
  linkMs: number;
}

/** The phases of one `go -debug-trace` file. */
export function goTracePhases(text: string): GoTracePhases {
  // The file is a JSON array; a command that failed may leave it unterminated.
  const body = text.trim().replace(/,\s*$/, '');
  const events = JSON.parse(body.endsWith(']') ? body : `${body}]`) as TraceEvent[];
  const open = new Map<string, number[]>();
  const spans: Array<{ name: string; at: Interval }> = [];
  for (const e of events) {
    const key = `${e.tid ?? 0}\u0000${e.name}`;
    if (e.ph === 'B') {
      const starts = open.get(key);
      if (starts) starts.push(e.ts);
      else open.set(key, [e.ts]);
    } else if (e.ph === 'E') {
      const starts = open.get(key);
      const start = starts?.pop();
      if (start !== undefined) spans.push({ name: e.name, at: [start / 1000, e.ts / 1000] });
    }
  }
  // A large build's trace holds hundreds of thousands of events: no spreading them into arguments.
  let [first, last] = [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (const e of events) [first, last] = [Math.min(first, e.ts / 1000), Math.max(last, e.ts / 1000)];
  const of = (test: (name: string) => boolean) => unionMs(spans.filter((s) => test(s.name)).map((s) => s.at));
  return {
    wallMs: events.length ? last - first : 0,
    fetchMs: of((n) => n.startsWith('modfetch.')),
    compileMs: of((n) => n.startsWith('Executing action (build')),
    linkMs: of((n) => n.startsWith('Executing action (link')),
  };
}

/** CPU seconds of this process's waited-for children (and theirs): the builds' Go commands. */
function childrenCpuSeconds(): number {
  const fields = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  // After the state field: cutime and cstime are fields 16 and 17 of the whole line.
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

const minutes = (ms: number) => (ms / 60_000).toFixed(1);

/**
 * Builds the start-workflow tools cold in a scratch folder; returns a row per tool (when it was
 * done, the phases of its Go commands) and the whole against its floor and target.
 */
export async function coldFirstRun(): Promise<{
  rows: Array<Record<string, string | number>>;
  total: Record<string, string | number>;
}> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-bench-cold-'));
  const traces = path.join(scratch, 'traces');
  const saved = { ...process.env };
  Object.assign(process.env, {
    MESHFLOW_CACHE_DIR: path.join(scratch, 'cache'),
    GOMODCACHE: path.join(scratch, 'gomod'),
    GOCACHE: path.join(scratch, 'gocache'),
    MESHFLOW_GO_TRACE_DIR: traces,
  });
  const started = Date.now();
  const cpuBefore = childrenCpuSeconds();
  const walls = new Map<string, number>();
  let announced = '';
  try {
    await ensureTools(START_WORKFLOW_TOOLS, (line) => {
      process.stderr.write(`[bench cold] ${line}\n`);
      const built = /^built (\S+) \S+ in /.exec(line);
      if (built) walls.set(built[1], Date.now() - started);
      if (line.includes('expected to take')) announced = /about (\d+ min)/.exec(line)?.[1] ?? '';
    });
    const wall = Date.now() - started;
    const cpu = childrenCpuSeconds() - cpuBefore;
    const files = fs.existsSync(traces) ? fs.readdirSync(traces) : [];
    const rows: Array<Record<string, string | number>> = [];
    for (const [tool, doneAt] of walls) {
      const phases = files
        .filter((f) => f.startsWith(`${tool}.`))
        .map((f) => goTracePhases(fs.readFileSync(path.join(traces, f), 'utf8')));
      const sum = (k: keyof GoTracePhases) => phases.reduce((a, p) => a + p[k], 0);
      rows.push({
        tool,
        'done at min': minutes(doneAt),
        'go commands min': minutes(sum('wallMs')),
        'fetching modules min': minutes(sum('fetchMs')),
        'compiling min': minutes(sum('compileMs')),
        'linking min': minutes(sum('linkMs')),
      });
    }
    const floor = cpu / os.cpus().length;
    const expected = expectedBuildMinutes(uniqueBuilds(START_WORKFLOW_TOOLS.map(toolSpec)));
    const total = {
      cores: os.cpus().length,
      'wall min': minutes(wall),
      'CPU-min (every Go command)': minutes(cpu * 1000),
      'floor min (CPU / cores)': minutes(floor * 1000),
      'wall / floor': (wall / 1000 / floor).toFixed(2),
      'expected (first line)': announced || `${expected.toFixed(0)} min`,
      'target <= 15 min (tools alone)': wall <= 15 * 60_000 ? 'met' : 'NOT met',
    };
    return { rows, total };
  } finally {
    process.env = saved;
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
