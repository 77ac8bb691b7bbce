// The mesh spec as JSON Schema (draft 2020-12), converted from the zod schema by zod itself, so it
// cannot drift from what `meshflow validate` checks. It says what a schema can: fields, types,
// enums, patterns, bounds, defaults, unknown keys. Rules across fields (a waypoint only with the
// ambient data plane, unique cluster names, CIDRs that do not overlap...) are `validate`'s alone.
import { z } from 'zod';
import { meshSchema } from './schema';

/** Where the schema is kept in the repository, for editors (the examples' modeline) and the docs. */
export const JSON_SCHEMA_FILE = 'docs/mesh-spec.schema.json';

export function meshJsonSchema(): Record<string, unknown> {
  const converted = z.toJSONSchema(meshSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  const { $schema, ...rest } = converted;
  return {
    $schema,
    title: 'meshflow Mesh spec (apiVersion meshflow.dev/v1alpha1, kind Mesh)',
    description:
      'Fields, types, allowed values and defaults of a mesh spec. Rules across fields are checked by ' +
      '`meshflow validate`, which names the field and line of every problem.',
    ...rest,
  };
}
