// The Mesh spec: one YAML document that says which clusters form the mesh, how Istio joins them,
// what app runs where, and how long the mesh lives. Unknown fields are errors (a typo must not
// silently become a default).
import { z } from 'zod';
import { SAMPLE_APPS, type SampleName } from '../istio/sample-apps';
import {
  AMBIENT_STATUS,
  DATA_PLANES,
  ISTIO_ADDONS,
  ISTIO_BUILDS,
  ISTIO_DEFAULT_VERSION,
  ISTIO_VERSION_PATTERN,
} from '../istio/version';
import {
  DEFAULT_INTERMEDIATE_VALIDITY,
  DEFAULT_ROTATE_BEFORE,
  MAX_INTERMEDIATE_VALIDITY_MS,
  MAX_TTL_MS,
  MIN_DRIFT_EVERY_MS,
  MIN_INTERMEDIATE_VALIDITY_MS,
  MIN_TTL_MS,
  parseDuration,
} from './duration';
import { ownedValueProblems } from './istio-values';
import { STORED_NOT_YOURS, stored } from './stored';
import type { ProviderDefinition } from '../providers/contract';
import { BUILTIN_PROVIDERS, providerDefinitions, providerOf, registryVersion } from '../providers/registry';
import { localNames, localSettings } from '../providers/local/definition';
import { existingNames, existingSettings } from '../providers/existing/definition';
import { gkeNames, gkeSettings } from '../providers/gke/definition';

export { GKE_RELEASE_CHANNELS } from '../providers/gke/definition';

/** A DNS label of at most 40 characters: mesh, cluster and network names. */
export const dnsLabel = z
  .string()
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
    'must be a DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit',
  )
  .max(40, 'must be at most 40 characters');

/** Key types for the CAs meshflow makes; specs recorded before this choice existed mean rsa-4096. */
export const CA_KEY_ALGORITHMS = ['ecdsa-p256', 'rsa-4096'] as const;
export type CaKeyAlgorithm = (typeof CA_KEY_ALGORITHMS)[number];

const cidr = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, 'must be an IPv4 CIDR such as 10.8.0.0/14');

const ttl = z.string().superRefine((s, ctx) => {
  const ms = parseDuration(s);
  if (ms === undefined) ctx.addIssue({ code: 'custom', message: 'must be a duration such as 45m, 2h or 7d' });
  else if (ms < MIN_TTL_MS || ms > MAX_TTL_MS) ctx.addIssue({ code: 'custom', message: 'must be between 5m and 30d' });
});

/** A cluster intermediate's lifetime: 1h to 10 years. */
const intermediateValidity = z.string().superRefine((s, ctx) => {
  const ms = parseDuration(s);
  if (ms === undefined) ctx.addIssue({ code: 'custom', message: 'must be a duration such as 730d or 90d' });
  else if (ms < MIN_INTERMEDIATE_VALIDITY_MS || ms > MAX_INTERMEDIATE_VALIDITY_MS)
    ctx.addIssue({ code: 'custom', message: 'must be between 1h and 3650d' });
});

/** How long before expiry an intermediate is rotated: at least 5m, or `off`. */
const rotateBefore = z.string().superRefine((s, ctx) => {
  if (s === 'off') return;
  const ms = parseDuration(s);
  if (ms === undefined) ctx.addIssue({ code: 'custom', message: 'must be a duration such as 30d or 12h, or off' });
  else if (ms < MIN_TTL_MS) ctx.addIssue({ code: 'custom', message: 'must be at least 5m, or off' });
});

/** How often a ready mesh is checked for drift: a duration of at least 1m, or `off` (checks on request only). */
const driftEvery = z.string().superRefine((s, ctx) => {
  if (s === 'off') return;
  const ms = parseDuration(s);
  if (ms === undefined) ctx.addIssue({ code: 'custom', message: 'must be a duration such as 10m or 1h, or off' });
  else if (ms < MIN_DRIFT_EVERY_MS || ms > MAX_TTL_MS)
    ctx.addIssue({ code: 'custom', message: 'must be between 1m and 30d, or off' });
});

function clustersField<T extends z.ZodType>(cluster: T) {
  return z
    .array(cluster)
    .min(1, 'a mesh needs at least one cluster')
    .max(20, 'at most 20 clusters')
    .describe('the clusters of the mesh, each with its provider, network and role');
}

