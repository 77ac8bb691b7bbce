// Every malformed spec of the generated corpus (every field of a full spec mutated: wrong types,
// refused values, unknown keys, removed required fields, broken cross-field rules, YAML syntax
// errors) is refused with an error that names the mutated field and its line, and nothing starts.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { malformedSpecs } from '../src/chaos/malformed-specs';
import { SpecError, parseMeshSpec } from '../src/spec/load';
import { scratchDir } from './helpers/env';

const corpus = malformedSpecs();

test('the corpus covers every field with at least 100 malformed specs', () => {
  expect(corpus.length).toBeGreaterThanOrEqual(100);
  expect(new Set(corpus.map((m) => m.mutation)).size).toBe(corpus.length);
});

test.each(corpus.map((m) => [m.mutation, m] as const))('%s: refused, naming the field', (_name, m) => {
  let error: unknown;
  try {
    parseMeshSpec(m.text, 'corpus.yaml', { checkFiles: false });
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(SpecError);
  const problems = (error as SpecError).problems;
  const named = problems.filter(
    (p) => p.path === m.field || p.path.startsWith(`${m.field}.`) || p.path.startsWith(`${m.field}[`),
  );
  expect({ mutation: m.mutation, named: named.length > 0, problems }).toMatchObject({ named: true });
  expect(named[0].line).toBeGreaterThan(0);
  // A syntax error is one message, not a cascade of follow-on errors.
  if (m.field === '(yaml)') expect(problems).toHaveLength(1);
});

test('`meshflow up` refuses a malformed spec before it contacts Temporal', async () => {
  const dir = scratchDir('malformed');
  const file = path.join(dir, 'bad.yaml');
  fs.writeFileSync(file, corpus.find((m) => m.mutation === 'ttl: "forever"')!.text);
  // Nothing listens there: had `up` tried to start anything, it would say so instead.
  const r = await execa(process.execPath, [path.join(__dirname, '..', 'dist', 'cli', 'main.js'), 'up', file], {
    reject: false,
    env: { TEMPORAL_ADDRESS: '127.0.0.1:1', MESHFLOW_STATE_DIR: dir },
  });
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toMatch(/bad\.yaml:\d+:\d+ ttl: must be a duration/);
  expect(r.stderr).not.toMatch(/Temporal/);
  expect(fs.readdirSync(dir)).toEqual(['bad.yaml']);
});
