// Kubernetes requests reuse their TLS connections: a server asking for a client certificate, as
// kube-apiserver does, counts the TLS handshakes it serves.
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { Kube } from '../src/adapters/kube';
import { PooledKubeConfig } from '../src/adapters/kube-config';
import { scratchDir } from './helpers/env';
import { makePki, type TestPki } from './helpers/tls-front';

let pki: TestPki;
let server: https.Server;
let handshakes = 0;
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
  server.on('secureConnection', () => handshakes++);
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

async function handshakesFor(kc: k8s.KubeConfig): Promise<number> {
  const before = handshakes;
  const kube = new Kube(kc);
  const version = kc.makeApiClient(k8s.VersionApi);
  for (let i = 0; i < 5; i++) {
    expect((await kube.requestJson<{ minor: string }>('GET', '/version')).minor).toBe('34');
    expect((await version.getCode()).gitVersion).toBe('v1.34.4');
  }
  return handshakes - before;
}

test('ten requests, raw and through the typed clients, share one TLS connection', async () => {
  expect(await handshakesFor(load(new PooledKubeConfig()))).toBe(1);
  // Another KubeConfig with the same credentials (another step, another Kube) reuses it too.
  expect(await handshakesFor(load(new PooledKubeConfig()))).toBe(0);
});

test("the library's own KubeConfig opens a connection per request (what PooledKubeConfig saves)", async () => {
  expect(await handshakesFor(load(new k8s.KubeConfig()))).toBe(10);
});
