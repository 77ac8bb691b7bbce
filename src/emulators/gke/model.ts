// What the GKE emulator keeps: its clusters, operations and firewall rules as the APIs answer
// them, written to state.json after every change; the rules GKE applies to names and ranges; and
// the faults a test can inject.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** The gRPC status names the emulator answers with (REST maps them to HTTP statuses). */
export type ApiCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'DEADLINE_EXCEEDED'
  | 'UNAVAILABLE'
  | 'UNIMPLEMENTED'
  | 'INTERNAL';

/** An error a Google API would answer with; `reason` is GCE's (alreadyExists, notFound, invalid...). */
export class ApiError extends Error {
  constructor(
    readonly code: ApiCode,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

export const FAULT_CODES = [
  'UNAVAILABLE',
  'RESOURCE_EXHAUSTED',
  'PERMISSION_DENIED',
  'DEADLINE_EXCEEDED',
  'INVALID_ARGUMENT',
  'FAILED_PRECONDITION',
] as const;

export type EmulatorFault =
  /** The next `times` (default 1) calls of `method` fail with `code`, doing nothing. */
  | { method: string; code: (typeof FAULT_CODES)[number]; times?: number }
  /** The call succeeds, but its operation ends DONE with an error (a created cluster stays, in ERROR). */
  | { method: 'CreateCluster' | 'DeleteCluster'; kind: 'operation-error'; times?: number; message?: string }
  /** The call takes effect, but the client gets UNAVAILABLE (REST: 503). */
  | { method: 'CreateCluster' | 'DeleteCluster' | 'firewalls.insert'; kind: 'lose-answer'; times?: number };

/** The Compute calls the emulator serves, by the names faults and calls() use. */
export const COMPUTE_METHODS = [
  'firewalls.insert',
  'firewalls.get',
  'firewalls.delete',
  'firewalls.list',
  'globalOperations.get',
  'globalOperations.wait',
  'globalOperations.list',
] as const;

/** Checks a fault (from code or from JSON over HTTP); throws with the reason it is not one. */
export function parseFault(value: unknown, grpcMethods: readonly string[]): EmulatorFault {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('a fault is a JSON object');
  const f = value as Record<string, unknown>;
  const methods = [...grpcMethods, ...COMPUTE_METHODS];
  if (typeof f.method !== 'string' || !methods.includes(f.method)) {
    throw new Error(`"method" must be one of ${methods.join(', ')}; got ${JSON.stringify(f.method)}`);
  }
  if (f.times !== undefined && !(Number.isInteger(f.times) && (f.times as number) >= 1)) {
    throw new Error(`"times" must be a whole number >= 1; got ${JSON.stringify(f.times)}`);
  }
  if (f.kind === undefined) {
    if (!FAULT_CODES.includes(f.code as (typeof FAULT_CODES)[number])) {
      throw new Error(
        `"code" must be one of ${FAULT_CODES.join(', ')} (or give "kind"); got ${JSON.stringify(f.code)}`,
      );
    }
    return f as EmulatorFault;
  }
  const allowed: Record<string, string[]> = {
    'operation-error': ['CreateCluster', 'DeleteCluster'],
    'lose-answer': ['CreateCluster', 'DeleteCluster', 'firewalls.insert'],
  };
  if (typeof f.kind !== 'string' || !allowed[f.kind]) {
    throw new Error(`"kind" must be operation-error or lose-answer; got ${JSON.stringify(f.kind)}`);
  }
  if (!allowed[f.kind].includes(f.method)) {
    throw new Error(`a ${f.kind} fault applies to ${allowed[f.kind].join(', ')}, not ${f.method}`);
  }
  if (f.message !== undefined && typeof f.message !== 'string') throw new Error('"message" must be a string');
  return f as EmulatorFault;
}

/** When an operation moves on: PENDING until `pendingUntil`, DONE no earlier than `doneAfter` (epoch ms). */
export interface Timeline {
  pendingUntil: number;
  doneAfter: number;
}

/** A google.rpc.Status. */
export interface RpcStatus {
  code: number;
  message: string;
}

/** A cluster: `cluster` is the Cluster message GetCluster answers (the submitted one plus server fields). */
export interface StoredCluster {
  project: string;
  location: string;
  name: string;
  localName: string;
  cluster: Record<string, unknown> & { status: string; clusterIpv4Cidr: string };
}

/** A google.container.v1.Operation, and what is left for it to do. */
export interface StoredOperation {
  project: string;
  location: string;
  cluster: string;
  kind: 'create' | 'delete';
  op: Record<string, unknown> & { name: string; status: string };
  timeline: Timeline;
  /** Set when an operation-error fault was aimed at it: it ends DONE with this error. */
  failure?: RpcStatus;
}

export interface StoredFirewall {
  project: string;
  name: string;
  resource: Record<string, unknown>;
}

/** A compute#operation on a firewall rule; `resource` is the rule an insert adds when it is done. */
export interface StoredComputeOperation {
  project: string;
  firewall: string;
  op: Record<string, unknown> & { name: string; status: string };
  timeline: Timeline;
  resource?: Record<string, unknown>;
}

export interface EmulatorState {
  clusters: StoredCluster[];
  operations: StoredOperation[];
  firewalls: StoredFirewall[];
  computeOperations: StoredComputeOperation[];
  /** Compute requestIds seen, `<project>/<requestId>` → the operation they started. */
  requestIds: Record<string, string>;
}

export function emptyState(): EmulatorState {
  return { clusters: [], operations: [], firewalls: [], computeOperations: [], requestIds: {} };
}

export function loadState(file: string): EmulatorState {
  if (!fs.existsSync(file)) return emptyState();
  return { ...emptyState(), ...(JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<EmulatorState>) };
}

/** Writes the state whole (a temporary file renamed over the old one: a crash never leaves half a file). */
export function saveState(file: string, state: EmulatorState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 1) + '\n');
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------------------------
// Names.

/** GKE's cluster names: a lowercase letter, then letters, digits and '-', at most 40, not ending in '-'. */
export const CLUSTER_NAME = /^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/;
/** A GCP project ID (6-30, a lowercase letter first), optionally domain-scoped, or a project number. */
const PROJECT = /^(([-a-z0-9]{1,63}\.)*[a-z][-a-z0-9]{0,61}[a-z0-9]:)?([a-z][-a-z0-9]{4,28}[a-z0-9]|[0-9]{1,19})$/;
/** A region (us-central1) or a zone (us-central1-a). */
const LOCATION = /^[a-z]+(-[a-z]+)+[0-9]+(-[a-z])?$/;

export function checkProject(project: string): void {
  if (!PROJECT.test(project)) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `Invalid project ID "${project}": a project ID is 6 to 30 lowercase letters, digits and hyphens, ` +
        'starting with a letter and not ending with a hyphen.',
      'invalidParameter',
    );
  }
}

