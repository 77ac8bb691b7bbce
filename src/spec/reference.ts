// docs/spec-reference.md, made from the spec's JSON Schema (itself converted from the zod schema
// the loader validates with), so it cannot drift from what `meshflow validate` accepts: every field
// with its type, default, bounds and description. The rules across fields, which no JSON Schema
// can state, follow as `meshflow validate` applies them.
import { meshJsonSchema } from './json-schema';

interface Node {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  properties?: Record<string, Node>;
  required?: string[];
  items?: Node;
  additionalProperties?: boolean | Node;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  format?: string;
  anyOf?: Node[];
}

/** What `meshflow validate` checks beyond each field (src/spec/schema.ts, its superRefine). */
const RULES = [
  'cluster names are unique; at least one cluster is a primary',
  'a remote names a primary of the mesh in `primary`, and remotes need `istio.topology: primary-remote`',
  "a cluster has the section of its provider (`existing:`, `gke:`) and no other provider's",
  "no two clusters' `podCidr` or `serviceCidr` overlap",
  '`app.placement` names clusters of the mesh and parts of the chosen sample only',
  'local cluster names (`<name>-<cluster>`) are at most 40 characters (the error stands at `clusters[i].name`)',
  'GKE cluster names are names GKE takes, one per project and location; GKE clusters on one mesh network share a VPC',
  '`trust.rootCa`: files or PEM text, a certificate with its key; `trust.rotateBefore` shorter than ' +
    '`trust.intermediateValidity`',
  '`app.waypoint` only with `istio.dataPlane: ambient`; ambient only with multi-primary and the default profile',
  '`istio.values` may not set what meshflow sets itself (the mesh ID, cluster name, network, ...)',
  "`stored` fields are meshflow's: a spec a user writes does not set them",
];

const code = (v: unknown) => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;

function typeOf(n: Node): string {
  if (n.const !== undefined) return code(n.const);
  if (n.enum) return n.enum.map(code).join(' \\| ');
  if (n.anyOf) return n.anyOf.map(typeOf).join(' or ');
  if (n.type === 'array') return `list of ${n.items ? typeOf(n.items) : 'values'}`;
  if (n.type === 'object' && !n.properties && typeof n.additionalProperties === 'object') {
    return `map of ${typeOf(n.additionalProperties)}`;
  }
  if (n.format) return `${n.type} (${n.format})`;
  return Array.isArray(n.type) ? n.type.join(' or ') : (n.type ?? 'any');
}

function bounds(n: Node): string {
  const out: string[] = [];
  if (n.minimum !== undefined || n.maximum !== undefined) out.push(`${n.minimum ?? ''}..${n.maximum ?? ''}`);
  if (n.minLength !== undefined && n.minLength > 1) out.push(`at least ${n.minLength} characters`);
  if (n.maxLength !== undefined) out.push(`at most ${n.maxLength} characters`);
  if (n.minItems !== undefined && n.minItems > 0) out.push(`at least ${n.minItems}`);
  if (n.maxItems !== undefined) out.push(`at most ${n.maxItems}`);
  if (n.pattern) out.push(`matches \`${n.pattern.replaceAll('|', '\\|')}\``);
  return out.join('; ');
}

function rows(n: Node, prefix: string, out: string[]): void {
  for (const [name, field] of Object.entries(n.properties ?? {})) {
    const at = `${prefix}${name}`;
    const required = n.required?.includes(name) && field.default === undefined;
    const dflt = field.default === undefined ? '' : code(field.default);
    const text = (field.description ?? '').replaceAll('|', '\\|').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
    out.push(`| \`${at}\`${required ? ' (required)' : ''} | ${typeOf(field)} | ${dflt} | ${bounds(field)} | ${text} |`);
    if (field.properties) rows(field, `${at}.`, out);
    if (field.items?.properties) rows(field.items, `${at}[].`, out);
  }
}

export function specReference(): string {
  const schema = meshJsonSchema() as Node;
  const table: string[] = [];
  rows(schema, '', table);
  return [
    '# The mesh spec: reference',
    '',
    "<!-- Made from the spec's schema by `meshflow schema --markdown > docs/spec-reference.md`; " +
      'a test compares them. -->',
    '',
    'Every field of a mesh spec (`kind: Mesh`), as `meshflow validate` accepts it. Unknown fields are errors; each',
    'error names the field and its line. The same schema, as JSON Schema, is',
    "[mesh-spec.schema.json](mesh-spec.schema.json): name it in a spec's first line",
    '(`# yaml-language-server: $schema=<path>/mesh-spec.schema.json`) and editors complete and check fields as ' +
      'you type.',
    '',
    '| field | type | default | bounds | what it is |',
    '| --- | --- | --- | --- | --- |',
    ...table,
    '',
    '## Rules across fields',
    '',
    ...RULES.map((r) => `- ${r}`),
    '',
  ].join('\n');
}
