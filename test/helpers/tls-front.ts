// TLS in front of a plain dev server, as a user's Temporal cluster or Temporal Cloud presents itself:
// certificates made with openssl (a CA, a server certificate for 127.0.0.1 and temporal.test, a
// client certificate for mTLS), a TLS terminator that pipes the bytes on, and an HTTP/2 proxy that
// records the request headers (to see an API key arrive as gRPC metadata).
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { execa } from 'execa';

export interface TestPki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await execa('openssl', args, { cwd: dir });
}

/** A CA and the certificates it signs, all under `dir` (EC P-256, valid for a day). */
export async function makePki(dir: string, cn = 'meshflow test CA'): Promise<TestPki> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-subj',
    `/CN=${cn}`,
    '-days',
    '1',
  ]);
  const leaf = async (name: string, ext: string) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    await openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`]); // prettier-ignore
  };
  await leaf('server', 'subjectAltName=DNS:temporal.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await leaf('client', 'extendedKeyUsage=clientAuth\n');
  const f = (name: string) => path.join(dir, name);
  return {
    dir,
    ca: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
  };
}

export interface Front {
  address: string;
  close(): Promise<void>;
}

function addressOf(server: net.Server): string {
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

/** Terminates TLS on 127.0.0.1 (requiring a client certificate with `mtls`) and pipes each connection to `upstream`. */
export async function tlsFront(pki: TestPki, upstream: string, mtls: boolean): Promise<Front> {
  const [host, port] = upstream.split(':');
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(
    {
      cert: fs.readFileSync(pki.serverCert),
      key: fs.readFileSync(pki.serverKey),
      ca: fs.readFileSync(pki.ca),
      requestCert: mtls,
      rejectUnauthorized: mtls,
      ALPNProtocols: ['h2'],
    },
    (socket) => {
      const back = net.connect(Number(port), host);
      for (const s of [socket, back]) {
        sockets.add(s);
        s.on('error', () => undefined).on('close', () => sockets.delete(s));
      }
      socket.pipe(back).pipe(socket);
    },
  );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: addressOf(server),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * An HTTP/2 proxy over TLS that forwards every gRPC call to `upstream` (plain HTTP/2) and keeps
 * each call's request headers in `seen`.
 */
export async function recordingProxy(
  pki: TestPki,
  upstream: string,
): Promise<Front & { seen: http2.IncomingHttpHeaders[] }> {
  const seen: http2.IncomingHttpHeaders[] = [];
  const back = http2.connect(`http://${upstream}`);
  back.on('error', () => undefined);
  const server = http2.createSecureServer({
    cert: fs.readFileSync(pki.serverCert),
    key: fs.readFileSync(pki.serverKey),
  });
  server.on('stream', (stream, headers) => {
    seen.push(headers);
    const forwarded = Object.fromEntries(Object.entries(headers).filter(([k]) => k !== ':authority'));
    const call = back.request(forwarded);
    stream.pipe(call);
    call.on('response', (h) => {
      const reply = Object.fromEntries(Object.entries(h).filter(([k]) => k !== ':status'));
      // A trailers-only answer (an error) ends in its headers.
      if ('grpc-status' in h) stream.respond({ ':status': h[':status'], ...reply }, { endStream: true });
      else stream.respond({ ':status': h[':status'], ...reply }, { waitForTrailers: true });
    });
    let trailers: http2.OutgoingHttpHeaders = {};
    call.on('trailers', (t) => (trailers = t));
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    call.on('data', (chunk: Buffer) => stream.write(chunk));
    call.on('end', () => (stream.writable ? stream.end() : undefined));
    for (const s of [stream, call]) s.on('error', () => undefined);
    stream.on('close', () => call.close());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    seen,
    address: addressOf(server),
    close: async () => {
      back.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