export function checkLocation(location: string, allowAll = false): void {
  if (!(LOCATION.test(location) || (allowAll && location === '-'))) {
    throw new ApiError('INVALID_ARGUMENT', `Location "${location}" is not a valid zone or region.`);
  }
}

export function isZone(location: string): boolean {
  return /-[a-z]$/.test(location);
}

/** The local cluster that plays a GKE cluster: a valid local cluster name, the same on every run. */
export function backingName(project: string, location: string, name: string): string {
  return 'gke-' + crypto.createHash('sha256').update(`${project}/${location}/${name}`).digest('hex').slice(0, 10);
}

/** `operation-<epochMs>-<8 hex>`, as GKE names its operations. */
export function operationName(): string {
  return `operation-${Date.now()}-${crypto.randomBytes(4).toString('hex')}`;
}

export function randomHex(bytes: number): string {
  return crypto.randomBytes(bytes).toString('hex');
}

export function fingerprint(value: unknown): string {
  return crypto.createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

// ---------------------------------------------------------------------------------------------
// IPv4 ranges.

export interface Cidr {
  base: number;
  prefix: number;
}

export function parseCidr(text: string): Cidr | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const base = octets.reduce((a, o) => a * 256 + o, 0);
  if (base % 2 ** (32 - prefix) !== 0) return undefined; // host bits set
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  const o = [24, 16, 8, 0].map((s) => Math.floor(c.base / 2 ** s) % 256);
  return `${o.join('.')}/${c.prefix}`;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const size = (c: Cidr) => 2 ** (32 - c.prefix);
  return a.base < b.base + size(b) && b.base < a.base + size(a);
}

/** The pod range of a backing local cluster: the cluster's range, or its first /16 when it is wider. */
export function backingPodCidr(clusterIpv4Cidr: string): string {
  const c = parseCidr(clusterIpv4Cidr);
  if (!c) return clusterIpv4Cidr;
  return formatCidr({ base: c.base, prefix: Math.max(c.prefix, 16) });
}

/** Ranges the emulator never hands out: local clusters' services and default pod ranges. */
const RESERVED = ['10.96.0.0/16', '10.128.0.0/10'].map((c) => parseCidr(c)!);

/**
 * A free pod range for a new cluster, as GKE picks one in 10.0.0.0/8: the first 10.<4k>.0.0/14
 * that no other cluster (nor a local cluster's services or default pods) uses; `prefix` narrows it.
 */
export function defaultClusterCidr(taken: string[], prefix = 14): string | undefined {
  const used = [...taken.map(parseCidr).filter((c): c is Cidr => c !== undefined), ...RESERVED];
  for (let k = 1; k < 64; k++) {
    const slot = { base: (10 * 256 + 4 * k) * 65536, prefix: 14 };
    if (!used.some((u) => overlaps(u, slot))) return formatCidr({ base: slot.base, prefix: Math.max(prefix, 14) });
  }
  return undefined;
}

/** What the emulator's API servers need from the emulator. */
export interface EmulatorCore {
  readonly state: EmulatorState;
  /** Ends with the emulator's run (stop, reset): long waits give up on it. */
  readonly signal: AbortSignal;
  /**
   * Counts a call, checks its credentials (a missing one is refused only when `required`: grpc-js
   * sends none over an insecure channel), and throws when a status fault is aimed at it.
   */
  enter(method: string, authorization: string | undefined, required: boolean): void;
  /** Takes an operation-error or lose-answer fault aimed at `method`, when there is one. */
  takeFault(method: string, kind: 'operation-error' | 'lose-answer'): EmulatorFault | undefined;
  /** When an operation that takes `seconds` on GKE moves on, scaled by the emulator's latency. */
  timeline(seconds: number): Timeline;
  save(): void;
  drive(op: StoredOperation): void;
  driveCompute(op: StoredComputeOperation): void;
}
