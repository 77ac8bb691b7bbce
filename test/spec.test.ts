// Mesh specs: the examples are valid, and bad input is refused with the field path and the line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SpecError, loadMeshSpec, parseMeshSpec } from '../src/spec/load';

const examples = path.join(__dirname, '..', 'examples');

test.each(fs.readdirSync(examples).filter((f) => f.endsWith('.yaml')))('example %s is valid', (file) => {
  // existing-clusters.yaml names the user's own kubeconfig, which this machine lacks.
  const spec = loadMeshSpec(path.join(examples, file), { checkFiles: false });
  expect(spec.clusters.length).toBeGreaterThanOrEqual(2);
});

test('file references resolve against the spec file and must exist, named by field and line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spec-'));
  fs.writeFileSync(path.join(dir, 'root-cert.pem'), 'x');
  const file = path.join(dir, 'mesh.yaml');
  fs.writeFileSync(path.join(dir, 'app.yaml'), 'x');
  fs.writeFileSync(file, BASE + 'trust:\n  rootCa:\n    certFile: root-cert.pem\n    keyFile: ./keys/root-key.pem\napp:\n  manifests:\n    - { file: app.yaml, clusters: [east] }\n    - { file: gone.yaml, clusters: [west] }\n');
  const err = (() => {
    try {
      loadMeshSpec(file);
    } catch (e) {
      return e as SpecError;
    }
    throw new Error('spec was accepted');
  })();
  expect(err.problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`)).toEqual([
    `14:14 trust.rootCa.keyFile: ${dir}/keys/root-key.pem does not exist`,
    `18:15 app.manifests[1].file: ${dir}/gone.yaml does not exist`,
  ]);
  fs.mkdirSync(path.join(dir, 'keys'));
  fs.writeFileSync(path.join(dir, 'keys', 'root-key.pem'), 'x');
  fs.writeFileSync(path.join(dir, 'gone.yaml'), 'x');
  const spec = loadMeshSpec(file);
  expect(spec.trust.rootCa).toEqual({ certFile: `${dir}/root-cert.pem`, keyFile: `${dir}/keys/root-key.pem` });
  expect(spec.app.manifests.map((m) => m.file)).toEqual([`${dir}/app.yaml`, `${dir}/gone.yaml`]);
  fs.rmSync(dir, { recursive: true });
});

const BASE = `apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: demo
clusters:
  - name: east
    provider: local
    network: n1
  - name: west
    provider: local
    network: n2
`;

function problems(yaml: string) {
  try {
    parseMeshSpec(yaml, 'mesh.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return (err as SpecError).problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`);
  }
  throw new Error('spec was accepted');
}

test('defaults fill what a minimal spec leaves out', () => {
  const spec = parseMeshSpec(BASE);
  expect(spec).toMatchObject({ ttl: '4h', onFailure: 'delete', istio: { topology: 'multi-primary', profile: 'default' }, app: { sample: 'helloworld' } });
  expect(spec.clusters[0].role).toBe('primary');
});

