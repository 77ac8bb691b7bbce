// The codec endpoint the Temporal Web UI decodes payloads with (`/codec/decode`, `/codec/encode`):
// with payload encryption on, the server holds only ciphertext, and the UI, which runs in a browser,
// sends each payload it shows here. Same bearer token as every other route; CORS answers the UI's
// origin only, since the browser calls from there. Payloads it did not encrypt come back unchanged.
import type { HttpBindings } from '@hono/node-server';
import { type OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { ApiError } from './errors';
import { ErrorSchema } from './schemas';

const JSON_TYPE = 'application/json';
/** A Temporal payload may be 2 MiB, 2.7 MiB in base64; the UI may send several at once. */
export const CODEC_MAX_BODY_BYTES = 8 * 1024 * 1024;
export const CODEC_PATHS = ['/codec/decode', '/codec/encode'];

/** Base64 as zod's base64() takes it: padded, in groups of four. */
const base64 = () =>
  z
    .string()
    .base64()
    .openapi({ format: 'byte', pattern: '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$' });

const PayloadSchema = z
  .object({
    metadata: z.record(z.string(), base64()).optional(),
    data: base64().optional(),
  })
  .openapi('Payload', { description: 'a Temporal payload as proto3 JSON: metadata values and data in base64' });
const PayloadsSchema = z.object({ payloads: z.array(PayloadSchema) }).openapi('Payloads');

const json = <S extends z.ZodType>(schema: S, description: string) => ({
  content: { [JSON_TYPE]: { schema } },
  description,
});
const codecRoute = (verb: 'decode' | 'encode', summary: string) =>
  createRoute({
    method: 'post',
    path: `/codec/${verb}`,
    tags: ['codec'],
    summary,
    request: { body: { ...json(PayloadsSchema, 'the payloads'), required: true } },
    responses: {
      200: json(PayloadsSchema, 'the payloads, in the same order'),
      400: json(ErrorSchema, 'not {payloads: [{metadata, data}]} with base64 values'),
      401: json(ErrorSchema, 'no bearer token, or not one this API accepts'),
      413: json(ErrorSchema, 'the body is over 8 MiB'),
      415: json(ErrorSchema, 'the Content-Type is not application/json'),
      422: json(ErrorSchema, 'a payload is encrypted with a key this server does not have, or does not decrypt'),
    },
  });

export const codecRoutes = {
  codecDecode: codecRoute('decode', 'Decrypt payloads (for the Temporal Web UI); others pass through'),
  codecEncode: codecRoute('encode', 'Encrypt payloads with the current key (none configured: unchanged)'),
};

/**
 * CORS for the codec paths: `Access-Control-Allow-Origin` only for `uiOrigin` (the Web UI's
 * scheme://host:port), preflights answered without a token (browsers send none with them).
 * Registered before the token check, so that a 401 reaches the UI readable.
 */
export function codecCors(uiOrigin: string) {
  return cors({
    origin: (origin) => (origin === uiOrigin ? origin : null),
    allowMethods: ['POST', 'OPTIONS'],
    allowHeaders: ['Content-Type', 'X-Namespace', 'Authorization'],
    credentials: true,
    maxAge: 600,
  });
}

type Wire = z.infer<typeof PayloadSchema>;

const fromWire = (p: Wire): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

const toWire = (p: Payload): Wire => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? []).toString('base64'),
});

/** The codec routes; `codec` undefined (encryption off): both answer the payloads as sent. */
export function addCodecRoutes(app: OpenAPIHono<{ Bindings: HttpBindings }>, codec?: PayloadCodec): void {
  const limit = bodyLimit({
    maxSize: CODEC_MAX_BODY_BYTES,
    onError: () => {
      throw new ApiError(413, 'body_too_large', `the body is over ${CODEC_MAX_BODY_BYTES} bytes (8 MiB)`);
    },
  });
  for (const path of CODEC_PATHS) {
    app.use(path, limit, async (c, next) => {
      const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
      if (c.req.method === 'POST' && type !== JSON_TYPE) {
        const got = type ? `"${type}"` : 'missing';
        throw new ApiError(415, 'unsupported_media_type', `Content-Type ${got}: this takes ${JSON_TYPE}`);
      }
      await next();
    });
  }
  const run = async (payloads: Wire[], fn: (p: Payload[]) => Promise<Payload[]>) => {
    try {
      return { payloads: (await fn(payloads.map(fromWire))).map(toWire) };
    } catch (err) {
      throw new ApiError(422, 'undecodable_payload', (err as Error).message);
    }
  };
  app.openapi(codecRoutes.codecDecode, async (c) => {
    const { payloads } = c.req.valid('json');
    return c.json(codec ? await run(payloads, (p) => codec.decode(p)) : { payloads }, 200);
  });
  app.openapi(codecRoutes.codecEncode, async (c) => {
    const { payloads } = c.req.valid('json');
    return c.json(codec ? await run(payloads, (p) => codec.encode(p)) : { payloads }, 200);
  });
}
