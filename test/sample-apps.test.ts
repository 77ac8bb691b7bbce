// The sample apps' manifests are consistent on their own, checked the way a cluster would find
// out too late: selectors that select, namespaces that exist, Services that have pods somewhere
// in the mesh, addresses that name a Service and port of the cluster they are dialled from,
// pinned images; and the probes expect answers only from clusters that run what answers.
import { SAMPLE_APPS, SAMPLE_NAMESPACE, type SampleName, deploymentNames } from '../src/istio/sample-apps';

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: Array<{ name: string; value: string }>;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: {
    selector?: Record<string, string> & { matchLabels?: Record<string, string> };
    ports?: Array<{ name: string; port: number; targetPort?: number }>;
    template?: { metadata: { labels: Record<string, string> }; spec: { containers: Container[] } };
  };
}

const CLUSTERS = ['cluster1', 'cluster2'];
const NAMES = Object.keys(SAMPLE_APPS) as SampleName[];

/** cluster -> its objects, for an app on its default placement over CLUSTERS */
function deployed(name: SampleName): Record<string, K8sObject[]> {
  const app = SAMPLE_APPS[name];
  const placement = app.defaultPlacement(CLUSTERS);
  return Object.fromEntries(CLUSTERS.map((c) => [c, app.manifests(c, placement) as K8sObject[]]));
}

const ofKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const containers = (objects: K8sObject[]) =>
  ofKind(objects, 'Deployment').flatMap((d) => d.spec!.template!.spec.containers);
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));

