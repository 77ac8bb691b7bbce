// The HTTP API as a Hono app, built from what it needs (a Temporal client, the namespace, the Web
// UI's address, the tokens, a log): no globals, so tests build it against any Temporal they like.
// Requests pass, in order: the request log and metrics, CORS (the codec paths only), the token check,
// the path check, the body limit and the content type check; then the route's own validation (zod)
// and its handler.
import type { HttpBindings } from '@hono/node-server';
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { streamSSE } from 'hono/streaming';
import type { ZodError } from 'zod';
import { CHECKS, selectChecks } from '../checks/catalog';
import { listMeshes } from '../client';
import { specSchema as meshSpecSchema } from '../spec/schema';
import { type NamedToken, anonymous, bearerAuth, namedTokens, tokenName } from './auth';
import { CODEC_PATHS, addCodecRoutes, codecCors } from './codec';
import { ApiError, type Problem, innermostMessage, temporalUnavailable } from './errors';
import { followMesh } from './events';
import { addScheduleRoutes } from './schedules';
import { Meshes, parseSpec } from './meshes';
import { DEFAULT_LIMITS, type Limits, Quotas } from './quotas';
import { type Log, type Metrics, createMetrics, observe, stderrLog } from './observe';
import { JSON_TYPE, PUBLIC_PATHS, YAML_TYPES, routes } from './routes';
import { apiSpecSchema } from './schemas';
import type { TrustStore } from '../trust-store/store';

export interface ApiDeps {
  client: Client;
  namespace: string;
  /** The Temporal Web UI's base address, for links; none when unknown. */
  uiUrl?: string;
  /**
   * Bearer tokens, each with its name (a bare one is named `default`); none: every request is let in
   * (only `startApi` on a loopback host allows that) as `default`.
   */
  tokens: Array<string | NamedToken>;
  /** Directories under which specs may name files (MESHFLOW_API_FILE_ROOTS, realpath'd); none: no file at all. */
  fileRoots?: string[];
  /**
   * The trust store the workers use (MESHFLOW_TRUST_STORE): a create copies the files its spec names,
   * and a root CA given as PEM, into it. None: PEM is refused, files are read by the workers.
   */
  trustStore?: TrustStore;
  /** Per token: open meshes and event streams (default 10 and 20). */
  limits?: Partial<Limits>;
  log?: Log;
  /** How often an event stream polls the status query (default 250 ms). */
  pollMs?: number;
  /** The payload codec /codec/* applies (dataConverter's); none: encryption is off, payloads pass through. */
  codec?: PayloadCodec;
  /** The one origin /codec/* answers CORS for (default: uiUrl's origin). */
  uiOrigin?: string;
}

export const MAX_BODY_BYTES = 1024 * 1024;
const KEEPALIVE_MS = 15_000;

type App = OpenAPIHono<{ Bindings: HttpBindings }>;

export interface Api {
  app: App;
  /** Ends every event stream (an `end` event with reason "shutdown"); the server then drains. */
  shutdown(): void;
}

