// A plan as a Mermaid flowchart (`meshflow plan FILE --mermaid`): one lane (subgraph) per cluster
// and one for the mesh-wide steps, an arrow for each dependency that is not already implied by
// another (verify after "everything" is drawn from the steps nothing else waits for), and the
// critical path in red, its steps and its arrows.
import { type Plan, type Step, criticalPath } from './plan';

const seconds = (ms: number) => (ms < 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`);

/** A Mermaid-safe node id for a step id (`link:a->b` and the like). */
const nodeId = (index: number) => `s${index}`;

/** Text inside a quoted Mermaid label: quotes and angle brackets as entities. */
const label = (text: string) => text.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');

function stepLabel(s: Step): string {
  const what = s.kind === 'link' && s.target ? `${s.kind} → ${s.target}` : s.kind;
  return label(`${what}\n~${seconds(s.estimateMs)}`).replace('\n', '<br/>');
}

/** For each step, the steps it waits for directly or through others. */
function ancestors(plan: Plan): Map<string, Set<string>> {
  const byId = new Map(plan.steps.map((s) => [s.id, s]));
  const memo = new Map<string, Set<string>>();
  const of = (id: string): Set<string> => {
    const hit = memo.get(id);
    if (hit) return hit;
    const all = new Set<string>();
    for (const d of byId.get(id)?.dependsOn ?? []) {
      all.add(d);
      for (const a of of(d)) all.add(a);
    }
    memo.set(id, all);
    return all;
  };
  for (const s of plan.steps) of(s.id);
  return memo;
}

export function renderMermaid(plan: Plan): string {
  const index = new Map(plan.steps.map((s, i) => [s.id, i]));
  const cp = criticalPath(plan);
  const critical = new Set(cp.steps);
  const criticalEdges = new Set(cp.steps.slice(1).map((to, i) => `${cp.steps[i]}\u0000${to}`));
  const reach = ancestors(plan);
  const lines = [
    '%% meshflow plan for mesh ' + plan.mesh + `: ${plan.steps.length} steps, critical path ~${seconds(cp.estimateMs)}`,
    'flowchart LR',
  ];
  const lanes = new Map<string, Step[]>();
  for (const s of plan.steps) lanes.set(s.cluster ?? '', [...(lanes.get(s.cluster ?? '') ?? []), s]);
  let lane = 0;
  for (const [cluster, steps] of lanes) {
    lines.push(`  subgraph lane${lane++}["${label(cluster ? `cluster ${cluster}` : `mesh ${plan.mesh}`)}"]`);
    for (const s of steps) lines.push(`    ${nodeId(index.get(s.id)!)}["${stepLabel(s)}"]`);
    lines.push('  end');
  }
  const edges: Array<{ from: string; to: string }> = [];
  for (const s of plan.steps) {
    for (const d of s.dependsOn) {
      // Implied when another dependency of the step already waits for it.
      const implied = s.dependsOn.some((other) => other !== d && reach.get(other)?.has(d));
      if (!implied || criticalEdges.has(`${d}\u0000${s.id}`)) edges.push({ from: d, to: s.id });
    }
  }
  for (const e of edges) lines.push(`  ${nodeId(index.get(e.from)!)} --> ${nodeId(index.get(e.to)!)}`);
  lines.push('  classDef critical stroke:#d33,stroke-width:3px');
  if (critical.size) lines.push(`  class ${[...critical].map((id) => nodeId(index.get(id)!)).join(',')} critical`);
  const red = edges.flatMap((e, i) => (criticalEdges.has(`${e.from}\u0000${e.to}`) ? [i] : []));
  if (red.length) lines.push(`  linkStyle ${red.join(',')} stroke:#d33,stroke-width:3px`);
  return lines.join('\n') + '\n';
}
