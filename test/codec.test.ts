// Payload encryption (src/temporal/codec.ts) and the codec endpoint of `meshflow serve`
// (src/api/codec.ts), without a Temporal server: keys from the environment and their errors,
// sealing and opening, rotation, pass-through, and the endpoint's auth, CORS and refusals.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { type Payload, defaultPayloadConverter } from '@temporalio/common';
import { createApp } from '../src/api/app';
import {
  ENCRYPTED_ENCODING,
  EncryptionCodec,
  KEY_ID_METADATA,
  dataConverter,
  payloadKeysFromEnv,
} from '../src/temporal/codec';
import { uiCodecArgs } from '../src/temporal/connection';
import { scratchDir } from './helpers/env';

const keyA = crypto.randomBytes(32).toString('base64');
const keyB = crypto.randomBytes(32).toString('base64');
const codecOf = (keys: string) => new EncryptionCodec(payloadKeysFromEnv({ MESHFLOW_PAYLOAD_KEYS: keys }));
const spec = { name: 'secret-mesh', clusters: ['east', 'west'] };
const plain = () => defaultPayloadConverter.toPayload(spec);
const text = (p: Payload, key: string) => Buffer.from(p.metadata?.[key] ?? []).toString();

describe('keys', () => {
  test('encryption is off without keys, on with MESHFLOW_PAYLOAD_KEYS or MESHFLOW_PAYLOAD_KEYS_FILE', () => {
    expect(dataConverter({})).toBeUndefined();
    expect(dataConverter({ MESHFLOW_PAYLOAD_KEYS: `a:${keyA}` })?.payloadCodecs).toHaveLength(1);
    const file = path.join(scratchDir('codec-keys'), 'keys');
    fs.writeFileSync(file, `# current first\nb:${keyB}\n\na:${keyA}\n`);
    expect(payloadKeysFromEnv({ MESHFLOW_PAYLOAD_KEYS_FILE: file }).map((k) => k.id)).toEqual(['b', 'a']);
  });

  test('the local dev server gets --ui-codec-endpoint only with encryption on', () => {
    expect(uiCodecArgs({})).toEqual([]);
    expect(uiCodecArgs({ MESHFLOW_PAYLOAD_KEYS: `a:${keyA}` })).toEqual([
      '--ui-codec-endpoint',
      'http://127.0.0.1:8080/codec',
    ]);
    const moved = { MESHFLOW_PAYLOAD_KEYS: `a:${keyA}`, MESHFLOW_CODEC_URL: 'http://127.0.0.1:9000/codec' };
    expect(uiCodecArgs(moved)).toEqual(['--ui-codec-endpoint', 'http://127.0.0.1:9000/codec']);
  });

  test.each([
    ['a short key', `a:${crypto.randomBytes(16).toString('base64')}`, /entry 1 \(key id a\): the key is 16 bytes/],
    ['bad base64', 'a:not*base64!', /entry 1 \(key id a\): the key is not base64/],
    ['a duplicate id', `a:${keyA},a:${keyB}`, /entry 2: key id a is given twice/],
    ['no id', keyA, /entry 1 has no key id/],
  ])('%s is refused naming the variable, never the key', (_what, keys, message) => {
    let err: Error | undefined;
    try {
      payloadKeysFromEnv({ MESHFLOW_PAYLOAD_KEYS: keys });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(/^MESHFLOW_PAYLOAD_KEYS: /);
    expect(err?.message).toMatch(message);
    expect(err?.message).toMatch(/openssl rand -base64 32|give each key its own id/);
    for (const entry of keys.split(',')) expect(err?.message).not.toContain(entry.slice(entry.indexOf(':') + 1));
  });

  test('a file line is named by its number, and a file that cannot be read by its variable', () => {
    const file = path.join(scratchDir('codec-keys-bad'), 'keys');
    fs.writeFileSync(file, `a:${keyA}\nb:${keyB.slice(0, 20)}\n`);
    expect(() => payloadKeysFromEnv({ MESHFLOW_PAYLOAD_KEYS_FILE: file })).toThrow(
      `MESHFLOW_PAYLOAD_KEYS_FILE=${file}: line 2 (key id b): the key is 15 bytes, AES-256 needs 32`,
    );
    expect(() => payloadKeysFromEnv({ MESHFLOW_PAYLOAD_KEYS_FILE: `${file}.missing` })).toThrow(
      /MESHFLOW_PAYLOAD_KEYS_FILE=.*missing: cannot read the file \(ENOENT\)/,
    );
  });
});

describe('codec', () => {
  test('seals a payload with AES-256-GCM under the current key id, and opens it to the same payload', async () => {
    const codec = codecOf(`a:${keyA}`);
    const [sealed] = await codec.encode([plain()]);
    expect(text(sealed, 'encoding')).toBe(ENCRYPTED_ENCODING);
    expect(text(sealed, KEY_ID_METADATA)).toBe('a');
    expect(Buffer.from(sealed.data!).toString('latin1')).not.toContain('secret-mesh');
    const [opened] = await codec.decode([sealed]);
    expect(defaultPayloadConverter.fromPayload(opened)).toEqual(spec);
    expect(text(opened, 'encoding')).toBe('json/plain');
  });

  test('payloads it did not encode pass through', async () => {
    const codec = codecOf(`a:${keyA}`);
    const [p] = await codec.decode([plain()]);
    expect(defaultPayloadConverter.fromPayload(p)).toEqual(spec);
  });

  test('rotation: with B,A new payloads use B and those sealed with A still open', async () => {
    const [old] = await codecOf(`a:${keyA}`).encode([plain()]);
    const rotated = codecOf(`b:${keyB},a:${keyA}`);
    const [fresh] = await rotated.encode([plain()]);
    expect(text(fresh, KEY_ID_METADATA)).toBe('b');
    const opened = await rotated.decode([old, fresh]);
    expect(opened.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual([spec, spec]);
  });

  test('an unknown key id, a changed key and a tampered payload fail clearly', async () => {
    const [sealed] = await codecOf(`a:${keyA}`).encode([plain()]);
    await expect(codecOf(`b:${keyB}`).decode([sealed])).rejects.toThrow(
      'a payload is encrypted with key id "a", which is not among the configured keys (b); add that key',
    );
    await expect(codecOf(`a:${keyB}`).decode([sealed])).rejects.toThrow(/does not decrypt .* the key was changed/);
    const tampered = { ...sealed, data: Buffer.from(sealed.data!).fill(0, 20, 21) };
    await expect(codecOf(`a:${keyA}`).decode([tampered])).rejects.toThrow(/or the payload was altered/);
    // The key id is authenticated: relabelling a payload with another configured id does not open it.
    const relabelled = { ...sealed, metadata: { ...sealed.metadata, [KEY_ID_METADATA]: Buffer.from('b') } };
    await expect(codecOf(`a:${keyA},b:${keyA}`).decode([relabelled])).rejects.toThrow(/does not decrypt/);
  });
});

describe('codec endpoint', () => {
  const TOKEN = 'codec-test-token-0123456789';
  const UI = 'http://127.0.0.1:8233';
  const codec = codecOf(`a:${keyA}`);
  const { app } = createApp({
    client: {} as Client, // the codec routes never reach Temporal
    namespace: 'default',
    uiUrl: `${UI}/namespaces/default/workflows`,
    tokens: [TOKEN],
    codec,
    log: () => undefined,
  });
  const wire = (p: Payload) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(p.data!).toString('base64'),
  });
  type Wire = ReturnType<typeof wire>;
  const payloadsOf = async (r: Response) => ((await r.json()) as { payloads: Wire[] }).payloads;
  const post = (verb: string, body: unknown, headers: Record<string, string> = {}) =>
    app.request(`/codec/${verb}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}`, Origin: UI, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  test('decode opens what encode sealed, passes the rest through, and answers the UI origin', async () => {
    const encoded = await post('encode', { payloads: [wire(plain())] });
    expect(encoded.status).toBe(200);
    const [sealed] = await payloadsOf(encoded);
    expect(Buffer.from(sealed.metadata.encoding, 'base64').toString()).toBe(ENCRYPTED_ENCODING);
    const other = wire(defaultPayloadConverter.toPayload('not ours'));
    const decoded = await post('decode', { payloads: [sealed, other] }, { 'X-Namespace': 'default' });
    expect(decoded.status).toBe(200);
    expect(decoded.headers.get('access-control-allow-origin')).toBe(UI);
    expect(decoded.headers.get('access-control-allow-credentials')).toBe('true');
    const [first, second] = await payloadsOf(decoded);
    expect(JSON.parse(Buffer.from(first.data, 'base64').toString())).toEqual(spec);
    expect(second).toEqual(other);
  });

  test('the preflight is answered for the UI origin without a token; other origins get no CORS headers', async () => {
    const preflight = (origin: string) =>
      app.request('/codec/decode', {
        method: 'OPTIONS',
        headers: {
          Origin: origin,
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'content-type,x-namespace,authorization',
        },
      });
    const ok = await preflight(UI);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(UI);
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    const evil = await preflight('http://evil.example');
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    const post2 = await post('decode', { payloads: [] }, { Origin: 'http://evil.example' });
    expect(post2.headers.get('access-control-allow-origin')).toBeNull();
  });

  test('the same bearer token as the other routes; the 401 is readable by the UI', async () => {
    const res = await post('decode', { payloads: [] }, { Authorization: '' });
    expect(res.status).toBe(401);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI);
    expect((await post('decode', { payloads: [] }, { Authorization: 'Bearer wrong' })).status).toBe(401);
  });

  test('bad bodies are 400, another media type 415, an unknown key 422', async () => {
    expect((await post('decode', '{"payloads": [{"data": "***"}]}')).status).toBe(400);
    expect((await post('decode', { payload: [] })).status).toBe(400);
    expect((await post('decode', 'not json')).status).toBe(400);
    expect((await post('decode', { payloads: [] }, { 'Content-Type': 'text/plain' })).status).toBe(415);
    const [foreign] = await codecOf(`z:${keyB}`).encode([plain()]);
    const res = await post('decode', { payloads: [wire(foreign)] });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
      /key id "z", which is not among the configured keys \(a\)/,
    );
  });

  test('in the OpenAPI document, and encryption off answers payloads as sent', async () => {
    const doc = (await (await app.request('/openapi.json')).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/codec/decode', '/codec/encode']));
    const { app: off } = createApp({ client: {} as Client, namespace: 'default', tokens: [], log: () => undefined });
    const body = { payloads: [wire(plain())] };
    const res = await off.request('/codec/encode', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(await res.json()).toEqual(body);
  });
});
