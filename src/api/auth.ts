// Bearer tokens for the HTTP API: where they come from, how a presented one is checked, and when
// the API may serve without any.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Context, MiddlewareHandler } from 'hono';
import { ApiError } from './errors';

/** A token and the name that stands for it in logs, memos and quotas (the token itself is never shown). */
export interface NamedToken {
  name: string;
  token: string;
}

/** The name of the token from MESHFLOW_API_TOKEN, and of every request when the API serves without tokens. */
export const DEFAULT_TOKEN_NAME = 'default';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Tokens from MESHFLOW_API_TOKEN (one, named `default`) and MESHFLOW_API_TOKEN_FILE: one a line,
 * `name:token` or a bare token (named `line-N` after its line); blank lines and # comments skipped.
 * A name is 1 to 64 letters, digits, `.`, `_` and `-`; names are unique.
 */
export function tokensFromEnv(env: NodeJS.ProcessEnv = process.env): NamedToken[] {
  const tokens: NamedToken[] = [];
  const single = env.MESHFLOW_API_TOKEN?.trim();
  if (single) tokens.push({ name: DEFAULT_TOKEN_NAME, token: single });
  const file = env.MESHFLOW_API_TOKEN_FILE;
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`MESHFLOW_API_TOKEN_FILE=${file}: ${(err as Error).message}`);
    }
    const before = tokens.length;
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const where = `MESHFLOW_API_TOKEN_FILE=${file} line ${i + 1}`;
      const colon = line.indexOf(':');
      const named = colon > 0 && NAME.test(line.slice(0, colon));
      const entry = named
        ? { name: line.slice(0, colon), token: line.slice(colon + 1).trim() }
        : { name: `line-${i + 1}`, token: line };
      if (!entry.token) throw new Error(`${where}: token ${entry.name} is empty`);
      if (/\s/.test(entry.token)) {
        throw new Error(`${where}: a token holds no whitespace (a name is letters, digits, ".", "_" and "-")`);
      }
      if (tokens.some((t) => t.name === entry.name)) throw new Error(`${where}: the name ${entry.name} is taken`);
      tokens.push(entry);
    });
    if (tokens.length === before) {
      throw new Error(
        `MESHFLOW_API_TOKEN_FILE=${file} holds no token ` +
          '(one a line, name:token or a token; blank lines and # comments are skipped)',
      );
    }
  }
  return tokens;
}

/** Tokens as the API takes them: bare ones (tests, the bench) are named `default`, or `token-N` when several. */
export function namedTokens(tokens: Array<string | NamedToken>): NamedToken[] {
  const bare = tokens.filter((t) => typeof t === 'string').length;
  return tokens.map((t, i) => {
    if (typeof t === 'string') return { name: bare === 1 ? DEFAULT_TOKEN_NAME : `token-${i + 1}`, token: t };
    if (!NAME.test(t.name)) throw new Error(`token name ${JSON.stringify(t.name)}: letters, digits, ".", "_", "-"`);
    return t;
  });
}

const LOOPBACK_HOSTS = ['127.0.0.1', '::1', '[::1]', 'localhost'];

/**
 * Refuses to serve without a token unless told to (--insecure-no-auth) and only this machine can
 * connect (a loopback host): anyone who reaches the API can create clusters and delete meshes.
 */
export function assertServable(host: string, tokens: unknown[], insecureNoAuth = false): void {
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
 * Checks a presented token against the configured ones in constant time: SHA-256 digests (32 bytes
 * whatever a token's length) compared with timingSafeEqual, against every configured token every
 * time. Answers the matching token's name, or undefined.
 */
export function tokenChecker(tokens: NamedToken[]): (presented: string) => string | undefined {
  const digests = tokens.map((t) => ({ name: t.name, digest: sha256(t.token) }));
  return (presented) => {
    const digest = sha256(presented);
    let name: string | undefined;
    for (const d of digests) if (crypto.timingSafeEqual(digest, d.digest)) name ??= d.name;
    return name;
  };
}

/** The name of the token a request came with (`default` when the API serves without tokens). */
export const tokenName = (c: Context): string => (c.get(TOKEN_NAME) as string | undefined) ?? DEFAULT_TOKEN_NAME;
export const TOKEN_NAME = 'tokenName';

/** Serving without tokens: every request is let in, as `default`. */
export const anonymous: MiddlewareHandler = async (c, next) => {
  c.set(TOKEN_NAME, DEFAULT_TOKEN_NAME);
  await next();
};

/**
 * `Authorization: Bearer <token>` on every request it guards; 401 with `WWW-Authenticate: Bearer`
 * otherwise. The token's name is kept on the request (see tokenName).
 */
export function bearerAuth(tokens: NamedToken[]): MiddlewareHandler {
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
    const name = valid(token);
    if (!name) {
      throw new ApiError(401, 'unauthorized', 'the bearer token is not one this API accepts', undefined, {
        'WWW-Authenticate': 'Bearer realm="meshflow", error="invalid_token"',
      });
    }
    c.set(TOKEN_NAME, name);
    await next();
  };
}
