// The API's routes as OpenAPI operations: paths, parameters, bodies and every answer, each with its
// schema. `app.ts` gives each its handler; /openapi.json is generated from these.
import { type RouteConfig, createRoute, z } from '@hono/zod-openapi';
import {
  AppliedSchema,
  ApplyQuery,
  ChangePlanSchema,
  ChecksSchema,
  CreateHeaders,
  DriftAnswerSchema,
  ErrorSchema,
  EventsQuery,
  VerifyQuery,
  CatalogSchema,
  ExtendBody,
  ExtendedSchema,
  HealthSchema,
  MeshListSchema,
  MeshNameParams,
  ReadySchema,
  RotateSchema,
  StartedSchema,
  StatusSchema,
  TeardownQuery,
  TeardownSchema,
  UpgradeBody,
  UpgradeDecidedSchema,
  UpgradeDecisionBody,
  UpgradeStartedSchema,
} from './schemas';
import { codecRoutes } from './codec';
import { scheduleRoutes } from './schedules';

export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];
export const JSON_TYPE = 'application/json';

const json = <S extends z.ZodType>(schema: S, description: string) => ({
  content: { [JSON_TYPE]: { schema } },
  description,
});

const ERRORS = {
  400:
    'the request is malformed: a bad mesh name, spec, duration or field, or a file outside MESHFLOW_API_FILE_ROOTS ' +
    '(`problems` says where)',
  401: 'no bearer token, or not one this API accepts',
  404: 'no mesh of that name',
  409: 'the mesh is not in a state that allows it (or, for an apply, rotate or upgrade, another update runs)',
  413: 'the body is over 1 MiB',
  415: 'the Content-Type is not one this operation takes',
  422: 'the Idempotency-Key was used for a different spec',
  429: 'the token is at its limit (open meshes for a create, event streams for /events): see Retry-After',
  502: 'the workflow failed to do it (an apply that failed was undone: `detail` says how it ended)',
  503: 'Temporal did not answer',
} as const;
/** Headers some errors carry. */
const ERROR_HEADERS: Partial<Record<keyof typeof ERRORS, Record<string, { description: string; schema: object }>>> = {
  401: { 'WWW-Authenticate': { description: 'Bearer', schema: { type: 'string' } } },
  429: {
    'Retry-After': { description: 'seconds to wait before trying again', schema: { type: 'integer', minimum: 1 } },
  },
};
const errors = <C extends keyof typeof ERRORS>(...codes: C[]) =>
  Object.fromEntries(
    codes.map((c) => [
      c,
      { ...json(ErrorSchema, ERRORS[c]), ...(ERROR_HEADERS[c] ? { headers: ERROR_HEADERS[c] } : {}) },
    ]),
  ) as Record<C, ReturnType<typeof json<typeof ErrorSchema>>>;

/** A mesh spec in a request's body: YAML, or JSON under the MeshSpec schema. */
const SPEC_BODY = {
  required: true,
  content: {
    ...Object.fromEntries(
      YAML_TYPES.map((t) => [t, { schema: { type: 'string' as const, description: 'the mesh spec as YAML' } }]),
    ),
    [JSON_TYPE]: { schema: { $ref: '#/components/schemas/MeshSpec' } },
  },
};

/** Operations any client may call, without a token. */
const PUBLIC = { security: [] as Array<Record<string, string[]>> };
const MESHES = ['meshes'];

