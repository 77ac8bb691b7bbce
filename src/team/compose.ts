// The team deployment's settings come from the compose files, loaded as Docker Compose loads them
// (the compose-spec loader, through the pinned composecheck tool: `.env`, the env example,
// interpolation, `extends`, merges). `translate` turns the compose project into processes on this
// machine, and every difference between the two is a rule written here, so the deployment cannot
// drift from the compose stack:
//   - a service's name (`postgres`, `temporal`) as a host is 127.0.0.1 here, and `0.0.0.0` binds 127.0.0.1;
//   - a published port is the same port here; an unpublished one (PostgreSQL's 5432, the server's
//     internal ports) is a port of the team's own (TeamPorts);
//   - a named volume is a folder `volumes/<name>` of the team folder; a bind mount is its host path,
//     and a container path under it (the dynamic config file) is that host file;
//   - a secret is a file `secrets/<name>` of the team folder, written by meshflow;
//   - an image is a pinned tool of the same version (temporalio/server:V is temporal-server V,
//     admin-tools:V temporal-sql-tool V and the Temporal CLI, ui:V temporal-ui-server V), the
//     host's PostgreSQL for postgres:*, and this checkout's `meshflow` for meshflow:*.
import path from 'node:path';
import { execa } from 'execa';
import { packageRoot } from '../paths';
import { TEMPORAL_SERVER_VERSION, TEMPORAL_UI_VERSION } from '../tools/specs';

export const COMPOSE_FILES = ['docker-compose.yml', path.join('deploy', 'compose.worker-2.yml')];
export const ENV_EXAMPLE = path.join('deploy', 'meshflow.env.example');

export interface ComposeService {
  image?: string;
  command?: string[] | null;
  entrypoint?: string[] | null;
  environment?: Record<string, string | null> | null;
  ports?: Array<{ target: number; published?: string }> | null;
  volumes?: Array<{ type: string; source: string; target: string }> | null;
  secrets?: Array<{ source: string; target?: string }> | null;
  depends_on?: Record<string, { condition: string }> | null;
}

export interface ComposeProject {
  services: Record<string, ComposeService>;
  secrets?: Record<string, { file?: string }>;
}

/**
 * Loads the compose files with the compose-spec loader; `env` is the shell environment it
 * interpolates from, `root` the folder of docker-compose.yml (this checkout's).
 */
