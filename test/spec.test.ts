// Mesh specs: the examples are valid, and bad input is refused with the field path and the line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ISTIO_DEFAULT_VERSION, ISTIO_HUB, istioBuildOf } from '../src/istio/version';
import { controlPlaneOperator, eastWestOperator } from '../src/istio/manifests';
import { istioPlatformOf } from '../src/activities/deps';
import { OWNED_VALUES } from '../src/spec/istio-values';
import { SpecError, loadMeshSpec, parseMeshSpec } from '../src/spec/load';
import { localClusterName } from '../src/spec/names';
import { type MeshSpec, meshSchema, specWarnings } from '../src/spec/schema';
import { inAmbientMode } from '../src/istio/ambient';
import { upgradeSpec } from '../src/spec/upgrade';
import { buildPlan } from '../src/plan/plan';
import { applyProblems, diffPlans } from '../src/plan/diff';

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
  fs.writeFileSync(
    file,
    BASE +
      'trust:\n  rootCa:\n    certFile: root-cert.pem\n    keyFile: ./keys/root-key.pem\napp:\n  manifests:\n    - { file: app.yaml, clusters: [east] }\n    - { file: gone.yaml, clusters: [west] }\n',
  );
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
  expect(spec).toMatchObject({
    ttl: '4h',
    onFailure: 'delete',
    istio: { topology: 'multi-primary', profile: 'default' },
    app: { sample: 'helloworld' },
  });
  expect(spec.clusters[0].role).toBe('primary');
});

test.each([
  ['an unknown top-level field, at its line', BASE + 'ttll: 2h\n', ['11:1 (document): unknown field "ttll"']],
  [
    'an unknown cluster field, at its line',
    BASE.replace('    network: n2\n', '    network: n2\n    netwrok: n3\n'),
    ['11:5 clusters[1]: unknown field "netwrok"'],
  ],
  [
    'a bad cluster name',
    BASE.replace('name: east', 'name: East_1'),
    [expect.stringMatching(/^5:11 clusters\[0\]\.name: must be a DNS label/)],
  ],
  [
    'a duplicate cluster name',
    BASE.replace('name: west', 'name: east'),
    ['8:11 clusters[1].name: duplicate cluster name "east" (also clusters[0])'],
  ],
  [
    'an unknown provider',
    BASE.replace('provider: local\n    network: n2', 'provider: aws\n    network: n2'),
    [expect.stringMatching(/^9:15 clusters\[1\]\.provider: Invalid option/)],
  ],
  [
    'a missing network, at the cluster',
    BASE.replace('    network: n1\n', ''),
    [expect.stringMatching(/^5:5 clusters\[0\]\.network: /)],
  ],
  ['a TTL out of bounds', BASE + 'ttl: 90d\n', ['11:6 ttl: must be between 5m and 30d']],
  ['a TTL that is no duration', BASE + 'ttl: tomorrow\n', ['11:6 ttl: must be a duration such as 45m, 2h or 7d']],
  [
    'existing without its settings',
    BASE.replace('provider: local\n    network: n1', 'provider: existing\n    network: n1'),
    ['5:5 clusters[0].existing: provider "existing" needs a "existing:" section'],
  ],
  [
    'a remote in multi-primary',
    BASE.replace('network: n2\n', 'network: n2\n    role: remote\n    primary: east\n'),
    ['11:11 clusters[1].role: role: remote needs istio.topology: primary-remote'],
  ],
  [
    'a remote naming no primary',
    BASE.replace('network: n2\n', 'network: n2\n    role: remote\n') + 'istio: { topology: primary-remote }\n',
    ['8:5 clusters[1].primary: a remote cluster must name its primary'],
  ],
  [
    'a remote naming another remote',
    BASE.replace('network: n2\n', 'network: n2\n    role: remote\n    primary: west\n') +
      'istio: { topology: primary-remote }\n',
    ['12:14 clusters[1].primary: "west" is not a primary cluster of this mesh'],
  ],
  [
    'no primary at all',
    BASE.replace('network: n1\n', 'network: n1\n    role: remote\n    primary: west\n').replace(
      'network: n2\n',
      'network: n2\n    role: remote\n    primary: east\n',
    ) + 'istio: { topology: primary-remote }\n',
    expect.arrayContaining(['5:3 clusters: at least one cluster must have role: primary']),
  ],
  [
    'overlapping pod CIDRs',
    BASE.replace('network: n1\n', 'network: n1\n    podCidr: 10.0.0.0/14\n').replace(
      'network: n2\n',
      'network: n2\n    podCidr: 10.2.0.0/16\n',
    ),
    ['8:14 clusters[0].podCidr: 10.0.0.0/14 overlaps podCidr 10.2.0.0/16 of cluster "west"'],
  ],
  [
    'placement naming an unknown cluster',
    BASE + 'app:\n  placement:\n    north: [v1]\n',
    ['13:12 app.placement.north: no cluster named "north" in this mesh'],
  ],
  [
    'a placement naming no part of the sample',
    BASE + 'app:\n  sample: online-boutique\n  placement:\n    east: [frontend, cartsrvice]\n',
    [
      '14:22 app.placement.east[1]: "cartsrvice" is not a part of online-boutique (its parts: frontend, productcatalogservice, recommendationservice, cartservice, emailservice, checkoutservice, paymentservice, currencyservice, shippingservice, adservice)',
    ],
  ],
  [
    'a placement without a sample',
    BASE + 'app:\n  sample: none\n  placement:\n    east: [v1]\n',
    ['14:5 app.placement: placement places a sample: set app.sample, or list your own files under app.manifests'],
  ],
  [
    'manifests for an unknown cluster',
    BASE + 'app:\n  manifests:\n    - { file: a.yaml, clusters: [east, north] }\n',
    ['13:40 app.manifests[0].clusters[1]: no cluster named "north" in this mesh'],
  ],
  [
    'an Istio version of a line meshflow pins no build of',
    BASE + 'istio: { version: 1.29.3 }\n',
    [
      '11:19 istio.version: must be a patch release of an Istio line meshflow pins a build of: ' +
        '1.30.x (such as 1.30.8), 1.31.x (such as 1.31.4)',
    ],
  ],
  [
    'an Istio line only, without its patch release',
    BASE + 'istio: { version: "1.30" }\n',
    [expect.stringMatching(/^11:19 istio\.version: must be a patch release of an Istio line meshflow pins/)],
  ],
  ['the wrong kind', BASE.replace('kind: Mesh', 'kind: Cluster'), ['2:7 kind: Invalid input: expected "Mesh"']],
  ['invalid YAML', BASE + 'istio: [unclosed\n', ['11:8 (yaml): "[" is never closed by "]"']],
  ['a duplicate key', BASE + 'name: again\n', ['11:1 (yaml): duplicate key "name" (first at line 3)']],
])('refuses %s', (_what, yaml, expected) => {
  expect(problems(yaml)).toEqual(expected);
});

