// `meshflow serve`: the HTTP API in the foreground until SIGINT or SIGTERM. It finds Temporal as
// `up` and `status` do (local mode included: a local dev server and background worker are started
// when none runs), since the API starts meshes and asks them their status, which needs a worker.
import { assertServable, tokensFromEnv } from '../api/auth';
import { fileRootsFromEnv } from '../api/file-roots';
import { stderrLog } from '../api/observe';
import { limitsFromEnv } from '../api/quotas';
import { stateDir } from '../paths';
import { payloadCodec } from '../temporal/codec';
import { trustStoreFromEnv } from '../trust-store/from-env';
import { connectWithWorker } from './local-mode';

export async function serveCommand(opts: { port: string; host: string; insecureNoAuth?: boolean }): Promise<void> {
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`--port ${opts.port}: not a port number`);
  const tokens = tokensFromEnv();
  const codec = payloadCodec();
  const fileRoots = fileRootsFromEnv();
  const limits = limitsFromEnv();
  // The workers' store: files a spec names, and a root CA given as PEM, are copied into it at create.
  const trustStore = trustStoreFromEnv(stateDir());
  // Refused before anything starts: no Temporal, no worker for a server that would not run.
  assertServable(opts.host, tokens, opts.insecureNoAuth);
  const { client, target } = await connectWithWorker();
  // Loaded here: the other commands need neither the HTTP stack nor the OpenAPI extension of zod.
  const { startApi } = await import('../api/server.js');
  const api = await startApi({
    client,
    namespace: target.namespace,
    uiUrl: target.uiUrl,
    // The Web UI's origin, for the codec endpoint's CORS (default: MESHFLOW_UI_URL's or the local UI's).
    uiOrigin: process.env.MESHFLOW_UI_ORIGIN || undefined,
    codec,
    tokens,
    fileRoots,
    trustStore,
    limits,
    log: stderrLog,
    host: opts.host,
    port,
    insecureNoAuth: opts.insecureNoAuth,
  });
  process.stdout.write(`meshflow API on ${api.url} (OpenAPI at /openapi.json)\n`);
  if (codec) process.stdout.write(`payload codec for the Web UI at ${api.url}/codec\n`);
  if (!tokens.length) stderrLog({ level: 'warn', msg: 'serving without authentication (--insecure-no-auth)' });
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  stderrLog({ msg: 'shutting down', signal });
  await api.close();
  await client.connection.close();
}
