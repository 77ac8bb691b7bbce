// Multi-primary on two networks, end to end on local clusters: two clusters (with the user's own
// root CA, then broken by hand for `verify` to diagnose) and three clusters (Online Boutique split
// over two of them, the user's own files in the third, Istio's observability addons on all three).
import { meshEndToEnd } from './helpers/mesh-e2e';

meshEndToEnd([
  ['two-clusters.yaml', 'e2e-two', { ownRoot: true, breakAndVerify: true }],
  ['three-clusters.yaml', 'e2e-three', { apps: true, addons: true }],
]);