export const routes = {
  create: createRoute({
    method: 'post',
    path: '/v1/meshes',
    tags: MESHES,
    summary: 'Start a mesh',
    description:
      'Validates the spec (as `meshflow validate` does) and starts workflow `mesh/<name>`. File references ' +
      '(trust.rootCa.certFile, keyFile, chainFile, app.manifests[].file, clusters[].existing.kubeconfig) must be ' +
      'absolute paths under a directory of MESHFLOW_API_FILE_ROOTS (symlinks resolved; none set: no file ' +
      'references), else 400 `file_not_allowed`; the worker reads them on its host. A token holds at most ' +
      'MESHFLOW_API_MAX_OPEN_MESHES open meshes (default 10), else 429.',
    request: {
      headers: CreateHeaders,
      body: SPEC_BODY,
    },
    responses: {
      202: json(StartedSchema, 'the workflow has started (or, for a repeated Idempotency-Key, had started)'),
      ...errors(400, 401, 409, 413, 415, 422, 429, 503),
    },
  }),
  apply: createRoute({
    method: 'put',
    path: '/v1/meshes/{name}',
    tags: MESHES,
    summary: 'Change a running mesh to a new spec',
    description:
      'What `meshflow apply` does: a Temporal Update on the ready mesh. Clusters are added, removed (unlinked, ' +
      'forgotten by every istiod, undone) or replaced (`replace`), the app moves with its placement; then every ' +
      'check runs. Answers when the update has ended (minutes). Refused with 400 `change_refused` when the new ' +
      "spec changes what cannot change in place (the name, trust, Istio's settings, the ttl, a kept cluster's " +
      'provider, network, role or settings; `problems` names each field and line), with 409 when the mesh is not ' +
      'ready or another update runs. A failed update is undone and answered 502 with how it ended. File ' +
      'references follow the rules of POST /v1/meshes.',
    request: {
      params: MeshNameParams,
      query: ApplyQuery,
      body: SPEC_BODY,
    },
    responses: {
      200: json(AppliedSchema, 'the update was applied (or changed nothing) and the checks ran'),
      ...errors(400, 401, 404, 409, 413, 415, 502, 503),
    },
  }),
  planChange: createRoute({
    method: 'post',
    path: '/v1/meshes/{name}/plan',
    tags: MESHES,
    summary: 'What applying a spec would change, as steps (nothing changes)',
    description: 'What `meshflow apply --dry-run` prints; refused changes as for PUT /v1/meshes/{name}.',
    request: {
      params: MeshNameParams,
      query: ApplyQuery,
      body: SPEC_BODY,
    },
    responses: { 200: json(ChangePlanSchema, 'the change'), ...errors(400, 401, 404, 409, 413, 415, 503) },
  }),
  checks: createRoute({
    method: 'get',
    path: '/v1/checks',
    tags: MESHES,
    summary: 'Every check verify runs: code, name, title, where it runs, what it proves, how to fix it',
    responses: { 200: json(CatalogSchema, 'the catalog, by code'), ...errors(401) },
  }),
  list: createRoute({
    method: 'get',
    path: '/v1/meshes',
    tags: MESHES,
    summary: 'Open meshes and their phase',
    responses: { 200: json(MeshListSchema, 'open meshes'), ...errors(401, 503) },
  }),
  status: createRoute({
    method: 'get',
    path: '/v1/meshes/{name}',
    tags: MESHES,
    summary: "A mesh's status",
    request: { params: MeshNameParams },
    responses: { 200: json(StatusSchema, 'the status query'), ...errors(400, 401, 404, 503) },
  }),
  extend: createRoute({
    method: 'post',
    path: '/v1/meshes/{name}/extend',
    tags: MESHES,
    summary: "Move a mesh's expiry later",
    request: { params: MeshNameParams, body: { required: true, content: { [JSON_TYPE]: { schema: ExtendBody } } } },
    responses: { 200: json(ExtendedSchema, 'the new expiry'), ...errors(400, 401, 404, 409, 413, 415, 503) },
  }),
  verify: createRoute({
    method: 'post',
    path: '/v1/meshes/{name}/verify',
    tags: MESHES,
    summary: 'Run the checks again on a ready mesh',
    description:
      'Every check, or those `only` names. Answers when the checks have run (seconds to minutes); a failed check ' +
      "is a 200 with its result, its code and hint. A code that names no check is a 400; the status's earlier " +
      'results of the other checks stay.',
    request: { params: MeshNameParams, query: VerifyQuery },
    responses: { 200: json(ChecksSchema, 'the checks'), ...errors(400, 401, 404, 409, 502, 503) },
  }),
  drift: createRoute({
    method: 'post',
    path: '/v1/meshes/{name}/drift',
    tags: MESHES,
    summary: 'Check a ready mesh for drift now, and repair it',
    description:
      'What `meshflow drift` does: what the steps applied is compared with the baseline taken after the last ' +
      'change, every check runs, and (unless the spec says drift.repair: false) the steps that own what drifted ' +
      'or failed run again. Answers with the report once done; drift that stays is a 200 with state drifted or ' +
      'unrepaired. 409 unless the mesh is ready and no apply or other drift check runs.',
    request: { params: MeshNameParams },
    responses: { 200: json(DriftAnswerSchema, 'the drift report'), ...errors(400, 401, 404, 409, 502, 503) },
  }),
  rotate: createRoute({
    method: 'post',
    path: '/v1/meshes/{name}/rotate',
    tags: MESHES,
    summary: "Rotate a ready mesh's intermediate CAs or reader tokens",
    description:
      'What `meshflow rotate` does. intermediates: a new intermediate CA per cluster from the same root, its ' +
      'cacerts replaced and its istiod issuing from it (the old one kept until then, put back when it is not taken ' +
      'up); readers: fresh reader tokens in every remote secret. Then every check runs. Answers once done ' +
      '(seconds to minutes) with the update: state applied, or failed with the reason (the mesh stays ready). ' +
      '409 unless the mesh is ready and no apply, drift check or renewal runs.',
    request: { params: MeshNameParams, body: { required: true, content: { [JSON_TYPE]: { schema: RotateSchema } } } },
    responses: { 200: json(AppliedSchema, 'the rotation as it ended'), ...errors(400, 401, 404, 409, 502, 503) },
  }),
  upgrade: createRoute({
    method: 'post',
    path: '/v1/meshes/{name}/upgrade',
    tags: MESHES,
    summary: "Upgrade a ready mesh's Istio, canary by revision, in waves",
    description:
      "What `meshflow upgrade --detach` does: the new version's control plane beside the old on each cluster of " +
      'a wave, its default tag moved and its workloads restarted, then every check; a wave that fails is rolled ' +
      'back with the waves before it (the mesh stays on the old version); when all passed the old revision is ' +
      'removed. Answers 202 once the workflow has accepted it: the upgrade takes minutes, followed in the ' +
      "status's `upgrade` (its wave and stage) and, once it has ended, in `updates` (the entry of id `update`), " +
      'or over /events. With approveEach it waits after each wave but the last (stage awaiting-approval) for ' +
      'POST /v1/meshes/{name}/upgrade/decision. 400 for a version meshflow pins no build of, the one the mesh ' +
      'runs, or waves that are not every primary once; 409 unless the mesh is ready and no other update, drift ' +
      'check or renewal runs.',
    request: {
      params: MeshNameParams,
      body: { required: true, content: { [JSON_TYPE]: { schema: UpgradeBody } } },
    },
    responses: {
      202: json(UpgradeStartedSchema, 'the upgrade was accepted and runs: follow it in the status'),
      ...errors(400, 401, 404, 409, 413, 415, 503),
    },
  }),
  upgradeDecision: createRoute({
    method: 'post',
    path: '/v1/meshes/{name}/upgrade/decision',
    tags: MESHES,
    summary: 'Tell an upgrade waiting between waves to go on or to roll back',
    description:
      'What `meshflow upgrade NAME --continue` (or `--abort`) does, for an upgrade started with approveEach ' +
      "that waits after a wave (the status's upgrade.stage is awaiting-approval): continue starts the next " +
      'wave, abort rolls back every wave it made. 409 when no upgrade waits for a decision.',
    request: {
      params: MeshNameParams,
      body: { required: true, content: { [JSON_TYPE]: { schema: UpgradeDecisionBody } } },
    },
    responses: {
      200: json(UpgradeDecidedSchema, 'what happens next'),
      ...errors(400, 401, 404, 409, 413, 415, 503),
    },
  }),
  teardown: createRoute({
    method: 'delete',
    path: '/v1/meshes/{name}',
    tags: MESHES,
    summary: 'Tear a mesh down',
    request: { params: MeshNameParams, query: TeardownQuery },
    responses: {
      202: json(TeardownSchema, 'teardown requested; follow it with /events'),
      200: json(TeardownSchema, 'the mesh had already ended: nothing to do'),
      ...errors(400, 401, 404, 503),
    },
  }),
  events: createRoute({
    method: 'get',
    path: '/v1/meshes/{name}/events',
    tags: MESHES,
    summary: "Follow a mesh's progress as server-sent events",
    description:
      'Events: `status` (the whole status, first), `step` (a step whose state or attempts changed, polled every ' +
      '250 ms), `phase` ({phase, previous}), `drift` (a new drift report: the status drift), ' +
      '`error` (the status could not be read; polling goes on), `end` ' +
      '({reason: ended | ready | shutdown, phase}) before the stream closes. A token holds at most ' +
      'MESHFLOW_API_MAX_EVENT_STREAMS streams at once (default 20), else 429.',
    request: { params: MeshNameParams, query: EventsQuery },
    responses: {
      200: { content: { 'text/event-stream': { schema: z.string() } }, description: 'the event stream' },
      ...errors(400, 401, 404, 429, 503),
    },
  }),
  healthz: createRoute({
    method: 'get',
    path: '/healthz',
    tags: ['operations'],
    summary: 'The process is up',
    ...PUBLIC,
    responses: { 200: json(HealthSchema, 'always') },
  }),
  readyz: createRoute({
    method: 'get',
    path: '/readyz',
    tags: ['operations'],
    summary: 'Temporal answers (the namespace exists)',
    ...PUBLIC,
    responses: { 200: json(ReadySchema, 'ready'), ...errors(503) },
  }),
  metrics: createRoute({
    method: 'get',
    path: '/metrics',
    tags: ['operations'],
    summary: 'Prometheus metrics',
    responses: {
      200: { content: { 'text/plain': { schema: z.string() } }, description: 'the exposition format' },
      ...errors(401),
    },
  }),
  openapi: createRoute({
    method: 'get',
    path: '/openapi.json',
    tags: ['operations'],
    summary: 'This document',
    ...PUBLIC,
    responses: { 200: json(z.record(z.string(), z.unknown()), 'the OpenAPI 3 document') },
  }),
  ...scheduleRoutes,
  ...codecRoutes,
} satisfies Record<string, RouteConfig>;

/** Paths served without a token: probes, and the API's description (it holds no data). */
export const PUBLIC_PATHS = new Set<string>(
  Object.values(routes)
    .filter((r) => 'security' in r)
    .map((r) => r.path),
);
