// `meshflow plan FILE --mermaid`: the step graph as a Mermaid flowchart. Read back from the text,
// it holds every step once, in its cluster's lane; its arrows imply every dependency of the plan
// and no other; the critical path's steps and arrows, and only those, are red.
import path from 'node:path';
import { execa } from 'execa';
import { renderMermaid } from '../src/plan/mermaid';
import { buildPlan, criticalPath } from '../src/plan/plan';
import { loadMeshSpec } from '../src/spec/load';

const root = path.resolve(__dirname, '..');

function readBack(text: string) {
  const lines = text.split('\n');
  const nodes = new Map<string, { label: string; lane: string }>();
  let lane = '';
  for (const l of lines) {
    const sub = /^ {2}subgraph \w+\["(.*)"\]$/.exec(l);
    if (sub) lane = sub[1];
    const node = /^ {4}(s\d+)\["(.*)"\]$/.exec(l);
    if (node) nodes.set(node[1], { label: node[2], lane });
  }
  const edges = lines.flatMap((l) => {
    const m = /^ {2}(s\d+) --> (s\d+)$/.exec(l);
    return m ? [[m[1], m[2]] as const] : [];
  });
  const red = (lines.find((l) => l.startsWith('  class '))?.split(' ')[3] ?? '').split(',');
  const redEdges = (lines.find((l) => l.startsWith('  linkStyle '))?.split(' ')[3] ?? '').split(',').map(Number);
  return { header: lines.slice(0, 2), nodes, edges, red, redEdges };
}

const closure = (pairs: ReadonlyArray<readonly [string, string]>) => {
  const deps = new Map<string, Set<string>>();
  for (const [from, to] of pairs) deps.set(to, new Set([...(deps.get(to) ?? []), from]));
  const all = (id: string, seen = new Set<string>()): Set<string> => {
    for (const d of deps.get(id) ?? []) if (!seen.has(d)) all(d, seen.add(d));
    return seen;
  };
  return (id: string) => [...all(id)].sort();
};

test.each(['two-clusters.yaml', 'primary-remote.yaml', 'demo-three-clusters.yaml', 'ambient.yaml'])(
  '%s: every step in its lane, every dependency implied, the critical path in red',
  (example) => {
    const plan = buildPlan(loadMeshSpec(path.join(root, 'examples', example), { checkFiles: false }));
    const { header, nodes, edges, red, redEdges } = readBack(renderMermaid(plan));
    expect(header[1]).toBe('flowchart LR');
    const idOf = new Map(plan.steps.map((s, i) => [s.id, `s${i}`]));
    expect(nodes.size).toBe(plan.steps.length);
    for (const s of plan.steps) {
      const node = nodes.get(idOf.get(s.id)!)!;
      expect(node.lane).toBe(s.cluster ? `cluster ${s.cluster}` : `mesh ${plan.mesh}`);
      expect(node.label.startsWith(s.kind)).toBe(true);
    }
    // The drawn arrows and the plan's dependencies wait for the same steps, directly or not.
    const drawn = closure(edges);
    const planned = closure(
      plan.steps.flatMap((s) => s.dependsOn.map((d) => [idOf.get(d)!, idOf.get(s.id)!] as const)),
    );
    for (const s of plan.steps) expect(drawn(idOf.get(s.id)!)).toEqual(planned(idOf.get(s.id)!));
    // Fewer arrows than dependencies where some are implied (verify waits for everything).
    expect(edges.length).toBeLessThan(plan.steps.reduce((n, s) => n + s.dependsOn.length, 0));
    const cp = criticalPath(plan).steps.map((id) => idOf.get(id)!);
    expect(red).toEqual(cp);
    expect(redEdges.map((i) => edges[i])).toEqual(cp.slice(1).map((to, i) => [cp[i], to]));
  },
);

test('plan --mermaid through the CLI, and refused beside --json', async () => {
  const cli = path.join(root, 'dist', 'cli', 'main.js');
  const ok = await execa(process.execPath, [cli, 'plan', 'examples/two-clusters.yaml', '--mermaid'], { cwd: root });
  expect(ok.stdout).toMatch(/^%% meshflow plan for mesh demo: \d+ steps, critical path ~\d+ s\nflowchart LR\n/);
  const both = await execa(process.execPath, [cli, 'plan', 'examples/two-clusters.yaml', '--mermaid', '--json'], {
    cwd: root,
    reject: false,
  });
  expect(both.exitCode).toBe(1);
  expect(both.stderr).toContain('--json and --mermaid: choose one');
});
