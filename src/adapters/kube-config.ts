// Kubernetes connections that are kept and reused. @kubernetes/client-node gives every request a
// new https.Agent, so each request opened a new TLS connection: a new secure context (the client
// key parsed again) and a full handshake on both sides. A control-plane step makes a few hundred
// requests per cluster, and on a small machine those handshakes cost the API servers and the
// worker CPU time that the mesh was waiting for. PooledKubeConfig hands out one keep-alive agent
// per set of TLS credentials instead; idle connections do not keep a process alive.
import crypto from 'node:crypto';
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';

const agents = new Map<string, https.Agent>();
/** Credentials of clusters long gone would pile up in a long-lived worker: the oldest agents are closed. */
const MAX_AGENTS = 64;

/** The keep-alive agent for the TLS settings of `agent` (a fresh one from the library); others as they are. */
export function pooledAgent<T>(agent: T): T {
  // Proxy agents (HTTP(S) or SOCKS proxies from the kubeconfig) are not https.Agent: left alone.
  if (!(agent instanceof https.Agent) || agent.constructor !== https.Agent) return agent;
  const o = (agent as https.Agent).options;
  const key = crypto
    .createHash('sha256')
    .update(JSON.stringify([o.ca, o.cert, o.key, o.pfx, o.passphrase, o.servername, o.rejectUnauthorized].map(text)))
    .digest('hex');
  let pooled = agents.get(key);
  if (!pooled) {
    pooled = new https.Agent({ ...o, keepAlive: true, maxSockets: 32 });
    agents.set(key, pooled);
    for (const [old, a] of agents) {
      if (agents.size <= MAX_AGENTS) break;
      agents.delete(old);
      a.destroy();
    }
  }
  return pooled as T;
}

function text(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (Array.isArray(v)) return v.map(text);
  return v;
}

/** A KubeConfig whose typed clients and raw requests reuse connections (see above). */
export class PooledKubeConfig extends k8s.KubeConfig {
  override async applySecurityAuthentication(context: Parameters<k8s.KubeConfig['applySecurityAuthentication']>[0]) {
    await super.applySecurityAuthentication(context);
    const agent = context.getAgent();
    if (agent) context.setAgent(pooledAgent(agent));
  }

  override async applyToHTTPSOptions(opts: Parameters<k8s.KubeConfig['applyToHTTPSOptions']>[0]): Promise<void> {
    await super.applyToHTTPSOptions(opts);
    opts.agent = pooledAgent(opts.agent);
  }
}