export function createApp(deps: ApiDeps): Api {
  const log = deps.log ?? stderrLog;
  const metrics = createMetrics();
  const app: App = new OpenAPIHono({
    defaultHook: (result) => {
      if (!result.success) throw invalid(result.target, result.error);
    },
  });
  app.use('*', observe(metrics, log));
  const uiOrigin = deps.uiOrigin ?? (deps.uiUrl && new URL(deps.uiUrl).origin);
  if (uiOrigin) app.use('/codec/*', codecCors(uiOrigin));
  const auth = deps.tokens.length ? bearerAuth(namedTokens(deps.tokens)) : anonymous;
  app.use('*', (c, next) => (PUBLIC_PATHS.has(c.req.path) ? next() : auth(c, next)));
  app.use('*', rejectPathTricks);
  const limit = bodyLimit({ maxSize: MAX_BODY_BYTES, onError: tooLarge });
  app.use('*', (c, next) => (CODEC_PATHS.includes(c.req.path) ? next() : limit(c, next)));
  app.use(routes.create.path, contentTypes(routes.create.method, [...YAML_TYPES, JSON_TYPE]));
  app.use(routes.extend.getRoutingPath(), contentTypes(routes.extend.method, [JSON_TYPE]));
  app.use(routes.apply.getRoutingPath(), contentTypes(routes.apply.method, [...YAML_TYPES, JSON_TYPE]));
  app.use(routes.planChange.getRoutingPath(), contentTypes(routes.planChange.method, [...YAML_TYPES, JSON_TYPE]));
  app.use(routes.upgrade.getRoutingPath(), contentTypes(routes.upgrade.method, [JSON_TYPE]));
  app.use(routes.upgradeDecision.getRoutingPath(), contentTypes(routes.upgradeDecision.method, [JSON_TYPE]));
  app.onError((err, c) => {
    const known =
      err instanceof ApiError ? err : err instanceof HTTPException ? fromHono(err) : temporalUnavailable(err);
    if (!known) log({ level: 'error', msg: 'request failed', method: c.req.method, error: String(err) });
    const answer = known ?? new ApiError(500, 'internal', `internal error: ${err.message}`);
    return c.json(answer.body(), answer.status, answer.headers);
  });
  app.notFound((c) => {
    const allow = allowedMethods(c.req.path);
    if (allow.length) {
      const err = new ApiError(
        405,
        'method_not_allowed',
        `${c.req.method} is not an operation of ${c.req.path}: it takes ${allow.join(', ')}`,
      );
      return c.json(err.body(), 405, { Allow: allow.join(', ') });
    }
    const err = new ApiError(404, 'no_route', `no route ${c.req.method} ${c.req.path}: see /openapi.json`);
    return c.json(err.body(), 404);
  });

  const streams = new Set<AbortController>();
  const fileRoots = deps.fileRoots ?? [];
  const quotas = new Quotas(deps.client, { ...DEFAULT_LIMITS, ...deps.limits });
  const meshes = new Meshes(deps.client, deps.namespace, quotas, deps.uiUrl, deps.trustStore, (mesh, report) => {
    for (const item of report.items) metrics.driftItems.inc({ mesh, kind: item.kind });
  });
  meshRoutes(app, meshes, quotas, fileRoots, streams, deps.pollMs);
  addScheduleRoutes(app, deps.client, fileRoots);
  addCodecRoutes(app, deps.codec);
  operationRoutes(app, deps, metrics, meshes);
  return {
    app,
    shutdown: () => {
      for (const s of streams) s.abort('shutdown');
    },
  };
}

function meshRoutes(
  app: App,
  meshes: Meshes,
  quotas: Quotas,
  fileRoots: string[],
  streams: Set<AbortController>,
  pollMs?: number,
): void {
  app.openapi(routes.create, async (c) => {
    const json = (c.req.header('content-type') ?? '').toLowerCase().startsWith(JSON_TYPE);
    const spec = parseSpec(await c.req.text(), json, fileRoots);
    const { started, replayed } = await meshes.start(spec, tokenName(c), c.req.valid('header')['idempotency-key']);
    if (replayed) c.header('Idempotent-Replayed', 'true');
    return c.json(started, 202);
  });
  const changeOf = async (c: Context) => {
    const text = await c.req.text();
    const json = (c.req.header('content-type') ?? '').toLowerCase().startsWith(JSON_TYPE);
    const replace = c.req.query('replace')?.split(',') ?? [];
    return { text, spec: parseSpec(text, json, fileRoots), replace };
  };
  app.openapi(routes.apply, async (c) => {
    const { name } = c.req.valid('param');
    const { text, spec, replace } = await changeOf(c);
    return c.json({ name, ...(await meshes.apply(name, spec, text, replace)) }, 200);
  });
  app.openapi(routes.planChange, async (c) => {
    const { name } = c.req.valid('param');
    const { text, spec, replace } = await changeOf(c);
    return c.json({ name, ...(await meshes.planChange(name, spec, text, replace)) }, 200);
  });
  app.openapi(routes.list, async (c) =>
    c.json({ meshes: await meshes.temporal(() => listMeshes(meshes.client)) }, 200),
  );
  app.openapi(routes.status, async (c) => c.json(await meshes.statusWithCreator(c.req.valid('param').name), 200));
  app.openapi(routes.extend, async (c) => {
    const { name } = c.req.valid('param');
    return c.json({ name, expiresAt: await meshes.extend(name, c.req.valid('json').by) }, 200);
  });
  app.openapi(routes.checks, (c) => c.json({ checks: [...CHECKS] }, 200));
  app.openapi(routes.verify, async (c) => {
    const { name } = c.req.valid('param');
    const { only } = c.req.valid('query');
    let codes: string[] | undefined;
    try {
      codes = only === undefined ? undefined : selectChecks([only]);
    } catch (err) {
      const reason = (err as Error).message;
      throw new ApiError(400, 'unknown_check', reason, [{ path: 'only', message: reason, text: `only: ${reason}` }]);
    }
    return c.json({ name, checks: await meshes.verify(name, codes) }, 200);
  });
  app.openapi(routes.drift, async (c) => {
    const { name } = c.req.valid('param');
    return c.json({ name, drift: await meshes.drift(name) }, 200);
  });
  app.openapi(routes.rotate, async (c) => {
    const { name } = c.req.valid('param');
    return c.json({ name, ...(await meshes.rotate(name, c.req.valid('json'))) }, 200);
  });
  app.openapi(routes.upgrade, async (c) => {
    const { name } = c.req.valid('param');
    const update = await meshes.upgrade(name, c.req.valid('json'));
    const status = `/v1/meshes/${name}`;
    return c.json({ name, update, status, events: `${status}/events` }, 202);
  });
  app.openapi(routes.upgradeDecision, async (c) => {
    const { name } = c.req.valid('param');
    return c.json({ name, message: await meshes.decideUpgrade(name, c.req.valid('json').decision) }, 200);
  });
  app.openapi(routes.teardown, async (c) => {
    const { name } = c.req.valid('param');
    const { abandonHost } = c.req.valid('query');
    const { phase, requested } = await meshes.teardown(name, { abandonHost: abandonHost === 'true' });
    return requested ? c.json({ name, phase }, 202) : c.json({ name, phase }, 200);
  });
  app.openapi(routes.events, async (c) => {
    const { name } = c.req.valid('param');
    const first = await meshes.status(name); // a 404 is an answer, not a stream
    const release = quotas.openStream(tokenName(c));
    return streamSSE(c, async (stream) => {
      const stop = new AbortController();
      streams.add(stop);
      stream.onAbort(() => stop.abort('disconnect'));
      // A comment now and then keeps proxies from closing a quiet stream (a ready mesh changes little).
      const keepalive = setInterval(() => void stream.write(': keep-alive\n\n'), KEEPALIVE_MS);
      try {
        await followMesh({
          first,
          poll: () => meshes.status(name),
          send: (event, data) => stream.writeSSE({ event, data: JSON.stringify(data) }),
          untilReady: c.req.valid('query').until === 'ready',
          signal: stop.signal,
          intervalMs: pollMs,
        });
      } finally {
        clearInterval(keepalive);
        streams.delete(stop);
        release();
      }
    });
  });
}

