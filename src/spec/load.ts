// Reads a Mesh spec from YAML and validates it; every error names the field path and the line
// (and column) where the field, or the object that lacks it, stands in the file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML, { type Document, LineCounter, isNode } from 'yaml';
import { type MeshSpec, meshSchema } from './schema';

export interface SpecProblem {
  path: string;
  line: number;
  column: number;
  message: string;
}

export class SpecError extends Error {
  override name = 'SpecError';
  constructor(
    readonly file: string,
    readonly problems: SpecProblem[],
  ) {
    super(`${file}: invalid mesh spec:\n` + problems.map((p) => `  ${file}:${p.line}:${p.column} ${p.path}: ${p.message}`).join('\n'));
  }
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), '') || '(document)';
}

export interface ParseOptions {
  /** Relative file references (kubeconfigs, CA files) are resolved against this directory (default: the working directory). */
  baseDir?: string;
  /** Whether referenced files must exist (default: true). */
  checkFiles?: boolean;
}

/** The file references of a spec, by field path. */
function fileFields(spec: MeshSpec): Array<{ path: Array<string | number>; get: () => string; set: (v: string) => void }> {
  const fields: ReturnType<typeof fileFields> = [];
  const root = spec.trust.rootCa;
  if (root) {
    for (const key of ['certFile', 'keyFile', 'chainFile'] as const) {
      if (root[key] !== undefined) fields.push({ path: ['trust', 'rootCa', key], get: () => root[key]!, set: (v) => (root[key] = v) });
    }
  }
  spec.app.manifests.forEach((m, i) => fields.push({ path: ['app', 'manifests', i, 'file'], get: () => m.file, set: (v) => (m.file = v) }));
  spec.clusters.forEach((c, i) => {
    const existing = c.existing;
    if (existing) fields.push({ path: ['clusters', i, 'existing', 'kubeconfig'], get: () => existing.kubeconfig, set: (v) => (existing.kubeconfig = v) });
  });
  return fields;
}

export function parseMeshSpec(text: string, file = '<spec>', options: ParseOptions = {}): MeshSpec {
  const lines = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return { line, column: col };
  };
  if (doc.errors.length) {
    throw new SpecError(file, doc.errors.map((e) => ({ path: '(yaml)', ...at(e.pos[0]), message: e.message.split('\n')[0] })));
  }
  const result = meshSchema.safeParse(doc.toJS());
  if (result.success) {
    // Workers may run elsewhere in the file system: every file reference leaves here absolute.
    const problems: SpecProblem[] = [];
    for (const field of fileFields(result.data)) {
      const resolved = path.resolve(options.baseDir ?? process.cwd(), field.get().replace(/^~(?=$|\/)/, os.homedir()));
      field.set(resolved);
      if (options.checkFiles !== false && !fs.existsSync(resolved)) {
        problems.push({ path: formatPath(field.path), ...positionOf(doc, field.path, at), message: `${resolved} does not exist` });
      }
    }
    if (problems.length) throw new SpecError(file, problems);
    return result.data;
  }
  const problems = result.error.issues.map((issue) => {
    let pos = positionOf(doc, issue.path, at);
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      const key = issue.keys[0];
      const parent = doc.getIn(issue.path as Array<string | number>, true);
      if (YAML.isMap(parent)) {
        const pair = parent.items.find((p) => YAML.isScalar(p.key) && p.key.value === key);
        if (pair && isNode(pair.key) && pair.key.range) pos = at(pair.key.range[0]);
      }
    }
    return { path: formatPath(issue.path), ...pos, message };
  });
  throw new SpecError(file, problems);
}

/** Where the deepest node along `path` that exists stands: the field itself, or its parent when it is missing. */
function positionOf(doc: Document, issuePath: ReadonlyArray<PropertyKey>, at: (offset: number) => { line: number; column: number }) {
  for (let n = issuePath.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(issuePath.slice(0, n) as Array<string | number>, true);
    if (isNode(node) && node.range) return at(node.range[0]);
  }
  return { line: 1, column: 1 };
}

export function loadMeshSpec(file: string, options: Omit<ParseOptions, 'baseDir'> = {}): MeshSpec {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new SpecError(file, [{ path: '(file)', line: 0, column: 0, message: (err as Error).message }]);
  }
  return parseMeshSpec(text, file, { ...options, baseDir: path.dirname(path.resolve(file)) });
}
