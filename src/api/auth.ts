// Bearer tokens for the HTTP API: where they come from, how a presented one is checked, and when
// the API may serve without any.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors';

/** Tokens from MESHFLOW_API_TOKEN (one) and MESHFLOW_API_TOKEN_FILE (one a line; blank lines and # comments skipped). */
export function tokensFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const tokens: string[] = [];
  const single = env.MESHFLOW_API_TOKEN?.trim();
  if (single) tokens.push(single);
  const file = env.MESHFLOW_API_TOKEN_FILE;
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`MESHFLOW_API_TOKEN_FILE=${file}: ${(err as Error).message}`);
    }
    const lines = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    if (!lines.length) {
      throw new Error(
        `MESHFLOW_API_TOKEN_FILE=${file} holds no token (one a line; blank lines and # comments are skipped)`,
      );
    }
    tokens.push(...lines);
  }
  return tokens;
}

const LOOPBACK_HOSTS = ['127.0.0.1', '::1', '[::1]', 'localhost'];

/**
 * Refuses to serve without a token unless told to (--insecure-no-auth) and only this machine can
 * connect (a loopback host): anyone who reaches the API can create clusters and delete meshes.
 */
export function assertServable(host: string, tokens: string[], insecureNoAuth = false): void {
  if (tokens.length) return;
  const set = 'set MESHFLOW_API_TOKEN (one token) or MESHFLOW_API_TOKEN_FILE (one token a line)';
  if (!insecureNoAuth) {
    throw new Error(
      `no API token: ${set}; to serve without one on this machine only, use --insecure-no-auth with a loopback --host (127.0.0.1, ::1, localhost)`,
    );
  }
  if (!LOOPBACK_HOSTS.includes(host.toLowerCase())) {
    throw new Error(
      `--insecure-no-auth is refused on --host ${host}: without a token the API listens only on a loopback host ` +
        `(127.0.0.1, ::1, localhost), where no other machine reaches it; ${set} to serve on ${host}`,
    );
  }
}

const sha256 = (s: string) => crypto.createHash('sha256').update(s, 'utf8').digest();

/**
 * Checks presented tokens against the configured ones in constant time: SHA-256 digests (32 bytes
 * whatever a token's length) compared with timingSafeEqual, against every configured token every time.
 */
export function tokenChecker(tokens: string[]): (presented: string) => boolean {
  const digests = tokens.map(sha256);
  return (presented) => {
    const digest = sha256(presented);
    let ok = false;
    for (const d of digests) ok = crypto.timingSafeEqual(digest, d) || ok;
    return ok;
  };
}

/** `Authorization: Bearer <token>` on every request it guards; 401 with `WWW-Authenticate: Bearer` otherwise. */
export function bearerAuth(tokens: string[]): MiddlewareHandler {
  const valid = tokenChecker(tokens);
  return async (c, next) => {
    const header = c.req.header('authorization');
    const token = header?.match(/^Bearer +(\S+) *$/i)?.[1];
    if (!token) {
      throw new ApiError(
        401,
        'unauthorized',
        header
          ? 'the Authorization header is not "Bearer <token>"'
          : 'this needs an Authorization: Bearer <token> header',
        undefined,
        { 'WWW-Authenticate': 'Bearer realm="meshflow"' },
      );
    }
    if (!valid(token)) {
      throw new ApiError(401, 'unauthorized', 'the bearer token is not one this API accepts', undefined, {
        'WWW-Authenticate': 'Bearer realm="meshflow", error="invalid_token"',
      });
    }
    await next();
  };
}
