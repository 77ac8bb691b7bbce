// Traffic checks' reasoning: every placed cluster must answer, silence gets the hint that fits the
// path the requests take (east-west gateway across networks, pod firewall on one network), the
// ingress page must be the app's. Pods cannot run on this machine, so the pods and the ingress are
// a TEST DOUBLE (SimulatedPods below). On local clusters helloworld's requests go the same way and
// say they were answered by kwok's exec test double (the end-to-end tests run that one); other
// samples and the ingress say "not supported", never "passed".
import type { ClusterAccess } from '../src/adapters/providers';
import { messageOf } from '../src/adapters/port-forward';
import { type ExecResult, type TrafficPort, execProbes, execUnavailable, ingressProbes } from '../src/checks/traffic';
import { parseMeshSpec } from '../src/spec/load';

/** MF0501 then MF0502, as the registry runs them. */
const trafficChecks = async (...args: Parameters<typeof execProbes>) => [
  ...(await execProbes(...args)),
  ...(await ingressProbes(...args)),
];

const podOf = (cluster: string, version: string) => `helloworld-${version}-7f8d9-${cluster}`;

/** TEST DOUBLE: answers exec'd curl requests as the placed helloworld pods of the reachable clusters would. */
class SimulatedPods implements TrafficPort {
  requests = 0;
  constructor(
    private readonly answering: Record<string, string>,
    private readonly page = '<title>Online Boutique</title>',
  ) {}
  async exec(
    _access: ClusterAccess,
    _ns: string,
    _selector: string,
    _container: string,
    command: string[],
  ): Promise<ExecResult> {
    expect(command).toEqual(['curl', '-sS', 'helloworld.sample:5000/hello']);
    const clusters = Object.keys(this.answering);
    const cluster = clusters[this.requests++ % clusters.length];
    const version = this.answering[cluster];
    return version
      ? { stdout: `Hello version: ${version}, instance: ${podOf(cluster, version)}\n`, stderr: '', exitCode: 0 }
      : { stdout: '', stderr: 'curl: (56) Recv failure: Connection reset by peer', exitCode: 56 };
  }
  async podNames(_access: ClusterAccess, _ns: string, cluster: string): Promise<string[]> {
    const version = this.answering[cluster];
    return version ? ['curl-5d8f-xyz', podOf(cluster, version)] : [];
  }
  async ingressAddress(): Promise<string> {
    return '203.0.113.7';
  }
  async get(url: string): Promise<{ status: number; body: string }> {
    return { status: 200, body: url.endsWith('/') ? this.page : 'no' };
  }
}

const spec = (networks: [string, string], provider = 'existing', sample = 'helloworld') =>
  parseMeshSpec(
    `
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: t
clusters:
  - { name: east, provider: ${provider}, network: ${networks[0]}, podCidr: 10.1.0.0/16${provider === 'existing' ? ', existing: { kubeconfig: /k }' : ''} }
  - { name: west, provider: ${provider}, network: ${networks[1]}, podCidr: 10.2.0.0/16${provider === 'existing' ? ', existing: { kubeconfig: /k }' : ''} }
app: { sample: ${sample} }
verify: { traffic: { requests: 10 } }
`,
    'mesh.yaml',
    { checkFiles: false },
  );

const real =
  (local = false) =>
  (): ClusterAccess => ({ kubeconfig: '/k', apiServer: 'https://k', caData: '', local });
const beat = () => undefined;

test('every placed cluster answers: passed, with the count per cluster', async () => {
  const checks = await trafficChecks(spec(['n1', 'n2']), real(), new SimulatedPods({ east: 'v1', west: 'v2' }), beat);
  expect(checks).toEqual([
    {
      name: 'traffic',
      cluster: 'east',
      status: 'passed',
      detail: '10 requests from east (curl -sS helloworld.sample:5000/hello): east 5, west 5',
    },
    {
      name: 'traffic',
      cluster: 'west',
      status: 'passed',
      detail: '10 requests from west (curl -sS helloworld.sample:5000/hello): east 5, west 5',
    },
  ]);
});

test('two clusters running the same version are told apart by the pod that answered', async () => {
  const same = spec(['n1', 'n2']);
  same.app = { ...same.app, placement: { east: ['v2'], west: ['v2'] } };
  const checks = await trafficChecks(same, real(), new SimulatedPods({ east: 'v2', west: 'v2' }), beat);
  expect(checks.map((c) => `${c.status} ${c.detail}`)).toEqual([
    'passed 10 requests from east (curl -sS helloworld.sample:5000/hello): east 5, west 5',
    'passed 10 requests from west (curl -sS helloworld.sample:5000/hello): east 5, west 5',
  ]);
});

