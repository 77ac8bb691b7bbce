import fs from 'node:fs';
import path from 'node:path';

/** Paths of the pinned tools, resolved once by the global setup. */
export function tool(name: 'temporal' | 'kube-apiserver' | 'etcd' | 'istioctl' | 'temporal-test-server'): string {
  const tools = JSON.parse(process.env.MESHFLOW_TEST_TOOLS ?? '{}') as Record<string, string>;
  if (!tools[name]) throw new Error(`tool ${name} was not prepared by the global setup`);
  return tools[name];
}

/** A fresh directory under the run's scratch root (removed by the global teardown). */
export function scratchDir(label: string): string {
  const root = process.env.MESHFLOW_TEST_ROOT;
  if (!root) throw new Error('MESHFLOW_TEST_ROOT is not set: run the tests through jest');
  return fs.mkdtempSync(path.join(root, `${label}-`));
}
