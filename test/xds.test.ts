// The two xDS clients' failures, as a check reports them: an istiod that does not listen is
// "unreachable" (a transient fault of the check, not a verdict), within the wait, for both the
// sidecar's EDS (ADS) and the ztunnel's workload discovery (Delta xDS). Their answers are proven
// against real istiods in the end-to-end tests (mesh-e2e-*).
import { fetchWorkloads } from '../src/istio/workload-xds';
import { fetchEndpoints } from '../src/istio/xds';
import { freePort } from '../src/util/net';

test('an istiod that does not listen is unreachable, for a sidecar and for a ztunnel', async () => {
  const address = `127.0.0.1:${await freePort()}`;
  await expect(
    fetchEndpoints(address, { clusterId: 'c1', network: 'n1', namespace: 'sample' }, ['outbound|5000||h'], {
      timeoutMs: 5_000,
    }),
  ).rejects.toThrow(new RegExp(`^xDS ${address}: stream failed: unreachable`));
  await expect(fetchWorkloads(address, { clusterId: 'c1', network: 'n1' }, { timeoutMs: 5_000 })).rejects.toThrow(
    new RegExp(`^xDS ${address}: stream failed: unreachable`),
  );
});

test('a cancelled check ends the wait with its reason', async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const ctl = new AbortController();
  ctl.abort(new Error('step cancelled'));
  await expect(fetchWorkloads(address, { clusterId: 'c1', network: 'n1' }, { signal: ctl.signal })).rejects.toThrow(
    'step cancelled',
  );
});
