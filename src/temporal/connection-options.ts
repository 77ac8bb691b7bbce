// How meshflow reaches a user's Temporal securely: TLS (the server's CA, a client certificate for
// mTLS, the server name) and an API key (Temporal Cloud), read from the environment variables the
// Temporal CLI reads, so one set of settings serves `temporal` and meshflow alike. Client and
// worker connections both take what connectionOptions() returns.
//
// Not @temporalio/envconfig 1.24.0, which reads the same variables: it drops a client certificate
// given without its key without a word, ignores TEMPORAL_TLS_DISABLE_HOST_VERIFICATION, and a file
// it cannot read fails with the path alone, not the variable that named it.
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';

export interface TemporalConnectionOptions {
  address: string;
  /** undefined: plain gRPC. */
  tls?: TLSConfig;
  /** Sent as `authorization: Bearer <key>` on every call; never logged. */
  apiKey?: string;
}

type Env = Record<string, string | undefined>;

/** A TLS setting's value: the file its _PATH variable names, or its _DATA variable (PEM text). */
function pem(env: Env, base: string, what: string, secret = false): Buffer | undefined {
  const [pathVar, dataVar] = [`${base}_PATH`, `${base}_DATA`];
  if (env[pathVar] && env[dataVar]) throw new Error(`${pathVar} and ${dataVar} are both set: keep one`);
  let value: Buffer;
  let source: string;
  if (env[pathVar]) {
    source = `${pathVar}=${env[pathVar]}`;
    try {
      value = fs.readFileSync(env[pathVar]);
    } catch (err) {
      throw new Error(`${source}: cannot read the file (${(err as NodeJS.ErrnoException).code}); fix the path`);
    }
  } else if (env[dataVar]) {
    source = dataVar;
    value = Buffer.from(env[dataVar]);
  } else {
    return undefined;
  }
  // The message never quotes the content: a key file's is secret.
  if (!/-----BEGIN [A-Z0-9 ]+-----/.test(value.toString('latin1'))) {
    throw new Error(`${source}: does not hold a PEM ${what} (no -----BEGIN line)${secret ? '' : '; check the file'}`);
  }
  return value;
}

function flag(env: Env, name: string): boolean | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new Error(`${name}=${v}: say true or false`);
}

/**
 * The options to connect to Temporal at `address` with (Connection.connect for clients,
 * NativeConnection.connect for workers). TLS is on with TEMPORAL_TLS=true, with any TLS setting,
 * or with an API key (Temporal Cloud needs it), unless TEMPORAL_TLS=false. A bad setting throws an
 * error that names the variable; no error or log line carries a key.
 */
export function connectionOptions(address: string, env: Env = process.env): TemporalConnectionOptions {
  for (const unsupported of ['TEMPORAL_PROFILE', 'TEMPORAL_CONFIG_FILE']) {
    if (env[unsupported])
      throw new Error(
        `${unsupported} is set: meshflow reads the TEMPORAL_* variables only, not the CLI's TOML profiles; ` +
          'set TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the TLS or API key variables instead',
      );
  }
  if (flag(env, 'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION'))
    throw new Error(
      'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION=true: the TypeScript SDK always verifies the server name; ' +
        "set TEMPORAL_TLS_SERVER_NAME to a name in the server's certificate instead",
    );
  const ca = pem(env, 'TEMPORAL_TLS_SERVER_CA_CERT', 'certificate');
  const crt = pem(env, 'TEMPORAL_TLS_CLIENT_CERT', 'certificate');
  const key = pem(env, 'TEMPORAL_TLS_CLIENT_KEY', 'private key', true);
  if (!crt !== !key) {
    const [given, missing] = crt ? ['CERT', 'KEY'] : ['KEY', 'CERT'];
    throw new Error(
      `TEMPORAL_TLS_CLIENT_${given}_PATH (or _DATA) is set without TEMPORAL_TLS_CLIENT_${missing}_PATH: ` +
        'mTLS needs both the client certificate and its key',
    );
  }
  const serverName = env.TEMPORAL_TLS_SERVER_NAME || undefined;
  const apiKey = env.TEMPORAL_API_KEY || undefined;
  const settings = ca || crt || serverName;
  const tlsFlag = flag(env, 'TEMPORAL_TLS');
  if (tlsFlag === false && settings)
    throw new Error('TEMPORAL_TLS=false, yet TLS settings (TEMPORAL_TLS_*) are set: remove one or the other');
  if (!(tlsFlag ?? (settings || apiKey))) return { address, apiKey };
  const tls: TLSConfig = {
    ...(ca ? { serverRootCACertificate: ca } : {}),
    ...(crt && key ? { clientCertPair: { crt, key } } : {}),
    ...(serverName ? { serverNameOverride: serverName } : {}),
  };
  return { address, tls, apiKey };
}

/** Whether a connection carries TLS or a key: then it is never the local mode's dev server. */
export function isSecured(options: TemporalConnectionOptions): boolean {
  return options.tls !== undefined || options.apiKey !== undefined;
}

/** What a log line may say about the connection: the address and which kind of security, no secret. */
export function describeConnection(options: TemporalConnectionOptions): string {
  const parts: string[] = [];
  if (options.tls) {
    const { serverRootCACertificate: ca, clientCertPair: pair, serverNameOverride: name } = options.tls;
    parts.push(
      `TLS${pair ? ' with a client certificate (mTLS)' : ''}` +
        `${ca ? ', server CA from TEMPORAL_TLS_SERVER_CA_CERT' : ', system CAs'}${name ? `, server name ${name}` : ''}`,
    );
  }
  if (options.apiKey) parts.push('API key');
  return `${options.address} (${parts.length ? parts.join(', ') : 'plain gRPC, no TLS'})`;
}

/**
 * Why a TLS handshake with the server fails, as Node's TLS says it ("self-signed certificate in
 * certificate chain", "Hostname/IP does not match certificate's altnames"), or undefined when it
 * succeeds. The gRPC client only says it could not connect before its deadline; this says why.
 */
export async function tlsProblem(options: TemporalConnectionOptions, timeoutMs = 3000): Promise<string | undefined> {
  if (!options.tls) return undefined;
  const { serverRootCACertificate: ca, clientCertPair: pair, serverNameOverride } = options.tls;
  const [host, port] = [options.address.replace(/:\d+$/, ''), Number(options.address.split(':').pop())];
  const servername = serverNameOverride ?? (net.isIP(host) ? undefined : host);
  return new Promise((resolve) => {
    const buf = (b?: Uint8Array) => (b ? Buffer.from(b) : undefined);
    const socket = tls.connect({
      ...{ host, port, servername, ALPNProtocols: ['h2'] },
      ...{ ca: buf(ca), cert: buf(pair?.crt), key: buf(pair?.key) },
    });
    const done = (problem?: string) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => done(`no TLS handshake within ${timeoutMs / 1000}s`));
    // With TLS 1.3 the server refuses a missing client certificate only after the client's side of
    // the handshake is done: wait a moment for its alert.
    socket.once('secureConnect', () => setTimeout(() => done(), 500));
    socket.once('error', (err) => done(`TLS: ${err.message}`));
  });
}
