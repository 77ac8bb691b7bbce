// The team deployment: docker-compose.yml loaded by the compose-spec loader (as Docker Compose v2
// loads it, through the pinned composecheck tool) with deploy/meshflow.env.example, and the
// Dockerfile read instruction by instruction. No container engine runs here: these check what a
// user would check before `docker compose up`.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { PRIMARY } = require('../scripts/runtimes.cjs') as { PRIMARY: { line: number; version: string } };
import { scratchDir, tool } from './helpers/env';

const root = path.resolve(__dirname, '..');
const composeFile = path.join(root, 'docker-compose.yml');
const envExample = path.join(root, 'deploy', 'meshflow.env.example');

interface Service {
  image?: string;
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string | null>;
  secrets?: Array<{ source: string; target: string }>;
  command?: string[] | null;
  entrypoint?: string[] | null;
  stop_grace_period?: string;
}

/** Loads a compose file with the loader; its normalized project, or the loader's message. */
async function load(file: string, cwd = root) {
  const r = await execa(tool('composecheck'), ['--env-file', envExample, file], { cwd, reject: false });
  return {
    ok: r.exitCode === 0,
    stderr: r.stderr,
    services: r.exitCode === 0 ? (JSON.parse(r.stdout) as { services: Record<string, Service> }).services : {},
  };
}

type ComposeDoc = { services: Record<string, Record<string, unknown>> };

/** A copy of docker-compose.yml beside its mounted files, changed by `edit`. */
function brokenCopy(label: string, edit: (doc: ComposeDoc) => void): string {
  const dir = scratchDir(label);
  fs.cpSync(path.join(root, 'deploy'), path.join(dir, 'deploy'), { recursive: true });
  const doc = parse(fs.readFileSync(composeFile, 'utf8'), { merge: true }) as ComposeDoc;
  edit(doc);
  const file = path.join(dir, 'docker-compose.yml');
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}