export const clusterSchema = z.strictObject({
  name: dnsLabel.describe("the cluster's name in the mesh (its Istio cluster ID)"),
  provider: providerField([localNames, existingNames, gkeNames]),
  local: localSettings.optional(),
  existing: existingSettings.optional(),
  gke: gkeSettings.optional().describe('provider gke: the GKE cluster meshflow makes'),
  network: dnsLabel.describe(
    'the Istio network the cluster is on (topology.istio.io/network); clusters on another network are reached ' +
      'through east-west gateways',
  ),
  role: z
    .enum(['primary', 'remote'])
    .default('primary')
    .describe('primary runs its own istiod; remote is served by the istiod of `primary` (topology primary-remote)'),
  /** For a remote cluster: the primary whose istiod serves it. */
  primary: dnsLabel.optional().describe('for a remote cluster: the primary whose istiod serves it'),
  /** The API server address other clusters use to reach this one (default: the provider's). */
  apiServerAddress: z
    .url()
    .optional()
    .describe("the API server address other clusters use to reach this one (default: the provider's)"),
  podCidr: cidr.optional().describe("the pod CIDR (must not overlap another cluster's)"),
  serviceCidr: cidr.optional().describe("the service CIDR (must not overlap another cluster's)"),
});

export const meshSchema = z
  .strictObject({
    apiVersion: z.literal('meshflow.dev/v1alpha1').describe("the spec's version: meshflow.dev/v1alpha1"),
    kind: z.literal('Mesh').describe('always Mesh'),
    name: dnsLabel.describe("the mesh's name: its workflow is mesh/<name>; local clusters are named <name>-<cluster>"),
    ttl: ttl
      .default('4h')
      .describe(
        '5m to 30d from the start: the mesh is torn down when it expires, even mid-provisioning (extend moves it)',
      ),
    onFailure: z
      .enum(['delete', 'keep'])
      .default('delete')
      .describe('keep: a failed run keeps what it made, says what, and stays open until down or its TTL'),
    clusters: clustersField(clusterSchema),
    trust: z
      .strictObject({
        /**
         * The key type of the CAs meshflow makes: its own root and every cluster's intermediate (under your root
         * too). ECDSA P-256 takes milliseconds; RSA 4096 (Istio's tools/certs) takes seconds per key.
         */
        keyAlgorithm: z
          .enum(CA_KEY_ALGORITHMS, { error: `must be one of ${CA_KEY_ALGORITHMS.join(', ')}` })
          .default('ecdsa-p256')
          .describe(
            "the key type of the CAs meshflow makes: ecdsa-p256 (milliseconds) or rsa-4096 (Istio's tools/certs)",
          ),
        /**
         * Bring your own root CA, as PEM files (certFile, keyFile, chainFile) or as PEM text (cert, key,
         * chain); default: meshflow makes one per mesh. `up` copies it into the mesh's trust store.
         */
        /**
         * How long each cluster's intermediate CA lives (from when it is made; default 730d, as Istio's
         * tools/certs). Applies to intermediates made from now on: at up, at rotation.
         */
        intermediateValidity: intermediateValidity
          .default(DEFAULT_INTERMEDIATE_VALIDITY)
          .describe(
            "how long each cluster's intermediate CA lives (1h to 3650d); applies to intermediates made from now on",
          ),
        /**
         * A ready mesh rotates a cluster's intermediate by itself this long before it expires (default 30d);
         * `off`: only `meshflow rotate` does.
         */
        rotateBefore: rotateBefore
          .default(DEFAULT_ROTATE_BEFORE)
          .describe('a ready mesh rotates an intermediate this long before it expires; off: only meshflow rotate does'),
        rootCa: z
          .strictObject({
            certFile: z.string().min(1).optional().describe('path of your root (or intermediate) CA certificate, PEM'),
            keyFile: z.string().min(1).optional().describe('path of its unencrypted private key, PEM'),
            chainFile: z
              .string()
              .min(1)
              .optional()
              .describe('when certFile is an intermediate of your PKI: the CA certificates above it, up to your root'),
            cert: z.string().min(1).optional().describe('the CA certificate, PEM'),
            key: z.string().min(1).optional().describe('its unencrypted private key, PEM (PKCS#1, SEC1 or PKCS#8)'),
            chain: z
              .string()
              .min(1)
              .optional()
              .describe('when cert is an intermediate of your PKI: the CA certificates above it, up to your root, PEM'),
            stored,
          })
          .optional()
          .describe(
            'your own root CA, as files or PEM text (default: meshflow makes one per mesh); up copies it into the ' +
              'trust store',
          ),
      })
      .prefault({})
      .describe("the mesh's CAs: key type, your own root, intermediate lifetimes and rotation"),
    istio: z
      .strictObject({
        /** The Istio release whose images run: a patch of a line meshflow pins a build of (istioctl, istiod). */
        version: z
          .string()
          .regex(
            ISTIO_VERSION_PATTERN,
            'must be a patch release of an Istio line meshflow pins a build of: ' +
              ISTIO_BUILDS.map((b) => `${b.line}.x (such as ${b.defaultVersion})`).join(', '),
          )
          .default(ISTIO_DEFAULT_VERSION)
          .describe('the Istio release whose images run: a patch of a line meshflow pins a build of'),
        /**
         * The control-plane revision the clusters run (istio.io/rev), set by `meshflow upgrade`: absent,
         * Istio's default revision. A spec that sets it installs that revision with the default tag on it.
         */
        revision: z
          .string()
          .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a revision name such as 1-31-4')
          .refine((r) => r !== 'default', "is Istio's default revision: leave it out")
          .optional()
          .describe(
            "the control-plane revision (istio.io/rev), set by meshflow upgrade; absent: Istio's default revision",
          ),
        topology: z
          .enum(['multi-primary', 'primary-remote'])
          .default('multi-primary')
          .describe("multi-primary: an istiod per cluster; primary-remote: remotes served by a primary's istiod"),
        profile: z.enum(['default', 'minimal', 'demo']).default('default').describe('the Istio profile installed'),
        /**
         * How workloads join the mesh: `sidecar` (an Envoy in every pod) or `ambient` (Istio's ambient
         * profile: ztunnel on every node, istio-cni, east-west Gateways of class istio-east-west on
         * HBONE 15008, namespaces labelled istio.io/dataplane-mode=ambient).
         */
        dataPlane: z
          .enum(DATA_PLANES)
          .default('sidecar')
          .describe(
            'sidecar: an Envoy in every pod; ambient: ztunnel, istio-cni and east-west Gateways on HBONE 15008',
          ),
        values: z
          .record(z.string(), z.unknown())
          .default({})
          .describe(
            'Helm values deep-merged into every IstioOperator meshflow renders; values meshflow sets are refused',
          ),
      })
      .prefault({})
      .describe('the Istio release, topology, profile, data plane and Helm values'),
    app: z
      .strictObject({
        sample: z
          .enum([...(Object.keys(SAMPLE_APPS) as SampleName[]), 'none'])
          .default('helloworld')
          .describe('the sample app split across the clusters, whose traffic the checks follow'),
        /**
         * Ambient meshes: a waypoint (a Gateway of class istio-waypoint) of this name in each of the
         * app's ambient namespaces, in every cluster the app runs in (Istio resolves a global Service's
         * waypoint by name in each cluster), and the namespaces labelled to use it.
         */
        waypoint: dnsLabel
          .optional()
          .describe(
            "ambient meshes: a waypoint of this name in the app's namespaces, in every cluster the app runs in",
          ),
        /** cluster name -> the components of the sample that run there (helloworld: versions v1, v2...; default: spread over the clusters) */
        placement: z
          .record(z.string(), z.array(z.string().min(1)))
          .optional()
          .describe('cluster name -> the parts of the sample that run there (default: spread over the clusters)'),
        /** The user's own manifests (read by the worker at deploy time, never carried in workflow history), per cluster. */
        manifests: z
          .array(
            z.strictObject({
              file: z.string().min(1).describe('path of a manifest file (read by the worker at deploy time)'),
              clusters: z.array(dnsLabel).min(1).describe('the clusters it is applied to'),
              stored,
              /** Namespace for objects that name none; created (with sidecar injection) unless it exists. Default: "default". */
              namespace: dnsLabel
                .optional()
                .describe(
                  'namespace for objects that name none; created with sidecar injection unless it exists ' +
                    '(default: default)',
                ),
            }),
          )
          .default([])
          .describe('your own manifests, per cluster'),
      })
      .prefault({})
      .describe('the app the mesh runs: a sample, its placement, your own manifests'),
    /** Istio's observability addons, installed on every primary from the pinned Istio's samples/addons. */
    addons: z
      .array(z.enum(ISTIO_ADDONS, { error: `must be one of ${ISTIO_ADDONS.join(', ')}` }))
      .default([])
      .refine((a) => new Set(a).size === a.length, 'lists an addon more than once')
      .describe("Istio's observability addons, installed on every primary from the pinned Istio's samples/addons"),
    verify: z
      .strictObject({
        traffic: z
          .strictObject({
            requests: z
              .number()
              .int()
              .min(1)
              .max(1000)
              .default(20)
              .describe('requests each traffic check sends from a client pod'),
          })
          .prefault({})
          .describe('the traffic checks (MF0501)'),
      })
      .prefault({})
      .describe('what verify does beyond its fixed checks'),
    /**
     * Drift detection on a ready mesh: every `every`, what its steps applied is compared with the
     * baseline taken after the last change, and every check runs; with `repair`, the steps that own
     * what changed or failed run again. Objects that are no longer the mesh's are only reported.
     */
    drift: z
      .strictObject({
        every: driftEvery
          .default('10m')
          .describe('how often a ready mesh is checked for drift: 1m to 30d, or off (on request only)'),
        repair: z.boolean().default(true).describe('false: report drift, change nothing'),
      })
      .prefault({})
      .describe('drift detection and repair on a ready mesh'),
  })
  .superRefine((mesh, ctx) => {
    rootCaProblems(mesh.trust.rootCa, ctx);
    const before = parseDuration(mesh.trust.rotateBefore);
    const validity = parseDuration(mesh.trust.intermediateValidity);
    const validityOk = validity !== undefined && validity >= MIN_INTERMEDIATE_VALIDITY_MS;
    if (before !== undefined && validityOk && before >= validity) {
      ctx.addIssue({
        code: 'custom',
        path: ['trust', 'rotateBefore'],
        message: `must be shorter than trust.intermediateValidity (${mesh.trust.intermediateValidity})`,
      });
    }
    const notYours = (path: Array<string | number>) =>
      ctx.addIssue({
        code: 'custom',
        path: [...path, 'stored'],
        message: STORED_NOT_YOURS,
      });
    if (mesh.trust.rootCa?.stored !== undefined) notYours(['trust', 'rootCa']);
    mesh.app.manifests.forEach((m, i) => m.stored !== undefined && notYours(['app', 'manifests', i]));
    const names = new Map<string, number>();
    mesh.clusters.forEach((c, i) => {
      if (names.has(c.name))
        ctx.addIssue({
          code: 'custom',
          path: ['clusters', i, 'name'],
          message: `duplicate cluster name "${c.name}" (also clusters[${names.get(c.name)}])`,
        });
      names.set(c.name, i);
    });
    providerProblems(mesh, (path, message) => ctx.addIssue({ code: 'custom', path, message }));
    for (const problem of ownedValueProblems(mesh.istio.values)) {
      ctx.addIssue({ code: 'custom', path: ['istio', 'values', ...problem.path], message: problem.message });
    }
    const primaries = mesh.clusters.filter((c) => c.role === 'primary');
    if (primaries.length === 0)
      ctx.addIssue({ code: 'custom', path: ['clusters'], message: 'at least one cluster must have role: primary' });
    mesh.clusters.forEach((c, i) => {
      if (c.role === 'remote') {
        if (mesh.istio.topology !== 'primary-remote') {
          ctx.addIssue({
            code: 'custom',
            path: ['clusters', i, 'role'],
            message: 'role: remote needs istio.topology: primary-remote',
          });
        }
        if (!c.primary)
          ctx.addIssue({
            code: 'custom',
            path: ['clusters', i, 'primary'],
            message: 'a remote cluster must name its primary',
          });
        else if (!primaries.some((p) => p.name === c.primary)) {
          ctx.addIssue({
            code: 'custom',
            path: ['clusters', i, 'primary'],
            message: `"${c.primary}" is not a primary cluster of this mesh`,
          });
        }
      } else if (c.primary) {
        ctx.addIssue({
          code: 'custom',
          path: ['clusters', i, 'primary'],
          message: 'only a remote cluster names a primary',
        });
      }
    });
    if (mesh.istio.dataPlane === 'ambient') {
      if (mesh.istio.topology === 'primary-remote') {
        ctx.addIssue({
          code: 'custom',
          path: ['istio', 'dataPlane'],
          message:
            `ambient is not supported with istio.topology primary-remote (Istio: ${AMBIENT_STATUS}): ` +
            'use multi-primary, or dataPlane sidecar',
        });
      }
      if (mesh.istio.profile !== 'default') {
        ctx.addIssue({
          code: 'custom',
          path: ['istio', 'profile'],
          message: `ambient installs Istio's ambient profile: leave istio.profile out (it is "${mesh.istio.profile}")`,
        });
      }
    }
    if (mesh.app.waypoint !== undefined && mesh.istio.dataPlane !== 'ambient') {
      ctx.addIssue({
        code: 'custom',
        path: ['app', 'waypoint'],
        message: "waypoints are ambient's L7 proxies: set istio.dataPlane: ambient, or leave app.waypoint out",
      });
    }
    if (mesh.istio.topology === 'primary-remote' && !mesh.clusters.some((c) => c.role === 'remote')) {
      ctx.addIssue({
        code: 'custom',
        path: ['istio', 'topology'],
        message: 'primary-remote needs at least one cluster with role: remote',
      });
    }
    mesh.clusters.forEach((c, i) => {
      for (const field of ['podCidr', 'serviceCidr'] as const) {
        const mine = c[field];
        if (!mine) continue;
        mesh.clusters.forEach((o, j) => {
          for (const f2 of ['podCidr', 'serviceCidr'] as const) {
            const theirs = o[f2];
            if (theirs && (j > i || (j === i && f2 > field)) && cidrsOverlap(mine, theirs)) {
              ctx.addIssue({
                code: 'custom',
                path: ['clusters', i, field],
                message: `${mine} overlaps ${f2} ${theirs} of cluster "${o.name}"`,
              });
            }
          }
        });
      }
    });
    if (mesh.app.placement) {
      const app = mesh.app.sample === 'none' ? undefined : SAMPLE_APPS[mesh.app.sample];
      if (!app)
        ctx.addIssue({
          code: 'custom',
          path: ['app', 'placement'],
          message: 'placement places a sample: set app.sample, or list your own files under app.manifests',
        });
      for (const [cluster, components] of Object.entries(mesh.app.placement)) {
        if (!names.has(cluster))
          ctx.addIssue({
            code: 'custom',
            path: ['app', 'placement', cluster],
            message: `no cluster named "${cluster}" in this mesh`,
          });
        components.forEach((c, i) => {
          if (app && !app.isComponent(c)) {
            ctx.addIssue({
              code: 'custom',
              path: ['app', 'placement', cluster, i],
              message: `"${c}" is not a part of ${app.name} (its parts: ${app.components.join(', ')}${app.name === 'helloworld' ? ', or any vN' : ''})`,
            });
          }
        });
      }
    }
    mesh.app.manifests.forEach((m, i) => {
      m.clusters.forEach((cluster, j) => {
        if (!names.has(cluster))
          ctx.addIssue({
            code: 'custom',
            path: ['app', 'manifests', i, 'clusters', j],
            message: `no cluster named "${cluster}" in this mesh`,
          });
      });
    });
  });

