#!/usr/bin/env node
// Runs first in `npm test`, `npm run start-workflow` and the other npm scripts, on Node built-ins
// only: picks the runtime (./runtimes.cjs: the machine's Node when it is of a supported line, else
// the pinned Node 24 from the npm registry, and this script runs again on it), installs the npm
// dependencies when they are missing or older than package-lock.json, compiles the TypeScript
// sources (unless none changed since the last build), then runs the command it was given
// (`bootstrap.cjs dist/cli/main.js up ...`) on that runtime. Pinned external tools are built later,
// by the command that needs them, with their own progress output.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const runtimes = require('./runtimes.cjs');

const root = path.resolve(__dirname, '..');
const say = (line) => process.stderr.write(`[meshflow] ${line}\n`);

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** The newest change to what tsc compiles: the sources (files and folders), its config, the locked dependencies. */
function newestInput() {
  let newest = Math.max(mtime(path.join(root, 'tsconfig.json')), mtime(path.join(root, 'package-lock.json')));
  const walk = (dir) => {
    newest = Math.max(newest, mtime(dir));
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, mtime(p));
    }
  };
  walk(path.join(root, 'src'));
  return newest;
}

/**
 * Removes what tsc emitted for sources that are gone (tsc never does): a stale dist/gc.js, say,
 * would be loaded by require('../gc') ahead of the dist/gc/ that replaced it.
 */
function pruneStale() {
  const dist = path.join(root, 'dist');
  const walk = (dir) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.js(\.map)?$/.test(e.name)) {
        const source = path.join(root, 'src', path.relative(dist, p).replace(/\.js(\.map)?$/, '.ts'));
        if (!fs.existsSync(source)) fs.rmSync(p);
      }
    }
  };
  walk(dist);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    say(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.status}); fix the cause above and run the command again.`);
    process.exit(r.status || 1);
  }
}

/** Runs `node args` with stdio inherited and ends this process as it ends (its code, or its signal). */
function handOver(node, args, env = process.env) {
  const child = spawn(node, args, { stdio: 'inherit', env });
  // A terminal's Ctrl-C reaches the child too (one process group); a SIGTERM sent to this process is passed on.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
}

/** This Node is of no supported line: the pinned primary runs this script again, and then the command. */
function onPrimary() {
  let node;
  try {
    node = runtimes.nodeOf(runtimes.PRIMARY, say);
  } catch (err) {
    say(err.message);
    process.exit(1);
  }
  handOver(node, [__filename, ...process.argv.slice(2)], { ...process.env, PATH: runtimes.pathWith(node) });
}

function main() {
  const installed = path.join(root, 'node_modules', '.package-lock.json');
  if (mtime(installed) < mtime(path.join(root, 'package-lock.json'))) {
    // `npm install` honours package-lock.json as `npm ci` does; `npm ci` is not used because the npm
    // of this toolchain (11.x) writes lock files without other platforms' optional packages
    // (@swc/core-darwin-*, ...) and then refuses them as out of sync.
    say('installing npm dependencies (npm install, as locked)...');
    run('npm', ['install', '--no-audit', '--no-fund']);
  }

  // tsc's own no-op build still reads every declaration file it depends on (~9 s of CPU here): skip it
  // when nothing it compiles changed since the last build began (a file, or a folder's entries).
  const stamp = path.join(root, 'dist', '.build-stamp');
  if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js')) || mtime(stamp) < newestInput()) {
    const began = new Date();
    pruneStale();
    run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
    fs.writeFileSync(stamp, '');
    fs.utimesSync(stamp, began, began);
  }

  const [entry, ...args] = process.argv.slice(2);
  if (entry) handOver(process.execPath, [path.resolve(root, entry), ...args]);
}

if (runtimes.supported()) main();
else onPrimary();
