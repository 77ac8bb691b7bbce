// Opt-in payload encryption: with MESHFLOW_PAYLOAD_KEYS or MESHFLOW_PAYLOAD_KEYS_FILE set, every
// payload meshflow hands Temporal (workflow input and results, activity arguments, memo, queries,
// summaries) is sealed with AES-256-GCM before it leaves the process, so the server's history holds
// no spec, kubeconfig path or token in the clear. Search attributes are not payloads the codec sees:
// the mesh name and phase stay searchable. Several keys let one rotate: the first encrypts, all
// decrypt, and each sealed payload names its key in its metadata.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

type Env = Record<string, string | undefined>;

export interface PayloadKey {
  id: string;
  key: Buffer;
}

/**
 * Keys as `id:base64key` entries: MESHFLOW_PAYLOAD_KEYS (comma separated) or MESHFLOW_PAYLOAD_KEYS_FILE
 * (one a line; blank lines and # comments skipped). The first encrypts. None: encryption is off.
 * A bad entry throws an error naming the variable and the entry's place, never its key.
 */
export function payloadKeysFromEnv(env: Env = process.env): PayloadKey[] {
  const [inline, file] = [env.MESHFLOW_PAYLOAD_KEYS?.trim(), env.MESHFLOW_PAYLOAD_KEYS_FILE];
  if (inline && file) throw new Error('MESHFLOW_PAYLOAD_KEYS and MESHFLOW_PAYLOAD_KEYS_FILE are both set: keep one');
  if (inline) return parseKeys(inline.split(','), 'MESHFLOW_PAYLOAD_KEYS', 'entry');
  if (!file) return [];
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`MESHFLOW_PAYLOAD_KEYS_FILE=${file}: cannot read the file (${code}); fix the path`);
  }
  const keys = parseKeys(
    text.split('\n').map((l) => (l.trim().startsWith('#') ? '' : l)),
    `MESHFLOW_PAYLOAD_KEYS_FILE=${file}`,
    'line',
  );
  if (!keys.length) throw new Error(`MESHFLOW_PAYLOAD_KEYS_FILE=${file} holds no key (one id:base64key a line)`);
  return keys;
}

function parseKeys(entries: string[], source: string, unit: 'entry' | 'line'): PayloadKey[] {
  const keys: PayloadKey[] = [];
  entries.forEach((raw, i) => {
    const entry = raw.trim();
    if (!entry) return;
    const where = `${source}: ${unit} ${i + 1}`;
    const fix = 'each key is id:base64key, the key 32 random bytes (`openssl rand -base64 32`)';
    const colon = entry.indexOf(':');
    const id = colon > 0 ? entry.slice(0, colon) : '';
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
      throw new Error(`${where} has no key id (letters, digits, . _ -) before a colon; ${fix}`);
    }
    const b64 = entry.slice(colon + 1).trim();
    const key = Buffer.from(b64, 'base64');
    // Buffer.from skips what is not base64: re-encoding shows whether all of it was.
    if (!b64 || key.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) {
      throw new Error(`${where} (key id ${id}): the key is not base64; ${fix}`);
    }
    if (key.length !== 32) {
      throw new Error(`${where} (key id ${id}): the key is ${key.length} bytes, AES-256 needs 32; ${fix}`);
    }
    if (keys.some((k) => k.id === id))
      throw new Error(`${where}: key id ${id} is given twice; give each key its own id`);
    keys.push({ id, key });
  });
  return keys;
}

/** AES-256-GCM over the whole payload (its metadata too), key id in the clear beside it. */
export class EncryptionCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;
  /** The id of the key that encrypts: the first configured. */
  private readonly current: string;

  constructor(keys: PayloadKey[]) {
    if (!keys.length) throw new Error('EncryptionCodec needs at least one key');
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
    this.current = keys[0].id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.keys.get(this.current)!;
    return payloads.map((payload) => {
      const nonce = crypto.randomBytes(NONCE_BYTES);
      const cipher = crypto.createCipheriv('aes-256-gcm', key, nonce);
      // The key id is authenticated: a payload relabelled with another id does not decrypt.
      cipher.setAAD(Buffer.from(this.current));
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      const sealed = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          [METADATA_ENCODING_KEY]: Buffer.from(ENCRYPTED_ENCODING),
          [KEY_ID_METADATA]: Buffer.from(this.current),
        },
        data: sealed,
      };
    });
  }

  /** Payloads not sealed here (another encoding) pass through unchanged. */
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
      if (!encoding || Buffer.from(encoding).toString() !== ENCRYPTED_ENCODING) return payload;
      const idBytes = payload.metadata?.[KEY_ID_METADATA];
      const id = idBytes ? Buffer.from(idBytes).toString() : '';
      const key = this.keys.get(id);
      if (!key) {
        const known = [...this.keys.keys()].join(', ');
        throw new Error(
          `a payload is encrypted with key id "${id}", which is not among the configured keys (${known}); ` +
            'add that key to MESHFLOW_PAYLOAD_KEYS or MESHFLOW_PAYLOAD_KEYS_FILE (after the current one)',
        );
      }
      const data = Buffer.from(payload.data ?? []);
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE_BYTES));
      decipher.setAAD(Buffer.from(id));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      } catch (err) {
        throw new Error(
          `a payload encrypted with key id "${id}" does not decrypt with the configured key of that id: ` +
            'the key was changed under the same id, or the payload was altered',
          { cause: err },
        );
      }
      return temporal.api.common.v1.Payload.decode(plain) as Payload;
    });
  }
}

/** The codec for the configured keys; undefined when encryption is off. */
export function payloadCodec(env: Env = process.env): EncryptionCodec | undefined {
  const keys = payloadKeysFromEnv(env);
  return keys.length ? new EncryptionCodec(keys) : undefined;
}

/**
 * The data converter every meshflow Client and Worker is created with: `{ payloadCodecs }` with
 * encryption on, undefined (Temporal's default) when off.
 */
export function dataConverter(env: Env = process.env): { payloadCodecs: PayloadCodec[] } | undefined {
  const codec = payloadCodec(env);
  return codec ? { payloadCodecs: [codec] } : undefined;
}
