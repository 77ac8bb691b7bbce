// The team deployment, run for real: `meshflow team up` starts PostgreSQL (the host's), the schema
// set up by temporal-sql-tool, the Temporal server 1.29.1 on it with SQL visibility, the namespace,
// the Web UI, two `meshflow worker` processes and `meshflow serve`, each from the compose files'
// settings. Meshes are created through the API and broken on purpose as a platform team would want
// proven: a worker SIGKILLed mid-provisioning, the server restarted mid-run, PostgreSQL restarted
// while a mesh waits on its TTL, the server upgraded to the next minor release; then `down`.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { call } from './helpers/api-http';
import { scratchDir, until } from './helpers/env';
import { canConnect, sleep } from '../src/util/net';
import { TEMPORAL_SERVER_NEXT_VERSION, TEMPORAL_SERVER_VERSION } from '../src/tools/specs';
import { freeTeamEnv } from '../src/team/deployment';
import { teamMeshSpec } from '../src/chaos/team-faults';

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');

jest.setTimeout(30 * 60_000);

interface Status {
  record?: { address: string; apiUrl: string; serverVersion: string; postgresData: string; apiTokenFile: string };
  services: Array<{ service: string; role: string; pid?: number; state: string; ports: number[] }>;
}

describe('meshflow team: the compose stack on this machine', () => {
  const dir = scratchDir('team');
  let env: NodeJS.ProcessEnv;
  let apiPort = 0;
  let token = '';
  let pgData = '';
  const team = (...args: string[]) =>
    execa(process.execPath, [cli, 'team', ...args], { env, reject: false, all: true });
  const status = async (): Promise<Status> => JSON.parse((await team('status', '--json')).stdout) as Status;
  const pidOf = async (service: string) => (await status()).services.find((s) => s.service === service)?.pid;
  const api = (method: string, p: string, body?: string) =>
    call(apiPort, method, p, { token, ...(body ? { body, type: 'application/yaml' } : {}) });
  const phaseOf = async (mesh: string) => (await api('GET', `/v1/meshes/${mesh}`)).json?.phase as string | undefined;
  /** Polls the API every second (a busy machine need not answer ten status queries a second). */
  const reach = async (mesh: string, phase: string, ms: number) => {
    const deadline = Date.now() + ms;
    let seen: string | undefined;
    while ((seen = await phaseOf(mesh)) !== phase) {
      if (Date.now() > deadline)
        throw new Error(`${mesh} did not reach ${phase} within ${ms / 1000} s (phase ${seen})`);
      await sleep(1000);
    }
  };

  beforeAll(async () => {
    env = { ...process.env, MESHFLOW_STATE_DIR: path.join(dir, 'cli'), ...(await freeTeamEnv(path.join(dir, 'team'))) };
    apiPort = Number(env.MESHFLOW_API_PORT);
    for (const k of Object.keys(env)) if (k.startsWith('TEMPORAL_') && !k.endsWith('_PORT')) delete env[k];
  });

  afterAll(async () => {
    // The net under the test: whatever it left, stopped and deleted (the database too).
    const purge = await team('down', '--force', '--purge');
    expect({ code: purge.exitCode, out: purge.all }).toEqual({ code: 0, out: expect.stringContaining('deleted: ') });
    expect(fs.existsSync(pgData)).toBe(false);
  });

  test('up; a TTL through a database restart and a server upgrade; a worker kill, a server restart; down', async () => {
    const up = await team('up');
    expect({ code: up.exitCode, out: up.all }).toEqual({ code: 0, out: expect.stringContaining('team deployment up') });
    const s = await status();
    expect(s.services.map((x) => [x.service, x.state])).toEqual([
      ['postgres', 'running'],
      ['temporal-schema', 'one-shot'],
      ['temporal', 'running'],
      ['temporal-namespace', 'one-shot'],
      ['temporal-ui', 'running'],
      ['meshflow-worker', 'running'],
      ['meshflow-worker-2', 'running'],
      ['meshflow-api', 'running'],
    ]);
    expect(s.record!.serverVersion).toBe(TEMPORAL_SERVER_VERSION);
    token = fs.readFileSync(s.record!.apiTokenFile, 'utf8').trim();
    pgData = s.record!.postgresData;
    expect(fs.existsSync(path.join(pgData, 'PG_VERSION'))).toBe(true);
    // A second `up` finds everything running and starts nothing again.
    const pids = s.services.map((x) => x.pid);
    expect((await team('up')).exitCode).toBe(0);
    expect((await status()).services.map((x) => x.pid)).toEqual(pids);

    // Mesh B waits on a 5-minute TTL (the shortest a spec takes) while the rest happens.
    expect((await api('POST', '/v1/meshes', teamMeshSpec('team-ttl', '5m'))).status).toBe(202);
    await reach('team-ttl', 'ready', 300_000);
    // The Web UI serves this server: its API (what the browser reads) lists the mesh's workflow.
    const ui = `http://127.0.0.1:${env.TEMPORAL_UI_PORT}/api/v1/namespaces/default/workflows`;
    const listed = (await (await fetch(`${ui}?query=${encodeURIComponent('WorkflowId="mesh/team-ttl"')}`)).json()) as {
      executions: Array<{ execution: { workflowId: string } }>;
    };
    expect(listed.executions.map((e) => e.execution.workflowId)).toEqual(['mesh/team-ttl']);
    const pg = await pidOf('postgres');
    const restartPg = await team('restart', 'postgres');
    expect({ code: restartPg.exitCode, out: restartPg.all }).toEqual({
      code: 0,
      out: expect.stringContaining('restarted'),
    });
    expect(await pidOf('postgres')).not.toBe(pg);

    // The server upgraded to the next minor release: its schema first, then the server itself.
    const upgrade = await team('up', '--server-version', TEMPORAL_SERVER_NEXT_VERSION);
    expect({ code: upgrade.exitCode, out: upgrade.all }).toEqual({
      code: 0,
      out: expect.stringContaining(`restarting on server ${TEMPORAL_SERVER_NEXT_VERSION}`),
    });
    expect((await status()).record!.serverVersion).toBe(TEMPORAL_SERVER_NEXT_VERSION);
    // The CLI against the upgraded server: the mesh is there, still waiting on its TTL.
    const list = await execa(process.execPath, [cli, 'list'], {
      env: { ...env, TEMPORAL_ADDRESS: s.record!.address },
      reject: false,
    });
    expect({ code: list.exitCode, out: list.stdout }).toEqual({
      code: 0,
      out: expect.stringMatching(/team-ttl\s+ready/),
    });

    // Mesh A: its host's worker SIGKILLed once a cluster exists, then the server restarted, mid-run.
    expect((await api('POST', '/v1/meshes', teamMeshSpec('team-kill', '2h'))).status).toBe(202);
    const host = await until(
      'team-kill to have a cluster',
      async () => {
        const m = (await api('GET', '/v1/meshes/team-kill')).json;
        const made = (m?.steps ?? []).some(
          (x: { kind: string; state: string }) => x.kind === 'create-cluster' && x.state === 'done',
        );
        if (!made || !m.host) await sleep(500);
        return made && m.host ? (m.host as string) : undefined;
      },
      300_000,
    );
    const service = host.endsWith('-2') ? 'meshflow-worker-2' : 'meshflow-worker';
    const victim = (await pidOf(service))!;
    process.kill(victim, 'SIGKILL');
    // The supervisor starts it again (compose's `restart: unless-stopped`), with the same host identity.
    await until(`${service} restarted`, async () => {
      const pid = await pidOf(service);
      return pid && pid !== victim ? pid : undefined;
    });
    expect(fs.readFileSync(path.join(env.MESHFLOW_TEAM_DIR!, 'run', `${service}.log`), 'utf8')).toContain(
      'killed by SIGKILL',
    );
    const restartServer = await team('restart', 'temporal');
    expect({ code: restartServer.exitCode, out: restartServer.all }).toEqual({
      code: 0,
      out: expect.stringContaining('restarted'),
    });
    await reach('team-kill', 'ready', 400_000);
    const ready = (await api('GET', '/v1/meshes/team-kill')).json;
    expect(ready.host).toBe(host);
    expect(ready.steps.every((x: { state: string }) => x.state === 'done')).toBe(true);
    // Its clusters run on its host, from that worker's volume.
    const volume = path.join(
      env.MESHFLOW_TEAM_DIR!,
      'volumes',
      service === 'meshflow-worker' ? 'meshflow-worker-1' : 'meshflow-worker-2',
    );
    const clusterProcesses = async () =>
      (await execa('ps', ['-eo', 'args'])).stdout
        .split('\n')
        .filter((l) => l.includes(volume) && l.includes('team-kill-'));
    expect((await clusterProcesses()).length).toBeGreaterThan(0);

    // Its teardown leaves nothing on its host.
    expect((await api('DELETE', '/v1/meshes/team-kill')).status).toBe(202);
    await reach('team-kill', 'deleted', 300_000);
    expect(await clusterProcesses()).toEqual([]);

    // Mesh B's TTL fires on the upgraded server, across the database restart.
    await reach('team-ttl', 'deleted', 420_000);

    const down = await team('down');
    expect({ code: down.exitCode, out: down.all }).toEqual({
      code: 0,
      out: expect.stringContaining('stopped: meshflow-api'),
    });
    const after = await status();
    expect(after.services.map((x) => x.state).filter((x) => x !== 'one-shot')).toEqual(Array(6).fill('stopped'));
    // Nothing of the deployment runs: no process names its folder, no port answers.
    const ps = await execa('ps', ['-eo', 'args'], { reject: false });
    const ours = [env.MESHFLOW_TEAM_DIR!, s.record!.postgresData];
    expect(ps.stdout.split('\n').filter((l) => ours.some((o) => l.includes(o)))).toEqual([]);
    for (const port of [apiPort, ...s.services.flatMap((x) => x.ports)])
      expect({ port, open: await canConnect(port) }).toEqual({ port, open: false });
  });
});
