// What the HTTP API takes and answers, as zod schemas: the same definitions validate requests and
// make the OpenAPI document. Answers that carry workflow state (status, checks, list rows) are
// described here and type-checked against the types the CLI prints, so the two cannot drift apart.
import { z } from '@hono/zod-openapi';
import type { MeshSummary, StatusView } from '../client';
import { ISTIO_LINES, ISTIO_VERSION_PATTERN } from '../istio/version';
import { parseDuration } from '../spec/duration';
import { dnsLabel } from '../spec/schema';
import { ROTATABLE, type CheckResult, type DriftStatus } from '../workflows/types';

export const ProblemSchema = z
  .object({
    path: z.string().openapi({ example: 'clusters[1].name' }),
    message: z.string(),
    line: z.number().int().optional().openapi({ description: 'line in the request body (specs only)' }),
    column: z.number().int().optional(),
    text: z.string().openapi({
      description: 'the problem as `meshflow validate` prints it',
      example: 'request:7:13 clusters[1].name: duplicate cluster name "east" (also clusters[0])',
    }),
  })
  .openapi('Problem');

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'invalid_spec' }),
      message: z.string(),
      problems: z.array(ProblemSchema).optional(),
    }),
  })
  .openapi('Error');

export const MeshNameParams = z.object({
  name: dnsLabel.meta({ description: 'the mesh name (a DNS label, at most 40 characters)', example: 'demo' }),
});

export const TeardownQuery = z.object({
  abandonHost: z
    .enum(['true', 'false'])
    .optional()
    .meta({
      description:
        'true: tear down from any worker what needs no host (cloud and existing clusters), ' +
        "and list what only the mesh's " +
        'unavailable host could remove in leftBehind',
    }),
});

export const CreateHeaders = z.object({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/, 'must be 1 to 255 visible ASCII characters')
    .optional()
    .openapi({
      description:
        'the same key with the same spec within 24 h answers the first answer again without starting anything; ' +
        'with another spec it is refused (422)',
      example: '0b7c6a51-3f0e-4a43-9d51-8c1b3e0c1d2f',
    }),
});

export const StartedSchema = z
  .object({
    name: z.string(),
    workflowId: z.string().openapi({ example: 'mesh/demo' }),
    runId: z.string().openapi({ description: 'the first run of the workflow' }),
    webUi: z
      .string()
      .optional()
      .openapi({ description: "the workflow in Temporal's Web UI, when its address is known" }),
  })
  .openapi('MeshStarted');

/** A positive duration such as 30m, 2h or 1d, as `meshflow extend` takes it. */
const positiveDuration = z.string().refine((by) => (parseDuration(by) ?? 0) > 0, {
  error: (issue) => `${JSON.stringify(issue.input)} is not a positive duration such as 30m, 2h or 1d`,
});

export const ExtendBody = z
  .strictObject({ by: positiveDuration.openapi({ example: '2h', pattern: '^(?=.*[1-9])(\\d+[smhd])+$' }) })
  .openapi('ExtendRequest', { description: 'moves the expiry later; at most 30 days from now' });

export const ExtendedSchema = z.object({ name: z.string(), expiresAt: z.string() }).openapi('MeshExtended');

export const VerifyQuery = z.object({
  only: z.string().optional().openapi({
    description:
      'run only these checks: codes or names, comma-separated (GET /v1/checks lists them); every check when absent',
    example: 'MF0101,MF0301',
  }),
});

const catalogEntrySchema = z
  .object({
    code: z.string().openapi({ example: 'MF0101' }),
    name: z.string().openapi({ example: 'cacerts' }),
    title: z.string(),
    domain: z.enum(['trust', 'control plane', 'links', "Istio's view", 'traffic']),
    runsOn: z.string(),
    proves: z.string(),
    whenFailed: z.string(),
  })
  .openapi('CheckInfo');

export const CatalogSchema = z.object({ checks: z.array(catalogEntrySchema) }).openapi('CheckCatalog');

