// Reads a Mesh spec from YAML and validates it; every error names the field path and the line
// (and column) where the field, or the object that lacks it, stands in the file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML, { type CST, type Document, LineCounter, Parser, isNode } from 'yaml';
import { inlineRootProblems } from './pem';
import { type MeshSpec, specSchema } from './schema';

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
    heading = 'invalid mesh spec',
  ) {
    super(`${file}: ${heading}:\n` + problems.map((p) => `  ${problemLine(file, p)}`).join('\n'));
  }
}

/** A problem as `meshflow validate` prints it: `FILE:LINE:COLUMN FIELD: MESSAGE`. */
export function problemLine(file: string, p: SpecProblem): string {
  return `${file}:${p.line}:${p.column} ${p.path}: ${p.message}`;
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return (
    path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), '') ||
    '(document)'
  );
}

export interface ParseOptions {
  /**
   * Relative file references (kubeconfigs, CA files) are resolved against this directory (default: the working
   * directory). null: the spec has no directory (it came over the HTTP API), so every reference must be absolute.
   */
  baseDir?: string | null;
  /** Whether referenced files must exist (default: true). */
  checkFiles?: boolean;
}

/** The file references of a spec, by field path. */
function fileFields(
  spec: MeshSpec,
): Array<{ path: Array<string | number>; get: () => string; set: (v: string) => void }> {
  const fields: ReturnType<typeof fileFields> = [];
  const root = spec.trust.rootCa;
  if (root) {
    for (const key of ['certFile', 'keyFile', 'chainFile'] as const) {
      if (root[key] !== undefined)
        fields.push({ path: ['trust', 'rootCa', key], get: () => root[key]!, set: (v) => (root[key] = v) });
    }
  }
  spec.app.manifests.forEach((m, i) =>
    fields.push({ path: ['app', 'manifests', i, 'file'], get: () => m.file, set: (v) => (m.file = v) }),
  );
  spec.clusters.forEach((c, i) => {
    const existing = c.existing;
    if (existing)
      fields.push({
        path: ['clusters', i, 'existing', 'kubeconfig'],
        get: () => existing.kubeconfig,
        set: (v) => (existing.kubeconfig = v),
      });
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
  // One message per syntax error: what follows the first one is mostly the parser's confusion
  // about it, and a schema check of a broken document would only add noise.
  if (doc.errors.length) throw new SpecError(file, [syntaxProblem(text, doc, at)]);
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // An alias to an anchor that is not defined (or too many aliases): point at the first alias.
    const message = (err as Error).message.split('\n')[0];
    let pos = { line: 1, column: 1 };
    YAML.visit(doc, {
      Alias(_, alias) {
        if (alias.range) pos = at(alias.range[0]);
        return YAML.visit.BREAK;
      },
    });
    throw new SpecError(file, [{ path: YAML_PATH, ...pos, message }]);
  }
  const result = specSchema().safeParse(data);
  if (result.success) {
    // Workers may run elsewhere in the file system: every file reference leaves here absolute.
    const problems: SpecProblem[] = [];
    for (const field of fileFields(result.data)) {
      if (options.baseDir === null && !path.isAbsolute(field.get())) {
        problems.push({
          path: formatPath(field.path),
          ...positionOf(doc, field.path, at),
          message: `"${field.get()}" must be an absolute path on the worker's host: a spec sent over the API has no directory to resolve it against`,
        });
        continue;
      }
      const resolved = path.resolve(options.baseDir ?? process.cwd(), field.get().replace(/^~(?=$|\/)/, os.homedir()));
      field.set(resolved);
      if (options.checkFiles !== false && !fs.existsSync(resolved)) {
        problems.push({
          path: formatPath(field.path),
          ...positionOf(doc, field.path, at),
          message: `${resolved} does not exist`,
        });
      }
    }
    for (const p of inlineRootProblems(result.data)) {
      problems.push({ path: formatPath(p.path), ...positionOf(doc, p.path, at), message: p.message });
    }
    if (problems.length) throw new SpecError(file, problems);
    return result.data;
  }
  const problems = result.error.issues.map((issue) => {
    let pos = positionOf(doc, issue.path, at);
    let message = issue.message;
    let fieldPath: ReadonlyArray<PropertyKey> = issue.path;
    if (issue.code === 'unrecognized_keys') {
      message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      const removed = issue.keys.length === 1 ? REMOVED_FIELDS[formatPath([...issue.path, issue.keys[0]])] : undefined;
      if (removed) {
        message = removed;
        fieldPath = [...issue.path, issue.keys[0]];
      }
      const key = issue.keys[0];
      const parent = doc.getIn(issue.path as Array<string | number>, true);
      if (YAML.isMap(parent)) {
        const pair = parent.items.find((p) => YAML.isScalar(p.key) && p.key.value === key);
        if (pair && isNode(pair.key) && pair.key.range) pos = at(pair.key.range[0]);
      }
    }
    return { path: formatPath(fieldPath), ...pos, message };
  });
  throw new SpecError(
    file,
    problems.sort((a, b) => a.line - b.line || a.column - b.column),
  );
}

/** Fields earlier versions accepted, with what to do about them instead of a bare "unknown field". */
const REMOVED_FIELDS: Record<string, string> = {
  'verify.controlPlane':
    'no longer a setting: the control-plane checks always run (meshflow verify reruns them); remove it',
};

type At = (offset: number) => { line: number; column: number };

const YAML_PATH = '(yaml)';
const BETWEEN_INDENTS = 'indented less than the keys above it but more than their list: align it with those keys';

/** The first syntax error of a document, where it stands, in a few words. */
function syntaxProblem(text: string, doc: Document, at: At): SpecProblem {
  const first = [...doc.errors].sort((a, b) => a.pos[0] - b.pos[0])[0];
  // An unclosed bracket or quote shows up as errors further down: point at the opening instead.
  const unclosed = firstUnclosed(text);
  if (unclosed && unclosed.offset <= first.pos[0]) {
    return { path: YAML_PATH, ...at(unclosed.offset), message: unclosed.message };
  }
  let message = first.message.split('\n')[0];
  if (first.code === 'BLOCK_AS_IMPLICIT_KEY' && message.startsWith('Nested mappings')) {
    // A value followed by a line indented deeper: YAML reads both lines as one key.
    const multiline = doc.errors.find((e) => e.code === 'MULTILINE_IMPLICIT_KEY' && e.pos[0] === first.pos[0]);
    if (!multiline) {
      message = 'a second "key:" on one line: quote a value that holds ": "';
      return { path: YAML_PATH, ...at(first.pos[0]), message };
    }
    const { line } = at(multiline.pos[1]);
    const column = (text.split('\n')[line - 1].match(/^ */)?.[0].length ?? 0) + 1;
    message = 'indented deeper than the key above it, which already has a value: align the two';
    return { path: YAML_PATH, line, column, message };
  }
  if (first.code === 'TAB_AS_INDENT') message = 'a tab indents this line: indent YAML with spaces';
  else if (first.code === 'BLOCK_AS_IMPLICIT_KEY') message = 'this list item is not aligned with the items above it';
  else if (first.code === 'MULTIPLE_DOCS') message = 'a second YAML document ("---"): a mesh spec is one document';
  else if (first.code === 'DUPLICATE_KEY') message = duplicateKey(doc, first.pos[0], at) ?? message;
  else if (message.startsWith('Sequence item without - indicator')) message = BETWEEN_INDENTS;
  return { path: YAML_PATH, ...at(first.pos[0]), message };
}

/** The first flow collection ("[", "{") or quoted string that is never closed. */
function firstUnclosed(text: string): { offset: number; message: string } | undefined {
  const found: Array<{ offset: number; message: string }> = [];
  const walk = (token: unknown): void => {
    if (Array.isArray(token)) return token.forEach(walk);
    if (typeof token !== 'object' || token === null) return;
    const t = token as CST.Token;
    if (t.type === 'flow-collection') {
      const close = t.start.source === '[' ? ']' : '}';
      if (!t.end.some((e) => e.source === close)) {
        found.push({ offset: t.offset, message: `"${t.start.source}" is never closed by "${close}"` });
      }
    } else if (t.type === 'double-quoted-scalar' || t.type === 'single-quoted-scalar') {
      const closed = t.type === 'double-quoted-scalar' ? /^"(?:[^"\\]|\\.)*"$/s : /^'(?:[^']|'')*'$/s;
      if (!closed.test(t.source)) {
        found.push({ offset: t.offset, message: `string quoted with ${t.source[0]} is never closed` });
      }
    }
    for (const [key, value] of Object.entries(token)) if (key !== 'source' && typeof value === 'object') walk(value);
  };
  walk([...new Parser().parse(text)]);
  return found.sort((a, b) => a.offset - b.offset)[0];
}

