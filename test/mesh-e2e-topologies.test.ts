// The other topologies, end to end on local clusters with three clusters each: multi-primary on
// one flat network (no east-west gateways) and primary-remote with two remotes across networks.
import { meshEndToEnd } from './helpers/mesh-e2e';

meshEndToEnd([
  ['one-network.yaml', 'e2e-flat', {}],
  ['primary-remote.yaml', 'e2e-pr', {}],
]);
