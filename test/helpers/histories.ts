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
