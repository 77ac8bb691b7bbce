// Server ports for local components: outside the kernel's ephemeral range, and claimed among
// meshflow's processes between being chosen and being bound.
import fs from 'node:fs';
import path from 'node:path';
import { ephemeralPortRange, freePort, portClaimFile, reservePort } from '../src/util/net';

const claimFile = portClaimFile;

test('ports handed out lie outside the ephemeral range, are free, differ, and stale claims go', async () => {
  const [lo, hi] = ephemeralPortRange();
  // A claim left by a process long gone: removed by the first claim this process makes.
  const stale = claimFile(lo);
  fs.mkdirSync(path.dirname(stale), { recursive: true });
  fs.writeFileSync(stale, '1\n');
  const old = new Date(Date.now() - 3 * 60_000);
  fs.utimesSync(stale, old, old);
  const ports: number[] = [];
  for (let i = 0; i < 40; i++) ports.push(await freePort());
  for (const port of ports) expect(port >= lo && port <= hi).toBe(false);
  expect(new Set(ports).size).toBe(ports.length);
  // each one is claimed for this process
  for (const port of ports) expect(fs.readFileSync(claimFile(port), 'utf8').trim()).toBe(String(process.pid));
  expect(fs.existsSync(stale)).toBe(false);
});

test('a port another process claimed is not handed out until its claim is two minutes old', async () => {
  const port = await freePort();
  // The claim is a file, made exclusively: any meshflow process on the machine (another jest
  // worker, the CLI) is refused while it is fresh, as this one is.
  expect(reservePort(port)).toBe(false);
  const old = new Date(Date.now() - 3 * 60_000);
  fs.utimesSync(claimFile(port), old, old);
  expect(reservePort(port)).toBe(true);
  expect(reservePort(port)).toBe(false);
});
