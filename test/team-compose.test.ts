// The compose stack and `meshflow team` cannot drift: the team deployment reads its settings from
// the compose files, loaded by the compose-spec loader (composecheck), and translates them by the
// rules of src/team/compose.ts. These tests read both sides and fail when a setting differs: ports,
// images against the pinned server and UI, namespace, database, the workers' and the API's flags;
// and they change the compose files to see the team deployment follow, or refuse.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { type ComposeProject, imageDrift, loadCompose, temporalInternalPorts, translate } from '../src/team/compose';
import { TEMPORAL_SERVER_NEXT_VERSION, TEMPORAL_SERVER_VERSION, TEMPORAL_UI_VERSION } from '../src/tools/specs';
import { scratchDir, tool } from './helpers/env';

const root = path.resolve(__dirname, '..');
const env = { PATH: process.env.PATH ?? '', POSTGRES_PASSWORD: 'not-a-secret' };
const teamDir = '/srv/meshflow-team';

/** A copy of the compose files beside their mounted scripts, docker-compose.yml changed by `edit`. */
function copyWith(label: string, edit: (doc: { services: Record<string, Record<string, unknown>> }) => void): string {
  const dir = scratchDir(label);
  fs.cpSync(path.join(root, 'deploy'), path.join(dir, 'deploy'), { recursive: true });
  const doc = parse(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true });
  edit(doc);
  fs.writeFileSync(path.join(dir, 'docker-compose.yml'), stringify(doc));
  return dir;
}

