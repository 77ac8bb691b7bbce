// Bench section 10: another worker takes over. A GKE (emulated) mesh whose CAs are in the
// Kubernetes trust store runs on the shared queue; worker A, a `meshflow worker` process, is
// SIGKILLed inside the create and never comes back, and worker B (another host id and state
// directory, started at the kill) finishes it. Measured: kill to B polling, kill to the create's
// retry started on B, kill to ready.
import { SharedStoreRig } from '../chaos/shared-store-rig';
import { meshHandle, meshStatus, startMesh, teardownMesh } from '../client';
import { sleep } from '../util/net';

type Row = Record<string, string | number>;
type Stopper = (stop: () => Promise<unknown>) => () => Promise<void>;

export async function takeoverAfterKill(tools: Record<string, string>, stopOnInterrupt: Stopper): Promise<Row[]> {
  const rig = new SharedStoreRig(tools);
  const stop = stopOnInterrupt(() => rig.stop());
  try {
    await rig.start();
    const a = rig.startWorker('bench-a');
    await rig.untilPolling(a);
    const spec = SharedStoreRig.gkeMesh('takeover');
    const t0 = Date.now();
    await startMesh(rig.client, spec);
    for (;;) {
      const s = await meshStatus(rig.client, spec.name).catch(() => undefined);
      const create = s?.steps.find((st) => st.id === 'create-cluster:c1');
      if (create?.state === 'running' && Date.now() - Date.parse(create.startedAt!) > 2000) break;
      await sleep(250);
    }
    await rig.kill(a);
    const killedAt = Date.now();
    const b = rig.startWorker('bench-b');
    let pollingAt = 0;
    let retryAt = 0;
    for (;;) {
      if (!pollingAt && (await rig.polls(b).catch(() => false))) pollingAt = Date.now();
      if (!retryAt) {
        const desc = await meshHandle(rig.client, spec.name).describe();
        const retry = desc.raw.pendingActivities?.find((x) => (x.attempt ?? 0) > 1 && x.state === 2);
        if (retry) retryAt = Date.now();
      }
      const s = await meshStatus(rig.client, spec.name).catch(() => undefined);
      if (s && s.phase !== 'provisioning') {
        if (s.phase !== 'ready') throw new Error(`takeover bench: mesh ended ${s.phase}: ${s.error}`);
        break;
      }
      if (Date.now() - t0 > 5 * 60_000) throw new Error('takeover bench: mesh not ready in 5 minutes');
      await sleep(250);
    }
    const readyAt = Date.now();
    const seconds = (t: number) => (t ? ((t - killedAt) / 1000).toFixed(1) : 'not seen');
    await teardownMesh(rig.client, spec.name);
    await meshHandle(rig.client, spec.name).result();
    return [
      {
        'killed during': 'create-cluster:c1',
        'kill to B polling s': seconds(pollingAt),
        'kill to retry started on B s': seconds(retryAt),
        'kill to ready s': seconds(readyAt),
        'up to ready s': ((readyAt - t0) / 1000).toFixed(1),
        'CreateCluster calls': rig.emulator!.calls().CreateCluster ?? 0,
        'left after down': (await rig.leftovers(spec.name)).length,
      },
    ];
  } finally {
    await stop();
  }
}
