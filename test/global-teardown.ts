// After all tests, pass or fail: stop every server a test left running under the scratch root,
// then remove it. Tests stop their own servers; this is the net under them.
import fs from 'node:fs';
import { sweepDaemons } from '../src/util/sweep';

export default async function globalTeardown(): Promise<void> {
  const root = process.env.MESHFLOW_TEST_ROOT;
  if (!root || !fs.existsSync(root)) return;
  const stopped = await sweepDaemons(root);
  if (stopped.length)
    process.stderr.write(`[meshflow] stopped ${stopped.length} server(s) left by tests: ${stopped.join(', ')}\n`);
  fs.rmSync(root, { recursive: true, force: true });
}
