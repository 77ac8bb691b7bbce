// Kubernetes TLS connections that resume their session. @kubernetes/client-node gives every
// request a new https.Agent: each request built a new secure context (the client key and CA parsed
// again) and made a full handshake on both sides, and a control-plane step makes a few hundred
// requests per cluster. On a small machine that cost the worker ~1 CPU-second per mesh in secure
// contexts alone, and the API servers their share of full handshakes, while the mesh waited on CPU.
// SharedTlsKubeConfig hands out one agent per set of TLS credentials: one secure context, and TLS
// sessions cached and resumed (an abbreviated handshake). Each request still has its own
// connection, closed after it, as before: nothing is kept open between requests.
import crypto from 'node:crypto';
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';

const agents = new Map<string, https.Agent>();
/** Credentials of clusters long gone would pile up in a long-lived worker: the oldest agents go. */
const MAX_AGENTS = 64;

/** The shared agent for the TLS settings of `agent` (a fresh one from the library); others as they are. */
export function sharedAgent<T>(agent: T): T {
  // Proxy agents (HTTP(S) or SOCKS proxies from the kubeconfig) are not https.Agent: left alone.
  if (!(agent instanceof https.Agent) || agent.constructor !== https.Agent) return agent;
  const o = (agent as https.Agent).options;
  const key = crypto
    .createHash('sha256')
    .update(JSON.stringify([o.ca, o.cert, o.key, o.pfx, o.passphrase, o.servername, o.rejectUnauthorized].map(text)))
    .digest('hex');
  let shared = agents.get(key);
  if (!shared) {
    shared = new https.Agent({ ...o, keepAlive: false });
    agents.set(key, shared);
    for (const [old, a] of agents) {
      if (agents.size <= MAX_AGENTS) break;
      agents.delete(old);
      a.destroy();
    }
  }
  return shared as T;
}

function text(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (Array.isArray(v)) return v.map(text);
  return v;
}

/** A KubeConfig whose typed clients and raw requests share one agent per set of credentials (see above). */
export class SharedTlsKubeConfig extends k8s.KubeConfig {
  override async applySecurityAuthentication(context: Parameters<k8s.KubeConfig['applySecurityAuthentication']>[0]) {
    await super.applySecurityAuthentication(context);
    const agent = context.getAgent();
    if (agent) context.setAgent(sharedAgent(agent));
  }

  override async applyToHTTPSOptions(opts: Parameters<k8s.KubeConfig['applyToHTTPSOptions']>[0]): Promise<void> {
    await super.applyToHTTPSOptions(opts);
    opts.agent = sharedAgent(opts.agent);
  }
}