export const EventsQuery = z.object({
  until: z.enum(['ready']).optional().openapi({ description: 'also end the stream once the mesh is ready' }),
});

const checkSchema = z
  .object({
    code: z
      .string()
      .optional()
      .describe("the check's stable code (MF0101...); docs/checks.md#<code> says what it proves and how to fix it"),
    name: z.string(),
    cluster: z.string().optional(),
    status: z.enum(['passed', 'failed', 'not-supported']),
    detail: z.string(),
    hint: z.string().optional(),
    via: z
      .string()
      .optional()
      .describe('how the check reached what it asked: a port-forward to the serving istiod pod'),
  })
  .openapi('Check');

export const ChecksSchema = z.object({ name: z.string(), checks: z.array(checkSchema) }).openapi('MeshChecks');

const resourceSchema = z
  .union([
    z.object({ type: z.literal('cluster'), cluster: z.string(), provider: z.string() }),
    z.object({
      type: z.literal('objects'),
      cluster: z.string(),
      objects: z.array(
        z.object({ apiVersion: z.string(), kind: z.string(), namespace: z.string().optional(), name: z.string() }),
      ),
    }),
    z.object({ type: z.literal('file'), path: z.string() }),
    z.object({ type: z.literal('firewall'), network: z.string(), project: z.string(), name: z.string() }),
    z.object({ type: z.literal('trust'), mesh: z.string() }),
  ])
  .openapi('Resource');

const stepSchema = z
  .object({
    id: z.string().openapi({ example: 'control-plane:east' }),
    kind: z.string().openapi({ description: 'a step kind of the plan (`meshflow plan`)', example: 'control-plane' }),
    cluster: z.string().optional(),
    target: z.string().optional(),
    state: z.enum(['pending', 'running', 'done', 'failed', 'undoing', 'undone', 'undo-failed', 'kept']),
    startedAt: z.string().optional(),
    endedAt: z.string().optional(),
    attempts: z.number().int().optional(),
    lastError: z.string().optional(),
    outputs: z.record(z.string(), z.string()).optional(),
  })
  .openapi('Step');

export const PHASES = [
  'provisioning',
  'ready',
  'updating',
  'failed',
  'compensating',
  'tearing-down',
  'deleted',
  'kept',
] as const;

const updateSchema = z
  .object({
    id: z.string(),
    requestedAt: z.string(),
    endedAt: z.string().optional(),
    state: z.enum(['running', 'applied', 'rolled-back', 'failed', 'cancelled']),
    summary: z.string().openapi({ example: 'add cluster3; 9 step(s) added, 1 run again, 0 removed' }),
    added: z.array(z.string()),
    rerun: z.array(z.string()),
    removed: z.array(z.string()),
    forgotten: z
      .array(z.object({ cluster: z.string(), afterMs: z.number().optional(), detail: z.string() }))
      .optional()
      .describe('per removed cluster: how long until no remaining istiod knew it, or why that was not proven'),
    error: z.string().optional(),
  })
  .openapi('MeshUpdate', {
    description: 'one `meshflow apply` (PUT /v1/meshes/{name}): what it changed, how it ended',
  });

const driftItemSchema = z
  .object({
    cluster: z.string(),
    object: z.string().describe("the object's key (cluster/apiVersion/kind/namespace/name); '' for a whole cluster"),
    kind: z.enum(['missing', 'changed', 'foreign', 'unreachable']),
    step: z.string().describe('the step that owns the object: the one run again to repair it'),
    detail: z.string(),
  })
  .openapi('DriftItem');

export const DriftSchema = z
  .object({
    checkedAt: z.string(),
    trigger: z.enum(['timer', 'requested']),
    objects: z.number().int().describe('ledger objects compared with the baseline'),
    items: z.array(driftItemSchema),
    failedChecks: z.array(checkSchema),
    repaired: z.array(z.string()).describe('the steps that ran again to repair what was found'),
    state: z.enum(['clean', 'repaired', 'drifted', 'unrepaired']),
    error: z.string().optional(),
  })
  .openapi('MeshDrift', {
    description:
      'one drift check: clean (nothing found), repaired, drifted (found, drift.repair is false), unrepaired ' +
      "(something stays: an object not the mesh's, a cluster that did not answer, a check no step repairs)",
  });

