// `meshflow schedule ...`: the sweep and recurring meshes as Temporal Schedules.
import { Command } from 'commander';
import { connect, connectWithWorker } from './local-mode';
import { loadMeshSpec } from '../spec/load';
import {
  MIN_INTERVAL,
  type Overlap,
  checkWhen,
  type ScheduleView,
  createMeshSchedule,
  createSweepSchedule,
  deleteSchedule,
  describeSchedule,
  listSchedules,
  pauseSchedule,
  scheduleIdOf,
  triggerSchedule,
  unpauseSchedule,
} from '../schedules/schedules';

interface CreateOptions {
  spec?: string;
  every?: string;
  cron?: string;
  overlap?: Overlap;
  paused?: boolean;
  keptLimit?: string;
}

const out = (text: string) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);

export function renderSchedules(all: ScheduleView[]): string {
  if (!all.length) return 'no schedules\n';
  return all
    .map((s) => {
      const next = s.nextRuns[0] ? `next ${s.nextRuns[0]}` : 'no next run';
      const last = s.recentActions.at(-1);
      return (
        `${s.id.padEnd(32)} ${s.kind.padEnd(6)} ${s.spec.padEnd(18)} ${s.paused ? 'paused' : 'active'}  ${next}` +
        (last ? `  last ${last.workflowId}${last.outcome ? ` (${last.outcome})` : ''}` : '') +
        (s.summary ? `\n${' '.repeat(33)}${s.summary}` : '')
      );
    })
    .join('\n');
}

function renderSchedule(s: ScheduleView): string {
  return [
    `schedule ${s.id} (${s.kind}${s.mesh ? ` ${s.mesh}` : ''}): ${s.spec}, overlap ${s.overlap ?? '?'}${s.paused ? ', paused' : ''}`,
    ...(s.summary ? [`  ${s.summary}`] : []),
    ...(s.keptLimit ? [`  kept limit: ${s.keptLimit}`] : []),
    `  next runs: ${s.nextRuns.join(', ') || 'none'}`,
    '  recent runs:',
    ...(s.recentActions.length
      ? s.recentActions.map((a) => `    ${a.scheduledAt}  ${a.workflowId}${a.outcome ? `  ${a.outcome}` : ''}`)
      : ['    none']),
  ].join('\n');
}

export function scheduleCommand(): Command {
  const cmd = new Command('schedule').description(
    'Temporal Schedules: the sweep (`create sweep`) and recurring meshes (`create NAME --spec FILE`)',
  );
  cmd
    .command('create <name>')
    .description('`sweep`: tear down expired and long-kept meshes; NAME --spec FILE: start the mesh at every tick')
    .option('--spec <file>', 'the mesh spec (validated as `meshflow validate` does)')
    .option(
      '--every <duration>',
      `run every DURATION (at least ${MIN_INTERVAL.mesh.every} for a mesh, ${MIN_INTERVAL.sweep.every} for the sweep)`,
    )
    .option('--cron <expr>', 'run on a cron expression (e.g. "0 9 * * 1-5")')
    .option('--overlap <policy>', 'a tick while the last run is open: skip, or buffer-one (run once it ends)', 'skip')
    .option('--kept-limit <duration>', 'sweep: tear down meshes kept after a failure for longer (default 24h)')
    .option('--paused', 'create it paused')
    .action(async (name: string, opts: CreateOptions) => {
      const when = { every: opts.every, cron: opts.cron, overlap: opts.overlap, paused: opts.paused };
      if (!opts.spec && name !== 'sweep') throw new Error(`schedule ${name} needs --spec FILE (or create \`sweep\`)`);
      if (opts.spec && opts.keptLimit) throw new Error('--kept-limit is for the sweep, not a mesh schedule');
      // Checked before connecting: bad input starts nothing, not even a local Temporal.
      checkWhen(opts.spec ? 'mesh' : 'sweep', when);
      const spec = opts.spec ? loadMeshSpec(opts.spec) : undefined;
      const { client } = await connectWithWorker(); // the schedule's runs need a worker
      const id = spec
        ? await createMeshSchedule(client, spec, when)
        : await createSweepSchedule(client, { ...when, keptLimit: opts.keptLimit });
      out(renderSchedule(await describeSchedule(client, id)));
    });
  cmd
    .command('list')
    .description("meshflow's schedules: id, kind, when, paused, next and last run")
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { client } = await connect();
      const all = await listSchedules(client);
      out(opts.json ? JSON.stringify(all, null, 2) : renderSchedules(all));
    });
  cmd
    .command('describe <id>')
    .description('one schedule (its id, `sweep`, or the mesh name)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const { client } = await connect();
      const s = await describeSchedule(client, scheduleIdOf(id));
      out(opts.json ? JSON.stringify(s, null, 2) : renderSchedule(s));
    });
  const verb = (
    name: string,
    description: string,
    fn: (c: Awaited<ReturnType<typeof connect>>['client'], id: string) => Promise<void>,
    done: string,
  ) =>
    cmd
      .command(`${name} <id>`)
      .description(description)
      .action(async (arg: string) => {
        const id = scheduleIdOf(arg);
        const { client } = name === 'trigger' || name === 'unpause' ? await connectWithWorker() : await connect();
        await fn(client, id);
        out(`schedule ${id}: ${done}`);
      });
  verb('pause', 'stop taking actions until unpaused', pauseSchedule, 'paused');
  verb('unpause', 'take actions again', unpauseSchedule, 'unpaused');
  verb('trigger', 'take the action now (skipped while a run it started is open)', triggerSchedule, 'triggered');
  verb('delete', 'delete the schedule (runs it started go on until their TTL)', deleteSchedule, 'deleted');
  return cmd;
}
