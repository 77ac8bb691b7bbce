#!/usr/bin/env node
// `npx meshflow`: on a fresh clone (no npm dependencies or build yet), the bootstrap installs and
// builds first, with its progress, as `npm run meshflow` does; then the CLI runs.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const main = path.join(root, 'dist', 'cli', 'main.js');
if (!fs.existsSync(main) || !fs.existsSync(path.join(root, 'node_modules', '.package-lock.json'))) {
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'bootstrap.cjs')], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status || 1);
}
require(main);
