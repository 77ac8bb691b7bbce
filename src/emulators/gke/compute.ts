// The emulator's Compute Engine REST API, the part meshflow uses: global firewall rules
// (insert, get, delete, list) and the global operations they start (get, wait, list), in GCE's
// JSON shapes and error format; plus /emulator/* to inject faults and look at the state by hand.
import type http from 'node:http';
import {
  type ApiCode,
  ApiError,
  checkProject,
  type EmulatorCore,
  parseCidr,
  randomHex,
  type StoredComputeOperation,
} from './model';

type Msg = Record<string, unknown>;

const COMPUTE = 'https://www.googleapis.com/compute/v1';
/** How long operations.wait holds on to a request before answering with the current state (GCE: 2 min). */
const WAIT_MS = 2_000;
const MAX_BODY = 1 << 20;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FIREWALL_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** GCE's HTTP status and error reason for each status the emulator answers with. */
const HTTP: Record<ApiCode, [number, string]> = {
  INVALID_ARGUMENT: [400, 'invalid'],
  NOT_FOUND: [404, 'notFound'],
  ALREADY_EXISTS: [409, 'alreadyExists'],
  FAILED_PRECONDITION: [412, 'conditionNotMet'],
  UNAUTHENTICATED: [401, 'authError'],
  PERMISSION_DENIED: [403, 'forbidden'],
  RESOURCE_EXHAUSTED: [429, 'rateLimitExceeded'],
  DEADLINE_EXCEEDED: [504, 'timeout'],
  UNAVAILABLE: [503, 'backendError'],
  UNIMPLEMENTED: [501, 'notImplemented'],
  INTERNAL: [500, 'backendError'],
};

/** What /emulator/* reads and changes. */
export interface EmulatorControls {
  fault(f: unknown): void;
  clusters(): unknown;
  calls(): unknown;
  firewalls(): unknown;
  /** Where the emulator keeps its state (meshflow runs emulated primaries' istiod against its local clusters). */
  info(): { stateDir: string };
}

export function computeHandler(
  core: EmulatorCore,
  controls: EmulatorControls,
  log: (line: string) => void,
): http.RequestListener {
  return (req, res) => {
    serve(core, controls, req, res).catch((err: unknown) => {
      if (!(err instanceof ApiError)) log(`${req.method} ${req.url} failed: ${(err as Error).stack ?? String(err)}`);
      const e = err instanceof ApiError ? err : new ApiError('INTERNAL', (err as Error).message);
      const [status, reason] = HTTP[e.code];
      const error: Msg = {
        code: status,
        message: e.message,
        errors: [{ message: e.message, domain: 'global', reason: e.reason ?? reason }],
      };
      if (e.code === 'UNAUTHENTICATED') error.status = 'UNAUTHENTICATED';
      send(res, status, { error });
    });
  };
}