describe.each(NAMES)('%s on its default placement', (name) => {
  const byCluster = deployed(name);
  const all = Object.values(byCluster).flat();

  test('every Deployment selects its own pods', () => {
    for (const d of ofKind(all, 'Deployment')) {
      expect(selects(d.spec!.selector!.matchLabels!, d.spec!.template!.metadata.labels)).toBe(true);
    }
  });

  test('every Service selects the pods of a Deployment in some cluster', () => {
    const podLabels = ofKind(all, 'Deployment').map((d) => d.spec!.template!.metadata.labels);
    for (const s of ofKind(all, 'Service')) {
      const { matchLabels: _, ...selector } = s.spec!.selector!;
      expect({
        service: `${s.metadata.namespace}/${s.metadata.name}`,
        selected: podLabels.some((l) => selects(selector, l)),
      }).toEqual({ service: `${s.metadata.namespace}/${s.metadata.name}`, selected: true });
    }
  });

  test.each(CLUSTERS)('in %s every object is in a namespace created with it, once', (cluster) => {
    const objects = byCluster[cluster];
    const namespaces = new Set(ofKind(objects, 'Namespace').map((n) => n.metadata.name));
    for (const o of objects.filter((o) => o.kind !== 'Namespace')) {
      expect({
        object: `${o.kind} ${o.metadata.name}`,
        namespaceCreated: namespaces.has(o.metadata.namespace!),
      }).toEqual({ object: `${o.kind} ${o.metadata.name}`, namespaceCreated: true });
    }
    const keys = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  test('every image is pinned to a tag other than latest', () => {
    for (const { image } of containers(all)) {
      const tag = image.split('/').pop()!.split(':')[1];
      expect({ image, pinned: tag !== undefined && tag !== '' && tag !== 'latest' }).toEqual({ image, pinned: true });
    }
  });

  test('every Deployment requests resources', () => {
    for (const d of ofKind(all, 'Deployment')) {
      const c = d.spec!.template!.spec.containers[0] as Container & { resources?: { requests?: object } };
      expect(c.resources?.requests).toBeDefined();
    }
  });

  test('probes expect answers only from clusters that run something, and run from clients that exist', () => {
    const app = SAMPLE_APPS[name];
    const placement = app.defaultPlacement(CLUSTERS);
    const { exec, ingress } = app.probes(placement);
    for (const p of exec) {
      for (const c of Object.keys(p.answers)) expect(placement[c]?.length).toBeGreaterThan(0);
      const [key, value] = p.podSelector.split('=');
      const client = ofKind(byCluster[p.fromCluster], 'Deployment').find(
        (d) => d.metadata.namespace === p.namespace && d.spec!.template!.metadata.labels[key] === value,
      );
      expect(client?.spec!.template!.spec.containers.map((c) => c.name)).toContain(p.container);
    }
    for (const p of ingress) {
      expect(placement[p.cluster]?.length).toBeGreaterThan(0);
      expect(ofKind(byCluster[p.cluster], 'VirtualService')).not.toHaveLength(0);
    }
  });
});

describe('placements', () => {
  test('helloworld: one version per cluster, in order', () => {
    expect(SAMPLE_APPS.helloworld.defaultPlacement(['a', 'b', 'c'])).toEqual({ a: ['v1'], b: ['v2'], c: ['v3'] });
    expect(SAMPLE_APPS.helloworld.isComponent('v12')).toBe(true);
    expect(SAMPLE_APPS.helloworld.isComponent('latest')).toBe(false);
  });

  test('echo: both flavours everywhere', () => {
    expect(SAMPLE_APPS.echo.defaultPlacement(CLUSTERS)).toEqual({
      cluster1: ['injected', 'plain'],
      cluster2: ['injected', 'plain'],
    });
  });

  test('online-boutique: browsing in the first cluster, checkout and the rest in the second; all in one alone', () => {
    const app = SAMPLE_APPS['online-boutique'];
    const first = ['frontend', 'productcatalogservice', 'recommendationservice', 'cartservice'];
    const second = [
      'emailservice',
      'checkoutservice',
      'paymentservice',
      'currencyservice',
      'shippingservice',
      'adservice',
    ];
    const two = app.defaultPlacement(CLUSTERS);
    expect(Object.keys(two)).toEqual(CLUSTERS);
    expect([...two.cluster1].sort()).toEqual([...first].sort());
    expect([...two.cluster2].sort()).toEqual([...second].sort());
    expect([...app.defaultPlacement(['only']).only].sort()).toEqual([...first, ...second].sort());
    expect([...app.components].sort()).toEqual([...first, ...second].sort());
    expect(Object.keys(app.defaultPlacement(['a', 'b', 'c']))).toEqual(['a', 'b']);
  });

  test('caller-callee: caller in the first cluster, callee in the second; both in one alone', () => {
    const app = SAMPLE_APPS['caller-callee'];
    expect(app.defaultPlacement(CLUSTERS)).toEqual({ cluster1: ['caller'], cluster2: ['callee'] });
    expect(app.defaultPlacement(['only'])).toEqual({ only: ['caller', 'callee'] });
  });

  test('an unknown component is an error, not skipped', () => {
    expect(() => SAMPLE_APPS.echo.manifests('cluster1', { cluster1: ['injected', 'plian'] })).toThrow(/plian/);
  });

  test('a cluster that runs nothing gets nothing', () => {
    for (const name of NAMES)
      expect(
        SAMPLE_APPS[name].manifests('idle', { ...SAMPLE_APPS[name].defaultPlacement(CLUSTERS), idle: [] }),
      ).toEqual([]);
  });
});

describe('online-boutique', () => {
  const byCluster = deployed('online-boutique');

  test.each(CLUSTERS)('in %s every *_ADDR names a Service and port of that cluster', (cluster) => {
    const objects = byCluster[cluster];
    const ports = new Set(
      ofKind(objects, 'Service').flatMap((s) => s.spec!.ports!.map((p) => `${s.metadata.name}:${p.port}`)),
    );
    const addresses = containers(objects)
      .flatMap((c) => Object.entries(envOf(c)).filter(([k]) => k.endsWith('_ADDR')))
      // The frontend requires this variable but dials it only with ENABLE_ASSISTANT (not set).
      .filter(([k]) => k !== 'SHOPPING_ASSISTANT_SERVICE_ADDR');
    expect(addresses.length).toBeGreaterThan(0);
    for (const [k, v] of addresses) expect({ [k]: ports.has(v) }).toEqual({ [k]: true });
  });

  test('Services point at the ports their containers listen on, and go to every cluster', () => {
    const all = Object.values(byCluster).flat();
    for (const s of ofKind(all, 'Service')) {
      const d = ofKind(all, 'Deployment').find((x) => x.metadata.name === s.metadata.name)!;
      const env = envOf(d.spec!.template!.spec.containers[0]);
      const target = s.spec!.ports![0].targetPort;
      // PORT is how these images take their port; cartservice and redis use their defaults.
      if (env.PORT) expect(String(target)).toBe(env.PORT);
    }
    const names = (c: string) =>
      ofKind(byCluster[c], 'Service')
        .map((s) => s.metadata.name)
        .sort();
    expect(names('cluster1')).toEqual(names('cluster2'));
    expect(names('cluster1')).toHaveLength(11);
    expect(
      ofKind(Object.values(byCluster).flat(), 'Service').some((s) => s.metadata.name === 'frontend-external'),
    ).toBe(false);
  });

  test('the ingress route and its probe are where the frontend runs, redis with cartservice', () => {
    expect(ofKind(byCluster.cluster1, 'Gateway').map((g) => g.metadata.name)).toEqual(['frontend-gateway']);
    expect(ofKind(byCluster.cluster2, 'Gateway')).toEqual([]);
    expect(ofKind(byCluster.cluster1, 'Deployment').map((d) => d.metadata.name)).toContain('redis-cart');
    const { exec, ingress } = SAMPLE_APPS['online-boutique'].probes(
      SAMPLE_APPS['online-boutique'].defaultPlacement(CLUSTERS),
    );
    expect(exec).toEqual([]);
    expect(ingress).toEqual([{ cluster: 'cluster1', path: '/', expect: 'Online Boutique' }]);
  });
});

describe('caller-callee', () => {
  const byCluster = deployed('caller-callee');

  test("the caller's CALLEE_URL is the callee Service and port in the caller's cluster", () => {
    const caller = containers(byCluster.cluster1).find((c) => c.name === 'caller')!;
    const url = new URL(envOf(caller).CALLEE_URL);
    const [svc, ns] = url.hostname.split('.');
    const callee = ofKind(byCluster.cluster1, 'Service').find(
      (s) => s.metadata.name === svc && s.metadata.namespace === ns,
    );
    expect(callee?.spec!.ports!.map((p) => p.port)).toContain(Number(url.port));
    const pods = ofKind(byCluster.cluster2, 'Deployment').find((d) => d.metadata.name === 'callee')!;
    expect(pods.spec!.template!.spec.containers[0].args).toContain(`-listen=:${url.port}`);
  });

  test('the probe runs from the caller and knows the callee cluster by its reply', () => {
    const { exec } = SAMPLE_APPS['caller-callee'].probes(SAMPLE_APPS['caller-callee'].defaultPlacement(CLUSTERS));
    expect(exec).toHaveLength(1);
    expect(exec[0]).toMatchObject({
      fromCluster: 'cluster1',
      container: 'caller',
      command: ['sh', '-c', 'curl -sS "$CALLEE_URL"'],
    });
    expect(Object.keys(exec[0].answers)).toEqual(['cluster2']);
    expect('callee in cluster2\n').toMatch(new RegExp(exec[0].answers.cluster2));
  });
});

describe('answers tell clusters apart', () => {
  // What each server replies, from its own arguments, so a probe's answer patterns are checked
  // against the text the pods will really send.
  const echoText = (d: K8sObject) =>
    d.spec!.template!.spec.containers[0].args!.find((a) => a.startsWith('-text='))!.slice('-text='.length) + '\n';

  test('echo: the exec answers and ingress expectations match the servers placed there and no other', () => {
    const placement = { c1: ['injected', 'plain'], c10: ['injected'], c2: ['plain'] };
    const app = SAMPLE_APPS.echo;
    const replies = Object.fromEntries(
      Object.keys(placement).map((c) => [
        c,
        ofKind(app.manifests(c, placement) as K8sObject[], 'Deployment')
          .filter((d) => d.metadata.name === 'echo')
          .map((d) => ({ namespace: d.metadata.namespace, text: echoText(d) })),
      ]),
    );
    const { exec, ingress } = app.probes(placement);
    expect(exec.map((p) => p.fromCluster)).toEqual(['c1', 'c10', 'c2']);
    for (const [cluster, pattern] of Object.entries(exec[0].answers)) {
      for (const [other, rs] of Object.entries(replies)) {
        for (const r of rs.filter((x) => x.namespace === 'echo'))
          expect(new RegExp(pattern).test(r.text)).toBe(other === cluster);
      }
    }
    expect(Object.keys(exec[0].answers)).toEqual(['c1', 'c10']);
    expect(ingress).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ cluster: 'c2', path: '/echo/plain' }),
        expect.objectContaining({ cluster: 'c10', path: '/echo/injected' }),
      ]),
    );
    expect(ingress).toHaveLength(4);
    const plainOfC2 = ingress.find((p) => p.cluster === 'c2')!;
    expect(replies.c2[0].text).toMatch(new RegExp(plainOfC2.expect));
    expect(replies.c1.find((r) => r.namespace === 'echo-plain')!.text).not.toMatch(new RegExp(plainOfC2.expect));
  });

  test('echo: each cluster routes only the flavours it runs', () => {
    const placement = { c1: ['plain'], c2: ['injected'] };
    const vs = (c: string) =>
      ofKind(SAMPLE_APPS.echo.manifests(c, placement) as K8sObject[], 'VirtualService')[0] as unknown as {
        spec: {
          http: Array<{ match: Array<{ uri: { prefix: string } }>; route: Array<{ destination: { host: string } }> }>;
        };
      };
    expect(vs('c1').spec.http.map((r) => [r.match[0].uri.prefix, r.route[0].destination.host])).toEqual([
      ['/echo/plain', 'echo.echo-plain.svc.cluster.local'],
    ]);
    expect(vs('c2').spec.http.map((r) => r.match[0].uri.prefix)).toEqual(['/echo/injected']);
  });

  test('helloworld: a reply names its version, and so its cluster', () => {
    const placement = { cluster1: ['v1'], cluster2: ['v2', 'v3'] };
    const { exec } = SAMPLE_APPS.helloworld.probes(placement);
    expect(exec.map((p) => p.fromCluster)).toEqual(CLUSTERS);
    const { answers } = exec[0];
    expect('Hello version: v3, instance: helloworld-v3-5d8f9c-abcde\n').toMatch(new RegExp(answers.cluster2));
    expect('Hello version: v3, instance: helloworld-v3-5d8f9c-abcde\n').not.toMatch(new RegExp(answers.cluster1));
  });

  test('helloworld: versions without an image of their own run v1 told their version', () => {
    const v3 = (SAMPLE_APPS.helloworld.manifests('c', { c: ['v3'] }) as K8sObject[]).find(
      (o) => o.metadata.name === 'helloworld-v3',
    )!;
    const c = v3.spec!.template!.spec.containers[0];
    expect(c.image).toBe('docker.io/istio/examples-helloworld-v1:1.0');
    expect(envOf(c)).toEqual({ SERVICE_VERSION: 'v3' });
  });
});

test('deploymentNames lists each Deployment with its namespace', () => {
  expect(deploymentNames(SAMPLE_APPS.helloworld.manifests('c', { c: ['v1', 'v2'] }))).toEqual([
    { namespace: SAMPLE_NAMESPACE, name: 'helloworld-v1' },
    { namespace: SAMPLE_NAMESPACE, name: 'helloworld-v2' },
    { namespace: SAMPLE_NAMESPACE, name: 'curl' },
  ]);
});
