// Search attributes meshflow keeps current on every mesh workflow, so the Temporal Web UI and
// `meshflow list` can filter meshes (e.g. `MeshPhase = "ready"`).
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const MESH_SEARCH_ATTRIBUTES = {
  name: defineSearchAttributeKey('MeshName', SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey('MeshPhase', SearchAttributeType.KEYWORD),
  provider: defineSearchAttributeKey('MeshProvider', SearchAttributeType.KEYWORD),
  clusterCount: defineSearchAttributeKey('ClusterCount', SearchAttributeType.INT),
  /** The name of the API token whose request started the run (none for the CLI): the API's quota counts by it. */
  createdBy: defineSearchAttributeKey('MeshCreatedBy', SearchAttributeType.KEYWORD),
} as const;

/** The attributes as the operator API registers them (IndexedValueType: 2 = KEYWORD, 3 = INT). */
export function searchAttributeRegistrations(
  names: string[] = Object.values(MESH_SEARCH_ATTRIBUTES).map((k) => k.name),
): Record<string, number> {
  const all = Object.values(MESH_SEARCH_ATTRIBUTES);
  return Object.fromEntries(
    names.map((n) => [n, all.find((k) => k.name === n)!.type === SearchAttributeType.INT ? 3 : 2]),
  );
}
