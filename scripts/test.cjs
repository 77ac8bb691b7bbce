#!/usr/bin/env node
// `npm test`, after the bootstrap: the whole suite on the runtime the bootstrap chose (Node 24, the
// primary), then the smoke set on every other supported line (Node 22), each fetched from the npm
// registry when the machine lacks it (./runtimes.cjs). Arguments (`npm test -- test/spec.test.ts`)
// go to Jest and run on the primary only. MESHFLOW_TEST_SMOKE=off skips the smoke runs.
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const runtimes = require('./runtimes.cjs');

const root = path.resolve(__dirname, '..');
const jest = path.join(root, 'node_modules', 'jest', 'bin', 'jest.js');
const say = (line) => process.stderr.write(`[meshflow] ${line}\n`);

/**
 * What the other runtimes run: the CLI (its commands, the JSON Schema and checks pages it prints,
 * local mode), a mesh end to end through the worker, the GitHub Action's scripts, and the HTTP API.
 */
const SMOKE = [
  'test/checks-registry.test.ts',
  'test/json-schema.test.ts',
  'test/local-mode.test.ts',
  'test/mesh-e2e-networks.test.ts',
  'test/github-action.test.ts',
  'test/api.test.ts',
];

function jestOn(node, args) {
  const r = spawnSync(node, [jest, ...args], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, PATH: runtimes.pathWith(node) },
  });
  return r.status ?? 1;
}

const args = process.argv.slice(2);
say(`the test suite on Node ${process.versions.node}${args.length ? ` (jest ${args.join(' ')})` : ''}`);
let status = jestOn(process.execPath, args);
if (!args.length && process.env.MESHFLOW_TEST_SMOKE !== 'off') {
  for (const runtime of runtimes.RUNTIMES.filter((r) => r.line !== runtimes.lineOf(process.versions.node))) {
    let node;
    try {
      node = runtimes.nodeOf(runtime, say);
    } catch (err) {
      say(err.message);
      status = status || 1;
      continue;
    }
    say(`the smoke set on Node ${runtime.version}: ${SMOKE.join(' ')}`);
    const smoke = jestOn(node, SMOKE);
    if (smoke !== 0) say(`the smoke set failed on Node ${runtime.version}`);
    status = status || smoke;
  }
}
process.exit(status);