type RootCa = NonNullable<z.infer<typeof meshSchema>['trust']['rootCa']>;

/** A root CA is files (certFile and keyFile, chainFile optional) or PEM text (cert and key, chain optional). */
function rootCaProblems(root: RootCa | undefined, ctx: z.RefinementCtx): void {
  if (!root) return;
  const issue = (field: string, message: string) =>
    ctx.addIssue({ code: 'custom', path: ['trust', 'rootCa', field], message });
  const files = root.certFile !== undefined || root.keyFile !== undefined || root.chainFile !== undefined;
  const inline = root.cert !== undefined || root.key !== undefined || root.chain !== undefined;
  if (files && inline) {
    issue(
      root.cert !== undefined ? 'cert' : root.key !== undefined ? 'key' : 'chain',
      'give the root CA as files (certFile, keyFile) or as PEM (cert, key), not both',
    );
  } else if (inline) {
    if (root.cert === undefined) issue('cert', 'the root CA needs its certificate (PEM) beside its key');
    if (root.key === undefined) issue('key', 'the root CA needs its private key (PEM) beside its certificate');
  } else if (root.stored === undefined) {
    if (root.certFile === undefined) issue('certFile', 'the root CA needs certFile (or cert, PEM)');
    if (root.keyFile === undefined) issue('keyFile', 'the root CA needs keyFile (or key, PEM)');
  }
}

