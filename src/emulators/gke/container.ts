// The emulator's google.container.v1.ClusterManager: a gRPC server built from the proto that
// @google-cloud/container ships, so the real client talks to it unchanged. Clusters, operations
// and server config are served; every other method answers UNIMPLEMENTED.
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { clusterLink, newCluster, serverConfig, setClusterStatus } from './cluster';
import {
  ApiError,
  checkLocation,
  checkProject,
  type EmulatorCore,
  operationName,
  type StoredCluster,
  type StoredOperation,
} from './model';

type Msg = Record<string, unknown>;

let service: grpc.ServiceDefinition | undefined;

/** The ClusterManager service definition, loaded once. */
export function clusterManagerService(): grpc.ServiceDefinition {
  if (service) return service;
  const containerProtos = path.join(
    path.dirname(require.resolve('@google-cloud/container/package.json')),
    'build',
    'protos',
  );
  // google-gax's exports hide its package.json; its build/protos holds google/api, rpc and protobuf.
  const gaxProtos = path.join(path.dirname(require.resolve('google-gax')), '..', '..', 'build', 'protos');
  const definition = protoLoader.loadSync('google/container/v1/cluster_service.proto', {
    includeDirs: [containerProtos, gaxProtos],
    longs: String,
    enums: String,
    bytes: String,
    defaults: false,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    google: { container: { v1: { ClusterManager: { service: grpc.ServiceDefinition } } } };
  };
  service = pkg.google.container.v1.ClusterManager.service;
  return service;
}

/** The gRPC methods of ClusterManager, by their proto names (CreateCluster, GetOperation, ...). */
export function clusterManagerMethods(): string[] {
  return Object.keys(clusterManagerService());
}

const GRPC_CODES: Record<string, grpc.status> = grpc.status as unknown as Record<string, grpc.status>;

/** A unary handler: counts the call, checks credentials and faults, maps ApiError to a gRPC status. */
function unary(
  core: EmulatorCore,
  method: string,
  log: (line: string) => void,
  fn: (request: Msg) => Msg,
): grpc.handleUnaryCall<Msg, Msg> {
  return (call, callback) => {
    try {
      core.enter(method, call.metadata.get('authorization')[0]?.toString(), false);
      callback(null, fn(call.request));
    } catch (err) {
      if (!(err instanceof ApiError)) log(`${method} failed: ${(err as Error).stack ?? String(err)}`);
      const code = err instanceof ApiError ? GRPC_CODES[err.code] : grpc.status.INTERNAL;
      callback({ code, details: (err as Error).message });
    }
  };
}

interface Parent {
  project: string;
  location: string;
}

/** `projects/P/locations/L` (or the deprecated project_id and zone fields). */
function parseParent(request: Msg, field: 'parent' | 'name', allowAll: boolean): Parent {
  const value = (request[field] as string | undefined) || legacy(request, []);
  const m = /^projects\/([^/]+)\/locations\/([^/]+)$/.exec(value);
  if (!m) throw malformed(field, value, 'projects/*/locations/*');
  checkProject(m[1]);
  checkLocation(m[2], allowAll);
  return { project: m[1], location: m[2] };
}

/** `projects/P/locations/L/<kind>/ID` (or the deprecated fields). */
function parseName(request: Msg, kind: 'clusters' | 'operations'): Parent & { id: string } {
  const idField = kind === 'clusters' ? 'clusterId' : 'operationId';
  const value = (request.name as string | undefined) || legacy(request, [kind, request[idField] as string]);
  const m = new RegExp(`^projects/([^/]+)/locations/([^/]+)/${kind}/([^/]+)$`).exec(value);
  if (!m) throw malformed('name', value, `projects/*/locations/*/${kind}/*`);
  checkProject(m[1]);
  checkLocation(m[2]);
  return { project: m[1], location: m[2], id: m[3] };
}

function legacy(request: Msg, rest: string[]): string {
  const parts = [request.projectId, request.zone, ...rest];
  if (parts.some((p) => !p)) return '';
  return [`projects/${request.projectId as string}/locations/${request.zone as string}`, ...rest].join('/');
}

function malformed(field: string, value: string, form: string): ApiError {
  return new ApiError(
    'INVALID_ARGUMENT',
    `Invalid value for field "${field}": "${value}". Must be of the form ${form}.`,
  );
}

function findCluster(core: EmulatorCore, p: Parent & { id: string }): StoredCluster {
  const c = core.state.clusters.find((x) => x.project === p.project && x.location === p.location && x.name === p.id);
  if (!c) throw new ApiError('NOT_FOUND', `Not found: projects/${p.project}/locations/${p.location}/clusters/${p.id}.`);
  return c;
}

function newOperation(c: StoredCluster, kind: StoredOperation['kind'], core: EmulatorCore): StoredOperation {
  const name = operationName();
  const base = `https://container.googleapis.com/v1/projects/${c.project}/locations/${c.location}`;
  return {
    project: c.project,
    location: c.location,
    cluster: c.name,
    kind,
    op: {
      name,
      zone: c.location,
      location: c.location,
      operationType: kind === 'create' ? 'CREATE_CLUSTER' : 'DELETE_CLUSTER',
      status: 'PENDING',
      selfLink: `${base}/operations/${name}`,
      targetLink: clusterLink(c.project, c.location, c.name),
      startTime: new Date().toISOString(),
    },
    timeline: core.timeline(kind === 'create' ? 300 : 180),
  };
}

/** Registers the operation, aims an operation-error fault at it, starts it; throws for lose-answer. */
function launch(core: EmulatorCore, method: string, op: StoredOperation): Msg {
  const failure = core.takeFault(method, 'operation-error');
  if (failure && 'kind' in failure) {
    op.failure = {
      code: GRPC_CODES.INTERNAL,
      message: ('message' in failure && failure.message) || 'Internal error (injected by the GKE emulator).',
    };
  }
  core.state.operations.push(op);
  core.save();
  core.drive(op);
  if (core.takeFault(method, 'lose-answer')) {
    throw new ApiError('UNAVAILABLE', 'The service is currently unavailable.');
  }
  return op.op;
}

function view(c: StoredCluster): Msg {
  return { ...c.cluster };
}

/** The handlers, by method name; methods not here answer UNIMPLEMENTED. */
export function clusterManagerHandlers(
  core: EmulatorCore,
  log: (line: string) => void,
): grpc.UntypedServiceImplementation {
  const h = (method: string, fn: (request: Msg) => Msg) => unary(core, method, log, fn);
  const inProject = (p: Parent) => (x: { project: string; location: string }) =>
    x.project === p.project && (p.location === '-' || x.location === p.location);
  return {
    CreateCluster: h('CreateCluster', (request) => {
      const parent = parseParent(request, 'parent', false);
      const taken = core.state.clusters.map((c) => c.cluster.clusterIpv4Cidr);
      const c = newCluster(parent.project, parent.location, request.cluster as Msg | undefined, taken);
      if (core.state.clusters.some((x) => inProject(parent)(x) && x.name === c.name)) {
        throw new ApiError(
          'ALREADY_EXISTS',
          `Already exists: projects/${c.project}/locations/${c.location}/clusters/${c.name}.`,
        );
      }
      core.state.clusters.push(c);
      return launch(core, 'CreateCluster', newOperation(c, 'create', core));
    }),
    GetCluster: h('GetCluster', (request) => view(findCluster(core, parseName(request, 'clusters')))),
    ListClusters: h('ListClusters', (request) => {
      const parent = parseParent(request, 'parent', true);
      return { clusters: core.state.clusters.filter(inProject(parent)).map(view), missingZones: [] };
    }),
    DeleteCluster: h('DeleteCluster', (request) => {
      const c = findCluster(core, parseName(request, 'clusters'));
      const busy = core.state.operations.find(
        (o) => o.op.status !== 'DONE' && o.project === c.project && o.location === c.location && o.cluster === c.name,
      );
      if (busy) throw new ApiError('FAILED_PRECONDITION', `Cluster is running incompatible operation ${busy.op.name}.`);
      setClusterStatus(c, 'STOPPING');
      return launch(core, 'DeleteCluster', newOperation(c, 'delete', core));
    }),
    GetOperation: h('GetOperation', (request) => {
      const p = parseName(request, 'operations');
      const o = core.state.operations.find((x) => inProject(p)(x) && x.op.name === p.id);
      if (!o)
        throw new ApiError('NOT_FOUND', `Not found: projects/${p.project}/locations/${p.location}/operations/${p.id}.`);
      return o.op;
    }),
    ListOperations: h('ListOperations', (request) => {
      const parent = parseParent(request, 'parent', true);
      return { operations: core.state.operations.filter(inProject(parent)).map((o) => o.op), missingZones: [] };
    }),
    GetServerConfig: h('GetServerConfig', (request) => {
      parseParent(request, 'name', false);
      return serverConfig();
    }),
  };
}