test('the error message names file, line, column and field', () => {
  expect(() => parseMeshSpec(BASE + 'ttl: 90d\n', 'mesh.yaml')).toThrow(
    'mesh.yaml:11:6 ttl: must be between 5m and 30d',
  );
});

/** What `meshflow validate` prints after "meshflow: " when the spec is refused. */
function printed(yaml: string): string {
  try {
    parseMeshSpec(yaml, 'mesh.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('spec was accepted');
}

const TAB = '(yaml): a tab indents this line: indent YAML with spaces';
const UNCLOSED = '(yaml): "[" is never closed by "]"';

describe('a YAML syntax error is one message: the first error, where it stands, no follow-on errors', () => {
  // Each of these used to print the parser's follow-on confusion too (a tab: 7 messages).
  test.each([
    ['a tab-indented line', BASE.replace('    network: n1', '\tnetwork: n1'), `7:1 ${TAB}`],
    ['a tab-indented top-level key', BASE.replace('kind: Mesh', '\tkind: Mesh'), `2:1 ${TAB}`],
    ['an unclosed [ before block content', BASE.replace('clusters:', 'clusters: ['), `4:11 ${UNCLOSED}`],
    ['an unclosed [ in a flow list', BASE + 'app:\n  placement:\n    east: [v1\n    west: [v2]\n', `13:11 ${UNCLOSED}`],
    ['an unclosed {', BASE + 'istio: { topology: multi-primary\napp: {}\n', '11:8 (yaml): "{" is never closed by "}"'],
    ['an unclosed quote', BASE.replace('name: demo', 'name: "x'), '3:7 (yaml): string quoted with " is never closed'],
    ['a duplicate key', BASE + 'name: again\n', '11:1 (yaml): duplicate key "name" (first at line 3)'],
    [
      'a duplicate key in a cluster',
      BASE.replace('    network: n2\n', '    network: n2\n    network: n3\n'),
      '11:5 (yaml): duplicate key "network" (first at line 10)',
    ],
    ['a second document', BASE + '---\n', '11:1 (yaml): a second YAML document ("---"): a mesh spec is one document'],
    [
      'a key indented too deep',
      BASE.replace('    network: n2', '     network: n2'),
      '10:6 (yaml): indented deeper than the key above it, which already has a value: align the two',
    ],
    [
      'two keys on one line',
      BASE.replace('name: demo', 'name: demo: two'),
      '3:7 (yaml): a second "key:" on one line: quote a value that holds ": "',
    ],
    [
      'a key indented too little',
      BASE.replace('    network: n2', '   network: n2'),
      '10:1 (yaml): indented less than the keys above it but more than their list: align it with those keys',
    ],
    [
      'a list item indented too little',
      BASE.replace('  - name: west', ' - name: west'),
      '8:1 (yaml): this list item is not aligned with the items above it',
    ],
    [
      'an alias to no anchor',
      BASE + 'ttl: *nope\n',
      '11:6 (yaml): Unresolved alias (the anchor must be set before the alias): nope',
    ],
  ])('%s', (_what, yaml, expected) => {
    expect(problems(yaml)).toEqual([expected]);
    expect(printed(yaml).split('\n')).toHaveLength(2);
  });

  test('what is printed', () => {
    const yaml = BASE.replace('    network: n1', '\tnetwork: n1');
    expect(printed(yaml)).toBe(`mesh.yaml: invalid mesh spec:\n  mesh.yaml:7:1 ${TAB}`);
  });

  test('a spec file with a syntax error', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spec-'));
    const file = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(file, BASE + 'app:\n  placement:\n    east: [v1\n');
    expect(() => loadMeshSpec(file)).toThrow(`${file}: invalid mesh spec:\n  ${file}:13:11 ${UNCLOSED}`);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('local cluster names', () => {
  const meshName = 'a-mesh-named-with-32-characters1';

  test('the helper names a local cluster after its mesh', () => {
    expect(localClusterName('demo', 'cluster1')).toBe('demo-cluster1');
  });

  test('a local cluster whose name with the mesh name is over 40 characters is refused at its name', () => {
    expect(meshName).toHaveLength(32);
    // 32 + "-" + 7 = 40: accepted; 41 is refused.
    const fits = BASE.replace('name: demo', `name: ${meshName}`).replace('name: west', 'name: west-12');
    expect(parseMeshSpec(fits).clusters[1].name).toBe('west-12');
    expect(problems(fits.replace('name: west-12', 'name: west-123'))).toEqual([
      `8:11 clusters[1].name: local cluster name "${meshName}-west-123" (name-clusters[1].name) is 41 characters, ` +
        'over the limit of 40: shorten name or clusters[1].name',
    ]);
  });

  test('existing clusters keep their own names: no limit from the mesh name', () => {
    const yaml = BASE.replace('name: demo', `name: ${meshName}`)
      .replaceAll('provider: local', 'provider: existing\n    existing: { kubeconfig: /k }')
      .replace('name: east', 'name: east-cluster-with-a-long-name');
    const spec = parseMeshSpec(yaml, 'mesh.yaml', { checkFiles: false });
    expect(spec.clusters[0].name).toBe('east-cluster-with-a-long-name');
  });
});

describe('provider gke', () => {
  const gke = (settings: string) =>
    BASE.replace('provider: local\n    network: n2', `provider: gke\n    gke: ${settings}\n    network: n2`);

  test('takes a project and a location, with defaults for the rest', () => {
    const spec = parseMeshSpec(gke('{ project: my-project-1, location: europe-west1 }'), 'mesh.yaml');
    expect(spec.clusters[1].gke).toEqual({
      project: 'my-project-1',
      location: 'europe-west1',
      nodeCount: 3,
      machineType: 'e2-standard-4',
      releaseChannel: 'REGULAR',
      network: 'default',
    });
  });

  test('each setting is checked at its line', () => {
    expect(problems(gke('{ project: X, location: europe-west1 }'))).toEqual([
      '10:21 clusters[1].gke.project: must be a GCP project ID such as my-project-123',
    ]);
    expect(problems(gke('{ project: my-project-1, location: europe, releaseChannel: FAST }'))).toEqual([
      '10:45 clusters[1].gke.location: must be a GCP region such as us-central1 or a zone such as us-central1-a',
      '10:69 clusters[1].gke.releaseChannel: must be one of RAPID, REGULAR, STABLE, EXTENDED',
    ]);
    // Without its settings: says what is missing.
    expect(problems(BASE.replace('provider: local\n    network: n2', 'provider: gke\n    network: n2'))).toEqual([
      '8:5 clusters[1].gke: provider "gke" needs a "gke:" section',
    ]);
  });

  test('two clusters of one mesh network must share a VPC', () => {
    const two = BASE.replace(
      'provider: local\n    network: n1',
      'provider: gke\n    gke: { project: proj-one-1, location: us-east1 }\n    network: n1',
    ).replace(
      'provider: local\n    network: n2',
      'provider: gke\n    gke: { project: proj-two-2, location: us-east1 }\n    network: n1',
    );
    expect(problems(two).join('\n')).toContain(
      'network "n1" is also clusters[0]\'s, in VPC proj-one-1/default; this cluster is in VPC proj-two-2/default',
    );
  });
});

describe('verify.controlPlane is gone', () => {
  test('a spec that still sets it is told to remove it', () => {
    expect(problems(BASE + 'verify:\n  controlPlane: true\n')).toEqual([
      '12:3 verify.controlPlane: no longer a setting: the control-plane checks always run ' +
        '(meshflow verify reruns them); remove it',
    ]);
  });

  test('a spec recorded by an earlier version (in a workflow history) upgrades to one the schema accepts', () => {
    const history = JSON.parse(fs.readFileSync(path.join(__dirname, 'histories', 'ready-then-expired.json'), 'utf8'));
    const payload = history.events[0].workflowExecutionStartedEventAttributes.input.payloads[0];
    const recorded = JSON.parse(Buffer.from(payload.data, 'base64').toString()).spec;
    expect(recorded.verify).toEqual({ controlPlane: true, traffic: { requests: 20 } });
    const spec = upgradeSpec(recorded);
    expect(spec.verify).toEqual({ traffic: { requests: 20 } });
    expect(meshSchema.parse(spec)).toEqual(spec);
  });

  test("today's specs carry no verify.controlPlane", () => {
    const verify: MeshSpec['verify'] = parseMeshSpec(BASE).verify;
    expect(verify).toEqual({ traffic: { requests: 20 } });
  });
});

describe('istio.values', () => {
  test("global.network is meshflow's: refused, naming the path, its line and where the value comes from", () => {
    const yaml = BASE + 'istio:\n  values:\n    global:\n      hub: my.mirror/istio\n      network: other\n';
    const refused = 'istio.values.global.network: set by meshflow from clusters[].network; remove it';
    expect(problems(yaml)).toEqual([`15:16 ${refused}`]);
    expect(printed(yaml)).toBe(`mesh.yaml: invalid mesh spec:\n  mesh.yaml:15:16 ${refused}`);
  });

  test.each([
    ['global.meshID', 'set by meshflow from name; remove it'],
    ['global.multiCluster.clusterName', 'set by meshflow from clusters[].name; remove it'],
    [
      'global.remotePilotAddress',
      "set by meshflow on remote clusters, from the address of their primary's east-west gateway; remove it",
    ],
    [
      'istiodRemote.injectionPath',
      'set by meshflow on remote clusters, from clusters[].name and clusters[].network; remove it',
    ],
    ['pilot.env.AMBIENT_ENABLE_MULTI_NETWORK', 'set by meshflow for ambient meshes (istio.dataPlane); remove it'],
    [
      'pilot.env.EXTERNAL_ISTIOD',
      'set by meshflow on primaries that serve remote clusters (istio.topology, clusters[].role); remove it',
    ],
    ['gateways.istio-ingressgateway.injectionTemplate', 'set by meshflow for the east-west gateway; remove it'],
    [
      'meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE',
      'set by meshflow so that pods resolve the services of other clusters; remove it',
    ],
  ])("%s is meshflow's: refused, naming the path and line", (dotted, message) => {
    // As a user would write it: one indented mapping per key.
    const keys = dotted.split('.');
    const nested = keys.map((key, i) => `${'  '.repeat(i + 2)}${key}:`).join('\n');
    const yaml = BASE + 'istio:\n  values:\n' + nested + ' "x"\n';
    const column = 2 * (keys.length + 1) + keys[keys.length - 1].length + 3;
    expect(problems(yaml)).toEqual([`${12 + keys.length}:${column} istio.values.${dotted}: ${message}`]);
  });

  test('that list is the list validation and rendering share', () => {
    expect(OWNED_VALUES.map((o) => o.path.join('.'))).toEqual([
      'global.meshID',
      'global.multiCluster.clusterName',
      'global.network',
      'global.remotePilotAddress',
      'istiodRemote.injectionPath',
      'pilot.env.EXTERNAL_ISTIOD',
      'pilot.env.AMBIENT_ENABLE_MULTI_NETWORK',
      'gateways.istio-ingressgateway.injectionTemplate',
      'meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE',
    ]);
  });

  test('a non-mapping where meshflow sets a value inside is refused', () => {
    const yaml = BASE + 'istio:\n  values:\n    global:\n      multiCluster: true\n';
    expect(problems(yaml)).toEqual([
      '14:21 istio.values.global.multiCluster: must be a mapping: meshflow sets global.multiCluster.clusterName in it',
    ]);
  });

  test("global.hub and global.tag stay the user's", () => {
    const yaml = BASE + 'istio:\n  values:\n    global: { hub: mirror.example/istio, tag: 1.31.4-distroless }\n';
    const spec = parseMeshSpec(yaml);
    const operators = [controlPlaneOperator(spec, spec.clusters[0]), eastWestOperator(spec, spec.clusters[0])];
    for (const op of operators as Array<{ spec: { values: { global: object } } }>) {
      expect(op.spec.values.global).toMatchObject({ hub: 'mirror.example/istio', tag: '1.31.4-distroless' });
    }
  });

  const PRIMARY_REMOTE = `apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: demo
clusters:
  - { name: east, provider: local, network: n1 }
  - { name: west, provider: local, network: n2, role: remote, primary: east }
istio:
  topology: primary-remote
  values:
    global:
      hub: mirror.example/istio
      proxy: { resources: { requests: { cpu: 50m } } }
      multiCluster: { enabled: true }
    pilot:
      resources: { requests: { memory: 1Gi } }
      env: { PILOT_ENABLE_FOO: "true" }
    istiodRemote:
      enabledLocalInjectorIstiod: false
    gateways:
      istio-ingressgateway:
        resources: { requests: { cpu: 20m } }
`;

  test("user values are deep-merged into every operator meshflow renders, beside meshflow's own", () => {
    const spec = parseMeshSpec(PRIMARY_REMOTE);
    const [east, west] = spec.clusters;
    const global = (cluster: string, network: string) => ({
      hub: 'mirror.example/istio',
      tag: ISTIO_DEFAULT_VERSION,
      proxy: { resources: { requests: { cpu: '50m' } } },
      meshID: 'demo',
      multiCluster: { enabled: true, clusterName: cluster },
      network,
    });
    const pilot = { resources: { requests: { memory: '1Gi' } }, env: { PILOT_ENABLE_FOO: 'true' } };
    const gateway = { resources: { requests: { cpu: '20m' } } };
    const dns = { defaultConfig: { proxyMetadata: { ISTIO_META_DNS_CAPTURE: 'true' } } };
    // The primary serving a remote: the user's pilot settings and meshflow's EXTERNAL_ISTIOD.
    expect(controlPlaneOperator(spec, east)).toEqual({
      apiVersion: 'install.istio.io/v1alpha1',
      kind: 'IstioOperator',
      spec: {
        profile: 'default',
        meshConfig: dns,
        values: {
          global: global('east', 'n1'),
          pilot: { ...pilot, env: { PILOT_ENABLE_FOO: 'true', EXTERNAL_ISTIOD: 'true' } },
          istiodRemote: { enabledLocalInjectorIstiod: false },
          gateways: { 'istio-ingressgateway': gateway },
        },
      },
    });
    // The remote: the user's istiodRemote settings, meshflow's injection path and pilot address.
    expect(controlPlaneOperator(spec, west, '203.0.113.9')).toEqual({
      apiVersion: 'install.istio.io/v1alpha1',
      kind: 'IstioOperator',
      spec: {
        profile: 'remote',
        meshConfig: dns,
        values: {
          global: { ...global('west', 'n2'), remotePilotAddress: '203.0.113.9' },
          pilot,
          istiodRemote: { enabledLocalInjectorIstiod: false, injectionPath: '/inject/cluster/west/net/n2' },
          gateways: { 'istio-ingressgateway': gateway },
        },
      },
    });
    // The east-west gateway: all of the user's values (not only global), with meshflow's gateway template.
    const eastWest = eastWestOperator(spec, east) as { spec: { profile: string; values: unknown } };
    expect(eastWest.spec.profile).toBe('empty');
    expect(eastWest.spec.values).toEqual({
      global: global('east', 'n1'),
      pilot,
      istiodRemote: { enabledLocalInjectorIstiod: false },
      gateways: { 'istio-ingressgateway': { ...gateway, injectionTemplate: 'gateway' } },
    });
    // Rendering leaves the spec as it was.
    expect(spec.istio.values).toEqual(parseMeshSpec(PRIMARY_REMOTE).istio.values);
  });

  test('a 1.30 release: its images, from the 1.30 build', () => {
    const spec = parseMeshSpec(BASE + 'istio: { version: 1.30.8 }\n');
    expect(spec.istio.version).toBe('1.30.8');
    expect(istioBuildOf(spec.istio.version)).toMatchObject({ line: '1.30', stamp: '1.30-9739e10eb9d7' });
    const values = (controlPlaneOperator(spec, spec.clusters[0]) as { spec: { values: { global: object } } }).spec
      .values;
    expect(values.global).toMatchObject({ hub: ISTIO_HUB, tag: '1.30.8' });
  });

  test("without user values: the release images of istio.version and meshflow's own values", () => {
    const spec = parseMeshSpec(BASE);
    expect((controlPlaneOperator(spec, spec.clusters[1]) as { spec: unknown }).spec).toEqual({
      profile: 'default',
      meshConfig: { defaultConfig: { proxyMetadata: { ISTIO_META_DNS_CAPTURE: 'true' } } },
      values: {
        global: {
          hub: ISTIO_HUB,
          tag: ISTIO_DEFAULT_VERSION,
          meshID: 'demo',
          multiCluster: { clusterName: 'west' },
          network: 'n2',
        },
      },
    });
  });

  test('every owned path is one that meshflow sets in some operator', () => {
    const spec = parseMeshSpec(PRIMARY_REMOTE);
    const [east, west] = spec.clusters;
    type Operator = { spec: { values: object; meshConfig?: object } };
    const ambient = {
      ...spec,
      istio: { ...spec.istio, topology: 'multi-primary' as const, dataPlane: 'ambient' as const },
    };
    const rendered = [
      controlPlaneOperator(spec, east),
      controlPlaneOperator(spec, west, '203.0.113.9'),
      eastWestOperator(spec, east),
      controlPlaneOperator(ambient, east),
    ];
    const get = (tree: unknown, keys: readonly string[]) =>
      keys.reduce<unknown>((node, k) => (node as Record<string, unknown> | undefined)?.[k], tree);
    const set = (op: Operator, keys: readonly string[]) =>
      keys[0] === 'meshConfig' ? get(op.spec.meshConfig, keys.slice(1)) : get(op.spec.values, keys);
    const unset = OWNED_VALUES.filter((o) => !(rendered as Operator[]).some((op) => set(op, o.path) !== undefined));
    expect(unset.map((o) => o.path.join('.'))).toEqual([]);
  });
});

describe('trust.intermediateValidity and trust.rotateBefore', () => {
  test.each([
    [
      'a validity under an hour',
      'intermediateValidity: 30m',
      '12:25 trust.intermediateValidity: must be between 1h and 3650d',
    ],
    [
      'not a duration',
      'intermediateValidity: soon',
      '12:25 trust.intermediateValidity: must be a duration such as 730d or 90d',
    ],
    ['rotation under 5m', 'rotateBefore: 1m', '12:17 trust.rotateBefore: must be at least 5m, or off'],
    [
      'rotation not before expiry',
      'intermediateValidity: 2h\n  rotateBefore: 3h',
      '13:17 trust.rotateBefore: must be shorter than trust.intermediateValidity (2h)',
    ],
  ])('%s is refused at its line', (_what, yaml, refused) => {
    expect(problems(BASE + `trust:\n  ${yaml}\n`)).toEqual([refused]);
  });

  test('off turns automatic rotation off', () => {
    expect(parseMeshSpec(BASE + 'trust:\n  rotateBefore: off\n').trust.rotateBefore).toBe('off');
  });
});

describe('trust.keyAlgorithm', () => {
  test('a new spec gets ECDSA P-256 CA keys; rsa-4096 is there on request', () => {
    const rotation = { intermediateValidity: '730d', rotateBefore: '30d' };
    expect(parseMeshSpec(BASE).trust).toEqual({ keyAlgorithm: 'ecdsa-p256', ...rotation });
    expect(parseMeshSpec(BASE + 'trust:\n  keyAlgorithm: rsa-4096\n').trust).toEqual({
      keyAlgorithm: 'rsa-4096',
      ...rotation,
    });
  });

  test.each([
    ['another key type', 'rsa-2048', '12:17'],
    ['a value of the wrong type', '4096', '12:17'],
    ['the upper case', 'ECDSA-P256', '12:17'],
  ])('%s is refused at its line, with the choices', (_what, value, at) => {
    const refused = `${at} trust.keyAlgorithm: must be one of ecdsa-p256, rsa-4096`;
    expect(problems(BASE + `trust:\n  keyAlgorithm: ${value}\n`)).toEqual([refused]);
  });

  test('beside your own root', () => {
    const yaml = BASE + 'trust:\n  keyAlgorithm: rsa-4096\n  rootCa: { certFile: /pki/r.pem, keyFile: /pki/k.pem }\n';
    expect(parseMeshSpec(yaml, 'mesh.yaml', { checkFiles: false }).trust).toEqual({
      keyAlgorithm: 'rsa-4096',
      intermediateValidity: '730d',
      rotateBefore: '30d',
      rootCa: { certFile: '/pki/r.pem', keyFile: '/pki/k.pem' },
    });
  });

  test('a spec recorded by an earlier version keeps the RSA 4096 keys that version made', () => {
    const before: string[] = [];
    for (const file of fs.readdirSync(path.join(__dirname, 'histories'))) {
      const history = JSON.parse(fs.readFileSync(path.join(__dirname, 'histories', file), 'utf8'));
      const payload = history.events[0].workflowExecutionStartedEventAttributes.input.payloads[0];
      const recorded = JSON.parse(Buffer.from(payload.data, 'base64').toString()).spec;
      const spec = upgradeSpec(recorded);
      // Recorded before the choice existed: RSA 4096, as then; since: the choice recorded.
      if (recorded.trust?.keyAlgorithm === undefined) before.push(file);
      expect(spec.trust.keyAlgorithm).toBe(recorded.trust?.keyAlgorithm ?? 'rsa-4096');
    }
    expect(before).toContain('ready-then-expired.json');
    const parsed = parseMeshSpec(BASE);
    const userRoot = { certFile: '/pki/root.pem', keyFile: '/pki/root.key' };
    const upgraded = upgradeSpec({ ...parsed, trust: { rootCa: userRoot } });
    // Rotation settings absent then: the defaults (they apply to intermediates made from now on).
    expect(upgraded.trust).toEqual({
      rootCa: userRoot,
      keyAlgorithm: 'rsa-4096',
      intermediateValidity: '730d',
      rotateBefore: '30d',
    });
    // Today's specs keep their choice through the upgrade every workflow and activity applies.
    expect(upgradeSpec(parsed)).toEqual(parsed);
  });
});

describe('addons', () => {
  test('none by default; a spec recorded before addons existed upgrades to none', () => {
    expect(parseMeshSpec(BASE).addons).toEqual([]);
    const { addons: _absent, ...recorded } = parseMeshSpec(BASE);
    expect(upgradeSpec(recorded).addons).toEqual([]);
    expect(buildPlan(parseMeshSpec(BASE)).steps.filter((s) => s.kind === 'addons')).toEqual([]);
  });

  test('an unknown addon is refused at its line, with the ones there are', () => {
    expect(problems(BASE + 'addons: [prometheus, grafna]\n')).toEqual([
      '11:22 addons[1]: must be one of prometheus, grafana, jaeger, kiali',
    ]);
  });

  test('an addon listed twice is refused', () => {
    expect(problems(BASE + 'addons: [kiali, kiali]\n')).toEqual(['11:9 addons: lists an addon more than once']);
  });

  test('each primary gets an addons step after its control plane; remotes none', () => {
    const remote = BASE.replace('    network: n2\n', '    network: n2\n    role: remote\n    primary: east\n');
    const spec = parseMeshSpec(remote + 'istio:\n  topology: primary-remote\naddons: [prometheus, kiali]\n');
    const steps = buildPlan(spec).steps.filter((s) => s.kind === 'addons');
    expect(steps.map((s) => [s.id, s.dependsOn])).toEqual([['addons:east', ['control-plane:east']]]);
    expect(steps[0].creates).toContain('prometheus, kiali');
  });
});

describe('drift', () => {
  test('checked every 10m and repaired by default; a spec recorded before drift detection upgrades to that', () => {
    expect(parseMeshSpec(BASE).drift).toEqual({ every: '10m', repair: true });
    const { drift: _absent, ...recorded } = parseMeshSpec(BASE);
    expect(upgradeSpec(recorded).drift).toEqual({ every: '10m', repair: true });
    expect(upgradeSpec({ ...recorded, drift: { repair: false } }).drift).toEqual({ every: '10m', repair: false });
    expect(parseMeshSpec(BASE + 'drift: { every: off, repair: false }\n').drift).toEqual({
      every: 'off',
      repair: false,
    });
  });

  test('an interval under a minute, or not a duration, is refused at its line', () => {
    expect(problems(BASE + 'drift: { every: 30s }\n')).toEqual([
      '11:17 drift.every: must be between 1m and 30d, or off',
    ]);
    expect(problems(BASE + 'drift: { every: never }\n')).toEqual([
      '11:17 drift.every: must be a duration such as 10m or 1h, or off',
    ]);
  });

  test('a running mesh takes new drift settings in place: nothing runs', () => {
    const current = parseMeshSpec(BASE);
    const next = parseMeshSpec(BASE + 'drift: { every: 1h, repair: false }\n');
    expect(applyProblems(current, next)).toEqual([]);
    expect(diffPlans(current, next).empty).toBe(true);
  });
});

describe('istio.dataPlane', () => {
  test('sidecar by default; ambient renders Istio ambient profile with the multi-network flag', () => {
    expect(parseMeshSpec(BASE).istio.dataPlane).toBe('sidecar');
    const spec = parseMeshSpec(BASE + 'istio:\n  dataPlane: ambient\n');
    const op = controlPlaneOperator(spec, spec.clusters[0]) as {
      spec: { profile: string; values: { pilot: { env: Record<string, string> } } };
    };
    expect(op.spec.profile).toBe('ambient');
    expect(op.spec.values.pilot.env).toEqual({ AMBIENT_ENABLE_MULTI_NETWORK: 'true' });
    expect(specWarnings(spec)).toEqual([]);
  });

  test('ambient with primary-remote is refused, as Istio does not support it, naming the field and line', () => {
    const yaml =
      BASE.replace('    network: n2\n', '    network: n2\n    role: remote\n    primary: east\n') +
      'istio:\n  topology: primary-remote\n  dataPlane: ambient\n  profile: demo\n';
    expect(problems(yaml)).toEqual([
      '15:14 istio.dataPlane: ambient is not supported with istio.topology primary-remote (Istio: ambient ' +
        'multi-network multicluster: Beta since 1.29, multi-primary only): use multi-primary, or dataPlane sidecar',
      `16:12 istio.profile: ambient installs Istio's ambient profile: leave istio.profile out (it is "demo")`,
    ]);
  });

  test('ambient on one network is valid but warned about (alpha in Istio)', () => {
    const spec = parseMeshSpec(BASE.replace('network: n2', 'network: n1') + 'istio:\n  dataPlane: ambient\n');
    expect(specWarnings(spec)).toEqual([
      {
        path: ['istio', 'dataPlane'],
        message: expect.stringContaining(
          'every cluster is on network "n1": ambient multicluster on one network is alpha',
        ),
      },
    ]);
  });

  test('an unknown data plane names the choices', () => {
    expect(problems(BASE + 'istio:\n  dataPlane: proxyless\n')).toEqual([
      '12:14 istio.dataPlane: Invalid option: expected one of "sidecar"|"ambient"',
    ]);
  });

  test('an ambient plan has an istio-east-west Gateway per network and no AUTO_PASSTHROUGH Gateway', () => {
    const plan = buildPlan(parseMeshSpec(BASE + 'istio:\n  dataPlane: ambient\n'));
    const kinds = plan.steps.map((s) => s.id);
    expect(kinds).toEqual(expect.arrayContaining(['eastwest-gateway:east', 'eastwest-gateway:west']));
    expect(kinds.filter((k) => k.startsWith('expose-services'))).toEqual([]);
    expect(plan.steps.find((s) => s.id === 'eastwest-gateway:east')?.creates).toContain('class istio-east-west');
  });
});

test('a deploy in ambient mode labels the namespaces for ambient and marks their Services global', () => {
  const objects = inAmbientMode([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'sample', labels: { 'istio-injection': 'enabled' } } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'plain', labels: { 'istio-injection': 'disabled' } } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'sample' } },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'b', namespace: 'sample', labels: { 'istio.io/global': 'false' } },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'c', namespace: 'plain' } },
  ]);
  expect(objects.map((o) => [o.metadata?.name, o.metadata?.labels ?? {}])).toEqual([
    ['sample', { 'istio.io/dataplane-mode': 'ambient' }],
    ['plain', { 'istio-injection': 'disabled' }],
    ['a', { 'istio.io/global': 'true' }],
    ['b', { 'istio.io/global': 'false' }],
    ['c', {}],
  ]);
});

