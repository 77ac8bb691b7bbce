// The activities of the mesh workflow, as types only: workflow code imports this file, never the
// implementations (which do I/O).
import type { StepOutcome, StepRequest, UndoOutcome, UndoRequest } from '../steps/contract';

export type { UndoRequest } from '../steps/contract';

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
  verifyMesh(req: StepRequest): Promise<StepOutcome>;
  undoResource(req: UndoRequest): Promise<UndoOutcome | void>;
}
