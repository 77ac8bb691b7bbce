// Recording workflow histories for the replay test: `MESHFLOW_RECORD_HISTORIES=1 npm test -- <files>`
// writes the history of each named run to test/histories/<name>.json (after an intended,
// versioned change; earlier releases' histories stay, so the replay test keeps proving them).
import fs from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';

export const recording = Boolean(process.env.MESHFLOW_RECORD_HISTORIES);

export async function recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (!recording) return;
  fs.writeFileSync(
    path.join(__dirname, '..', 'histories', `${name}.json`),
    historyToJSON(await handle.fetchHistory()) + '\n',
  );
}

/** Every payload of a run's history, its data decoded from base64 and joined: what to search for secrets in. */
export async function historyPayloadText(handle: WorkflowHandle): Promise<string> {
  const texts: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'data' && typeof x === 'string') texts.push(Buffer.from(x, 'base64').toString());
        else walk(x);
      }
    }
  };
  walk(JSON.parse(historyToJSON(await handle.fetchHistory())));
  return texts.join('\n');
}
