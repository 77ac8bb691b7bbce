// The checks verify runs (all at once; it reports them in this order), each bound once to its
// catalog code (./catalog.ts) by the domain module that implements it. A new check is a catalog
// entry, its implementation beside the others of its domain, and one line here;
// test/checks-registry.test.ts holds the three to each other.
import type { CheckResult } from '../steps/contract';
import type { CheckContext } from './context';
import { crossNetworkGateway, eastwestAddress, istiodAvailable, networkLabel } from './control-plane';
import type { CheckImpl } from './define';
import {
  ambientCaptureCheck,
  ambientWorkloadsCheck,
  analyzeCheck,
  crossNetworkEndpoints,
  discoveryCheck,
  injectionCheck,
  trustChainCheck,
} from './istio';
import { remoteSecret } from './links';
import { execProbes, ingressProbes } from './traffic';
import { cacerts, sameRoot } from './trust';

/** The traffic checks run their requests themselves (exec through the API, plain HTTP). */
const probes = (code: string, run: typeof execProbes): CheckImpl => ({
  code,
  run: (ctx: CheckContext): Promise<CheckResult[]> => run(ctx.spec, ctx.access, ctx.traffic, ctx.heartbeat),
});

export const REGISTRY: readonly CheckImpl[] = [
  cacerts,
  networkLabel,
  istiodAvailable,
  eastwestAddress,
  crossNetworkGateway,
  sameRoot,
  remoteSecret,
  discoveryCheck,
  crossNetworkEndpoints,
  ambientWorkloadsCheck,
  trustChainCheck,
  injectionCheck,
  ambientCaptureCheck,
  analyzeCheck,
  probes('MF0501', execProbes),
  probes('MF0502', ingressProbes),
];
