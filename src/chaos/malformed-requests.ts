// A corpus of API requests the HTTP API must refuse, each with its status, error code and the
// reason its message must give: spec file references outside MESHFLOW_API_FILE_ROOTS (another
// mesh's CA key, `..`, a symlink out of a root, every field that names a file), bodies just over
// the limits, a token past its quotas, and tokens presented wrongly (a token file's whole
// `name:token` line, a name instead of its token), a root CA given as PEM that is none (whose key
// the answer must not quote). None of them may start a workflow.
import path from 'node:path';

export interface MalformedRequest {
  name: string;
  method: string;
  path: string;
  body?: string;
  type?: string;
  /** Which configured token to send (by name); a string given as `raw` is sent as it is. */
  token: { name: string } | { raw: string };
  /** What must hold before it is sent: the token at its open meshes, or at its event streams. */
  precondition?: 'open-meshes-full' | 'event-streams-full';
  status: number;
  code: string;
  reason: RegExp;
  headers?: Record<string, RegExp>;
  /** Text the answer must not hold: the content of a key the request carried. */
  absent?: string;
}

export interface RequestCorpusContext {
  /** The directory MESHFLOW_API_FILE_ROOTS lists. */
  root: string;
  /** Another mesh's CA directory (outside the root), as the state directory holds it. */
  otherMeshCa: string;
  /** A symlink inside the root pointing at otherMeshCa. */
  linkOut: string;
  /** A configured token: its name and secret, as a token file line `name:token` holds them. */
  named: { name: string; token: string };
  /** A ready mesh the token may follow. */
  readyMesh: string;
}

const FILES = /MESHFLOW_API_FILE_ROOTS/;
/** The body of a "key" that is not one: an answer quoting the key would quote this. */
const KEY_BODY = 'bm90LWEta2V5LWJ1dC1hLXNlY3JldC1hbGwtdGhlLXNhbWU=';
const pem = (what: string, body: string) => `"-----BEGIN ${what}-----\\n${body}\\n-----END ${what}-----\\n"`;
const WEST = '{ name: west, provider: local, network: n2 }';

/** A valid two-cluster spec with `extra` YAML appended. */
const specYaml = (name: string, extra = '', west = WEST) =>
  `apiVersion: meshflow.dev/v1alpha1\nkind: Mesh\nname: ${name}\nclusters:\n` +
  `  - { name: east, provider: local, network: n1 }\n  - ${west}\n${extra}\n`;

