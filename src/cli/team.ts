// `meshflow team up|down|status|restart`: the compose stack run as processes of this machine
// (src/team/deployment.ts).
import { Command } from 'commander';
import { teamDir } from '../paths';
import { type TeamRecord, teamDown, teamRestart, teamStatus, teamUp } from '../team/deployment';

function summary(r: TeamRecord): string {
  const workers = r.services.filter((s) => s.role === 'worker').map((s) => s.service);
  return [
    `Temporal server ${r.serverVersion} at ${r.address}, namespace ${r.namespace}, ` +
      `on PostgreSQL ${r.postgresMajor} (127.0.0.1:${r.postgresPort})`,
    `  Web UI   ${r.uiUrl}`,
    `  API      ${r.apiUrl} (bearer tokens in ${r.apiTokenFile})`,
    `  workers  ${workers.join(', ')}`,
    `  files    ${teamDir()}`,
    `Use it: TEMPORAL_ADDRESS=${r.address} meshflow up SPEC (or the API); \`meshflow team status\` shows each service.`,
  ].join('\n');
}

export function teamCommand(): Command {
  const team = new Command('team').description(
    "run the compose stack's team deployment on this machine, no Docker: PostgreSQL, the Temporal server, " +
      'its Web UI, two workers and the API (settings from docker-compose.yml)',
  );
  team
    .command('up')
    .description('start what is not running, in compose order, each healthy before the next')
    .option('--server-version <v>', 'Temporal server release to run; a newer one upgrades the schema, then the server')
    .option('--json', "print the deployment's record as JSON")
    .action(async (opts: { serverVersion?: string; json?: boolean }) => {
      const r = await teamUp({ serverVersion: opts.serverVersion });
      process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : summary(r) + '\n');
    });
  team
    .command('down')
    .description('stop every service (the API first, PostgreSQL last); data stays unless --purge')
    .option('--force', 'stop even while meshes are open (their local clusters stop with the workers)')
    .option('--purge', "delete the data too: database, workers' state, secrets")
    .action(async (opts: { force?: boolean; purge?: boolean }) => {
      const r = await teamDown(opts);
      process.stdout.write(
        `stopped: ${r.stopped.join(', ') || 'nothing was running'}` +
          (r.purged.length ? `\ndeleted: ${r.purged.join(', ')}` : '') +
          '\n',
      );
    });
  team
    .command('status')
    .description('each service: running or not, its PID, ports and log')
    .option('--json', 'as JSON')
    .action((opts: { json?: boolean }) => {
      const s = teamStatus();
      if (opts.json) return void process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      if (!s.record) return void process.stdout.write(`no team deployment in ${teamDir()} (\`meshflow team up\`)\n`);
      const rows = s.services.map((x) => [
        x.service,
        x.state,
        x.pid ? String(x.pid) : '-',
        x.ports.join(',') || '-',
        x.log,
      ]);
      const widths = [0, 1, 2, 3].map((i) =>
        Math.max(...[['SERVICE', 'STATE', 'PID', 'PORTS'][i], ...rows.map((r) => r[i])].map((c) => c.length)),
      );
      const line = (r: string[]) => r.map((c, i) => (i < 4 ? c.padEnd(widths[i]) : c)).join('  ');
      process.stdout.write(
        [summary(s.record), '', line(['SERVICE', 'STATE', 'PID', 'PORTS', 'LOG']), ...rows.map(line)].join('\n') + '\n',
      );
      if (s.services.some((x) => x.state === 'stopped')) process.exitCode = 1;
    });
  team
    .command('restart <service>')
    .description('stop one service and start it again, waiting until it is healthy (e.g. temporal, postgres)')
    .action(async (service: string) => teamRestart(service));
  return team;
}
