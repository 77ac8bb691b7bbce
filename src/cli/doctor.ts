import { type ToolStatus, inspectTools } from '../tools/install';
import { TOOLS } from '../tools/specs';

export async function doctor(opts: { json?: boolean }): Promise<number> {
  const tools = await inspectTools();
  const allOk = tools.every((t) => t.ok);
  if (opts.json) {
    const out = tools.map(({ name, wanted, found, path, ok }) => ({ name, wanted, found, path, ok }));
    process.stdout.write(JSON.stringify({ tools: out }, null, 2) + '\n');
  } else {
    process.stdout.write(table(tools));
    process.stdout.write(
      allOk ? '\nall tools ready\n' : '\nsome tools are missing: run `npm run setup` to build them\n',
    );
  }
  return allOk ? 0 : 1;
}

function table(tools: ToolStatus[]): string {
  const rows = [
    ['TOOL', 'WANTED', 'FOUND', 'READY', 'WHERE'],
    ...tools.map((t) => [
      t.name,
      t.wanted,
      t.found ?? '-',
      t.ok ? 'yes' : 'NO',
      t.ok ? `${t.path} (${t.source})` : (t.problem ?? ''),
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const purposes = TOOLS.map((t) => `  ${t.name}: ${t.purpose}`).join('\n');
  return (
    rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') +
    `\n\n${purposes}\n`
  );
}
