// The mesh spec as JSON Schema: `meshflow schema` prints zod's own conversion, docs/ ships the
// same, every example names it for editors and passes a standard JSON Schema validator (Ajv, draft
// 2020-12), and the malformed corpus is refused by it wherever a schema can say what is wrong.
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { execa } from 'execa';
import YAML from 'yaml';
import { malformedSpecs } from '../src/chaos/malformed-specs';
import { JSON_SCHEMA_FILE, meshJsonSchema } from '../src/spec/json-schema';
import { specReference } from '../src/spec/reference';
import { meshSchema } from '../src/spec/schema';

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');
// Formats (the API server address is a "uri") are checked too, as editors check them.
const validate = addFormats(new Ajv2020({ allErrors: true, strict: false })).compile(meshJsonSchema());

test('`meshflow schema` prints the schema that docs/ ships, converted from the spec itself', async () => {
  const printed = JSON.parse((await execa(process.execPath, [cli, 'schema'])).stdout) as unknown;
  expect(printed).toEqual(meshJsonSchema());
  const shipped = JSON.parse(fs.readFileSync(path.join(root, JSON_SCHEMA_FILE), 'utf8')) as unknown;
  // When this fails: npx meshflow schema > docs/mesh-spec.schema.json && npx prettier --write docs
  expect(shipped).toEqual(meshJsonSchema());
});

const examples = fs
  .readdirSync(path.join(root, 'examples'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => path.join('examples', f));

test.each(examples)('%s names the schema for editors and is valid against it', (file) => {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  const modeline = /^# yaml-language-server: \$schema=(\S+)$/m.exec(text);
  expect(modeline).not.toBeNull();
  expect(path.resolve(root, path.dirname(file), modeline![1])).toBe(path.join(root, JSON_SCHEMA_FILE));
  const ok = validate(YAML.parse(text));
  expect({ file, errors: validate.errors ?? [] }).toEqual({ file, errors: [] });
  expect(ok).toBe(true);
});

test('the malformed corpus is refused by the schema wherever a schema can say what is wrong', () => {
  let refused = 0;
  let crossField = 0;
  for (const m of malformedSpecs()) {
    let data: unknown;
    try {
      data = YAML.parse(m.text, { uniqueKeys: true });
    } catch {
      continue; // not a document at all: YAML's own error, no schema involved
    }
    const issues = meshSchema.safeParse(data).error?.issues ?? [];
    // Only rules across fields (zod refinements, code "custom") are beyond a schema.
    if (issues.length > 0 && issues.every((i) => i.code === 'custom')) {
      crossField++;
      continue;
    }
    expect({ mutation: m.mutation, refusedBySchema: validate(data) === false }).toEqual({
      mutation: m.mutation,
      refusedBySchema: true,
    });
    refused++;
  }
  expect(refused).toBeGreaterThanOrEqual(80);
  expect(crossField).toBeGreaterThan(0);
});

test('docs/spec-reference.md is `meshflow schema --markdown`: every field of the schema, with its text', async () => {
  const shipped = fs.readFileSync(path.join(root, 'docs', 'spec-reference.md'), 'utf8');
  // When this fails: npx meshflow schema --markdown > docs/spec-reference.md
  expect(shipped).toBe(specReference());
  expect((await execa(process.execPath, [cli, 'schema', '--markdown'])).stdout + '\n').toBe(shipped);
  type Node = { properties?: Record<string, Node>; items?: Node; description?: string };
  const fields: Array<[string, Node]> = [];
  const walk = (n: Node, prefix: string) => {
    for (const [name, f] of Object.entries(n.properties ?? {})) {
      fields.push([`${prefix}${name}`, f]);
      walk(f, `${prefix}${name}.`);
      if (f.items) walk(f.items, `${prefix}${name}[].`);
    }
  };
  walk(meshJsonSchema() as Node, '');
  expect(fields.length).toBeGreaterThan(50);
  for (const [at, f] of fields) {
    // Each field has its row, and says what it is (editors show the same text on hover).
    expect({ at, row: shipped.includes(`| \`${at}\``), described: Boolean(f.description) }).toEqual({
      at,
      row: true,
      described: true,
    });
  }
});