test('a cluster on another network that never answers points at the east-west gateway', async () => {
  const [first] = await trafficChecks(spec(['n1', 'n2']), real(), new SimulatedPods({ east: 'v1', west: '' }), beat);
  expect(first).toMatchObject({
    status: 'failed',
    detail: expect.stringMatching(
      /^west never answered; 10 requests from east .*: east 5, west 0, 5 failed \(curl: \(56\)/,
    ),
  });
  expect(first.hint).toContain('east-west gateway');
  expect(first.hint).not.toContain('firewall between the pod ranges');
});

test('a cluster on the same network that never answers points at the firewall between pod ranges', async () => {
  const [first] = await trafficChecks(spec(['n1', 'n1']), real(), new SimulatedPods({ east: 'v1', west: '' }), beat);
  expect(first.status).toBe('failed');
  expect(first.hint).toContain('open the firewall between the pod ranges (10.1.0.0/16, 10.2.0.0/16)');
});

test('Online Boutique is checked through the ingress: its page, not just any 200', async () => {
  const good = await trafficChecks(
    spec(['n1', 'n2'], 'existing', 'online-boutique'),
    real(),
    new SimulatedPods({}),
    beat,
  );
  expect(good).toEqual([
    { name: 'ingress', cluster: 'east', status: 'passed', detail: 'GET http://203.0.113.7/: 200, the expected page' },
  ]);
  const bad = await trafficChecks(
    spec(['n1', 'n2'], 'existing', 'online-boutique'),
    real(),
    new SimulatedPods({}, '<title>Welcome to nginx!</title>'),
    beat,
  );
  expect(bad[0]).toMatchObject({ status: 'failed', detail: 'GET http://203.0.113.7/: 200, not the expected page' });
});

test('on local clusters helloworld runs through exec and says the exec test double answered, not Envoy', async () => {
  const pods = new SimulatedPods({ east: 'v1', west: 'v2' });
  const checks = await trafficChecks(spec(['n1', 'n2'], 'local'), real(true), pods, beat);
  expect(checks.map((c) => [c.name, c.cluster, c.status])).toEqual([
    ['traffic', 'east', 'passed'],
    ['traffic', 'west', 'passed'],
  ]);
  for (const c of checks)
    expect(c.detail).toMatch(/: east 5, west 5; answered by meshflow's exec test double .*not Envoy$/);
  expect(pods.requests).toBe(20);
});

test('on local clusters other samples and the ingress are "not supported", never passed, nothing called', async () => {
  const pods = new SimulatedPods({ east: 'v1', west: 'v2' });
  const checks = await trafficChecks(spec(['n1', 'n2'], 'local', 'echo'), real(true), pods, beat);
  expect(checks.length).toBeGreaterThan(0);
  expect(checks.filter((c) => c.status !== 'not-supported')).toEqual([]);
  expect(checks.map((c) => c.name)).toEqual(expect.arrayContaining(['traffic', 'ingress']));
  expect(pods.requests).toBe(0);
});

/** TEST DOUBLE: an API server that cannot open the exec's WebSocket for `refusals` requests (503), then answers. */
class RefusingPods extends SimulatedPods {
  constructor(
    answering: Record<string, string>,
    private refusals: number,
    private readonly code = 503,
  ) {
    super(answering);
  }
  override async exec(...args: Parameters<SimulatedPods['exec']>): Promise<ExecResult> {
    if (this.refusals-- > 0) throw new Error(`Unexpected server response: ${this.code}`);
    return super.exec(...args);
  }
}

test('an exec the API server cannot open now is tried again, not counted as a failed request', async () => {
  const [first] = await trafficChecks(
    spec(['n1', 'n2']),
    real(),
    new RefusingPods({ east: 'v1', west: 'v2' }, 3),
    beat,
  );
  expect(first).toMatchObject({ status: 'passed', detail: expect.stringMatching(/: east 5, west 5$/) });
});

test('an API server that keeps refusing execs makes verify retry whole (ChecksUnavailable), never a failed check', async () => {
  const refusing = new RefusingPods({ east: 'v1', west: 'v2' }, 1000, 429);
  await expect(trafficChecks(spec(['n1', 'n2']), real(), refusing, beat)).rejects.toMatchObject({
    name: 'ChecksUnavailable',
    message: expect.stringContaining('could not be opened 4 times: Unexpected server response: 429'),
  });
});

test('an exec refused for good (403) is a failed request, as a definite answer', async () => {
  const [first] = await trafficChecks(
    spec(['n1', 'n2']),
    real(),
    new RefusingPods({ east: 'v1', west: 'v2' }, 1000, 403),
    beat,
  );
  expect(first).toMatchObject({ status: 'failed', detail: expect.stringContaining('Unexpected server response: 403') });
});

test('which exec failures say nothing about the mesh: the upgrade or the exec status refused with 5xx or 429', () => {
  const status = (statusCode: number) => Object.assign(new Error('exec failed: error dialing backend'), { statusCode });
  expect(
    [
      new Error('Unexpected server response: 503'),
      new Error('Unexpected server response: 429'),
      status(500),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }),
    ].map(execUnavailable),
  ).toEqual([true, true, true, true]);
  expect(
    [new Error('Unexpected server response: 403'), status(404), new Error('curl: (28) timed out')].map(execUnavailable),
  ).toEqual([false, false, false]);
});

test("a WebSocket's error event (what client-node rejects a refused upgrade with) is read for its status", () => {
  expect(execUnavailable({ type: 'error', message: 'Unexpected server response: 500' })).toBe(true);
  expect(messageOf({ type: 'error', error: new Error('socket hang up') })).toBe('socket hang up');
});
