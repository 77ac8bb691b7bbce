// A worker's host identity: written into its state directory the first time and read from there,
// so a re-created container (a new hostname) that keeps its volume still serves the meshes its
// host claimed; MESHFLOW_HOST_ID, when set, wins.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostId } from '../src/activities/host';
import { scratchDir } from './helpers/env';

const saved = process.env.MESHFLOW_HOST_ID;
afterEach(() => {
  if (saved === undefined) delete process.env.MESHFLOW_HOST_ID;
  else process.env.MESHFLOW_HOST_ID = saved;
});

test('the host id is written once into the state directory and read from there after', () => {
  delete process.env.MESHFLOW_HOST_ID;
  const state = path.join(scratchDir('host-id'), 'state');
  const first = hostId(state);
  expect(first).toMatch(new RegExp(`^${os.hostname()}-[0-9a-f]{8}$`));
  expect(fs.readFileSync(path.join(state, 'host-id'), 'utf8')).toBe(`${first}\n`);
  expect(hostId(state)).toBe(first);
  // The id a container wrote under its own hostname stays that container's after it is re-created.
  fs.writeFileSync(path.join(state, 'host-id'), 'worker-7f9c-0a1b2c3d\n');
  expect(hostId(state)).toBe('worker-7f9c-0a1b2c3d');
  process.env.MESHFLOW_HOST_ID = 'compose-worker-1';
  expect(hostId(state)).toBe('compose-worker-1');
});
