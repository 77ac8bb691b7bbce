import { ISTIO_BUILDS, ISTIO_DEFAULT_LINE } from '../istio/version';
import { type ToolStatus, inspectTools } from '../tools/install';
import { TOOLS, istioToolName, toolSpec } from '../tools/specs';

/** Missing tools that are built on demand (another Istio build) do not make the machine unready. */
const readyOrLater = (t: ToolStatus) => t.ok || (toolSpec(t.name).onDemand === true && t.source === null);

export async function doctor(opts: { json?: boolean }): Promise<number> {
  const tools = await inspectTools();
  const allOk = tools.every(readyOrLater);
  if (opts.json) {
    const out = tools.map(({ name, wanted, found, path, ok }) => ({ name, wanted, found, path, ok }));
    const istio = ISTIO_BUILDS.map((b) => ({
      line: b.line,
      module: `istio.io/istio@${b.module}`,
      source: b.source,
      ...(b.substitutes ? { substitutes: b.substitutes } : {}),
      defaultVersion: b.defaultVersion,
      tools: [istioToolName('istioctl', b.line), istioToolName('pilot-discovery', b.line)],
    }));
    process.stdout.write(JSON.stringify({ tools: out, istioBuilds: istio }, null, 2) + '\n');
  } else {
    process.stdout.write(table(tools) + istioBuilds());
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
      t.ok ? 'yes' : readyOrLater(t) ? 'later' : 'NO',
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

/** The Istio builds a spec's `istio.version` picks from, one per line. */
function istioBuilds(): string {
  const lines = ISTIO_BUILDS.map((b) => {
    const tools = `${istioToolName('istioctl', b.line)}, ${istioToolName('pilot-discovery', b.line)}`;
    const dflt = b.line === ISTIO_DEFAULT_LINE ? ', the default' : '';
    const subst = b.substitutes
      ? `\n         built with ${b.substitutes} (its own are not on the Go module proxy)`
      : '';
    return `  ${b.line}.x  istio.io/istio@${b.module}: ${b.source}${dflt}; ${tools}${subst}`;
  });
  return `\nIstio builds (istio.version picks one by its line):\n${lines.join('\n')}\n`;
}