export type MeshSpec = z.infer<typeof meshSchema>;

/** A spec that is valid but asks for something Istio itself does not stand behind; `validate` prints these. */
export interface SpecWarning {
  path: Array<string | number>;
  message: string;
}

export function specWarnings(mesh: MeshSpec): SpecWarning[] {
  const warnings: SpecWarning[] = [];
  const networks = new Set(mesh.clusters.map((c) => c.network)).size;
  if (mesh.istio.dataPlane === 'ambient' && mesh.clusters.length > 1 && networks === 1) {
    warnings.push({
      path: ['istio', 'dataPlane'],
      message:
        `every cluster is on network "${mesh.clusters[0].network}": ambient multicluster on one network is alpha in ` +
        `Istio (${AMBIENT_STATUS}); give each cluster a network of its own for the supported setup`,
    });
  }
  return warnings;
}
export type ClusterSpec = z.infer<typeof clusterSchema>;

/** A cluster's `provider`: one of the registered providers' ids. */
function providerField(defs: ReadonlyArray<Pick<ProviderDefinition, 'id' | 'summary'>>) {
  const ids = defs.map((d) => d.id) as [string, ...string[]];
  return z.enum(ids).describe(
    `where the cluster comes from: ${defs
      .map((d) => d.summary)
      .join(', ')
      .replace(/, ([^,]*)$/, ' or $1')}`,
  );
}

