// A pod's ports reached as `kubectl port-forward` and istioctl reach them: through the API server's
// pods/portforward subresource (a WebSocket the API server joins to the kubelet of the pod's node),
// so a port the pod serves only to itself (istiod's debug and plaintext xDS ports) answers here.
// Each port gets a listener on 127.0.0.1 for the time of one call; each connection to it opens its
// own stream, as kubectl does.
import net from 'node:net';
import { Writable } from 'node:stream';
import * as k8s from '@kubernetes/client-node';

/** The WebSocket of one forwarded connection, as far as this module uses it. */
interface Stream {
  close(): void;
  on(event: 'close', listener: () => void): void;
}

/** A port-forward the kubelet or the API server refused or broke, with what it said. */
export class PortForwardError extends Error {
  constructor(
    message: string,
    readonly target: string,
    /** The API server's HTTP status when it refused the forward (5xx: try again; 403: no right). */
    readonly code?: number,
  ) {
    super(message);
    this.name = 'PortForwardError';
  }
}

export interface Forwarded {
  /** The local port that leads to each of the pod's ports. */
  local: Map<number, number>;
  /** `namespace/pod`, for messages. */
  target: string;
  /**
   * Runs a request through the forward; when it fails because the forward did (the kubelet said
   * why), the failure is that, a PortForwardError, not the request's own connection error.
   */
  through<T>(request: () => Promise<T>): Promise<T>;
}

/** Runs `fn` while `ports` of the pod are forwarded to listeners on 127.0.0.1; closes them all after. */
export async function withPortForward<T>(
  kc: k8s.KubeConfig,
  namespace: string,
  pod: string,
  ports: number[],
  fn: (f: Forwarded) => Promise<T>,
): Promise<T> {
  const target = `${namespace}/${pod}`;
  const forward = new k8s.PortForward(kc);
  const sockets = new Set<net.Socket>();
  const streams = new Set<Stream>();
  let failure: string | undefined;
  let status: number | undefined;
  const servers = await Promise.all(
    ports.map(async (port) => {
      const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
        const fail = (what: string) => {
          failure ??= `port-forward to ${target} port ${port}: ${what.trim()}`;
          socket.destroy();
        };
        const errors = new Writable({
          write(chunk: Buffer, _enc, done) {
            // The error stream's first frame carries only the port number, which the client strips.
            if (chunk.toString().trim()) fail(chunk.toString());
            done();
          },
        });
        forward.portForward(namespace, pod, [port], socket, errors, socket).then(
          (ws) => {
            const w = ws as unknown as Stream;
            streams.add(w);
            w.on('close', () => {
              streams.delete(w);
              socket.end();
            });
            if (socket.destroyed) w.close();
            else socket.on('close', () => w.close());
          },
          (err: unknown) => {
            const message = messageOf(err);
            status ??= Number(/Unexpected server response: (\d{3})/.exec(message)?.[1]) || undefined;
            fail(message);
          },
        );
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      return { port, server };
    }),
  );
  const local = new Map(servers.map(({ port, server }) => [port, (server.address() as net.AddressInfo).port]));
  try {
    return await fn({
      local,
      target,
      async through(request) {
        try {
          return await request();
        } catch (err) {
          if (failure) throw new PortForwardError(failure, target, status);
          throw err;
        }
      },
    });
  } finally {
    for (const w of streams) w.close();
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map(({ server }) => new Promise((resolve) => server.close(resolve))));
  }
}

/**
 * What a failed forward says: client-node rejects with an Error, or with the WebSocket's error
 * event (its message, e.g. "Unexpected server response: 500" when the kubelet is gone, or its error's).
 */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  const e = err as { message?: unknown; error?: unknown } | undefined;
  if (typeof e?.message === 'string' && e.message) return e.message;
  if (e?.error instanceof Error) return e.error.message;
  return typeof err === 'string' ? err : (JSON.stringify(err) ?? String(err));
}
