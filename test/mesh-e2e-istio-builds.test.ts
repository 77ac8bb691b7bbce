// Another pinned Istio build than the default, end to end on local clusters: a two-cluster mesh of
// Istio 1.30 is rendered by the 1.30 istioctl and served by the 1.30 istiod, with every check passing.
import { meshEndToEnd } from './helpers/mesh-e2e';

meshEndToEnd([['two-clusters.yaml', 'e2e-istio130', { istioVersion: '1.30.8' }]]);
