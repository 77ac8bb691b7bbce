import fs from 'node:fs';
import path from 'node:path';
import type { LocalTools } from '../../src/local/clusters';
import { LOCAL_TOOL_NAMES, localTools } from '../../src/local/tools';
import { sleep } from '../../src/util/net';

/** Paths of the pinned tools, resolved once by the global setup. */
export function tool(name: string): string {
  const tools = JSON.parse(process.env.MESHFLOW_TEST_TOOLS ?? '{}') as Record<string, string>;
  if (!tools[name]) throw new Error(`tool ${name} was not prepared by the global setup`);
  return tools[name];
}

/** The tools of local clusters with workloads and istiod, as the worker gets them. */
export function testLocalTools(): LocalTools {
  return localTools(Object.fromEntries(LOCAL_TOOL_NAMES.map((n) => [n, tool(n)])));
}

/** A fresh directory under the run's scratch root (removed by the global teardown). */
export function scratchDir(label: string): string {
  const root = process.env.MESHFLOW_TEST_ROOT;
  if (!root) throw new Error('MESHFLOW_TEST_ROOT is not set: run the tests through jest');
  return fs.mkdtempSync(path.join(root, `${label}-`));
}

/** Polls `probe` every 100 ms until it answers, failing after `ms` with what was awaited. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