describe('the team deployment follows the compose files', () => {
  let project: ComposeProject;
  beforeAll(async () => {
    project = await loadCompose(tool('composecheck'), env);
  });
  const topology = () => translate(project, teamDir, { postgres: 15432 });
  const svc = (name: string) => topology().services.find((s) => s.service === name)!;

  test('runs every compose service, in compose order, as the pinned builds of the same images', () => {
    const t = topology();
    expect(t.services.map((s) => [s.service, s.role])).toEqual([
      ['postgres', 'postgres'],
      ['temporal-schema', 'schema'],
      ['temporal', 'temporal'],
      ['temporal-namespace', 'namespace'],
      ['temporal-ui', 'ui'],
      ['meshflow-worker', 'worker'],
      ['meshflow-worker-2', 'worker'],
      ['meshflow-api', 'api'],
    ]);
    // Each after what it depends on in the compose files.
    const order = t.services.map((s) => s.service);
    for (const s of t.services)
      for (const d of s.dependsOn) expect(order.indexOf(d)).toBeLessThan(order.indexOf(s.service));
    expect(imageDrift(t)).toEqual([]);
    expect(svc('temporal').version).toBe(TEMPORAL_SERVER_VERSION);
    expect(svc('temporal-schema').version).toBe(TEMPORAL_SERVER_VERSION);
    expect(svc('temporal-ui').version).toBe(TEMPORAL_UI_VERSION);
  });

  test("ports: compose's published ones, PostgreSQL's own, Temporal's internal ones beside its frontend", () => {
    const published = (name: string) => project.services[name].ports!.map((p) => Number(p.published));
    const t = topology();
    expect(t.temporalAddress).toBe(`127.0.0.1:${published('temporal')[0]}`);
    expect(t.uiPort).toBe(published('temporal-ui')[0]);
    expect(t.apiPort).toBe(published('meshflow-api')[0]);
    expect(svc('postgres').ports).toEqual([15432]);
    const temporal = svc('temporal');
    expect(temporal.env.FRONTEND_GRPC_PORT).toBe(String(published('temporal')[0]));
    expect(temporal.env.DB_PORT).toBe('15432');
    expect(temporal.env.VISIBILITY_DB_PORT).toBe('15432');
    for (const [k, v] of Object.entries(temporalInternalPorts(published('temporal')[0])))
      expect(temporal.env[k]).toBe(String(v));
    expect(svc('meshflow-api').args).toEqual(['serve', '--host', '127.0.0.1', '--port', String(t.apiPort)]);
  });

  test("the server's environment is the compose service's, with only the named one-machine differences", () => {
    const compose = project.services.temporal.environment as Record<string, string>;
    const team = svc('temporal').env;
    const oneMachine = ['FRONTEND_GRPC_PORT', 'VISIBILITY_DB_PORT', ...Object.keys(temporalInternalPorts(7233))];
    expect(Object.keys(team).sort()).toEqual([...new Set([...Object.keys(compose), ...oneMachine])].sort());
    const changed = Object.keys(compose).filter((k) => compose[k] !== team[k]);
    expect(Object.fromEntries(changed.map((k) => [k, team[k]]))).toEqual({
      BIND_ON_IP: '127.0.0.1',
      POSTGRES_SEEDS: '127.0.0.1',
      TEMPORAL_BROADCAST_ADDRESS: '127.0.0.1',
      DB_PORT: '15432',
      // The compose bind mount's file, on this machine.
      DYNAMIC_CONFIG_FILE_PATH: path.join(root, 'deploy', 'temporal', 'dynamicconfig', 'development-sql.yaml'),
    });
    expect(fs.existsSync(team.DYNAMIC_CONFIG_FILE_PATH)).toBe(true);
    // Database, user and password as compose gives them.
    expect([team.DB, team.POSTGRES_USER, team.POSTGRES_PWD]).toEqual(['postgres12', 'temporal', 'not-a-secret']);
  });

  test('namespace, one-shot scripts, workers and the API as compose runs them', () => {
    const t = topology();
    const ns = project.services['temporal-namespace'].environment!;
    expect(t.namespace).toBe(ns.TEMPORAL_NAMESPACE);
    expect(svc('temporal-namespace').env.TEMPORAL_RETENTION).toBe(ns.TEMPORAL_RETENTION);
    expect(svc('temporal-namespace').script).toBe(path.join(root, 'deploy', 'temporal', 'create-namespace.sh'));
    expect(svc('temporal-schema').script).toBe(path.join(root, 'deploy', 'temporal', 'setup-schema.sh'));
    for (const [name, volume] of [
      ['meshflow-worker', 'meshflow-worker-1'],
      ['meshflow-worker-2', 'meshflow-worker-2'],
    ]) {
      const w = svc(name);
      expect(w.args).toEqual(project.services[name].command);
      expect(w.env.MESHFLOW_HOST_ID).toBe(project.services[name].environment!.MESHFLOW_HOST_ID);
      expect(w.env.MESHFLOW_STATE_DIR).toBe(path.join(teamDir, 'volumes', volume));
      expect(w.env.TEMPORAL_ADDRESS).toBe(t.temporalAddress);
    }
    expect(svc('meshflow-api').env.MESHFLOW_API_TOKEN_FILE).toBe(path.join(teamDir, 'secrets', 'meshflow_api_tokens'));
    expect(svc('temporal-ui').env.TEMPORAL_ADDRESS).toBe(t.temporalAddress);
  });

  test('a changed compose file changes the team deployment: a server setting, a worker flag, a port', async () => {
    const dir = copyWith('compose-edit', (doc) => {
      (doc.services.temporal.environment as Record<string, string>).LOG_LEVEL = 'debug';
      doc.services['meshflow-worker'].command = ['worker', '--shutdown-grace', '90s'];
      doc.services['temporal-ui'].ports = ['18999:8080'];
    });
    const t = translate(await loadCompose(tool('composecheck'), env, dir), teamDir, { postgres: 15432 });
    const get = (n: string) => t.services.find((s) => s.service === n)!;
    expect(get('temporal').env.LOG_LEVEL).toBe('debug');
    expect(get('meshflow-worker').args).toEqual(['worker', '--shutdown-grace', '90s']);
    // The second worker extends the first: it follows too.
    expect(get('meshflow-worker-2').args).toEqual(['worker', '--shutdown-grace', '90s']);
    expect(t.uiPort).toBe(18999);
  });

  test('refuses what compose runs but it cannot: another server release, an unknown service, a high port', async () => {
    const newer = copyWith('compose-server', (doc) => {
      doc.services.temporal.image = 'temporalio/server:1.30.0';
    });
    const t = translate(await loadCompose(tool('composecheck'), env, newer), teamDir, { postgres: 15432 });
    expect(imageDrift(t)).toEqual([
      `temporal runs temporalio/server:1.30.0; the team deployment's pinned server is ${TEMPORAL_SERVER_VERSION}`,
    ]);
    const extra = copyWith('compose-extra', (doc) => {
      doc.services.redis = { image: 'redis:7.4' };
    });
    const high = copyWith('compose-port', (doc) => {
      doc.services.temporal.ports = ['33000:7233'];
    });
    const h = await loadCompose(tool('composecheck'), env, high);
    expect(() => translate(h, teamDir, { postgres: 15432 })).toThrow(
      "TEMPORAL_GRPC_PORT 33000: the server's ports go up to 33010, and Temporal keeps",
    );
    const p = await loadCompose(tool('composecheck'), env, extra);
    expect(() => translate(p, teamDir, { postgres: 15432 })).toThrow(
      'compose service redis (image redis:7.4) has no counterpart in the team deployment',
    );
  });

  test('`team up` refuses a server release it does not pin, before it starts or writes anything', async () => {
    const dir = path.join(scratchDir('team-refuse'), 'team');
    const r = await execa(
      process.execPath,
      [path.join(root, 'dist', 'cli', 'main.js'), 'team', 'up', '--server-version', '1.31.0'],
      {
        env: { ...process.env, MESHFLOW_TEAM_DIR: dir },
        reject: false,
      },
    );
    expect({ code: r.exitCode, err: r.stderr }).toEqual({
      code: 1,
      err:
        `meshflow: --server-version 1.31.0: meshflow pins Temporal server ${TEMPORAL_SERVER_VERSION} and ` +
        `${TEMPORAL_SERVER_NEXT_VERSION} (the release inside the pinned CLI, and the next minor one to upgrade to)`,
    });
    expect(fs.existsSync(dir)).toBe(false);
  });
});
