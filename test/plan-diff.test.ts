// The change `apply` makes, as data: which changes of a running mesh's spec are refused (and at
// which field), and which steps an accepted change adds, runs again and removes.
import { applyProblems, describeDelta, diffPlans, withRevisionOf } from '../src/plan/diff';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';

const mesh = (clusters: string, extra = '') =>
  parseMeshSpec(
    `apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: m
clusters:
${clusters}
${extra}`,
    '<spec>',
    { checkFiles: false },
  );

const two = () =>
  mesh(
    '  - { name: a, provider: local, network: n1 }\n  - { name: b, provider: local, network: n2 }',
    'app: { sample: helloworld, placement: { a: [v1], b: [v2] } }',
  );
const three = () =>
  mesh(
    '  - { name: a, provider: local, network: n1 }\n  - { name: b, provider: local, network: n2 }\n' +
      '  - { name: c, provider: local, network: n3 }',
    'app: { sample: helloworld, placement: { a: [v1], b: [v2], c: [v2] } }',
  );
const ids = (steps: Array<{ id: string }>) => steps.map((s) => s.id).sort();

test('an identical spec changes nothing', () => {
  expect(applyProblems(two(), two())).toEqual([]);
  const d = diffPlans(two(), two());
  expect(d.empty).toBe(true);
  expect(describeDelta(d)).toContain('nothing to change');
});

test('adding a cluster adds its steps and the links both ways with every primary, nothing else', () => {
  const d = diffPlans(two(), three());
  expect(d.addedClusters).toEqual(['c']);
  expect(ids(d.added)).toEqual(
    [
      'cacerts:c',
      'control-plane:c',
      'create-cluster:c',
      'deploy-app:c',
      'eastwest-gateway:c',
      'expose-services:c',
      'link:a->c',
      'link:b->c',
      'link:c->a',
      'link:c->b',
    ].sort(),
  );
  expect(d.rerun).toEqual([]);
  expect(d.removed).toEqual([]);
  expect(d.criticalPath.steps.at(-1)).toBe('verify');
  // And back: the same steps are removed.
  const back = diffPlans(three(), two());
  expect(ids(back.removed)).toEqual(ids(d.added));
  expect(back.unlinked).toHaveLength(4);
});

test('the app moving runs the deploys of the clusters whose part changes', () => {
  const moved = two();
  moved.app.placement = { a: [v(2)], b: [v(1)] };
  const d = diffPlans(two(), moved);
  expect(ids(d.rerun)).toEqual(['deploy-app:a', 'deploy-app:b']);
  expect(d.moved).toEqual(['a', 'b']);
  expect(d.added).toEqual([]);
});
const v = (n: number) => `v${n}`;

test('changes that cannot be made in place are refused at their field', () => {
  const problems = (next: MeshSpec, replace: string[] = []) =>
    applyProblems(two(), next, replace).map((p) => [p.path.join('.'), p.message]);
  const renamed = { ...two(), name: 'other' };
  expect(problems(renamed)[0][0]).toBe('name');
  const network = two();
  network.clusters[1].network = 'n9';
  expect(problems(network)).toEqual([['clusters.1.network', expect.stringMatching(/--replace b/)]]);
  // With --replace, the cluster may change: it is made anew.
  expect(problems(network, ['b'])).toEqual([]);
  expect(ids(diffPlans(two(), network, ['b']).removed)).toContain('create-cluster:b');
  expect(ids(diffPlans(two(), network, ['b']).added)).toContain('create-cluster:b');
  expect(problems(two(), ['zz'])[0][1]).toMatch(/the running mesh has no cluster zz/);
  const ttl = { ...two(), ttl: '8h' };
  expect(problems(ttl)).toEqual([['ttl', expect.stringMatching(/meshflow extend/)]]);
  const version = two();
  version.istio = { ...version.istio, topology: 'primary-remote' };
  expect(problems(version)[0][0]).toBe('istio.topology');
  const ambient = two();
  ambient.istio = { ...ambient.istio, dataPlane: 'ambient' };
  expect(problems(ambient)).toEqual([
    ['istio.dataPlane', expect.stringMatching(/^is ambient, the mesh runs sidecar: the data plane is chosen when/)],
  ]);
});

test('a primary that serves a remote goes, or is replaced, only with its remotes', () => {
  const hub = () =>
    mesh(
      '  - { name: p, provider: local, network: n1 }\n' +
        '  - { name: r, provider: local, network: n1, role: remote, primary: p }\n' +
        '  - { name: q, provider: local, network: n2 }',
      'istio: { topology: primary-remote }\napp: { sample: none }',
    );
  expect(applyProblems(hub(), hub(), ['p']).map((p) => p.message)).toEqual([
    expect.stringMatching(/replace its remotes with it \(--replace r\)/),
  ]);
  expect(applyProblems(hub(), hub(), ['p', 'r'])).toEqual([]);
});

test("where files are kept is not a change: a kubeconfig copied again, a root's store entry", () => {
  const existing = (kubeconfig: string, stored?: string) => {
    const spec = mesh(
      `  - { name: a, provider: existing, network: n1, existing: { kubeconfig: ${kubeconfig}, context: ctx } }`,
      'app: { sample: none }',
    );
    if (stored) spec.clusters[0].existing!.stored = stored;
    spec.trust = { ...spec.trust, rootCa: { certFile: '/r/cert.pem', keyFile: '/r/key.pem', stored } };
    return spec;
  };
  const running = existing('/old/kc', 'files/aaaa/clusters/a/kubeconfig');
  const next = existing('/new/kc', 'files/bbbb/clusters/a/kubeconfig');
  expect(applyProblems(running, next)).toEqual([]);
  expect(diffPlans(running, next).empty).toBe(true);
  const otherContext = existing('/new/kc');
  otherContext.clusters[0].existing!.context = 'elsewhere';
  expect(applyProblems(running, otherContext).map((p) => p.path.join('.'))).toEqual(['clusters.0.existing']);
});

test('after an upgrade, a file naming no revision applies as the mesh runs; another version: upgrade', () => {
  const running: MeshSpec = { ...two(), istio: { ...two().istio, version: '1.30.8', revision: '1-30-8' } };
  const file: MeshSpec = { ...two(), istio: { ...two().istio, version: '1.30.8' } };
  expect(applyProblems(running, file)).toEqual([]);
  const same = diffPlans(running, withRevisionOf(running, file));
  expect([same.empty, same.rerun]).toEqual([true, []]);
  // A cluster added to such a mesh is installed as the revision the others run.
  const bigger: MeshSpec = { ...three(), istio: { ...three().istio, version: '1.30.8' } };
  expect(withRevisionOf(running, bigger).istio.revision).toBe('1-30-8');
  const other: MeshSpec = { ...two(), istio: { ...two().istio, version: '1.31.4' } };
  expect(applyProblems(running, other)).toEqual([
    {
      path: ['istio', 'version'],
      message:
        'is 1.31.4, the mesh runs 1.30.8: Istio changes version by `meshflow upgrade m --to VERSION` ' +
        '(canary by revision), not by apply',
    },
  ]);
});