function send(res: http.ServerResponse, status: number, body?: unknown): void {
  if (res.headersSent || res.destroyed) return;
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(body));
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ApiError('INVALID_ARGUMENT', 'Request body is too large.');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function serve(
  core: EmulatorCore,
  controls: EmulatorControls,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://emulator');
  if (url.pathname.startsWith('/emulator/')) return serveControls(controls, req, res, url.pathname);
  const m = /^\/compute\/v1\/projects\/([^/]+)\/global\/(firewalls|operations)(?:\/([^/]+))?(\/wait)?$/.exec(
    url.pathname,
  );
  if (!m) throw new ApiError('NOT_FOUND', `The requested URL ${url.pathname} was not found on this server.`);
  const [, project, collection, id, wait] = m;
  const verb = `${req.method} ${id ? 'one' : 'all'}${wait ? ' wait' : ''}`;
  const methods: Record<string, string> =
    collection === 'firewalls'
      ? {
          'POST all': 'firewalls.insert',
          'GET all': 'firewalls.list',
          'GET one': 'firewalls.get',
          'DELETE one': 'firewalls.delete',
        }
      : {
          'GET all': 'globalOperations.list',
          'GET one': 'globalOperations.get',
          'POST one wait': 'globalOperations.wait',
        };
  const method = methods[verb];
  if (!method)
    throw new ApiError('UNIMPLEMENTED', `${req.method} ${url.pathname} is not implemented by the GKE emulator.`);
  const body = await readBody(req);
  core.enter(method, req.headers.authorization, true);
  checkProject(project);
  const requestId = url.searchParams.get('requestId') ?? undefined;
  switch (method) {
    case 'firewalls.insert':
      return send(res, 200, insertFirewall(core, project, parseJson(body), requestId));
    case 'firewalls.delete':
      return send(res, 200, deleteFirewall(core, project, id, requestId));
    case 'firewalls.get':
      return send(res, 200, findFirewall(core, project, id).resource);
    case 'firewalls.list': {
      const match = listFilter(url.searchParams.get('filter') ?? '');
      const items = core.state.firewalls
        .filter((f) => f.project === project && match(f.resource))
        .map((f) => f.resource);
      return send(res, 200, {
        kind: 'compute#firewallList',
        id: `projects/${project}/global/firewalls`,
        items,
        selfLink: `${COMPUTE}/projects/${project}/global/firewalls`,
      });
    }
    case 'globalOperations.get':
      return send(res, 200, findOperation(core, project, id).op);
    case 'globalOperations.wait': {
      const op = findOperation(core, project, id);
      const deadline = Date.now() + WAIT_MS;
      while (op.op.status !== 'DONE' && Date.now() < deadline && !core.signal.aborted) await pause(50);
      return send(res, 200, op.op);
    }
    case 'globalOperations.list': {
      const items = core.state.computeOperations.filter((o) => o.project === project).map((o) => o.op);
      return send(res, 200, {
        kind: 'compute#operationList',
        id: `projects/${project}/global/operations`,
        items,
        selfLink: `${COMPUTE}/projects/${project}/global/operations`,
      });
    }
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

async function serveControls(
  controls: EmulatorControls,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  pathname: string,
): Promise<void> {
  const views: Record<string, () => unknown> = {
    '/emulator/clusters': () => controls.clusters(),
    '/emulator/calls': () => controls.calls(),
    '/emulator/firewalls': () => controls.firewalls(),
    '/emulator/info': () => controls.info(),
  };
  if (req.method === 'GET' && views[pathname]) return send(res, 200, views[pathname]());
  if (req.method === 'POST' && pathname === '/emulator/faults') {
    try {
      controls.fault(JSON.parse(await readBody(req)));
    } catch (err) {
      return send(res, 400, { error: (err as Error).message });
    }
    return send(res, 204);
  }
  send(res, 404, {
    error:
      `no ${req.method} ${pathname}: ` +
      'try GET /emulator/clusters, /emulator/calls, /emulator/firewalls, /emulator/info or POST /emulator/faults',
  });
}

function parseJson(body: string): Msg {
  try {
    const value = JSON.parse(body) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Msg;
  } catch {
    // answered below
  }
  throw new ApiError(
    'INVALID_ARGUMENT',
    'Invalid JSON payload received: the body must be a JSON object.',
    'parseError',
  );
}

const notFound = (what: string) => new ApiError('NOT_FOUND', `The resource '${what}' was not found`);

function findFirewall(core: EmulatorCore, project: string, name: string) {
  const f = core.state.firewalls.find((x) => x.project === project && x.name === name);
  if (!f) throw notFound(`projects/${project}/global/firewalls/${name}`);
  return f;
}

/** By name or by numeric id, as GCE finds them (the client's LRO wrapper carries the id as its `name`). */
function findOperation(core: EmulatorCore, project: string, name: string): StoredComputeOperation {
  const o = core.state.computeOperations.find((x) => x.project === project && (x.op.name === name || x.op.id === name));
  if (!o) throw notFound(`projects/${project}/global/operations/${name}`);
  return o;
}

/** The operation a requestId already started (GCE answers it again instead of acting twice). */
function seen(core: EmulatorCore, project: string, requestId: string | undefined): Msg | undefined {
  if (requestId === undefined) return undefined;
  if (!UUID.test(requestId) || /^[0-]+$/.test(requestId)) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `Invalid value for field 'requestId': '${requestId}'. The request id must be a valid UUID with the ` +
        'exception that zero UUID is not supported (00000000-0000-0000-0000-000000000000).',
    );
  }
  const name = core.state.requestIds[`${project}/${requestId}`];
  return name ? findOperation(core, project, name).op : undefined;
}