test.each([
  ['an unknown top-level field, at its line', BASE + 'ttll: 2h\n', ['11:1 (document): unknown field "ttll"']],
  ['an unknown cluster field, at its line', BASE.replace('    network: n2\n', '    network: n2\n    netwrok: n3\n'), ['11:5 clusters[1]: unknown field "netwrok"']],
  ['a bad cluster name', BASE.replace('name: east', 'name: East_1'), [expect.stringMatching(/^5:11 clusters\[0\]\.name: must be a DNS label/)]],
  ['a duplicate cluster name', BASE.replace('name: west', 'name: east'), ['8:11 clusters[1].name: duplicate cluster name "east" (also clusters[0])']],
  ['an unknown provider', BASE.replace('provider: local\n    network: n2', 'provider: aws\n    network: n2'), [expect.stringMatching(/^9:15 clusters\[1\]\.provider: Invalid option/)]],
  ['a missing network, at the cluster', BASE.replace('    network: n1\n', ''), [expect.stringMatching(/^5:5 clusters\[0\]\.network: /)]],
  ['a TTL out of bounds', BASE + 'ttl: 90d\n', ['11:6 ttl: must be between 5m and 30d']],
  ['a TTL that is no duration', BASE + 'ttl: tomorrow\n', ['11:6 ttl: must be a duration such as 45m, 2h or 7d']],
  ['existing without its settings', BASE.replace('provider: local\n    network: n1', 'provider: existing\n    network: n1'), ['5:5 clusters[0].existing: provider "existing" needs a "existing:" section']],
  ['a remote in multi-primary', BASE.replace('network: n2\n', 'network: n2\n    role: remote\n    primary: east\n'), ['11:11 clusters[1].role: role: remote needs istio.topology: primary-remote']],
  ['a remote naming no primary', BASE.replace('network: n2\n', 'network: n2\n    role: remote\n') + 'istio: { topology: primary-remote }\n', ['8:5 clusters[1].primary: a remote cluster must name its primary']],
  ['a remote naming another remote', BASE.replace('network: n2\n', 'network: n2\n    role: remote\n    primary: west\n') + 'istio: { topology: primary-remote }\n', ['12:14 clusters[1].primary: "west" is not a primary cluster of this mesh']],
  ['no primary at all', BASE.replace('network: n1\n', 'network: n1\n    role: remote\n    primary: west\n').replace('network: n2\n', 'network: n2\n    role: remote\n    primary: east\n') + 'istio: { topology: primary-remote }\n', expect.arrayContaining(['5:3 clusters: at least one cluster must have role: primary'])],
  ['overlapping pod CIDRs', BASE.replace('network: n1\n', 'network: n1\n    podCidr: 10.0.0.0/14\n').replace('network: n2\n', 'network: n2\n    podCidr: 10.2.0.0/16\n'), ['8:14 clusters[0].podCidr: 10.0.0.0/14 overlaps podCidr 10.2.0.0/16 of cluster "west"']],
  ['placement naming an unknown cluster', BASE + 'app:\n  placement:\n    north: [v1]\n', ['13:12 app.placement.north: no cluster named "north" in this mesh']],
  ['a placement naming no part of the sample', BASE + 'app:\n  sample: online-boutique\n  placement:\n    east: [frontend, cartsrvice]\n', ['14:22 app.placement.east[1]: "cartsrvice" is not a part of online-boutique (its parts: frontend, productcatalogservice, recommendationservice, cartservice, emailservice, checkoutservice, paymentservice, currencyservice, shippingservice, adservice)']],
  ['a placement without a sample', BASE + 'app:\n  sample: none\n  placement:\n    east: [v1]\n', ['14:5 app.placement: placement places a sample: set app.sample, or list your own files under app.manifests']],
  ['manifests for an unknown cluster', BASE + 'app:\n  manifests:\n    - { file: a.yaml, clusters: [east, north] }\n', ['13:40 app.manifests[0].clusters[1]: no cluster named "north" in this mesh']],
  ['an Istio version the pinned istioctl does not render', BASE + 'istio: { version: 1.29.3 }\n', ['11:19 istio.version: must be a 1.31.x release such as 1.31.4: this build\'s pinned istioctl renders Istio 1.31']],
  ['the wrong kind', BASE.replace('kind: Mesh', 'kind: Cluster'), ['2:7 kind: Invalid input: expected "Mesh"']],
  ['invalid YAML', BASE + 'istio: [unclosed\n', [expect.stringMatching(/^\d+:\d+ \(yaml\): /)]],
  ['a duplicate key', BASE + 'name: again\n', [expect.stringMatching(/^11:1 \(yaml\): Map keys must be unique/)]],
])('refuses %s', (_what, yaml, expected) => {
  expect(problems(yaml)).toEqual(expected);
});

test('the error message names file, line, column and field', () => {
  expect(() => parseMeshSpec(BASE + 'ttl: 90d\n', 'mesh.yaml')).toThrow('mesh.yaml:11:6 ttl: must be between 5m and 30d');
});
