#!/usr/bin/env node
// `npx meshflow`: on a fresh clone (no npm dependencies or build yet), the bootstrap installs and
// builds first, with its progress, as `npm run meshflow` does; then the CLI runs (on the pinned
// Node 24 when this Node is of no supported line).
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const main = path.join(root, 'dist', 'cli', 'main.js');
const bootstrap = path.join(root, 'scripts', 'bootstrap.cjs');
if (!require(path.join(root, 'scripts', 'runtimes.cjs')).supported()) {
  // A Node of no supported line: the bootstrap runs the CLI on the pinned Node 24 (fetched once).
  const r = spawnSync(process.execPath, [bootstrap, main, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
if (!fs.existsSync(main) || !fs.existsSync(path.join(root, 'node_modules', '.package-lock.json'))) {
  const r = spawnSync(process.execPath, [bootstrap], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status || 1);
}
require(main);