function insertFirewall(core: EmulatorCore, project: string, body: Msg, requestId: string | undefined): Msg {
  const again = seen(core, project, requestId);
  if (again) return again;
  const resource = firewallResource(project, body);
  const name = resource.name as string;
  const inserting = core.state.computeOperations.some(
    (o) => o.project === project && o.firewall === name && o.op.operationType === 'insert' && o.op.status !== 'DONE',
  );
  if (inserting || core.state.firewalls.some((f) => f.project === project && f.name === name)) {
    throw new ApiError('ALREADY_EXISTS', `The resource 'projects/${project}/global/firewalls/${name}' already exists`);
  }
  const op = start(core, project, 'insert', resource, requestId);
  if (core.takeFault('firewalls.insert', 'lose-answer')) {
    throw new ApiError('UNAVAILABLE', 'The service is currently unavailable.');
  }
  return op;
}

function deleteFirewall(core: EmulatorCore, project: string, name: string, requestId: string | undefined): Msg {
  const again = seen(core, project, requestId);
  if (again) return again;
  const f = findFirewall(core, project, name);
  const deleting = core.state.computeOperations.some(
    (o) => o.project === project && o.firewall === name && o.op.operationType === 'delete' && o.op.status !== 'DONE',
  );
  if (deleting) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `The resource 'projects/${project}/global/firewalls/${name}' is not ready`,
      'resourceNotReady',
    );
  }
  return start(core, project, 'delete', f.resource, requestId);
}

function start(core: EmulatorCore, project: string, type: 'insert' | 'delete', resource: Msg, requestId?: string): Msg {
  const name = `operation-${Date.now()}-${randomHex(7).slice(0, 13)}-${randomHex(4)}-${randomHex(4)}`;
  const now = new Date().toISOString();
  const op: StoredComputeOperation = {
    project,
    firewall: resource.name as string,
    op: {
      kind: 'compute#operation',
      id: decimalId(),
      name,
      operationType: type,
      targetLink: resource.selfLink,
      targetId: resource.id,
      status: 'PENDING',
      user: 'gke-emulator@emulator.invalid',
      progress: 0,
      insertTime: now,
      startTime: now,
      selfLink: `${COMPUTE}/projects/${project}/global/operations/${name}`,
    },
    timeline: core.timeline(10),
    resource: type === 'insert' ? resource : undefined,
  };
  core.state.computeOperations.push(op);
  if (requestId) core.state.requestIds[`${project}/${requestId}`] = name;
  core.save();
  core.driveCompute(op);
  return op.op;
}

/** A uint64 id as GCE prints it (a decimal string). */
function decimalId(): string {
  return BigInt(`0x${randomHex(8)}`)
    .toString()
    .slice(0, 19);
}

function invalid(field: string, value: unknown, why: string): ApiError {
  return new ApiError('INVALID_ARGUMENT', `Invalid value for field '${field}': '${String(value ?? '')}'. ${why}`);
}

