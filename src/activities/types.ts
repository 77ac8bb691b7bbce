// The activities of the mesh workflow, as types only: workflow code imports this file, never the
// implementations (which do I/O).
import type {
  ForgetOutcome,
  ForgetRequest,
  StepOutcome,
  StepRequest,
  VerifyRequest,
  UndoOutcome,
  RefreshTrustRequest,
  RootRequest,
  RotateIntermediateRequest,
  RevisionRequest,
  UndoRequest,
} from '../steps/contract';
import type { DriftBaselineRequest, DriftBaselineResult, DriftCheckRequest, DriftReport } from '../drift/types';

export type { ForgetOutcome, ForgetRequest, UndoRequest } from '../steps/contract';
export type { RefreshTrustRequest, RevisionRequest, RootRequest, RotateIntermediateRequest } from '../steps/contract';

export interface MeshActivities {
  preflightMesh(req: StepRequest): Promise<StepOutcome>;
  createCluster(req: StepRequest): Promise<StepOutcome>;
  createFirewall(req: StepRequest): Promise<StepOutcome>;
  createRootCa(req: StepRequest): Promise<StepOutcome>;
  installCacerts(req: StepRequest): Promise<StepOutcome>;
  installControlPlane(req: StepRequest): Promise<StepOutcome>;
  installEastWestGateway(req: StepRequest): Promise<StepOutcome>;
  exposeServices(req: StepRequest): Promise<StepOutcome>;
  exposeIstiod(req: StepRequest): Promise<StepOutcome>;
  linkClusters(req: StepRequest): Promise<StepOutcome>;
  deployApp(req: StepRequest): Promise<StepOutcome>;
  installAddons(req: StepRequest): Promise<StepOutcome>;
  verifyMesh(req: VerifyRequest): Promise<StepOutcome>;
  undoResource(req: UndoRequest): Promise<UndoOutcome | void>;
  /**
   * After a cluster's links are removed: waits until no remaining istiod lists it or hands out its
   * endpoints or its network's gateway (istiods meshflow runs; others cannot be asked from here).
   */
  awaitClusterForgotten(req: ForgetRequest): Promise<ForgetOutcome>;
  /**
   * A cluster's next intermediate CA (generation `generation`, from the mesh's root): its cacerts
   * replaced and its istiod issuing from it, or the previous one back in place (RotationNotTakenUp).
   */
  rotateIntermediate(req: RotateIntermediateRequest): Promise<StepOutcome>;
  /** meshflow's own root of the next generation, made and stored beside the current one. */
  addRoot(req: RootRequest): Promise<StepOutcome>;
  /** meshflow's own roots older than the request's generation, removed from the store. */
  retireRoots(req: RootRequest): Promise<StepOutcome>;
  /** A cluster's cacerts with the store's root bundle; waits until its istiod trusts exactly `roots`. */
  refreshTrust(req: RefreshTrustRequest): Promise<StepOutcome>;
  /** An upgrade: the revision's control plane installed beside the running one (no gateways, no tag). */
  installRevision(req: RevisionRequest): Promise<StepOutcome>;
  /** An upgrade: the cluster's default tag on the revision, its workloads restarted and injected by it. */
  switchRevision(req: RevisionRequest): Promise<StepOutcome>;
  /** An upgrade: the revision's istiod process on this machine stopped (its objects are undone from the ledger). */
  stopRevision(req: RevisionRequest): Promise<StepOutcome>;
  /** Digests of what the ledger's objects look like now (after a run), to compare later checks with. */
  baselineDrift(req: DriftBaselineRequest): Promise<DriftBaselineResult>;
  /** The ledger's objects that are gone, changed or not ours any more since the baseline. */
  checkDrift(req: DriftCheckRequest): Promise<DriftReport>;
}
