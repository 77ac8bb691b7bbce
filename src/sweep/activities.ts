// The schedules' activities. The sweep's: the open mesh workflows (a visibility query, as
// `meshflow list`) and each one's status query; the decision and the teardown signal are the
// workflow's (./workflow.ts). A scheduled mesh's: the open runs of its name.
import type { Client } from '@temporalio/client';
import { listMeshes, openRunsOf } from '../client';
import { statusQuery } from '../workflows/definitions';
import type { MeshStatus } from '../workflows/types';

export interface SweptMesh {
  name: string;
  workflowId: string;
  runId: string;
  startedAt: string;
  status?: MeshStatus;
  /** Why the status could not be read (no worker answered the query in time). */
  error?: string;
}

export interface SweepActivities {
  listOpenMeshes(): Promise<SweptMesh[]>;
  /** Workflow ids of the open runs of a mesh name (../workflows/scheduled-mesh.ts). */
  openMeshRuns(mesh: string): Promise<string[]>;
}

const QUERY_DEADLINE_MS = 10_000;

/** The sweep's activities, on a client of the worker's connection (`new Client({ connection, namespace })`). */
export function createSweepActivities(client: Client): SweepActivities {
  return {
    async listOpenMeshes() {
      const open = await listMeshes(client);
      return Promise.all(
        open.map(async (m): Promise<SweptMesh> => {
          const row = { name: m.name, workflowId: m.workflowId, runId: '', startedAt: m.startedAt };
          try {
            return await client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, async () => {
              // The run judged is the run signalled: its id is pinned before its status is read.
              const { runId } = await client.workflow.getHandle(m.workflowId).describe();
              const status = await client.workflow.getHandle(m.workflowId, runId).query(statusQuery);
              return { ...row, runId, status };
            });
          } catch (err) {
            // Ended since the list, or no worker answered: left alone this time.
            return { ...row, error: err instanceof Error ? err.message : String(err) };
          }
        }),
      );
    },
    async openMeshRuns(mesh) {
      return (await openRunsOf(client, mesh)).map((r) => r.workflowId);
    },
  };
}
