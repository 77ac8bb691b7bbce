// Reads a Mesh spec from YAML and validates it; every error names the field path and the line
// (and column) where the field, or the object that lacks it, stands in the file.
import fs from 'node:fs';
import YAML, { LineCounter, isNode } from 'yaml';
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

export function parseMeshSpec(text: string, file = '<spec>'): MeshSpec {
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
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    // The deepest node that exists along the issue's path: the field itself, or its parent when it is missing.
    let pos = { line: 1, column: 1 };
    for (let n = issue.path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(issue.path.slice(0, n) as Array<string | number>, true);
      if (isNode(node) && node.range) {
        pos = at(node.range[0]);
        break;
      }
    }
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

export function loadMeshSpec(file: string): MeshSpec {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new SpecError(file, [{ path: '(file)', line: 0, column: 0, message: (err as Error).message }]);
  }
  return parseMeshSpec(text, file);
}
