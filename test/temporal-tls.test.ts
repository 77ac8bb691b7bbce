// Connecting to a user's Temporal with TLS, mTLS or an API key (src/temporal/connection-options.ts):
// the settings as the environment gives them, and the real thing: a dev server behind a TLS
// terminator that requires a client certificate, where `meshflow worker` (compiled CLI) and a
// client run a workflow; the wrong CA refused with a clear message; an API key seen arriving as
// `authorization: Bearer` by an HTTP/2 proxy in front of the dev server.
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection } from '@temporalio/worker';
import { execa, type ResultPromise } from 'execa';
import { connectTo } from '../src/temporal/connection';
import { connectionOptions, describeConnection } from '../src/temporal/connection-options';
import { freePort } from '../src/util/net';
import { TASK_QUEUE } from '../src/workflows/definitions';
import { scratchDir } from './helpers/env';
import { devServer } from './helpers/temporal';
import { type Front, makePki, recordingProxy, type TestPki, tlsFront } from './helpers/tls-front';

const cli = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');

describe('connectionOptions', () => {
  let dir: string;
  beforeAll(() => {
    dir = scratchDir('tls-options');
    fs.writeFileSync(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    fs.writeFileSync(path.join(dir, 'not-pem.key'), 'S3CRET-KEY-MATERIAL');
  });
  const options = (env: Record<string, string>) => connectionOptions('temporal.example:7233', env);

  test('plain gRPC when nothing asks for TLS', () => {
    expect(options({})).toEqual({ address: 'temporal.example:7233' });
  });

  test('an API key implies TLS (system CAs) unless TEMPORAL_TLS=false; it never shows in the description', () => {
    const withKey = options({ TEMPORAL_API_KEY: 'k-123' });
    expect(withKey).toEqual({ address: 'temporal.example:7233', tls: {}, apiKey: 'k-123' });
    expect(describeConnection(withKey)).toBe('temporal.example:7233 (TLS, system CAs, API key)');
    expect(options({ TEMPORAL_API_KEY: 'k-123', TEMPORAL_TLS: 'false' })).toEqual({
      address: 'temporal.example:7233',
      apiKey: 'k-123',
    });
  });

  test('a CA file and a server name set TLS up with them', () => {
    const o = options({
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: path.join(dir, 'ca.pem'),
      TEMPORAL_TLS_SERVER_NAME: 'x.test',
    });
    expect(o.tls?.serverNameOverride).toBe('x.test');
    expect(o.tls?.serverRootCACertificate?.toString()).toContain('BEGIN CERTIFICATE');
  });

  const files: Record<string, string> = { CA: 'ca.pem', NOTPEM: 'not-pem.key' };
  test.each([
    [
      { TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/nonexistent/ca.pem' },
      /_CA_CERT_PATH=\/nonexistent\/ca.pem: cannot read the file \(ENOENT\)/,
    ],
    [
      { TEMPORAL_TLS_CLIENT_CERT_PATH: 'CA' },
      /_CLIENT_CERT_PATH \(or _DATA\) is set without TEMPORAL_TLS_CLIENT_KEY_PATH/,
    ],
    [
      { TEMPORAL_TLS_CLIENT_KEY_PATH: 'NOTPEM', TEMPORAL_TLS_CLIENT_CERT_PATH: 'CA' },
      /_KEY_PATH=.*key: does not hold a PEM/,
    ],
    [{ TEMPORAL_TLS: 'yes' }, /TEMPORAL_TLS=yes: say true or false/],
    [{ TEMPORAL_TLS: 'false', TEMPORAL_TLS_SERVER_NAME: 'x' }, /TEMPORAL_TLS=false, yet TLS settings/],
    [
      { TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true' },
      /always verifies the server name; set TEMPORAL_TLS_SERVER_NAME/,
    ],
    [{ TEMPORAL_PROFILE: 'prod' }, /TEMPORAL_PROFILE is set: meshflow reads the TEMPORAL_\* variables only/],
  ])('refuses %j, naming the variable', (given, message) => {
    const env = Object.fromEntries(Object.entries(given).map(([k, v]) => [k, files[v] ? path.join(dir, files[v]) : v]));
    let error: Error | undefined;
    try {
      options(env);
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).toMatch(message);
    expect(error?.message).not.toContain('S3CRET');
  });
});

test('no dev server is started for `meshflow worker`, nor for a local address with an API key', async () => {
  const state = scratchDir('no-dev-server');
  const local = `127.0.0.1:${await freePort()}`; // nothing listens there
  const run = (args: string[], extra: Record<string, string>) =>
    execa(process.execPath, [cli, ...args], {
      env: { ...process.env, MESHFLOW_STATE_DIR: state, MESHFLOW_LOCAL_TEMPORAL_ADDRESS: local, ...extra },
      reject: false,
    });
  const worker = await run(['worker'], {});
  expect(worker.exitCode).toBe(1);
  expect(worker.stderr).toContain(`no Temporal server answers at ${local} (plain gRPC, no TLS)`);
  const list = await run(['list'], { TEMPORAL_API_KEY: 'k' });
  expect(list.exitCode).toBe(1);
  expect(list.stderr).toContain(`meshflow: no Temporal server answers at ${local} (TLS, system CAs, API key)`);
  expect(list.stderr).not.toContain('starting the local dev server');
  expect(fs.existsSync(path.join(state, 'temporal'))).toBe(false);
  // A bad payload key is refused before the local mode starts anything.
  const badKey = await run(['list'], { MESHFLOW_PAYLOAD_KEYS: 'k1:not*base64!' });
  expect(badKey.exitCode).toBe(1);
  expect(badKey.stderr).toContain('MESHFLOW_PAYLOAD_KEYS: entry 1 (key id k1): the key is not base64');
  expect(badKey.stderr).not.toContain('starting the local dev server');
  expect(fs.existsSync(path.join(state, 'temporal'))).toBe(false);
});

describe('against a dev server behind TLS', () => {
  let env: TestWorkflowEnvironment;
  let pki: TestPki;
  let otherCa: TestPki;
  const fronts: Front[] = [];
  const children: ResultPromise[] = [];
  beforeAll(async () => {
    env = await devServer();
    pki = await makePki(scratchDir('pki'));
    otherCa = await makePki(scratchDir('pki-other'), 'another CA');
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.allSettled(children);
    for (const f of fronts) await f.close();
    await env?.teardown();
  });
  const front = async (mtls: boolean) => {
    const f = await tlsFront(pki, env.address, mtls);
    fronts.push(f);
    return f;
  };
  const mtlsEnv = (address: string, ca = pki.ca) => ({
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca,
    TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
    TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
  });

  test('mTLS: `meshflow worker` and a client run a workflow; SIGTERM stops the worker gracefully', async () => {
    const f = await front(true);
    const settings = mtlsEnv(f.address);
    const worker = execa(process.execPath, [cli, 'worker', '--shutdown-grace', '5s'], {
      env: { ...settings, MESHFLOW_STATE_DIR: scratchDir('tls-worker'), MESHFLOW_HOST_ID: 'tls-host' },
      reject: false,
      all: true,
    });
    children.push(worker);
    let log = '';
    worker.all!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const deadline = Date.now() + 90_000;
    while (!log.includes('polling task queues') && Date.now() < deadline && worker.exitCode === null) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(log).toMatch(
      new RegExp(
        `meshflow worker: connected to ${f.address} \\(TLS with a client certificate \\(mTLS\\), server CA from ` +
          'TEMPORAL_TLS_SERVER_CA_CERT\\), namespace default; polling task queues meshflow and meshflow@tls-host',
      ),
    );

    const connection = await connectTo(connectionOptions(f.address, settings));
    try {
      const client = new Client({ connection, namespace: 'default' });
      const result = await client.workflow.execute('sweepMeshes', {
        taskQueue: TASK_QUEUE,
        workflowId: 'sweep-over-mtls',
        args: [{ keptLimitMs: 86_400_000 }],
      });
      expect(result).toMatchObject({ tornDown: [] });
    } finally {
      await connection.close();
    }

    worker.kill('SIGTERM');
    const r = await worker;
    expect(r.exitCode).toBe(0);
    expect(log).toContain('meshflow worker: SIGTERM: stopping; running activities get 5s to finish');
    expect(log).toContain('meshflow worker: stopped');
  });

  test('a server certificate from another CA is refused by client, CLI and worker, with where and why', async () => {
    const f = await front(true);
    const settings = mtlsEnv(f.address, otherCa.ca);
    const err = await connectTo(connectionOptions(f.address, settings), 3000).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(
      new RegExp(`^no Temporal server answers at ${f.address} \\(TLS with a client`),
    );
    // The SDK only says it did not connect in time; the TLS handshake says why.
    expect((err as Error).message).toMatch(/Failed to connect before the deadline; TLS: self-signed certificate/);

    const state = scratchDir('tls-wrong-ca');
    const list = await execa(process.execPath, [cli, 'list'], {
      env: { ...process.env, ...settings, MESHFLOW_STATE_DIR: state },
      reject: false,
    });
    expect(list.exitCode).toBe(1);
    expect(list.stderr).toContain(`meshflow: no Temporal server answers at ${f.address} (TLS with a client`);
    expect(fs.existsSync(path.join(state, 'temporal'))).toBe(false); // no dev server was started

    const worker = await execa(process.execPath, [cli, 'worker'], {
      env: { ...process.env, ...settings, MESHFLOW_STATE_DIR: state },
      reject: false,
    });
    expect(worker.exitCode).toBe(1);
    expect(worker.stderr).toContain(`no Temporal server answers at ${f.address} (TLS with a client`);
    expect(worker.stderr).toMatch(/InvalidCertificate\(UnknownIssuer\).*; TLS: self-signed certificate/);
  });

  test('without a client certificate, a server that requires one refuses the connection', async () => {
    const f = await front(true);
    const options = connectionOptions(f.address, { TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca });
    await expect(connectTo(options, 3000)).rejects.toThrow(
      /no Temporal server answers at .* \(TLS, server CA.*; TLS: .*certificate/,
    );
  });

  test('TEMPORAL_TLS_SERVER_NAME checks the certificate against that name', async () => {
    const f = await front(false);
    const ok = connectionOptions(f.address, {
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca,
      TEMPORAL_TLS_SERVER_NAME: 'temporal.test',
    });
    await (await connectTo(ok)).close();
    const wrong = connectionOptions(f.address, {
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca,
      TEMPORAL_TLS_SERVER_NAME: 'elsewhere.test',
    });
    await expect(connectTo(wrong, 3000)).rejects.toThrow(
      /server name elsewhere.test\): .*; TLS: Hostname\/IP does not match/,
    );
  });

  test('an API key arrives as `authorization: Bearer <key>` from client and worker connections', async () => {
    const proxy = await recordingProxy(pki, env.address);
    fronts.push(proxy);
    const options = connectionOptions(proxy.address, {
      TEMPORAL_API_KEY: 'test-api-key-42',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca,
    });
    const connection = await connectTo(options);
    await connection.workflowService.describeNamespace({ namespace: 'default' });
    await connection.close();
    const native = await NativeConnection.connect(options);
    await native.close();
    const calls = proxy.seen.map((h) => ({ path: h[':path'], agent: String(h['user-agent']), auth: h.authorization }));
    expect(calls).toContainEqual({
      path: '/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace',
      agent: expect.stringMatching(/grpc-node-js/),
      auth: 'Bearer test-api-key-42',
    });
    expect(calls.filter((c) => !/grpc-node-js/.test(c.agent))).toContainEqual({
      path: '/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo',
      agent: expect.anything(),
      auth: 'Bearer test-api-key-42',
    });
    expect(calls.every((c) => c.auth === 'Bearer test-api-key-42')).toBe(true);
  });
});