/** "duplicate key "name" (first at line 3)" for the key that stands at `offset`. */
function duplicateKey(doc: Document, offset: number, at: At): string | undefined {
  let message: string | undefined;
  YAML.visit(doc, {
    Map(_, map) {
      const keyAt = (p: (typeof map.items)[number]) => (isNode(p.key) && p.key.range ? p.key.range[0] : -1);
      const dup = map.items.find((p) => keyAt(p) === offset);
      if (!dup || !YAML.isScalar(dup.key)) return undefined;
      const key = dup.key.value;
      const first = map.items.find((p) => YAML.isScalar(p.key) && p.key.value === key);
      const line = first && first !== dup ? ` (first at line ${at(keyAt(first)).line})` : '';
      message = `duplicate key "${String(key)}"${line}`;
      return YAML.visit.BREAK;
    },
  });
  return message;
}

/** Where the deepest node along `path` that exists stands: the field itself, or its parent when it is missing. */
function positionOf(doc: Document, issuePath: ReadonlyArray<PropertyKey>, at: At) {
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

/**
 * Problems found in a valid spec (a change `apply` refuses), placed at their fields in `file` as
 * `validate` places its own.
 */
export function locateProblems(
  file: string,
  problems: Array<{ path: Array<string | number>; message: string }>,
  text = fs.readFileSync(file, 'utf8'),
): SpecError {
  const lines = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines });
  const at = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return { line, column: col };
  };
  return new SpecError(
    file,
    problems.map((p) => ({ path: formatPath(p.path), ...positionOf(doc, p.path, at), message: p.message })),
    'cannot change the running mesh in place',
  );
}
