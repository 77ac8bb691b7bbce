// HTTP calls to a running API as a client makes them: one connection per request, the path sent
// exactly as given, and event streams read until they close or the client leaves.
import http from 'node:http';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface CallOptions {
  body?: string | Buffer;
  type?: string;
  /** The bearer token; null: no Authorization header. */
  token: string | null;
  headers?: Record<string, string>;
}

export function call(port: number, method: string, urlPath: string, opts: CallOptions): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token}`;
  if (opts.type) headers['content-type'] = opts.type;
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json });
      });
    });
    // A server may answer (413) before it has read the whole body and close: the answer counts.
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? undefined : reject(err)));
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** An event stream held open: its status once the headers came, and `close()` to leave it. */
export interface OpenStream {
  status: Promise<number>;
  close(): void;
}

export function openStream(port: number, urlPath: string, token: string): OpenStream {
  let req!: http.ClientRequest;
  const status = new Promise<number>((resolve, reject) => {
    req = http.request(
      { host: '127.0.0.1', port, path: urlPath, headers: { authorization: `Bearer ${token}` }, agent: false },
      (res) => {
        res.resume();
        resolve(res.statusCode!);
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    req.end();
  });
  return { status, close: () => req.destroy() };
}