/** The rules every provider shares (its section, no other's) and each provider's own. */
function providerProblems(mesh: MeshSpec, issue: (path: Array<string | number>, message: string) => void): void {
  const ids = providerDefinitions().map((d) => d.id);
  const mine = new Map<string, Array<{ cluster: ClusterSpec; index: number }>>();
  mesh.clusters.forEach((c, i) => {
    const def = providerOf(c.provider);
    const sections = c as Record<string, unknown>;
    if (def.settingsRequired && sections[c.provider] === undefined)
      issue(['clusters', i, c.provider], `provider "${c.provider}" needs a "${c.provider}:" section`);
    for (const other of ids) {
      if (other !== c.provider && sections[other] !== undefined)
        issue(
          ['clusters', i, other],
          `settings for provider "${other}" on a cluster whose provider is "${c.provider}"`,
        );
    }
    def.checkCluster?.(mesh, c, i, issue);
    mine.set(c.provider, [...(mine.get(c.provider) ?? []), { cluster: c, index: i }]);
  });
  for (const [id, clusters] of mine) providerOf(id).checkMesh?.(mesh, clusters, issue);
}

let current: { version: number; schema: typeof meshSchema } | undefined;

/**
 * The schema specs are checked with: `meshSchema` (the built-in providers), with every provider
 * registered since (`provider` takes its id, a cluster its `<id>:` section).
 */
export function specSchema(): typeof meshSchema {
  const version = registryVersion();
  if (version === 0) return meshSchema;
  if (current?.version !== version) {
    const defs = providerDefinitions();
    const extra = Object.fromEntries(
      defs.filter((d) => !BUILTIN_PROVIDERS.some((b) => b.id === d.id)).map((d) => [d.id, d.settings.optional()]),
    );
    const cluster = clusterSchema.safeExtend({ provider: providerField(defs), ...extra });
    const schema = meshSchema.safeExtend({ clusters: clustersField(cluster) });
    current = { version, schema: schema as unknown as typeof meshSchema };
  }
  return current.schema;
}

function cidrRange(c: string): [number, number] {
  const [ip, bits] = c.split('/');
  const n = ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(bits));
  const start = n - (n % size);
  return [start, start + size - 1];
}

export function cidrsOverlap(a: string, b: string): boolean {
  const [a0, a1] = cidrRange(a);
  const [b0, b1] = cidrRange(b);
  return a0 <= b1 && b0 <= a1;
}
