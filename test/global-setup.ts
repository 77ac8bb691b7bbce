// Before any test: every pinned tool is ready (built into the tool cache on a fresh machine,
// with progress output) and a scratch root exists for the state of the servers tests start.
// The tools are prepared by the real CLI (`meshflow setup`, compiled by `npm test`'s bootstrap),
// as a user's `npm run setup` does, with `--all`: test/mesh-e2e-istio-builds.test.ts runs a mesh of
// the other pinned Istio build (1.30), which a worker would otherwise build on first use. The Web UI
// test's browser too (./helpers/browser.ts).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { BROWSER_MISSING, ensureBrowser } from './helpers/browser';

const cli = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');

export default async function globalSetup(): Promise<void> {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run the tests with \`npm test\`, which builds it first`);
  const setup = spawnSync(process.execPath, [cli, 'setup', '--all'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (setup.status !== 0) throw new Error('`meshflow setup --all` failed (see above); no test was run');
  const doctor = spawnSync(process.execPath, [cli, 'doctor', '--json'], { encoding: 'utf8' });
  const { tools } = JSON.parse(doctor.stdout) as { tools: Array<{ name: string; path: string; ok: boolean }> };
  process.env.MESHFLOW_TEST_TOOLS = JSON.stringify(Object.fromEntries(tools.map((t) => [t.name, t.path])));
  process.env.MESHFLOW_TEST_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-test-'));
  const missing = ensureBrowser();
  if (missing) {
    process.env[BROWSER_MISSING] = missing;
    process.stderr.write(`[meshflow] the Web UI test (test/web-ui.test.ts) will be SKIPPED: ${missing}\n`);
  }
}