function operationRoutes(app: App, { client, namespace }: ApiDeps, metrics: Metrics, meshes: Meshes): void {
  app.openapi(routes.healthz, (c) => c.json({ status: 'ok' as const }, 200));
  app.openapi(routes.readyz, async (c) => {
    try {
      await client.connection.withDeadline(Date.now() + 2000, () =>
        client.workflowService.describeNamespace({ namespace }),
      );
    } catch (err) {
      const reason = err instanceof Error ? innermostMessage(err) : String(err);
      throw new ApiError(503, 'temporal_unavailable', `Temporal does not answer for namespace ${namespace}: ${reason}`);
    }
    return c.json({ status: 'ready' as const, namespace }, 200);
  });
  app.openapi(routes.metrics, async (c) => {
    await readExpiry(meshes, metrics);
    return c.text(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType });
  });

  // The spec as a client writes it (defaults optional), made by zod itself: the spec's schema is built
  // before zod has the OpenAPI extension (every command loads it), so it cannot be registered as is.
  // It is the one specs are checked with: with the providers MESHFLOW_PROVIDERS loaded.
  const specSchema = apiSpecSchema(
    z.toJSONSchema(meshSpecSchema(), { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as Record<
      string,
      unknown
    >,
  );
  type SchemaObject = Parameters<typeof app.openAPIRegistry.registerComponent<'schemas'>>[2];
  app.openAPIRegistry.registerComponent('schemas', 'MeshSpec', specSchema as SchemaObject);
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  const info = {
    title: 'meshflow',
    version: '1',
    description:
      'Multi-cluster Istio meshes as Temporal workflows. A method a path does not declare answers 405 with Allow.',
  };
  app.openapi(routes.openapi, (c) =>
    c.json(app.getOpenAPIDocument({ openapi: '3.0.3', info, security: [{ bearer: [] }] }), 200),
  );
}

function tooLarge(): never {
  throw new ApiError(413, 'body_too_large', `the body is over ${MAX_BODY_BYTES} bytes (1 MiB), the most taken`);
}

/** Hono's own refusals (a JSON body that does not parse, a media type the validator does not take). */
function fromHono(err: HTTPException): ApiError {
  const code = err.status === 415 ? 'unsupported_media_type' : 'invalid_request';
  return new ApiError(err.status as ContentfulStatusCode, code, err.message);
}

/** A request that failed validation: 400 with each problem by field. */
function invalid(target: string, error: ZodError): ApiError {
  const problems: Problem[] = error.issues.map((issue) => {
    const unknown = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const path = [...issue.path, ...unknown.slice(0, 1)].map(String).join('.') || '(body)';
    const message = unknown.length
      ? `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}`
      : issue.message;
    return { path, message, text: `${path}: ${message}` };
  });
  const where = { param: 'path', query: 'query', header: 'headers', json: 'body' }[target] ?? target;
  return new ApiError(400, 'invalid_request', `invalid ${where}: ${problems.map((p) => p.text).join('; ')}`, problems);
}

/** Every route's path as a pattern, with its methods: what a 405 names in `Allow`. */
const ROUTE_METHODS = (() => {
  const byPath = new Map<string, Set<string>>();
  for (const r of Object.values(routes)) {
    const methods = byPath.get(r.path) ?? new Set<string>();
    methods.add(r.method.toUpperCase());
    if (r.method === 'get') methods.add('HEAD');
    byPath.set(r.path, methods);
  }
  return [...byPath].map(([p, methods]) => ({
    pattern: new RegExp(`^${p.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`),
    allow: [...methods].sort(),
  }));
})();

function allowedMethods(path: string): string[] {
  return ROUTE_METHODS.find((r) => r.pattern.test(path))?.allow ?? [];
}

/** 415 unless the body is one of `types` (parameters such as charset are fine). */
function contentTypes(method: string, types: string[]): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method.toLowerCase() === method) {
      const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
      if (!types.includes(type)) {
        const got = type ? `"${type}"` : 'missing';
        throw new ApiError(415, 'unsupported_media_type', `Content-Type ${got}: this takes ${types.join(', ')}`);
      }
    }
    await next();
  };
}

