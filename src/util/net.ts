import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * The range the kernel draws local ports of outgoing connections from. A server port inside it
 * can be taken, between choosing it and binding it (or between restarts), by any client
 * connection on the machine: an istiod failed to start with EADDRINUSE that way. Linux says
 * where it is; elsewhere the IANA range (macOS's default) is assumed.
 */
export function ephemeralPortRange(): [number, number] {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi) && lo > 0 && hi >= lo) return [lo, hi];
  } catch {
    // not Linux
  }
  return [49152, 65535];
}

/** Where server ports are drawn from: 20000-65535 without the ephemeral range. */
function serverPortRanges(): Array<[number, number]> {
  const [lo, hi] = ephemeralPortRange();
  const ranges: Array<[number, number]> = [];
  if (lo > 20000) ranges.push([20000, lo - 1]);
  if (hi < 65535) ranges.push([Math.max(hi + 1, 20000), 65535]);
  return ranges.filter(([a, b]) => b - a >= 1000);
}

const handedOut = new Set<number>();

/** How long a port handed out by any meshflow process on this machine is not handed out again. */
const RESERVED_MS = 2 * 60_000;

/**
 * Claims a port for RESERVED_MS among the meshflow processes of this user (test workers, a worker
 * and the CLI): a port is chosen a few seconds before its server binds it, and another process
 * must not choose it meanwhile. A file per port in the temp directory, made exclusively; one older
 * than RESERVED_MS is stale and taken over. Unwritable directory: no claim, the bind probe remains.
 */
export function reservePort(port: number): boolean {
  const file = portClaimFile(port);
  const dir = path.dirname(file);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!swept) sweepClaims(dir);
    fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return true;
    try {
      if (Date.now() - fs.statSync(file).mtimeMs < RESERVED_MS) return false;
      fs.writeFileSync(file, `${process.pid}\n`);
      return true;
    } catch {
      return false;
    }
  }
}

/** Where a port's claim is kept: a file per port, in a directory of this user's in the temp directory. */
export function portClaimFile(port: number): string {
  return path.join(os.tmpdir(), `meshflow-ports-${process.getuid?.() ?? 'user'}`, String(port));
}

let swept = false;

/** Removes stale claims, once per process, so that the directory holds only the last minutes' ports. */
function sweepClaims(dir: string): void {
  swept = true;
  for (const name of fs.readdirSync(dir)) {
    try {
      if (Date.now() - fs.statSync(path.join(dir, name)).mtimeMs >= RESERVED_MS) fs.rmSync(path.join(dir, name));
    } catch {
      // claimed or removed by another process meanwhile
    }
  }
}

async function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function osPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A TCP port on 127.0.0.1 for a server to listen on: free a moment ago, outside the ephemeral
 * range (so no outgoing connection takes it meanwhile), and not handed out before by this process.
 */
export async function freePort(): Promise<number> {
  const ranges = serverPortRanges();
  const size = ranges.reduce((n, [a, b]) => n + b - a + 1, 0);
  for (let tries = 0; size > 0 && tries < 200; tries++) {
    let k = Math.floor(Math.random() * size);
    let port = 0;
    for (const [a, b] of ranges) {
      if (k <= b - a) {
        port = a + k;
        break;
      }
      k -= b - a + 1;
    }
    if (handedOut.has(port) || !reservePort(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  // The ephemeral range covers almost every port: let the kernel choose.
  const port = await osPort();
  handedOut.add(port);
  return port;
}

export async function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether a URL's API server is on this machine: a loopback address or localhost. */
export function isLoopbackUrl(url: string): boolean {
  return /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(new URL(url).hostname);
}