test('a waypoint is for ambient meshes only, and goes to every ambient namespace of the deploy', () => {
  expect(problems(BASE + 'app:\n  waypoint: waypoint\n')).toEqual([
    "12:13 app.waypoint: waypoints are ambient's L7 proxies: set istio.dataPlane: ambient, or leave app.waypoint out",
  ]);
  const objects = inAmbientMode(
    [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'sample', labels: { 'istio-injection': 'enabled' } } }],
    'wp',
  );
  expect(objects).toEqual([
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'sample', labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'wp' } },
    },
    expect.objectContaining({
      kind: 'Gateway',
      metadata: { name: 'wp', namespace: 'sample', labels: { 'istio.io/waypoint-for': 'service' } },
      spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
    }),
  ]);
});

test("ambient on GKE renders Istio's GKE platform settings there, and only there", () => {
  const spec = parseMeshSpec(
    BASE.replace(
      'provider: local\n    network: n2',
      'provider: gke\n    gke: { project: proj-one-1, location: us-east1 }\n    network: n2',
    ) + 'istio:\n  dataPlane: ambient\n',
  );
  type Op = { spec: { values: { global: { platform?: string } } } };
  // As the control-plane and east-west steps render them: with the platform the cluster's provider names.
  const render = (m: MeshSpec, c: MeshSpec['clusters'][number]) =>
    controlPlaneOperator(m, c, undefined, undefined, {
      revision: m.istio.revision,
      platform: istioPlatformOf(c),
    }) as Op;
  const [local, gke] = spec.clusters.map((c) => render(spec, c));
  expect([local.spec.values.global.platform, gke.spec.values.global.platform]).toEqual([undefined, 'gke']);
  const eastWest = spec.clusters.map((c) => eastWestOperator(spec, c, istioPlatformOf(c)) as Op);
  expect(eastWest.map((o) => o.spec.values.global.platform)).toEqual([undefined, 'gke']);
  const sidecar = { ...spec, istio: { ...spec.istio, dataPlane: 'sidecar' as const } };
  expect(render(sidecar, spec.clusters[1]).spec.values.global.platform).toBeUndefined();
});