describe('docker-compose.yml', () => {
  let services: Record<string, Service>;
  beforeAll(async () => {
    const r = await load(composeFile);
    expect(r.stderr).toBe('');
    expect(r.ok).toBe(true);
    services = r.services;
  });

  test('has the whole stack', () => {
    expect(Object.keys(services).sort()).toEqual([
      'meshflow-api',
      'meshflow-worker',
      'postgres',
      'temporal',
      'temporal-namespace',
      'temporal-schema',
      'temporal-ui',
    ]);
  });

  test('pins every image to a version tag', () => {
    for (const [name, s] of Object.entries(services)) {
      const image = s.image ?? '';
      const tag = /^[^@]+:([^:/@]+)$/.exec(image)?.[1];
      expect({ name, tag }).toEqual({ name, tag: expect.stringMatching(/^\d+\.\d+/) });
      expect(image).not.toMatch(/:latest\b/);
    }
    // Server and admin tools of the same release; the versions inside the pinned Temporal CLI.
    expect(services.temporal.image).toBe('temporalio/server:1.29.1');
    expect(services['temporal-schema'].image).toBe('temporalio/admin-tools:1.29.1');
    expect(services['temporal-ui'].image).toBe('temporalio/ui:2.42.1');
  });

  test('checks the health of every long-running service; one-shots are waited for by completion', () => {
    const oneShots = ['temporal-schema', 'temporal-namespace'];
    for (const [name, s] of Object.entries(services)) {
      const check = oneShots.includes(name) ? { disable: s.healthcheck?.disable } : { test: s.healthcheck?.test?.[0] };
      expect({ name, ...check }).toEqual({
        name,
        ...(oneShots.includes(name) ? { disable: true } : { test: expect.stringMatching(/^CMD/) }),
      });
    }
    expect(services.postgres.healthcheck!.test!.join(' ')).toContain('pg_isready');
    expect(services['meshflow-api'].healthcheck!.test!.join(' ')).toContain('/readyz');
    expect(services['temporal-ui'].healthcheck!.test!.join(' ')).toContain('http://127.0.0.1:8080/');
  });

  test('starts in order: postgres, schema, temporal, namespace, then UI and workers, then the API', () => {
    const deps = (name: string) =>
      Object.fromEntries(Object.entries(services[name].depends_on ?? {}).map(([k, v]) => [k, v.condition]));
    expect(deps('postgres')).toEqual({});
    expect(deps('temporal-schema')).toEqual({ postgres: 'service_healthy' });
    expect(deps('temporal')).toEqual({ 'temporal-schema': 'service_completed_successfully' });
    expect(deps('temporal-namespace')).toEqual({ temporal: 'service_healthy' });
    expect(deps('temporal-ui')).toEqual({ 'temporal-namespace': 'service_completed_successfully' });
    expect(deps('meshflow-worker')).toEqual({ 'temporal-namespace': 'service_completed_successfully' });
    expect(deps('meshflow-api')).toEqual({ 'meshflow-worker': 'service_healthy' });
  });

  test('points the UI at Temporal and at the codec base of meshflow serve', () => {
    expect(services['temporal-ui'].environment).toMatchObject({
      TEMPORAL_ADDRESS: 'temporal:7233',
      TEMPORAL_CODEC_ENDPOINT: 'http://localhost:8080/codec',
      TEMPORAL_CORS_ORIGINS: 'http://localhost:8233',
    });
  });

  test('gives meshflow services the Temporal address, and the API its tokens from a secret file', () => {
    for (const name of ['meshflow-worker', 'meshflow-api']) {
      expect(services[name].environment).toMatchObject({
        TEMPORAL_ADDRESS: 'temporal:7233',
        TEMPORAL_NAMESPACE: 'default',
      });
    }
    // A worker is a host (its meshes' keys are in its volume): it has a fixed identity across restarts.
    expect(services['meshflow-worker'].environment?.MESHFLOW_HOST_ID).toBe('compose-worker-1');
    // The image's CLI entrypoint runs `meshflow worker`; Compose waits past its grace period before killing.
    expect(services['meshflow-worker'].entrypoint).toBeNull();
    expect(services['meshflow-worker'].command).toEqual(['worker', '--shutdown-grace', '30s']);
    expect(services['meshflow-worker'].stop_grace_period).toBe('45s');
    expect(services['meshflow-api'].command).toEqual(['serve', '--host', '0.0.0.0', '--port', '8080']);
    const api = services['meshflow-api'];
    expect(api.secrets).toEqual([{ source: 'meshflow_api_tokens', target: '/run/secrets/meshflow_api_tokens' }]);
    expect(api.environment?.MESHFLOW_API_TOKEN_FILE).toBe('/run/secrets/meshflow_api_tokens');
  });

  test('holds no secret value itself: passwords come from .env, tokens from a secret file', () => {
    const text = fs.readFileSync(composeFile, 'utf8');
    const secretLike = /^\s*(\w*(PASSWORD|PWD|TOKEN|SECRET|API_KEY)\w*):\s*(.*)$/gm;
    const found = [...text.matchAll(secretLike)].map((m) => ({ key: m[1], value: m[3] }));
    expect(found.length).toBeGreaterThan(0);
    for (const { key, value } of found) {
      const ok =
        /^\$\{\w+(:[?-][^}]*)?\}$/.test(value) ||
        value.startsWith('/run/secrets/') ||
        /^["'](true|false)["']$/.test(value);
      expect({ key, value, ok }).toEqual({ key, value, ok: true });
    }
    expect(text).not.toMatch(/MESHFLOW_API_TOKEN:/);
  });

  test('refuses to start without a database password, and says where to set it', async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'POSTGRES_PASSWORD'));
    const r = await execa(tool('composecheck'), [composeFile], {
      cwd: scratchDir('compose-no-env'),
      env,
      extendEnv: false,
      reject: false,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('required variable POSTGRES_PASSWORD is missing a value: set POSTGRES_PASSWORD in .env');
  });

  test('adds a second worker with its own host identity and state volume', async () => {
    const r = await execa(
      tool('composecheck'),
      ['--env-file', envExample, composeFile, path.join(root, 'deploy', 'compose.worker-2.yml')],
      { cwd: root, reject: false },
    );
    expect(r.stderr).toBe('');
    const { services: all } = JSON.parse(r.stdout) as { services: Record<string, Service & { volumes: unknown }> };
    const [one, two] = [all['meshflow-worker'], all['meshflow-worker-2']];
    expect(two.command).toEqual(one.command);
    expect(two.depends_on).toEqual(one.depends_on);
    expect(two.environment).toEqual({ ...one.environment, MESHFLOW_HOST_ID: 'compose-worker-2' });
    expect(two.volumes).toEqual([
      expect.objectContaining({ source: 'meshflow-worker-2', target: '/var/lib/meshflow' }),
    ]);
    expect(one.volumes).toEqual([
      expect.objectContaining({ source: 'meshflow-worker-1', target: '/var/lib/meshflow' }),
    ]);
  });

  test('the loader rejects an unknown key, with its message', async () => {
    const file = brokenCopy('compose-unknown-key', (doc) => {
      doc.services.temporal.helthcheck = doc.services.temporal.healthcheck;
    });
    const r = await load(file, path.dirname(file));
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('validating');
    expect(r.stderr).toContain('services.temporal.helthcheck');
  });

  test('the loader rejects a depends_on on a service that does not exist, with its message', async () => {
    const file = brokenCopy('compose-bad-depends', (doc) => {
      doc.services['meshflow-api'].depends_on = { 'meshflow-wroker': { condition: 'service_healthy' } };
    });
    const r = await load(file, path.dirname(file));
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('service "meshflow-api" depends on undefined service "meshflow-wroker"');
  });
});

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions (comments dropped, continuation lines joined), each with its stage index. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  let stage = -1;
  const out: Instruction[] = [];
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const keyword = m[1].toUpperCase();
    if (keyword === 'FROM') stage += 1;
    out.push({ keyword, args: m[2].trim(), stage });
  }
  return out;
}