export function malformedRequests(ctx: RequestCorpusContext): MalformedRequest[] {
  const yaml = 'application/yaml';
  const as = { name: ctx.named.name };
  const key = path.join(ctx.otherMeshCa, 'root-key.pem');
  const cert = path.join(ctx.otherMeshCa, 'root-cert.pem');
  const create = (name: string, extra: string, field: string): MalformedRequest => ({
    name,
    method: 'POST',
    path: '/v1/meshes',
    body: specYaml(`rq-${name.replace(/[^a-z0-9]+/g, '-').slice(0, 30)}`, extra),
    type: yaml,
    token: as,
    status: 400,
    code: 'file_not_allowed',
    reason: new RegExp(`${field.replace(/[.[\]]/g, '\\$&')}: .*${FILES.source}`),
  });
  return [
    create(
      "another mesh's root key",
      `trust: { rootCa: { certFile: ${cert}, keyFile: ${key} } }`,
      'trust.rootCa.keyFile',
    ),
    create(
      'dot-dot out of the root',
      `trust: { rootCa: { certFile: ${ctx.root}/../${path.basename(ctx.otherMeshCa)}/x, keyFile: ${ctx.root}/k } }`,
      'trust.rootCa.certFile',
    ),
    create(
      'symlink out of the root',
      `trust: { rootCa: { certFile: ${ctx.root}/c, keyFile: ${ctx.root}/k, chainFile: ${ctx.linkOut}/root-cert.pem } }`,
      'trust.rootCa.chainFile',
    ),
    create('manifest file', `app: { manifests: [{ file: /etc/passwd, clusters: [east] }] }`, 'app.manifests[0].file'),
    {
      ...create('kubeconfig of an existing cluster', '', 'clusters[1].existing.kubeconfig'),
      body: specYaml(
        'rq-kubeconfig',
        '',
        `{ name: west, provider: existing, existing: { kubeconfig: ${key} }, network: n2 }`,
      ),
    },
    {
      name: 'root CA as PEM that does not parse',
      method: 'POST',
      path: '/v1/meshes',
      body: specYaml(
        'rq-bad-pem',
        `trust:\n  rootCa:\n    cert: ${pem('CERTIFICATE', 'bm90IGEgY2VydGlmaWNhdGU=')}\n` +
          `    key: ${pem('PRIVATE KEY', KEY_BODY)}`,
      ),
      type: yaml,
      token: as,
      status: 400,
      code: 'invalid_spec',
      reason:
        /trust\.rootCa\.cert: is not a PEM certificate[^]*trust\.rootCa\.key: is not an unencrypted PEM private key/,
      absent: KEY_BODY,
    },
    {
      name: 'schedule whose spec names a file',
      method: 'POST',
      path: '/v1/schedules',
      body: JSON.stringify({
        kind: 'mesh',
        every: '1h',
        spec: specYaml('rq-sched', `trust: { rootCa: { certFile: ${cert}, keyFile: ${key} } }`),
      }),
      type: 'application/json',
      token: as,
      status: 400,
      code: 'file_not_allowed',
      reason: /trust\.rootCa\.certFile: .*MESHFLOW_API_FILE_ROOTS/,
    },
    {
      name: 'body one byte over 1 MiB',
      method: 'POST',
      path: '/v1/meshes',
      body: `#${'x'.repeat(1024 * 1024 - 1)}\n`,
      type: yaml,
      token: as,
      status: 413,
      code: 'body_too_large',
      reason: /over 1048576 bytes/,
    },
    {
      name: 'codec body over 8 MiB',
      method: 'POST',
      path: '/codec/decode',
      body: JSON.stringify({ payloads: [{ data: 'A'.repeat(8 * 1024 * 1024) }] }),
      type: 'application/json',
      token: as,
      status: 413,
      code: 'body_too_large',
      reason: /8 MiB/,
    },
    {
      name: 'create past the open-mesh limit',
      method: 'POST',
      path: '/v1/meshes',
      body: specYaml('rq-over-quota'),
      type: yaml,
      token: as,
      precondition: 'open-meshes-full',
      status: 429,
      code: 'quota_exceeded',
      reason: new RegExp(`token ${ctx.named.name} has \\d+ open meshes, the most MESHFLOW_API_MAX_OPEN_MESHES allows`),
      headers: { 'retry-after': /^\d+$/ },
    },
    {
      name: 'event stream past the stream limit',
      method: 'GET',
      path: `/v1/meshes/${ctx.readyMesh}/events`,
      token: as,
      precondition: 'event-streams-full',
      status: 429,
      code: 'quota_exceeded',
      reason: /event streams, the most MESHFLOW_API_MAX_EVENT_STREAMS allows/,
      headers: { 'retry-after': /^\d+$/ },
    },
    {
      name: 'the whole name:token line as the token',
      method: 'GET',
      path: '/v1/meshes',
      token: { raw: `${ctx.named.name}:${ctx.named.token}` },
      status: 401,
      code: 'unauthorized',
      reason: /not one this API accepts/,
    },
    {
      name: "the token's name instead of the token",
      method: 'GET',
      path: '/v1/meshes',
      token: { raw: ctx.named.name },
      status: 401,
      code: 'unauthorized',
      reason: /not one this API accepts/,
    },
    {
      name: 'an undeclared method on a known path',
      method: 'PATCH',
      path: `/v1/meshes/${ctx.readyMesh}`,
      token: as,
      status: 405,
      code: 'method_not_allowed',
      reason: /PATCH is not an operation of/,
      headers: { allow: /^DELETE, GET, HEAD, PUT$/ },
    },
  ];
}
