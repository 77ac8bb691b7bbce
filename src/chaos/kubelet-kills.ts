// The chaos row "kubelet SIGKILL during verify": one ready two-cluster mesh is verified round after
// round, and at a random moment of each verify one cluster's kubelet is SIGKILLed. Here kwok plays
// the kubelet (it serves the node's port-forwards and execs, which the Istio checks and the traffic
// check go through), runs supervised as a node's kubelet runs under systemd, and is started again.
// Each round must end with every check passed: a kubelet that is away for a moment is a transient
// error (the check, or the whole verify, is retried), never a false failure. At the end the mesh is
// torn down and checked for leftovers as every other row's runs are.
import path from 'node:path';
import { startMesh, verifyMesh } from '../client';
import type { MeshSpec } from '../spec/schema';
import { localClusterName } from '../spec/names';
import { supervisedPid } from '../util/daemon';
import { sleep } from '../util/net';
import { type ApplyKillsResult, finalDown, waitPhase } from './apply-kills';
import type { ChaosBench, RunResult } from './harness';

export interface KubeletKillsResult {
  rounds: RunResult[];
  /** How long the calibration verify (no kill) took, ms. */
  expectedMs: number;
  down: ApplyKillsResult['down'];
}

export async function kubeletKillRounds(
  bench: ChaosBench,
  spec: MeshSpec,
  rounds: number,
  random: () => number,
  timeoutMs: number,
  report: (round: RunResult) => void,
): Promise<KubeletKillsResult> {
  const mesh = spec.name;
  const result: KubeletKillsResult = { rounds: [], expectedMs: 0, down: { fullyCompensated: false, leftovers: [] } };
  try {
    await startMesh(bench.client!, spec, bench.taskQueue);
    const up = await waitPhase(bench, mesh, (s) => s.phase !== 'provisioning', timeoutMs);
    if (up?.phase !== 'ready')
      throw new Error(`mesh ${mesh} did not come up: ${up?.phase ?? 'no status'} ${up?.error ?? ''}`);
    const t0 = Date.now();
    await verifyMesh(bench.client!, mesh);
    result.expectedMs = Date.now() - t0;
    for (let i = 0; i < rounds; i++) {
      const cluster = spec.clusters[Math.floor(random() * spec.clusters.length)].name;
      const round: RunResult = {
        mesh: `${mesh} round ${i}`,
        fault: '',
        endedReady: false,
        fullyCompensated: false,
        duplicates: [],
        leftovers: [],
      };
      const dir = path.dirname(bench.local.get(localClusterName(mesh, cluster))!.kubeconfig);
      const pidFile = path.join(dir, 'kwok.pid');
      const killAt = Math.round(random() * result.expectedMs);
      const sent = Date.now();
      const verified = verifyMesh(bench.client!, mesh);
      await sleep(killAt);
      const killed = supervisedPid(pidFile, dir);
      if (killed !== undefined) process.kill(killed, 'SIGKILL');
      round.fault = `kwok of ${cluster} SIGKILLed at ${(killAt / 1000).toFixed(1)}s of verify`;
      try {
        const failed = (await verified).filter((c) => c.status === 'failed');
        round.fault += `, verify ended at ${((Date.now() - sent) / 1000).toFixed(1)}s`;
        if (failed.length)
          round.error = `failed: ${failed.map((c) => `${c.name}/${c.cluster}: ${c.detail}`).join('; ')}`;
      } catch (err) {
        round.error = `verify: ${(err as Error).message}`;
      }
      // The kubelet is back, under another PID (its supervisor waits half a second before it restarts it).
      let back = supervisedPid(pidFile, dir);
      for (let waited = 0; (back === undefined || back === killed) && waited < 10_000; waited += 200) {
        await sleep(200);
        back = supervisedPid(pidFile, dir);
      }
      if (back === undefined || back === killed) round.leftovers.push(`kwok of ${cluster} did not come back`);
      round.endedReady = !round.error;
      round.fullyCompensated = round.endedReady && !round.leftovers.length;
      result.rounds.push(round);
      report(round);
    }
  } finally {
    result.down = await finalDown(bench, spec, timeoutMs);
  }
  return result;
}
