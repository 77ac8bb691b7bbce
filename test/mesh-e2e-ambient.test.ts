// Ambient meshes (istio.dataPlane: ambient), end to end on local clusters: the two-network example
// with a waypoint (then broken by hand for `verify` to diagnose) and three clusters, two of them on one
// network (each with its east-west Gateway), each brought to ready with istiod's workload discovery
// checked as every cluster's ztunnel gets it.
import { meshEndToEnd } from './helpers/mesh-e2e';

meshEndToEnd([
  ['ambient.yaml', 'e2e-amb', { ambientBreaks: true, waypoint: 'waypoint' }],
  ['three-clusters.yaml', 'e2e-amb3', { ambient: true }],
]);
