// A minimal client of istiod's CA: `istio.v1.auth.IstioCertificateService/CreateCertificate`, served
// on istiod's TLS gRPC port (15012 in a cluster), as a workload's agent asks it. The messages are
// hand-written as in ./xds.ts, numbered as in istio.io/api security/v1alpha1/ca.proto (csr 1,
// validity_duration 3, metadata 4; cert_chain 1).
//
// What istiod (1.31) does with a request: it authenticates the caller from the gRPC metadata, a
// Kubernetes token as `authorization: Bearer <jwt>` reviewed (TokenReview, audiences `istio-ca`
// unless TOKEN_AUDIENCES says otherwise) in the cluster that `clusterid` names (its own, or one it
// reads through a remote secret; none: its own). The certificate's only SAN is the caller's
// identity, spiffe://<mesh trustDomain>/ns/<ns>/sa/<sa>, whatever the CSR asks. The answer is the
// leaf, each certificate of cert-chain.pem, then the whole root-cert.pem as one last element. Any
// authentication failure comes back as UNAUTHENTICATED "request authenticate failure": the reason
// is only in istiod's log ("Failed to authenticate client from ...").
//
// Also: the certificate chain istiod serves on that port (its own serving certificate, issued from
// the same plugged-in CA), read with a bare TLS handshake that sends nothing.
import tls from 'node:tls';
import { Client, Metadata, credentials, status } from '@grpc/grpc-js';
import { Root, common } from 'protobufjs';
import { x509 } from '../pki/certs';

/** The name istiod's serving certificate carries, whatever address it is reached at. */
export const ISTIOD_SERVER_NAME = 'istiod.istio-system.svc';
/** The audience istiod's CA accepts tokens for (its TOKEN_AUDIENCES default). */
export const CA_TOKEN_AUDIENCE = 'istio-ca';

const METHOD = '/istio.v1.auth.IstioCertificateService/CreateCertificate';
const DEFAULT_TIMEOUT_MS = 10_000;

const field = (type: string, id: number, rule?: 'repeated') => ({ type, id, ...(rule ? { rule } : {}) });
const root = new Root();
Root.fromJSON(common.get('google/protobuf/struct.proto')!, root);
root.define('istio.v1.auth').addJSON({
  IstioCertificateRequest: {
    fields: {
      csr: field('string', 1),
      validityDuration: field('int64', 3),
      metadata: field('google.protobuf.Struct', 4),
    },
  },
  IstioCertificateResponse: { fields: { certChain: field('string', 1, 'repeated') } },
});
const Request = root.lookupType('istio.v1.auth.IstioCertificateRequest');
const Response = root.lookupType('istio.v1.auth.IstioCertificateResponse');

/**
 * istiod's CA said no, or could not be reached. `grpcCode` is the gRPC status; `code` says how
 * verify treats it: 503 for what may pass (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
 * ABORTED), 401 for UNAUTHENTICATED, 400 for the rest.
 */
export class CaRequestError extends Error {
  override name = 'CaRequestError';
  readonly code: number;

  constructor(
    message: string,
    readonly grpcCode: number,
  ) {
    super(message);
    const transient = [status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED, status.ABORTED];
    this.code = transient.includes(grpcCode) ? 503 : grpcCode === status.UNAUTHENTICATED ? 401 : 400;
  }
}

export interface CertificateRequest {
  /** The CSR, PEM. */
  csr: string;
  validitySeconds: number;
  /** A token of the service account the certificate is for, with audience CA_TOKEN_AUDIENCE. */
  token: string;
  /** The Istio cluster whose API reviews the token (the cluster of that service account). */
  clusterId: string;
}

/**
 * The certificate chain istiod's CA at `address` (host:port) signs for `req`: leaf first, the root
 * bundle last. The connection trusts only `trustedRoots` (PEM) and wants ISTIOD_SERVER_NAME, so the
 * token goes to no one else.
 */
export async function createCertificate(
  address: string,
  req: CertificateRequest,
  trustedRoots: string,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<string[]> {
  const { signal, timeoutMs = DEFAULT_TIMEOUT_MS } = opts;
  signal?.throwIfAborted();
  const client = new Client(address, credentials.createSsl(Buffer.from(trustedRoots)), {
    'grpc.ssl_target_name_override': ISTIOD_SERVER_NAME,
    'grpc.default_authority': ISTIOD_SERVER_NAME,
  });
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${req.token}`);
  metadata.set('clusterid', req.clusterId);
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const call = client.makeUnaryRequest(
        METHOD,
        (r: object) => Buffer.from(Request.encode(Request.fromObject(r)).finish()),
        (buf: Buffer) => Response.toObject(Response.decode(buf), { defaults: true }) as { certChain: string[] },
        { csr: req.csr, validityDuration: req.validitySeconds },
        metadata,
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          signal?.removeEventListener('abort', onAbort);
          if (signal?.aborted) return reject(signal.reason as Error);
          if (err) {
            const details = (err.details ?? err.message).replace(/\s*Resolution note:\s*$/, '');
            return reject(new CaRequestError(`istiod CA ${address}: ${status[err.code]}: ${details}`, err.code));
          }
          resolve(res!.certChain);
        },
      );
      const onAbort = () => call.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  } finally {
    client.close();
  }
}

/** The certificates istiod presents on `address` (host:port), leaf first, PEM; nothing is sent but a handshake. */
export function servedChain(
  address: string,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<string[]> {
  const { signal, timeoutMs = DEFAULT_TIMEOUT_MS } = opts;
  signal?.throwIfAborted();
  const i = address.lastIndexOf(':');
  return new Promise<string[]>((resolve, reject) => {
    const socket = tls.connect({
      host: address.slice(0, i),
      port: Number(address.slice(i + 1)),
      servername: ISTIOD_SERVER_NAME,
      ALPNProtocols: ['h2'],
      // Only read here: verifyChain judges the chain against the mesh root.
      rejectUnauthorized: false,
    });
    const onAbort = () => socket.destroy(signal!.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => signal?.removeEventListener('abort', onAbort));
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(Object.assign(new Error(`TLS handshake with ${address} timed out`), { code: 'ETIMEDOUT' })),
    );
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const pems: string[] = [];
      const seen = new Set<string>();
      for (let c = socket.getPeerCertificate(true); c?.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
        seen.add(c.fingerprint256);
        pems.push(x509.PemConverter.encode(c.raw, 'CERTIFICATE'));
      }
      socket.destroy();
      resolve(pems);
    });
  });
}
