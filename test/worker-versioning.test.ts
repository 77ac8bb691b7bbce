// Worker Versioning: `meshflow worker` processes with MESHFLOW_BUILD_ID are builds of the Worker
// Deployment `meshflow`. A mesh started on build b1 stays pinned to b1 after b2 becomes the
// current version: its teardown runs on b1's worker, while a new mesh runs on b2. Real dev
// server, GKE emulator, Kubernetes trust store (src/chaos/shared-store-rig.ts).
import { temporal } from '@temporalio/proto';
import { execa } from 'execa';
import { meshHandle, startMesh, teardownMesh } from '../src/client';
import { type RigWorker, SharedStoreRig } from '../src/chaos/shared-store-rig';
import { LOCAL_TOOL_NAMES } from '../src/local/tools';
import { sleep } from '../src/util/net';
import { tool } from './helpers/env';

jest.setTimeout(300_000);

const PINNED = temporal.api.enums.v1.VersioningBehavior.VERSIONING_BEHAVIOR_PINNED;

const rig = new SharedStoreRig(Object.fromEntries(['temporal', ...LOCAL_TOOL_NAMES].map((n) => [n, tool(n)])));

beforeAll(() => rig.start());
afterAll(() => rig.stop());

/** Makes `buildId` the deployment's current version, as an operator does with the Temporal CLI. */
async function setCurrent(buildId: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const r = await execa(
      tool('temporal'),
      [
        ...['worker', 'deployment', 'set-current-version', '--address', rig.env!.address],
        ...['--deployment-name', 'meshflow', '--build-id', buildId, '--yes'],
      ],
      { reject: false, all: true },
    );
    if (r.exitCode === 0) return;
    // The version exists once its workers have polled; the server learns of them within seconds.
    if (attempt > 40) throw new Error(`set-current-version ${buildId}: ${r.all}`);
    await sleep(500);
  }
}

async function versionOf(mesh: string): Promise<{ buildId?: string; behavior?: unknown }> {
  const d = await meshHandle(rig.client, mesh).describe();
  const info = d.raw.workflowExecutionInfo?.versioningInfo;
  return { buildId: info?.deploymentVersion?.buildId ?? undefined, behavior: info?.behavior };
}

async function untilReady(mesh: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const s = await meshHandle(rig.client, mesh)
      .query('status')
      .catch(() => undefined);
    const phase = (s as { phase?: string } | undefined)?.phase;
    if (phase === 'ready') return;
    if (phase && phase !== 'provisioning') throw new Error(`${mesh} ended ${phase}`);
    await sleep(250);
  }
  throw new Error(`${mesh} not ready`);
}

/** The identities of the workers that ran the mesh's activities, from its history. */
async function activityWorkers(mesh: string): Promise<Set<string>> {
  const history = await meshHandle(rig.client, mesh).fetchHistory();
  return new Set(
    (history.events ?? []).map((e) => e.activityTaskStartedEventAttributes?.identity).filter((x): x is string => !!x),
  );
}

const pidOf = (w: RigWorker) => `${w.proc.pid}@`;

test('a mesh stays on the build that started it; new meshes go to the current build', async () => {
  const b1 = rig.startWorker('v-host-1', { MESHFLOW_BUILD_ID: 'b1' });
  await rig.untilPolling(b1);
  await setCurrent('b1');
  await startMesh(rig.client, SharedStoreRig.gkeMesh('pinned-old'));
  await untilReady('pinned-old');

  const b2 = rig.startWorker('v-host-2', { MESHFLOW_BUILD_ID: 'b2' });
  await rig.untilPolling(b2);
  await setCurrent('b2');
  await startMesh(rig.client, SharedStoreRig.gkeMesh('pinned-new'));
  await untilReady('pinned-new');

  expect(await versionOf('pinned-old')).toEqual({ buildId: 'b1', behavior: PINNED });
  expect(await versionOf('pinned-new')).toEqual({ buildId: 'b2', behavior: PINNED });

  // The old mesh's teardown runs on b1 although b2 is current; the new mesh's on b2.
  for (const mesh of ['pinned-old', 'pinned-new']) {
    await teardownMesh(rig.client, mesh);
    expect((await meshHandle(rig.client, mesh).result()).phase).toBe('deleted');
  }
  const old = [...(await activityWorkers('pinned-old'))];
  const fresh = [...(await activityWorkers('pinned-new'))];
  expect(old.length).toBeGreaterThan(0);
  expect(old.every((id) => id.startsWith(pidOf(b1)))).toBe(true);
  expect(fresh.every((id) => id.startsWith(pidOf(b2)))).toBe(true);
  expect(await rig.leftovers('pinned-old')).toEqual([]);
  expect(await rig.leftovers('pinned-new')).toEqual([]);
});
