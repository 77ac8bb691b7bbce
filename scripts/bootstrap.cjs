#!/usr/bin/env node
// Runs before `npm test`, `npm run start-workflow` and the other npm scripts, on Node built-ins
// only: installs the npm dependencies when they are missing or older than package-lock.json, then
// compiles the TypeScript sources (incrementally; a no-op when dist/ is current). Pinned external
// tools are built later, by the command that needs them, with their own progress output.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const say = (line) => process.stderr.write(`[meshflow] ${line}\n`);

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    say(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.status}); fix the cause above and run the command again.`);
    process.exit(r.status || 1);
  }
}

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  say(`Node ${process.versions.node} is too old: meshflow needs Node 20.19 or newer.`);
  process.exit(1);
}

const installed = path.join(root, 'node_modules', '.package-lock.json');
if (mtime(installed) < mtime(path.join(root, 'package-lock.json'))) {
  // `npm install` honours package-lock.json as `npm ci` does; `npm ci` is not used because the npm
  // of this toolchain (11.x) writes lock files without other platforms' optional packages
  // (@swc/core-darwin-*, ...) and then refuses them as out of sync.
  say('installing npm dependencies (npm install, as locked)...');
  run('npm', ['install', '--no-audit', '--no-fund']);
}

run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
