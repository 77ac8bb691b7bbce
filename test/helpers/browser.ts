// The browser the Web UI test drives: Debian's chromium (/usr/bin/chromium, or MESHFLOW_CHROMIUM).
// `npm test` brings it as it brings every other tool: when it is missing and this user may install
// packages (root with apt-get), Debian's package is installed, with apt's own progress; otherwise
// the reason is returned, and the one test that needs a browser says it is skipped and why.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export const CHROMIUM = process.env.MESHFLOW_CHROMIUM ?? '/usr/bin/chromium';
/** Set by the test bootstrap when no browser could be had: why (the Web UI test prints it and skips). */
export const BROWSER_MISSING = 'MESHFLOW_BROWSER_MISSING';

const say = (line: string) => process.stderr.write(`[meshflow] ${line}\n`);

/** Makes sure the browser is there; undefined when it is, else why it is not. */
export function ensureBrowser(): string | undefined {
  if (fs.existsSync(CHROMIUM)) return undefined;
  if (process.env.MESHFLOW_CHROMIUM) return `MESHFLOW_CHROMIUM names ${CHROMIUM}, which does not exist`;
  const apt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).stdout.trim();
  if (!apt || process.getuid?.() !== 0) {
    return (
      `${CHROMIUM} is missing and this user cannot install packages: install Debian's chromium ` +
      '(`sudo apt-get install chromium`), or set MESHFLOW_CHROMIUM to a Chromium binary'
    );
  }
  say(`${CHROMIUM} is missing: installing Debian's chromium for the Web UI test (once; a few minutes)...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'chromium']]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0)
      return `\`apt-get ${args.join(' ')}\` failed (exit ${r.status}): chromium could not be installed`;
  }
  return fs.existsSync(CHROMIUM) ? undefined : `apt-get installed chromium, but ${CHROMIUM} is still missing`;
}
