// Serving the API on a port: refuses an unsafe setup before listening, and stops gracefully (no new
// connections, requests in flight finish, event streams end with reason "shutdown").
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { type ApiDeps, createApp } from './app';
import { assertServable } from './auth';

export interface ServeOptions extends ApiDeps {
  host: string;
  /** 0: any free port. */
  port: number;
  /** Serve without tokens; allowed on a loopback host only. */
  insecureNoAuth?: boolean;
  /** How long requests in flight get to finish on close before their connections are cut (default 10 s). */
  drainMs?: number;
}

export interface RunningApi {
  url: string;
  port: number;
  /** Stops accepting, lets requests in flight finish, ends event streams. Does not close the Temporal client. */
  close(): Promise<void>;
}

export async function startApi(opts: ServeOptions): Promise<RunningApi> {
  assertServable(opts.host, opts.tokens, opts.insecureNoAuth);
  const { app, shutdown } = createApp(opts);
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: opts.host, port: opts.port }, () => resolve(s as Server));
    s.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.host.includes(':') && !opts.host.startsWith('[') ? `[${opts.host}]` : opts.host;
  let closing: Promise<void> | undefined;
  const close = () => {
    if (!closing) {
      closing = new Promise<void>((resolve) => server.close(() => resolve()));
      shutdown();
      // Keep-alive connections go as soon as they are idle; any still busy after the grace time are cut.
      const idle = setInterval(() => server.closeIdleConnections(), 100);
      const cut = setTimeout(() => server.closeAllConnections(), opts.drainMs ?? 10_000);
      void closing.finally(() => {
        clearInterval(idle);
        clearTimeout(cut);
      });
    }
    return closing;
  };
  return { url: `http://${host}:${port}`, port, close };
}