describe('Dockerfile', () => {
  const instructions = parseDockerfile(fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
  const froms = instructions.filter((i) => i.keyword === 'FROM');
  const last = froms.length - 1;
  const inStage = (stage: number, keyword: string) =>
    instructions.filter((i) => i.stage === stage && i.keyword === keyword).map((i) => i.args);

  test('is multi-stage, every base image pinned to a version tag', () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const { args } of froms) {
      const image = args.split(/\s+/)[0];
      expect(image).toMatch(/^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$/);
    }
    // The image runs the primary runtime, the build that `npm test` runs the whole suite on.
    expect(froms[last].args).toMatch(new RegExp(`^node:${PRIMARY.version.replaceAll('.', '\\.')}-\\S*slim\\b`));
    expect(froms.find((f) => /\bAS build$/i.test(f.args))?.args).toMatch(new RegExp(`^node:${PRIMARY.version}-`));
  });

  test('builds the app and the pinned tools in the build stage, with the cache inside the image', () => {
    const build = froms.findIndex((f) => /\bAS build$/i.test(f.args));
    expect(build).toBeGreaterThanOrEqual(0);
    const runs = inStage(build, 'RUN').join('\n');
    expect(runs).toContain('npm ci');
    expect(runs).toContain('npm run build');
    expect(runs).toContain('node dist/cli/main.js setup');
    expect(inStage(build, 'ENV').join(' ')).toContain('MESHFLOW_CACHE_DIR=/opt/meshflow/cache');
    const copies = inStage(last, 'COPY').join('\n');
    expect(copies).toContain('--from=build /opt/meshflow/cache/tools /opt/meshflow/cache/tools');
    expect(copies).toContain('--from=build /app/node_modules');
    expect(inStage(last, 'ENV').join(' ')).toContain('MESHFLOW_CACHE_DIR=/opt/meshflow/cache');
  });

  test('runs as a non-root user with the CLI as entrypoint', () => {
    const users = inStage(last, 'USER');
    expect(users.length).toBe(1);
    expect(users[0]).not.toMatch(/^(root|0)(:|$)/);
    expect(inStage(last, 'ENTRYPOINT')).toEqual(['["node", "dist/cli/main.js"]']);
    // Run without arguments, the image is a worker.
    expect(inStage(last, 'CMD')).toEqual(['["worker"]']);
  });

  test('sends no secrets, dependencies or build output into the build context', () => {
    const ignored = fs.readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['node_modules', 'dist', '.env', 'deploy/secrets', '.git']) expect(ignored).toContain(entry);
  });
});
