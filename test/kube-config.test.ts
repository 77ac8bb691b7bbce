// Kubernetes requests resume their TLS sessions: a server asking for a client certificate, as
// kube-apiserver does, counts the connections it serves and how many of them made a full handshake.
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { Kube } from '../src/adapters/kube';
import { SharedTlsKubeConfig } from '../src/util/kube-config';
import { scratchDir } from './helpers/env';
import { makePki, type TestPki } from './helpers/tls-front';

let pki: TestPki;
let server: https.Server;
let connections = 0;
let full = 0;
let port = 0;

beforeAll(async () => {
  pki = await makePki(scratchDir('kube-config'));
  server = https.createServer(
    {
      cert: fs.readFileSync(pki.serverCert),
      key: fs.readFileSync(pki.serverKey),
      ca: fs.readFileSync(pki.ca),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ major: '1', minor: '34', gitVersion: 'v1.34.4', platform: 'linux/amd64' }));
    },
  );
  server.on('secureConnection', (socket) => {
    connections++;
    if (!socket.isSessionReused()) full++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function load(kc: k8s.KubeConfig): k8s.KubeConfig {
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caFile: pki.ca, skipTLSVerify: false }],
    users: [{ name: 'u', certFile: pki.clientCert, keyFile: pki.clientKey }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return kc;
}

/** Ten requests, raw and through the typed clients: how many connections, and how many full handshakes. */
async function tenRequests(kc: k8s.KubeConfig): Promise<{ connections: number; full: number }> {
  const before = { connections, full };
  const kube = new Kube(kc);
  const version = kc.makeApiClient(k8s.VersionApi);
  for (let i = 0; i < 5; i++) {
    expect((await kube.requestJson<{ minor: string }>('GET', '/version')).minor).toBe('34');
    expect((await version.getCode()).gitVersion).toBe('v1.34.4');
  }
  return { connections: connections - before.connections, full: full - before.full };
}

test('ten requests make ten connections, of which one full TLS handshake; the others resume its session', async () => {
  expect(await tenRequests(load(new SharedTlsKubeConfig()))).toEqual({ connections: 10, full: 1 });
  // Another KubeConfig with the same credentials (another step, another Kube) resumes it too.
  expect(await tenRequests(load(new SharedTlsKubeConfig()))).toEqual({ connections: 10, full: 0 });
  // No connection is kept open between requests.
  const openConnections = () =>
    new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  for (let i = 0; i < 20 && (await openConnections()) > 0; i++) await new Promise((r) => setTimeout(r, 100));
  expect(await openConnections()).toBe(0);
});

test("the library's own KubeConfig makes a full handshake per request (what SharedTlsKubeConfig saves)", async () => {
  expect(await tenRequests(load(new k8s.KubeConfig()))).toEqual({ connections: 10, full: 10 });
});
