// PostgreSQL for the team deployment: the host's own build (Debian's `postgresql` package, or the
// folder MESHFLOW_POSTGRES_BIN_DIR names), running a cluster of meshflow's own (its own data
// directory and port), never the system's service. PostgreSQL refuses to run as root, so when
// meshflow runs as root the server runs as the package's `postgres` account, and its data directory
// lives where that account can reach it.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { Progress } from '../util/progress';

export interface Postgres {
  /** The folder of initdb, postgres, pg_isready. */
  binDir: string;
  /** The major version, e.g. "15". */
  major: string;
  /** When meshflow runs as root: the account the server runs as (the package's `postgres`). */
  runAs?: { user: string; uid: number; gid: number };
}

const DEBIAN_ROOT = '/usr/lib/postgresql';

function findBinDir(): string | undefined {
  const explicit = process.env.MESHFLOW_POSTGRES_BIN_DIR;
  if (explicit) return explicit;
  const majors = fs.existsSync(DEBIAN_ROOT)
    ? fs
        .readdirSync(DEBIAN_ROOT)
        .filter((d) => /^\d+$/.test(d) && fs.existsSync(path.join(DEBIAN_ROOT, d, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (majors.length) return path.join(DEBIAN_ROOT, majors[0], 'bin');
  const pgConfig = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  return pgConfig.status === 0 ? pgConfig.stdout.trim() : undefined;
}

const isRoot = () => process.getuid?.() === 0;

function account(user: string): { user: string; uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', user], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return undefined;
  return { user, uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/**
 * The host's PostgreSQL. When it is missing and this user may install packages (root with
 * apt-get), Debian's package is installed with apt's own progress; otherwise the error says how.
 */
export async function ensurePostgres(progress: Progress): Promise<Postgres> {
  let binDir = findBinDir();
  if (!binDir && isRoot() && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    progress("PostgreSQL is not installed: installing Debian's postgresql package (once; a minute or two)...");
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'postgresql']]) {
      const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
      if (r.status !== 0)
        throw new Error(`\`apt-get ${args.join(' ')}\` failed (exit ${r.status}): PostgreSQL could not be installed`);
    }
    binDir = findBinDir();
  }
  if (!binDir || !fs.existsSync(path.join(binDir, 'postgres'))) {
    throw new Error(
      binDir
        ? `MESHFLOW_POSTGRES_BIN_DIR=${binDir} holds no \`postgres\` program`
        : 'PostgreSQL is not installed: install it (Debian: `apt-get install postgresql`; 12 or newer), ' +
            'or set MESHFLOW_POSTGRES_BIN_DIR to the folder of its initdb and postgres',
    );
  }
  const version = await execa(path.join(binDir, 'postgres'), ['--version'], { reject: false });
  const major = /\(PostgreSQL\) (\d+)/.exec(version.stdout)?.[1];
  if (!major || Number(major) < 12) {
    throw new Error(
      `${binDir}/postgres is ${version.stdout.trim() || 'not runnable'}: Temporal needs PostgreSQL 12 or newer`,
    );
  }
  let runAs: Postgres['runAs'];
  if (isRoot()) {
    runAs = account(process.env.MESHFLOW_POSTGRES_USER || 'postgres');
    if (!runAs) {
      throw new Error(
        'PostgreSQL does not run as root, and there is no `postgres` account to run it as: ' +
          'run meshflow as another user, or set MESHFLOW_POSTGRES_USER to an account that may',
      );
    }
  }
  return { binDir, major, ...(runAs ? { runAs } : {}) };
}

/**
 * Where the cluster's data directory lives: in the team folder, or, when the server runs as another
 * account, in a folder of /var/lib/meshflow named by the team folder's digest (the team folder may
 * be under a home that account cannot enter).
 */
export function dataDirFor(pg: Postgres, teamDir: string): string {
  if (!pg.runAs) return path.join(teamDir, 'postgres');
  const digest = crypto.createHash('sha256').update(path.resolve(teamDir)).digest('hex').slice(0, 12);
  return path.join(process.env.MESHFLOW_POSTGRES_DATA_ROOT || '/var/lib/meshflow/team-postgres', digest);
}

/** The command line of one of PostgreSQL's programs, as the account it runs as. */
export function pgCommand(pg: Postgres, program: string, args: string[]): { file: string; args: string[] } {
  const file = path.join(pg.binDir, program);
  if (!pg.runAs) return { file, args };
  // setpriv execs the program (no process left between), so signals reach PostgreSQL itself.
  return {
    file: 'setpriv',
    args: [`--reuid=${pg.runAs.uid}`, `--regid=${pg.runAs.gid}`, '--init-groups', '--', file, ...args],
  };
}

/**
 * A new cluster: initdb with the superuser and password the compose file gives PostgreSQL
 * (POSTGRES_USER, POSTGRES_PASSWORD), password authentication on TCP, UTF-8. Does nothing when
 * the data directory holds a cluster already.
 */
export async function initCluster(pg: Postgres, dataDir: string, user: string, password: string): Promise<boolean> {
  if (fs.existsSync(path.join(dataDir, 'PG_VERSION'))) return false;
  // The folders above it must let the server's account through (755); the cluster's own is 700.
  fs.mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  fs.mkdirSync(dataDir, { mode: 0o700 });
  const pwfile = path.join(path.dirname(dataDir), `.pw-${process.pid}`);
  fs.writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  try {
    if (pg.runAs) {
      fs.chownSync(dataDir, pg.runAs.uid, pg.runAs.gid);
      fs.chownSync(pwfile, pg.runAs.uid, pg.runAs.gid);
    }
    const cmd = pgCommand(pg, 'initdb', [
      '-D',
      dataDir,
      '-U',
      user,
      `--pwfile=${pwfile}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C',
    ]);
    const r = await execa(cmd.file, cmd.args, { reject: false, all: true });
    if (r.exitCode !== 0) {
      fs.rmSync(dataDir, { recursive: true, force: true });
      throw new Error(`initdb failed (exit ${r.exitCode}):\n${(r.all ?? '').split('\n').slice(-15).join('\n')}`);
    }
  } finally {
    fs.rmSync(pwfile, { force: true });
  }
  return true;
}

/** The server's arguments: TCP on 127.0.0.1 only, no Unix socket (no shared socket folder needed). */
export function serverArgs(dataDir: string, port: number): string[] {
  return ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='];
}

/** Whether the server accepts connections (pg_isready, as the compose file's health check asks). */
export async function isReady(pg: Postgres, port: number, user: string): Promise<boolean> {
  const r = await execa(path.join(pg.binDir, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-U', user], {
    reject: false,
    timeout: 10_000,
  });
  return r.exitCode === 0;
}

/** The settings the bench names: what PostgreSQL was started with that matters for Temporal's latency. */
export async function describeSettings(pg: Postgres, dataDir: string): Promise<string> {
  const conf = fs.existsSync(path.join(dataDir, 'postgresql.conf'))
    ? fs.readFileSync(path.join(dataDir, 'postgresql.conf'), 'utf8')
    : '';
  const set = (key: string, fallback: string) =>
    new RegExp(`^\\s*${key}\\s*=\\s*([^#\\n]+)`, 'm').exec(conf)?.[1].trim() ?? `${fallback} (default)`;
  return [
    `PostgreSQL ${pg.major}`,
    `shared_buffers ${set('shared_buffers', '128MB')}`,
    `synchronous_commit ${set('synchronous_commit', 'on')}`,
    `fsync ${set('fsync', 'on')}`,
    `max_connections ${set('max_connections', '100')}`,
  ].join(', ');
}