export const DriftAnswerSchema = z.object({ name: z.string(), drift: DriftSchema }).openapi('MeshDriftChecked');

export const TrustSchema = z
  .object({
    root: z
      .object({ notAfter: z.string().optional(), fingerprint: z.string().optional(), source: z.string().optional() })
      .optional(),
    intermediates: z.array(
      z.object({
        cluster: z.string(),
        generation: z.number().int().describe('1 for the intermediate the mesh was made with; +1 per rotation'),
        notAfter: z.string(),
        fingerprint: z.string().optional().describe('first 16 hex digits of the certificate SHA-256'),
        rotatedAt: z.string().optional(),
        rotateAt: z.string().optional().describe('when a ready mesh rotates it by itself (trust.rotateBefore)'),
      }),
    ),
    readers: z.array(
      z.object({
        source: z.string(),
        target: z.string(),
        expiresAt: z.string(),
        renewAt: z.string().optional(),
        rotatedAt: z.string().optional(),
      }),
    ),
    rotateBefore: z.string(),
    due: z.array(z.string()).describe('clusters whose intermediate is within rotateBefore (30d when off) of expiry'),
  })
  .openapi('MeshTrust', {
    description: "the mesh's root, each cluster's intermediate CA and each reader token, with their expiry",
  });

export const RotateSchema = z
  .object({
    what: z
      .enum(ROTATABLE)
      .describe(
        'intermediates: new CA per cluster from the same root; readers: new tokens; root: a new root, trusted ' +
          'beside the old until every intermediate is its, the old one dropped after the grace',
      ),
    clusters: z.array(z.string()).optional().describe('only these clusters (readers: links from or to them)'),
    grace: z
      .string()
      .regex(/^(\d+[smhd])+$/)
      .optional()
      .describe('root: how long the old root stays trusted once every intermediate is the new one (default 24h)'),
    finish: z.boolean().optional().describe('root: drop the old root now instead of when its grace ends'),
  })
  .openapi('MeshRotateRequest');

/** A version an upgrade can take a mesh to: a patch release of a line meshflow pins a build of. */
const istioVersion = z.string().refine((v) => ISTIO_VERSION_PATTERN.test(v), {
  error: (issue) =>
    `${JSON.stringify(issue.input)} is not a version meshflow pins a build of: a patch release of ${ISTIO_LINES}`,
});

export const UpgradeBody = z
  .strictObject({
    to: istioVersion.openapi({
      description: `the Istio version to run: a patch release of a line meshflow pins (${ISTIO_LINES})`,
      example: '1.31.5',
      pattern: ISTIO_VERSION_PATTERN.source,
    }),
    waves: z
      .array(z.array(dnsLabel).min(1))
      .optional()
      .describe(
        "the primaries of each wave, in order; a remote goes with its primary's wave, every primary in one wave " +
          "(none or empty: one primary a wave, in the spec's order)",
      ),
    approveEach: z
      .boolean()
      .optional()
      .describe('wait after each wave but the last for POST /v1/meshes/{name}/upgrade/decision'),
  })
  .openapi('MeshUpgradeRequest', {
    description: 'what `meshflow upgrade NAME --to V [--waves ...] [--approve-each]` asks for',
  });

export const UpgradeStartedSchema = z
  .object({
    name: z.string(),
    update: z
      .string()
      .describe("the upgrade's update id: its entry in the status's updates, state running until it ends"),
    status: z.string().openapi({
      description: "where to follow it: the mesh's status (its upgrade, then updates)",
      example: '/v1/meshes/demo',
    }),
    events: z.string().openapi({ description: "the mesh's event stream", example: '/v1/meshes/demo/events' }),
  })
  .openapi('MeshUpgradeStarted');

