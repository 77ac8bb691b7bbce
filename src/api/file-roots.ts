// Which files a spec sent to the API may name. The worker reads a spec's file references on its host
// (a root CA and its key, a kubeconfig, manifests), so without a bound any token could make it read
// any file there, another mesh's CA key included. The operator lists the directories API clients
// may name in MESHFLOW_API_FILE_ROOTS (none by default: no file references at all), and every
// reference must lie under one of them once symlinks and `..` are resolved.
import fs from 'node:fs';
import path from 'node:path';
import YAML, { LineCounter } from 'yaml';
import type { MeshSpec } from '../spec/schema';
import { ApiError, type Problem } from './errors';

export const FILE_ROOTS_VAR = 'MESHFLOW_API_FILE_ROOTS';

/** The directories, each resolved (realpath), from MESHFLOW_API_FILE_ROOTS (path-delimiter separated). */
export function fileRootsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const entries = (env[FILE_ROOTS_VAR] ?? '').split(path.delimiter).filter((e) => e.trim());
  return entries.map((entry, i) => {
    const where = `${FILE_ROOTS_VAR} entry ${i + 1} (${JSON.stringify(entry)})`;
    if (!path.isAbsolute(entry)) throw new Error(`${where}: must be an absolute directory`);
    let real: string;
    try {
      real = fs.realpathSync(entry);
    } catch (err) {
      throw new Error(`${where}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!fs.statSync(real).isDirectory()) throw new Error(`${where}: not a directory`);
    return real;
  });
}

/**
 * Every field of a spec that names a file the worker reads, with its path as `meshflow validate`
 * prints it (src/spec/schema.ts: trust.rootCa's three files, each manifest, each existing cluster's
 * kubeconfig). The test of this module checks the schema has no other field that names a file.
 */
export function specFileFields(spec: MeshSpec): Array<{ path: Array<string | number>; file: string }> {
  const fields: Array<{ path: Array<string | number>; file: string }> = [];
  const root = spec.trust.rootCa;
  for (const key of ['certFile', 'keyFile', 'chainFile'] as const) {
    const file = root?.[key];
    if (file !== undefined) fields.push({ path: ['trust', 'rootCa', key], file });
  }
  spec.app.manifests.forEach((m, i) => fields.push({ path: ['app', 'manifests', i, 'file'], file: m.file }));
  spec.clusters.forEach((c, i) => {
    if (c.existing) fields.push({ path: ['clusters', i, 'existing', 'kubeconfig'], file: c.existing.kubeconfig });
  });
  return fields;
}

/**
 * The file as the worker would reach it: symlinks resolved in the part that exists here, the rest
 * appended (it holds no `..`: the spec's paths leave the parser normalised and absolute).
 */
export function realPathOf(file: string): string {
  const rest: string[] = [];
  let dir = path.resolve(file);
  for (;;) {
    try {
      return path.join(fs.realpathSync(dir), ...rest.reverse());
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) return path.resolve(file);
      rest.push(path.basename(dir));
      dir = parent;
    }
  }
}

const within = (file: string, root: string) => {
  const rel = path.relative(root, file);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

const fieldName = (p: Array<string | number>) =>
  p.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${k}` : k), '');

/** 400 `file_not_allowed`, naming each field and the variable, unless every file the spec names is under a root. */
export function assertFilesAllowed(spec: MeshSpec, text: string, roots: string[]): void {
  const refused = specFileFields(spec).filter(({ file }) => !roots.some((r) => within(realPathOf(file), r)));
  if (!refused.length) return;
  const lines = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines });
  const allowed = roots.length
    ? `under none of the directories in ${FILE_ROOTS_VAR} (${roots.join(path.delimiter)})`
    : `not allowed: ${FILE_ROOTS_VAR} is not set, so specs sent to the API may name no file`;
  const problems: Problem[] = refused.map(({ path: p, file }) => {
    const real = realPathOf(file);
    const node = doc.getIn(p, true) as { range?: [number, number] } | undefined;
    const { line, col } = lines.linePos(node?.range?.[0] ?? 0);
    const message = `${file}${real !== file ? ` (${real})` : ''} is ${allowed}`;
    return {
      path: fieldName(p),
      message,
      line,
      column: col,
      text: `request:${line}:${col} ${fieldName(p)}: ${message}`,
    };
  });
  throw new ApiError(
    400,
    'file_not_allowed',
    `the spec names files the API may not: ${problems.map((p) => `${p.path} (${p.message})`).join('; ')}`,
    problems,
  );
}