/**
 * Rejects paths that would change meaning when normalised: dot segments (`/v1/meshes/..`, which
 * URL parsing folds away before routing), encoded slashes and backslashes. Read from the raw
 * request line, before any parsing.
 */
async function rejectPathTricks(c: Context<{ Bindings: HttpBindings }>, next: () => Promise<void>): Promise<void> {
  const raw = (c.env?.incoming?.url ?? new URL(c.req.url).pathname).split('?')[0];
  if (/(^|\/)(\.|%2e){1,2}(\/|$)/i.test(raw) || /%2f|%5c|\\/i.test(raw)) {
    throw new ApiError(
      400,
      'invalid_path',
      `the path ${JSON.stringify(raw)} holds a dot segment or an encoded slash: mesh names are DNS labels`,
    );
  }
  await next();
}

/**
 * Sets the expiry gauge from the status of every open mesh (at most 100, 5 s in all): a mesh whose
 * status does not answer in time keeps its last values; meshes no longer open lose theirs.
 */
async function readExpiry(meshes: Meshes, metrics: Metrics): Promise<void> {
  const deadline = AbortSignal.timeout(5000);
  let open: string[];
  try {
    open = (await meshes.temporal(() => listMeshes(meshes.client), 5000)).map((m) => m.name).slice(0, 100);
  } catch {
    return; // Temporal does not answer: the gauges stay as they were, /readyz says why
  }
  const fresh = new Map<string, Array<{ kind: string; name: string; at: string | undefined }>>();
  await Promise.all(
    open.map(async (mesh) => {
      const s = await Promise.race([
        meshes.status(mesh).catch(() => undefined),
        new Promise<undefined>((resolve) => deadline.addEventListener('abort', () => resolve(undefined))),
      ]);
      if (!s?.trust) return;
      const t = s.trust;
      fresh.set(mesh, [
        { kind: 'root', name: 'root', at: t.root?.notAfter },
        ...t.intermediates.map((i) => ({ kind: 'intermediate', name: i.cluster, at: i.notAfter })),
        ...t.readers.map((r) => ({ kind: 'reader-token', name: `${r.source}->${r.target}`, at: r.expiresAt })),
      ]);
    }),
  );
  const current = (await metrics.expiry.get()).values;
  for (const v of current) {
    const mesh = String(v.labels.mesh);
    if (!open.includes(mesh) || fresh.has(mesh)) metrics.expiry.remove(v.labels);
  }
  for (const [mesh, items] of fresh)
    for (const i of items) if (i.at) metrics.expiry.set({ mesh, kind: i.kind, name: i.name }, Date.parse(i.at) / 1000);
}
