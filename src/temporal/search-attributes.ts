// Search attributes meshflow keeps current on every mesh workflow, so the Temporal Web UI and
// `meshflow list` can filter meshes (e.g. `MeshPhase = "ready"`).
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const MESH_SEARCH_ATTRIBUTES = {
  name: defineSearchAttributeKey('MeshName', SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey('MeshPhase', SearchAttributeType.KEYWORD),
  provider: defineSearchAttributeKey('MeshProvider', SearchAttributeType.KEYWORD),
  clusterCount: defineSearchAttributeKey('ClusterCount', SearchAttributeType.INT),
} as const;
