import fs from 'node:fs';
import path from 'node:path';
import { runningPid, stopDaemon } from './daemon';

/** Stops every daemon whose PID file lies under `root` and whose command line names `root`. */
export async function sweepDaemons(root: string): Promise<string[]> {
  const pidFiles: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.pid')) pidFiles.push(p);
    }
  };
  walk(root);
  const live = pidFiles.filter((f) => runningPid(f, root) !== undefined);
  await Promise.all(live.map((f) => stopDaemon(f, root, 5000)));
  return live.map((f) => path.relative(root, f));
}