export const UpgradeDecisionBody = z
  .strictObject({
    decision: z
      .enum(['continue', 'abort'])
      .describe('continue: the next wave starts; abort: every wave the upgrade made is rolled back'),
  })
  .openapi('MeshUpgradeDecision');

export const UpgradeDecidedSchema = z
  .object({ name: z.string(), message: z.string().openapi({ example: 'wave 2 of 2 starts' }) })
  .openapi('MeshUpgradeDecided');

export const StatusSchema = z
  .object({
    mesh: z.string(),
    phase: z.enum(PHASES),
    provider: z.string(),
    clusters: z.array(z.string()),
    startedAt: z.string(),
    readyAt: z.string().optional(),
    expiresAt: z.string().optional(),
    verifiedAt: z.string().optional(),
    steps: z.array(stepSchema),
    ledger: z.array(z.object({ step: z.string(), resource: resourceSchema, createdAt: z.string() })),
    checks: z.array(checkSchema),
    leftBehind: z.array(z.object({ resource: resourceSchema, error: z.string() })),
    untouched: z.array(z.object({ cluster: z.string().optional(), object: z.string(), reason: z.string() })).optional(),
    host: z.string().optional(),
    hostQueue: z.string().optional(),
    conditions: z
      .array(
        z.object({
          type: z.enum(['Ready', 'Provisioning', 'Updating', 'Drifted', 'HostUnavailable']),
          status: z.enum(['True', 'False', 'Unknown']).optional(),
          reason: z.string().optional(),
          message: z.string(),
          lastTransitionTime: z.string().optional(),
          host: z.string().optional(),
          since: z.string().optional(),
        }),
      )
      .optional()
      .describe(
        "The mesh's state beside its phase, as Cluster API has it: Ready, Provisioning, Updating, Drifted; " +
          'HostUnavailable while the mesh host picks up no step',
      ),
    updates: z.array(updateSchema).optional().describe('the last 20 updates (apply), newest last'),
    drift: DriftSchema.optional().describe('the last drift check'),
    trust: TrustSchema.optional(),
    rootRotation: z
      .object({
        from: z.number().int(),
        to: z.number().int(),
        oldRoot: z.string(),
        newRoot: z.string(),
        stage: z.enum(['trusting', 'switched']),
        startedAt: z.string(),
        dropAt: z.string().optional(),
      })
      .optional()
      .describe('a root rotation in progress: both roots trusted until the old one is dropped (dropAt)'),
    upgrade: z
      .object({
        from: z.object({ version: z.string(), revision: z.string().optional() }),
        to: z.object({ version: z.string(), revision: z.string() }),
        waves: z.array(z.array(z.string())).describe("each wave's clusters (a primary's remotes with it)"),
        wave: z.number().int().describe('the wave being worked on, 0-based'),
        passed: z.number().int().describe('waves that passed verification'),
        stage: z.enum([
          'installing',
          'switching',
          'verifying',
          'awaiting-approval',
          'rolling-back',
          'removing-old',
          'gateways',
        ]),
        approveEach: z.boolean(),
        startedAt: z.string(),
        awaitingSince: z.string().optional(),
      })
      .optional()
      .describe('an Istio upgrade in progress (canary by revision, in waves)'),
    retiredClusters: z
      .array(z.record(z.string(), z.unknown()))
      .optional()
      .describe('clusters an update removed whose resources are not all gone (see leftBehind)'),
    error: z.string().optional(),
    istiodDebug: z.record(z.string(), z.string()),
    createdBy: z
      .string()
      .optional()
      .openapi({ description: "the name of the API token that started the run (its memo's createdBy)" }),
  })
  .openapi('MeshStatus', {
    description: 'what `meshflow status NAME --json` prints, and the token name of a run the API started',
  });

