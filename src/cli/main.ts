#!/usr/bin/env node
// The meshflow command line.
import { Command } from 'commander';
import { doctor } from './doctor';
import { ensureTools } from '../tools/install';

const program = new Command('meshflow').description('Multi-cluster Istio meshes as durable Temporal workflows.');

program
  .command('doctor')
  .description('show each pinned tool: wanted and found version, where it is, whether it is ready')
  .option('--json', 'print JSON: {"tools":[{"name","wanted","found","path","ok"}]}')
  .action(async (opts: { json?: boolean }) => {
    process.exitCode = await doctor(opts);
  });

program
  .command('setup')
  .description('build or find every pinned tool (into ~/.cache/meshflow/tools; reused when present)')
  .action(async () => {
    await ensureTools();
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`meshflow: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
