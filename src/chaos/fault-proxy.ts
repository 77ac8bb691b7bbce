// A fault-injecting HTTPS proxy in front of a local API server, for the chaos harness and the
// tests: it presents the server's own certificate (valid for 127.0.0.1), forwards requests (with
// the admin client certificate when they carry no bearer token), and gives matching requests a
// fault instead: a 503 or 429, a reset connection, an answer that never comes, a slow answer, or
// a write that the API server carries out but whose answer is lost.
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { LocalCluster } from '../local/clusters';

export type FaultKind = '503' | '429' | 'reset' | 'hang' | 'slow' | 'lost-answer';

export interface Fault {
  kind: FaultKind;
  when: (req: http.IncomingMessage) => boolean;
  /** How many matching requests get the fault (Infinity: all). */
  times: number;
}

/** How long a 'slow' fault holds a request before forwarding it. */
const SLOW_MS = 3000;

export class FaultProxy {
  faults: Fault[] = [];
  readonly injected: string[] = [];
  forwarded = 0;
  port = 0;
  private readonly hung = new Set<http.ServerResponse>();
  private readonly server: https.Server;
  private readonly ca: Buffer;
  private readonly admin: { cert: Buffer; key: Buffer };

  constructor(private readonly upstream: LocalCluster) {
    const pki = upstream.pki;
    this.ca = fs.readFileSync(pki.caCert);
    this.admin = { cert: fs.readFileSync(pki.adminCert), key: fs.readFileSync(pki.adminKey) };
    const tls = { cert: fs.readFileSync(pki.servingCert), key: fs.readFileSync(pki.servingKey) };
    this.server = https.createServer(tls, (req, res) => this.handle(req, res));
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const fault = this.faults.find((f) => f.times > 0 && f.when(req));
    if (fault) {
      fault.times--;
      this.injected.push(`${fault.kind} ${req.method} ${req.url}`);
      if (fault.kind === 'reset') {
        req.socket.destroy();
      } else if (fault.kind === 'hang') {
        this.hung.add(res);
      } else if (fault.kind === 'slow') {
        setTimeout(() => this.forward(req, res), SLOW_MS);
      } else if (fault.kind === 'lost-answer') {
        this.forward(req, res, true);
      } else {
        const code = Number(fault.kind);
        res.writeHead(code, { 'content-type': 'application/json', ...(code === 429 ? { 'retry-after': '1' } : {}) });
        const status = { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, message: `injected ${code}` };
        res.end(JSON.stringify(status));
      }
      return;
    }
    this.forward(req, res);
  }

  /** Forwards a request; with `loseAnswer`, the API server acts on it and the client gets a reset. */
  private forward(req: http.IncomingMessage, res: http.ServerResponse, loseAnswer = false) {
    this.forwarded++;
    const port = this.upstream.port;
    const up = https.request(
      {
        host: '127.0.0.1',
        port,
        method: req.method,
        path: req.url,
        ca: this.ca,
        headers: { ...req.headers, host: `127.0.0.1:${port}` },
        ...(req.headers.authorization ? {} : this.admin),
      },
      (ur) => {
        if (loseAnswer) {
          ur.resume();
          ur.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  }

  async stop(): Promise<void> {
    for (const res of this.hung) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