export const MeshListSchema = z
  .object({
    meshes: z.array(
      z.object({
        name: z.string(),
        workflowId: z.string(),
        phase: z.string().optional(),
        clusters: z.number().int().optional(),
        provider: z.string().optional(),
        startedAt: z.string(),
        createdBy: z
          .string()
          .optional()
          .describe("the name of the API token that started the run (its memo's createdBy)"),
        hostUnavailable: z
          .object({ host: z.string(), since: z.string() })
          .optional()
          .describe("the mesh's host has picked up none of its steps since then (see the status's conditions)"),
        drift: z
          .object({
            state: z.enum(['repaired', 'drifted', 'unrepaired']),
            found: z.number().int(),
            checkedAt: z.string(),
          })
          .optional()
          .describe("the mesh's last drift check found something (see the status's drift)"),
        rotationDue: z
          .object({ clusters: z.array(z.string()), retryAt: z.string(), error: z.string() })
          .optional()
          .describe('intermediates the mesh should have rotated by itself are left: the rotation failed, retried then'),
      }),
    ),
  })
  .openapi('MeshList', { description: 'open meshes, as `meshflow list` shows them' });

export const ApplyQuery = z.object({
  replace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(,[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/)
    .optional()
    .meta({ description: 'clusters to remove and make anew under their names, comma separated', example: 'west' }),
});

export const AppliedSchema = z
  .object({
    name: z.string(),
    update: updateSchema,
    phase: z.enum(PHASES),
    clusters: z.array(z.string()),
    checks: z.array(checkSchema),
  })
  .openapi('MeshApplied', { description: 'the update as it ended, and the checks run after it' });

const stepRefSchema = z.object({ id: z.string(), kind: z.string(), creates: z.string() });
export const ChangePlanSchema = z
  .object({
    name: z.string(),
    empty: z.boolean().describe('the spec is the running one: nothing would run'),
    added: z.array(stepRefSchema),
    rerun: z.array(stepRefSchema).describe('steps applied again with other inputs (re-linked, moved, changed)'),
    removed: z.array(stepRefSchema),
    addedClusters: z.array(z.string()),
    removedClusters: z.array(z.string()),
    replacedClusters: z.array(z.string()),
    moved: z.array(z.string()).describe('clusters whose part of the sample app changes'),
    criticalPath: z.object({ steps: z.array(z.string()), estimateMs: z.number() }),
    text: z.string().describe('the change as `meshflow apply --dry-run` prints it'),
  })
  .openapi('MeshChangePlan', { description: 'what PUT /v1/meshes/{name} would change, as steps' });

export const TeardownSchema = z.object({ name: z.string(), phase: z.enum(PHASES) }).openapi('MeshTeardown');

export const HealthSchema = z.object({ status: z.literal('ok') });
export const ReadySchema = z.object({ status: z.literal('ready'), namespace: z.string() });

/** A schema describes a type when every value of the type is valid under it and every field is named. */
type Describes<Schema extends z.ZodType, T> = [T] extends [z.infer<Schema>]
  ? [Exclude<keyof T, keyof z.infer<Schema>>] extends [never]
    ? true
    : false
  : false;
type Assert<T extends true> = T;
/** Fails to compile when an answer's schema no longer describes what the CLI prints. */
export type AnswersDescribed = [
  Assert<Describes<typeof StatusSchema, StatusView>>,
  Assert<Describes<typeof MeshListSchema, { meshes: MeshSummary[] }>>,
  Assert<Describes<typeof checkSchema, CheckResult>>,
  Assert<Describes<typeof DriftSchema, DriftStatus>>,
];

type JsonSchema = { [key: string]: unknown };

/**
 * The mesh spec's JSON schema (zod's, from src/spec/schema.ts) with what the API enforces beyond it
 * stated too: file references are absolute paths (and must lie under MESHFLOW_API_FILE_ROOTS), the
 * TTL is a duration, a cluster carries its own provider's settings only, a remote cluster names its primary.
 * Rules across clusters (unique names, primaries that exist, overlapping CIDRs) are not stated.
 */
export function apiSpecSchema(schema: JsonSchema): JsonSchema {
  const at = (node: unknown, ...keys: string[]): JsonSchema | undefined =>
    keys.reduce<unknown>((n, k) => (n && typeof n === 'object' ? (n as JsonSchema)[k] : undefined), node) as
      JsonSchema | undefined;
  const absolute = { pattern: '^/', description: 'an absolute path under a directory of MESHFLOW_API_FILE_ROOTS' };
  const props = at(schema, 'properties');
  const rootCa = at(props, 'trust', 'properties', 'rootCa');
  for (const key of ['certFile', 'keyFile', 'chainFile']) Object.assign(at(rootCa, 'properties', key) ?? {}, absolute);
  const pem = (what: string) => ({
    pattern: `-----BEGIN ${what}`,
    description:
      `${what === 'CERTIFICATE' ? 'certificate' : 'unencrypted private key'}, PEM; validated, kept in the ` +
      "trust store (MESHFLOW_TRUST_STORE=kubernetes:...), never in the workflow's history",
  });
  Object.assign(at(rootCa, 'properties', 'cert') ?? {}, pem('CERTIFICATE'));
  Object.assign(at(rootCa, 'properties', 'key') ?? {}, {
    ...pem('(RSA |EC )?PRIVATE KEY'),
    pattern: 'PRIVATE KEY-----',
  });
  Object.assign(at(rootCa, 'properties', 'chain') ?? {}, pem('CERTIFICATE'));
  if (rootCa) {
    // Files or PEM text, never both: either certFile and keyFile, or cert and key.
    rootCa.oneOf = [
      {
        required: ['certFile', 'keyFile'],
        not: { anyOf: [{ required: ['cert'] }, { required: ['key'] }, { required: ['chain'] }] },
      },
      {
        required: ['cert', 'key'],
        not: { anyOf: [{ required: ['certFile'] }, { required: ['keyFile'] }, { required: ['chainFile'] }] },
      },
    ];
  }
  // `stored` is set by meshflow in the spec a run records, never by a client.
  for (const obj of [
    rootCa,
    at(props, 'app', 'properties', 'manifests', 'items'),
    at(props, 'clusters', 'items', 'properties', 'existing'),
  ])
    delete (at(obj, 'properties') ?? {}).stored;
  Object.assign(at(props, 'app', 'properties', 'manifests', 'items', 'properties', 'file') ?? {}, absolute);
  Object.assign(at(props, 'clusters', 'items', 'properties', 'existing', 'properties', 'kubeconfig') ?? {}, absolute);
  Object.assign(at(props, 'ttl') ?? {}, { pattern: '^(\\d+[smhd])+$', description: 'between 5m and 30d' });
  Object.assign(at(props, 'drift', 'properties', 'every') ?? {}, {
    pattern: '^((\\d+[smhd])+|off)$',
    description: 'how often a ready mesh is checked for drift: 1m to 30d, or off (on request only); default 10m',
  });
  Object.assign(at(props, 'trust', 'properties', 'intermediateValidity') ?? {}, {
    pattern: '^(\\d+[smhd])+$',
    description: "how long each cluster's intermediate CA lives: 1h to 3650d; default 730d",
  });
  Object.assign(at(props, 'trust', 'properties', 'rotateBefore') ?? {}, {
    pattern: '^((\\d+[smhd])+|off)$',
    description: 'a ready mesh rotates an intermediate this long before it expires (at least 5m, or off); default 30d',
  });
  // A cluster has the settings of its own provider only (existing and gke: required), and names a
  // primary exactly when its role is remote.
  const cluster = at(props, 'clusters', 'items');
  if (cluster) {
    const providers = ['local', 'existing', 'gke'];
    cluster.allOf = [
      {
        oneOf: providers.map((p) => ({
          properties: { provider: { type: 'string', enum: [p] } },
          ...(p === 'local' ? {} : { required: [p] }),
          not: { anyOf: providers.filter((o) => o !== p).map((o) => ({ required: [o] })) },
        })),
      },
      {
        oneOf: [
          { properties: { role: { type: 'string', enum: ['remote'] } }, required: ['role', 'primary'] },
          {
            not: {
              anyOf: [{ required: ['primary'] }, { properties: { role: { enum: ['remote'] } }, required: ['role'] }],
            },
          },
        ],
      },
    ];
  }
  return schema;
}