/** The rule as GCE stores it: checked, its network a full URL, defaults filled in. */
function firewallResource(project: string, body: Msg): Msg {
  const name = body.name;
  if (typeof name !== 'string' || !FIREWALL_NAME.test(name)) {
    throw invalid('resource.name', name, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'");
  }
  const network = networkUrl(project, body.network);
  const allowed = (body.allowed ?? []) as Msg[];
  const denied = (body.denied ?? []) as Msg[];
  if (!Array.isArray(allowed) || !Array.isArray(denied) || allowed.length > 0 === denied.length > 0) {
    throw invalid('resource', '', 'Exactly one of allowed or denied must be specified.');
  }
  const field = allowed.length ? 'allowed' : 'denied';
  (allowed.length ? allowed : denied).forEach((rule, i) => {
    if (typeof rule.IPProtocol !== 'string' || !rule.IPProtocol) {
      throw invalid(
        `resource.${field}[${i}].IPProtocol`,
        rule.IPProtocol,
        'A protocol (tcp, udp, icmp, all or a number) is required.',
      );
    }
    for (const port of (rule.ports ?? []) as unknown[]) {
      if (typeof port !== 'string' || !/^\d{1,5}(-\d{1,5})?$/.test(port)) {
        throw invalid(`resource.${field}[${i}].ports`, port, 'Ports are numbers or ranges such as 8000-9000.');
      }
    }
  });
  for (const key of ['sourceRanges', 'destinationRanges']) {
    for (const range of (body[key] ?? []) as unknown[]) {
      const text = String(range);
      if (!text.includes(':') && !parseCidr(text.includes('/') ? text : `${text}/32`)) {
        throw invalid(`resource.${key}`, range, 'Must be an IP address or a CIDR range such as 10.4.0.0/14.');
      }
    }
  }
  const direction = body.direction ?? 'INGRESS';
  if (direction !== 'INGRESS' && direction !== 'EGRESS')
    throw invalid('resource.direction', direction, 'Must be INGRESS or EGRESS.');
  const priority = body.priority ?? 1000;
  if (!Number.isInteger(priority) || (priority as number) < 0 || (priority as number) > 65535) {
    throw invalid('resource.priority', priority, 'Must be between 0 and 65535.');
  }
  return {
    ...body,
    kind: 'compute#firewall',
    id: decimalId(),
    creationTimestamp: new Date().toISOString(),
    network,
    priority,
    direction,
    logConfig: { enable: false },
    disabled: body.disabled ?? false,
    selfLink: `${COMPUTE}/projects/${project}/global/firewalls/${name}`,
  };
}

/** `default`, `global/networks/N`, `projects/P/global/networks/N` or a URL, as GCE's full URL. */
function networkUrl(project: string, value: unknown): string {
  const text = value === undefined || value === '' ? 'global/networks/default' : String(value);
  const m = /^(?:projects\/([^/]+)\/)?(?:global\/networks\/)?([a-z]([-a-z0-9]{0,61}[a-z0-9])?)$/.exec(
    text.replace(`${COMPUTE}/`, ''),
  );
  if (!m) throw invalid('resource.network', value, 'Must be a network name or URL such as global/networks/default.');
  return `${COMPUTE}/projects/${m[1] ?? project}/global/networks/${m[2]}`;
}

/**
 * GCE list filters the emulator understands: one comparison `field = "v"` or `field != "v"` (with
 * `*` wildcards), or `field eq regex` / `field ne regex`, optionally in parentheses.
 */
function listFilter(filter: string): (resource: Msg) => boolean {
  if (!filter.trim()) return () => true;
  const m = /^\s*\(?\s*([a-zA-Z]+)\s*(=|!=|eq|ne)\s*(.+?)\s*\)?\s*$/.exec(filter);
  if (!m) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `Invalid list filter expression '${filter}': the GKE emulator understands one comparison ` +
        'such as name = "x", name != "x" or name eq "x.*".',
    );
  }
  const [, field, op, raw] = m;
  const value = raw.replace(/^(["'])(.*)\1$/, '$2');
  const pattern =
    op === '=' || op === '!='
      ? new RegExp(
          `^${value
            .split('*')
            .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*')}$`,
        )
      : new RegExp(`^(?:${value})$`);
  const negate = op === '!=' || op === 'ne';
  return (resource) => pattern.test(String(resource[field] ?? '')) !== negate;
}