export async function loadCompose(
  composecheck: string,
  env: Record<string, string>,
  root = packageRoot,
): Promise<ComposeProject> {
  const files = COMPOSE_FILES.map((f) => path.join(root, f));
  const r = await execa(composecheck, ['--env-file', path.join(root, ENV_EXAMPLE), ...files], {
    cwd: root,
    env,
    extendEnv: false,
    reject: false,
  });
  if (r.exitCode !== 0) throw new Error(`the compose files do not load: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as ComposeProject;
}

/** The ports of one machine that compose leaves inside containers. */
export interface TeamPorts {
  postgres: number;
}

/**
 * The server's internal ports, from the frontend's as Temporal's defaults are from 7233 (history
 * 7234, matching 7235, worker 7239, frontend HTTP 7243, membership 6933-6939).
 */
export function temporalInternalPorts(frontend: number): Record<string, number> {
  return {
    FRONTEND_HTTP_PORT: frontend + 10,
    HISTORY_GRPC_PORT: frontend + 1,
    MATCHING_GRPC_PORT: frontend + 2,
    WORKER_GRPC_PORT: frontend + 6,
    FRONTEND_MEMBERSHIP_PORT: frontend - 300,
    HISTORY_MEMBERSHIP_PORT: frontend - 299,
    MATCHING_MEMBERSHIP_PORT: frontend - 298,
    WORKER_MEMBERSHIP_PORT: frontend - 294,
  };
}

/** The highest port a Temporal service may have on SQL persistence: cluster_membership.rpc_port is a smallint. */
export const MAX_TEMPORAL_PORT = 32_767;

export type Role = 'postgres' | 'schema' | 'temporal' | 'namespace' | 'ui' | 'worker' | 'api';

export interface TeamService {
  /** The compose service's name. */
  service: string;
  role: Role;
  image: string;
  /** The image's version (its tag). */
  version: string;
  /** The environment compose gives the container, translated to this machine. */
  env: Record<string, string>;
  /** For meshflow services: the CLI arguments (the compose command, translated). */
  args: string[];
  /** For one-shots (schema, namespace): the script the container runs, on this machine. */
  script?: string;
  /** Ports this service listens on here (published ones keep their number). */
  ports: number[];
  /** Compose services this one waits for. */
  dependsOn: string[];
}

export interface TeamTopology {
  services: TeamService[];
  /** The Temporal frontend's address here. */
  temporalAddress: string;
  namespace: string;
  uiPort: number;
  apiPort: number;
  postgresUser: string;
  /** Named volumes, each a folder of the team folder. */
  volumes: string[];
  /** Secrets: name -> the container path services read it at. */
  secrets: Record<string, string>;
}

function roleOf(name: string, s: ComposeService): Role {
  const image = s.image ?? '';
  const repo = image.replace(/:[^:/]+$/, '');
  const scripts = (s.volumes ?? []).map((v) => path.basename(v.source));
  if (repo === 'postgres') return 'postgres';
  if (repo === 'temporalio/server') return 'temporal';
  if (repo === 'temporalio/ui') return 'ui';
  if (repo === 'temporalio/admin-tools' && scripts.includes('setup-schema.sh')) return 'schema';
  if (repo === 'temporalio/admin-tools' && scripts.includes('create-namespace.sh')) return 'namespace';
  if (repo === 'meshflow' && s.command?.[0] === 'worker') return 'worker';
  if (repo === 'meshflow' && s.command?.[0] === 'serve') return 'api';
  throw new Error(`compose service ${name} (image ${image || 'none'}) has no counterpart in the team deployment`);
}

const tagOf = (image: string) => /:([^:/]+)$/.exec(image)?.[1] ?? '';

const RANK: Role[] = ['postgres', 'schema', 'temporal', 'namespace', 'ui', 'worker', 'api'];

/**
 * The compose services in start order: each after those it depends on (compose's own order), and
 * where compose would start several at once, by role (the API last, once every worker polls).
 */
function startOrder(project: ComposeProject, roles: Record<string, Role>): string[] {
  const order: string[] = [];
  const visit = (name: string, seen: string[]) => {
    if (order.includes(name)) return;
    if (seen.includes(name))
      throw new Error(`compose services depend on each other in a circle: ${[...seen, name].join(' -> ')}`);
    for (const dep of Object.keys(project.services[name]?.depends_on ?? {})) visit(dep, [...seen, name]);
    order.push(name);
  };
  const names = Object.keys(project.services).sort();
  for (const name of names.sort((a, b) => RANK.indexOf(roles[a]) - RANK.indexOf(roles[b]))) visit(name, []);
  return order;
}

/**
 * The compose project as processes of one machine (see the rules at the top). `teamDir` holds the
 * volumes and secrets; `ports` the ports compose leaves inside containers.
 */
export function translate(project: ComposeProject, teamDir: string, ports: TeamPorts): TeamTopology {
  const services = project.services;
  const published = (name: string, target: number): number | undefined => {
    const p = services[name]?.ports?.find((x) => x.target === target);
    return p?.published ? Number(p.published) : undefined;
  };
  const roles = Object.fromEntries(Object.entries(services).map(([n, s]) => [n, roleOf(n, s)]));
  const named = (role: Role) => Object.keys(roles).filter((n) => roles[n] === role);
  const one = (role: Role) => {
    const names = named(role);
    if (names.length !== 1)
      throw new Error(`the compose files have ${names.length} ${role} services; the team deployment runs one`);
    return names[0];
  };
  const pgName = one('postgres');
  const temporalName = one('temporal');
  const frontend = published(temporalName, 7233);
  if (frontend === undefined) throw new Error(`compose service ${temporalName} publishes no port for 7233`);
  const highest = Math.max(frontend, ...Object.values(temporalInternalPorts(frontend)));
  if (highest > MAX_TEMPORAL_PORT) {
    throw new Error(
      `TEMPORAL_GRPC_PORT ${frontend}: the server's ports go up to ${highest}, and Temporal keeps its services' ` +
        `ports in a smallint column (cluster_membership), so none may pass ${MAX_TEMPORAL_PORT}: ` +
        `take a frontend port of at most ${MAX_TEMPORAL_PORT - 10}`,
    );
  }

  // host:port of a container port, as another service reaches it
  const hostPort = (name: string, target: number): number => {
    if (name === pgName && target === 5432) return ports.postgres;
    const p = published(name, target);
    if (p === undefined)
      throw new Error(`${name}:${target} is not published, and the team deployment has no port for it`);
    return p;
  };
  const volumeDirs: string[] = [];
  const secretTargets: Record<string, string> = {};
  const secretFile = (name: string) => path.join(teamDir, 'secrets', name);

  const translateValue = (owner: string, key: string, value: string): string => {
    if (value === '0.0.0.0') return '127.0.0.1';
    // A host name: a service's name in a variable that holds one (POSTGRES_SEEDS, TEMPORAL_BROADCAST_ADDRESS).
    if (services[value] && /(SEEDS|ADDRESS|HOST)$/.test(key)) return '127.0.0.1';
    const ref = /^([\w.-]+):(\d+)$/.exec(value);
    if (ref && services[ref[1]]) return `127.0.0.1:${hostPort(ref[1], Number(ref[2]))}`;
    // A container path: under a volume or bind mount of the owner, or a secret.
    for (const v of services[owner].volumes ?? []) {
      const abs = value.startsWith('/') ? value : path.posix.join(WORKDIR[roles[owner]] ?? '/', value);
      if (abs === v.target || abs.startsWith(v.target + '/')) {
        const base = v.type === 'volume' ? path.join(teamDir, 'volumes', v.source) : v.source;
        return path.join(base, path.posix.relative(v.target, abs));
      }
    }
    for (const s of services[owner].secrets ?? []) {
      const target = s.target?.startsWith('/') ? s.target : `/run/secrets/${s.target ?? s.source}`;
      if (value === target) return secretFile(s.source);
    }
    return value;
  };

  const translateEnv = (name: string): Record<string, string> =>
    Object.fromEntries(
      Object.entries(services[name].environment ?? {}).map(([k, v]) => [k, translateValue(name, k, v ?? '')]),
    );

  const result: TeamService[] = [];
  for (const name of startOrder(project, roles)) {
    const s = services[name];
    const role = roles[name];
    for (const v of s.volumes ?? []) if (v.type === 'volume') volumeDirs.push(v.source);
    for (const sec of s.secrets ?? []) {
      secretTargets[sec.source] = sec.target?.startsWith('/') ? sec.target : `/run/secrets/${sec.target ?? sec.source}`;
    }
    const env = translateEnv(name);
    const ports: number[] = [];
    let args: string[] = [];
    let script: string | undefined;
    if (role === 'postgres') ports.push(hostPort(name, 5432));
    if (role === 'temporal') {
      // What the image's template reads, on one machine: the database's port, and each service's ports.
      env.DB_PORT = String(hostPort(pgName, Number(env.DB_PORT ?? 5432)));
      // The template's visibility store reads VISIBILITY_DB_PORT, else POSTGRES_PORT, else 5432 (not DB_PORT).
      env.VISIBILITY_DB_PORT = env.DB_PORT;
      env.FRONTEND_GRPC_PORT = String(frontend);
      const internal = temporalInternalPorts(frontend);
      for (const [k, v] of Object.entries(internal)) env[k] = String(v);
      ports.push(frontend, ...Object.values(internal));
    }
    if (role === 'schema' || role === 'namespace') {
      const entry = s.entrypoint ?? [];
      const mounted = (s.volumes ?? []).find((v) => entry.includes(v.target));
      if (!mounted) throw new Error(`compose service ${name} runs no mounted script (entrypoint ${entry.join(' ')})`);
      script = mounted.source;
      if (role === 'schema') {
        // The database is the postgres service's; the script's defaults are the container's view.
        env.POSTGRES_HOST = '127.0.0.1';
        env.POSTGRES_PORT = String(ports.length ? ports[0] : hostPort(pgName, 5432));
      }
    }
    if (role === 'ui') {
      const p = hostPort(name, 8080);
      env.TEMPORAL_UI_PORT = String(p);
      ports.push(p);
    }
    if (role === 'worker' || role === 'api') {
      args = (s.command ?? []).map((a) => (a === '0.0.0.0' ? '127.0.0.1' : a));
      if (role === 'api') {
        const i = args.indexOf('--port');
        const target = i >= 0 ? Number(args[i + 1]) : 8080;
        const p = hostPort(name, target);
        if (i >= 0) args[i + 1] = String(p);
        ports.push(p);
      }
    }
    result.push({
      service: name,
      role,
      image: s.image ?? '',
      version: tagOf(s.image ?? ''),
      env,
      args,
      ...(script ? { script } : {}),
      ports,
      dependsOn: Object.keys(s.depends_on ?? {}),
    });
  }
  const ns = result.find((r) => r.role === 'namespace')?.env.TEMPORAL_NAMESPACE ?? 'default';
  const ui = result.find((r) => r.role === 'ui');
  const api = result.find((r) => r.role === 'api');
  return {
    services: result,
    temporalAddress: `127.0.0.1:${frontend}`,
    namespace: ns,
    uiPort: ui?.ports[0] ?? 0,
    apiPort: api?.ports[0] ?? 0,
    postgresUser: services[pgName].environment?.POSTGRES_USER ?? 'postgres',
    volumes: [...new Set(volumeDirs)],
    secrets: secretTargets,
  };
}

/** Working directories of the images, for relative paths in their environment. */
const WORKDIR: Partial<Record<Role, string>> = { temporal: '/etc/temporal' };

/**
 * Where the compose images and the pinned tools the team deployment runs in their place differ:
 * temporalio/server and admin-tools must be the pinned server's release, temporalio/ui the pinned UI.
 */
export function imageDrift(topology: TeamTopology): string[] {
  const want: Partial<Record<Role, string>> = {
    temporal: TEMPORAL_SERVER_VERSION,
    schema: TEMPORAL_SERVER_VERSION,
    namespace: TEMPORAL_SERVER_VERSION,
    ui: TEMPORAL_UI_VERSION,
  };
  return topology.services
    .filter((s) => want[s.role] !== undefined && s.version !== want[s.role])
    .map(
      (s) =>
        `${s.service} runs ${s.image}; the team deployment's pinned ${s.role === 'ui' ? 'UI' : 'server'} ` +
        `is ${want[s.role]}`,
    );
}
