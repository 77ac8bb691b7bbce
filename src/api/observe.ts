// What the API tells its operators: one JSON log line per request (method, route, status, ms, the
// token's name; never headers, bodies or the token itself) and Prometheus metrics (Node's defaults,
// requests and their durations by route, drift items by mesh and kind).
import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { TOKEN_NAME } from './auth';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Log = (entry: Record<string, unknown>) => void;

/** JSON lines on stderr, each with its time. */
export const stderrLog: Log = (entry) =>
  void process.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n');

export interface Metrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'method' | 'route' | 'status'>;
  /** Counted when the API first sees a drift report (a status read, an event stream's poll, POST .../drift). */
  driftItems: Counter<'mesh' | 'kind'>;
  /** Each open mesh's root, intermediates and reader tokens: when they expire (set as a scrape reads them). */
  expiry: Gauge<'mesh' | 'kind' | 'name'>;
}

/** A registry of its own per API, so several can run in one process (tests do). */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labelNames = ['method', 'route', 'status'] as const;
  return {
    registry,
    requests: new Counter({
      name: 'meshflow_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status',
      labelNames,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'meshflow_http_request_duration_seconds',
      help: 'Time to answer an HTTP request (to the start of the stream for server-sent events)',
      labelNames,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
      registers: [registry],
    }),
    driftItems: new Counter({
      name: 'meshflow_drift_items_total',
      help:
        "Objects drift checks found missing, changed, not the mesh's (foreign) or unreachable, by mesh and kind; " +
        'counted once per report, when this API first reads it',
      labelNames: ['mesh', 'kind'] as const,
      registers: [registry],
    }),
    expiry: new Gauge({
      name: 'meshflow_credential_expiry_timestamp_seconds',
      help:
        "When a mesh's credentials expire, read from each open mesh's status at scrape: kind root (name root), " +
        'intermediate (name: the cluster), reader-token (name: source->target)',
      labelNames: ['mesh', 'kind', 'name'] as const,
      registers: [registry],
    }),
  };
}

/** The route pattern that answered (`/v1/meshes/:name`), never the path: names stay out of labels. */
function routeOf(c: Context): string {
  const handler = [...matchedRoutes(c)].reverse().find((r) => r.method !== 'ALL');
  return handler?.path ?? 'unmatched';
}

export function observe(metrics: Metrics, log: Log): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const labels = { method: c.req.method, route: routeOf(c), status: String(c.res.status) };
      metrics.requests.inc(labels);
      metrics.duration.observe(labels, seconds);
      // The token's name (set by the token check; null when the request had no valid token), never the token.
      const token = (c.get(TOKEN_NAME) as string | undefined) ?? null;
      log({ msg: 'request', ...labels, status: c.res.status, ms: Math.round(seconds * 1000), token });
    }
  };
}
