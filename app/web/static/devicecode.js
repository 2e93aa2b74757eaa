// Device-bound codes minted on the phone with WebCrypto only (docs/code-format-v2.md): "CC2:"
// (signed) and sealed "CC3:" (signed and encrypted to a reader key). The same bytes as the Python
// reference app.codes.device.mint_device_code / mint_sealed_code. No dependencies: the citizen
// app (/web/static/devicecode.js), the load tools (loadtest/phone/device_mint.mjs re-exports this
// module) and Node.js (globalThis.crypto.subtle, Node >= 19) all use this one file.

const subtle = globalThis.crypto.subtle;
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';
const ECDSA = { name: 'ECDSA', hash: 'SHA-256' };
const P256_ECDSA = { name: 'ECDSA', namedCurve: 'P-256' };
const P256_ECDH = { name: 'ECDH', namedCurve: 'P-256' };
const UTF8 = new TextEncoder();

export const DEVICE_PREFIX = 'CC2:';
export const SEALED_PREFIX = 'CC3:';
export const SEALED_CODE_CHARS = 418; // 276 bytes: QR version 12 at M in alphanumeric mode
const SEALED_CODE_BYTES = 276;
const SEALED_PLAINTEXT_BYTES = 162; // 276 - (3 + 2 + 1 + 5 + 35 + 2 + 66)
const READER_KID_BYTES = 4;
const HKDF_INFO = UTF8.encode('citycode-cc3/1');
const CC2_PROTECTED = Uint8Array.of(0xa1, 0x01, 0x26); // {1: -7}: ES256
const SIGNATURE1 = Uint8Array.of(0x84, 0x6a, ...UTF8.encode('Signature1'));

/** RFC 9285 base45 (upper case, no padding). */
export function base45(bytes) {
  let out = '';
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    let n = bytes[i] * 256 + bytes[i + 1];
    const c = n % 45; n = (n - c) / 45;
    const d = n % 45; const e = (n - d) / 45;
    out += ALPHABET[c] + ALPHABET[d] + ALPHABET[e];
  }
  if (bytes.length % 2) {
    const v = bytes[bytes.length - 1];
    out += ALPHABET[v % 45] + ALPHABET[Math.floor(v / 45)];
  }
  return out;
}

/** base64url without padding, as the API carries bytes. */
export function b64url(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromB64url(text) {
  const plain = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(plain, (c) => c.charCodeAt(0));
}

/** A CBOR head (major type, argument), shortest form, for arguments up to 2^53. */
function head(major, n) {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x10000) return Uint8Array.of(m | 25, n >>> 8, n & 0xff);
  if (n < 0x100000000) return Uint8Array.of(m | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  const high = Math.floor(n / 0x100000000); const low = n >>> 0;
  return Uint8Array.of(m | 27, 0, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff,
    low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

const bstr = (bytes) => concat(head(2, bytes.length), bytes);
const uint = (n) => head(0, n);

/** RFC 9052 Sig_structure of a COSE_Sign1: ["Signature1", protected, external_aad, payload]. */
const sigStructure = (protectedBytes, payload, aad = new Uint8Array(0)) =>
  concat(SIGNATURE1, bstr(protectedBytes), bstr(aad), bstr(payload));

async function signEs256(keyPair, message) {
  return new Uint8Array(await subtle.sign(ECDSA, keyPair.privateKey, message)); // already r || s
}

function checkedTime(nowSeconds) {
  const t = Math.floor(nowSeconds);
  if (!Number.isSafeInteger(t) || t < 0) throw new RangeError('the clock must be a non-negative time');
  return t;
}

// -- the device key ------------------------------------------------------------------------------
/** A new device key: the private half cannot be exported (a browser keeps the pair in IndexedDB). */
export async function deviceKey() {
  return subtle.generateKey(P256_ECDSA, false, ['sign', 'verify']);
}

/** The public JWK to send to POST /v1/me/devices. */
export async function publicJwk(keyPair) {
  const { kty, crv, x, y } = await subtle.exportKey('jwk', keyPair.publicKey);
  return { kty, crv, x, y };
}

/** Proof of possession: ES256 over "citycode-device-pop/1\n<purpose>\n<citizen_id>\n<signed_at>". */
export async function possessionProof(keyPair, purpose, citizenId, signedAt) {
  const message = UTF8.encode(`citycode-device-pop/1\n${purpose}\n${citizenId}\n${signedAt}`);
  return b64url(await signEs256(keyPair, message));
}

// -- CC2: signed -----------------------------------------------------------------------------------
/** One "CC2:" code: [certificate, t, nonce] signed by the device key. */
export async function mintDeviceCode(certificate, keyPair, nowSeconds = Date.now() / 1000) {
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(8));
  const payload = concat(Uint8Array.of(0x83), bstr(certificate), uint(checkedTime(nowSeconds)), bstr(nonce));
  const signature = await signEs256(keyPair, sigStructure(CC2_PROTECTED, payload));
  return DEVICE_PREFIX + base45(concat(Uint8Array.of(0x84), bstr(CC2_PROTECTED), Uint8Array.of(0xa0),
    bstr(payload), bstr(signature)));
}

// -- CC3: sealed to a reader key -----------------------------------------------------------------
/** A reader key of the registration answer ({kid, public_key: JWK, valid_from, valid_until}),
 * ready to seal to: {kid (4 bytes), key (ECDH CryptoKey), validFrom, validUntil}. */
export async function readerKey(entry) {
  const kid = fromB64url(entry.kid);
  if (kid.length !== READER_KID_BYTES) throw new RangeError('a reader key id is 4 bytes');
  const { kty, crv, x, y } = entry.public_key;
  const key = await subtle.importKey('jwk', { kty, crv, x, y }, P256_ECDH, true, []);
  return { kid, key, validFrom: entry.valid_from, validUntil: entry.valid_until };
}

/** A fresh ephemeral ECDH key for one sealed code (its private half never leaves WebCrypto). */
export async function ephemeralKey() {
  return subtle.generateKey(P256_ECDH, false, ['deriveBits']);
}

async function compressedPoint(publicKey) {
  const raw = new Uint8Array(await subtle.exportKey('raw', publicKey)); // 04 || x || y
  return concat(Uint8Array.of(2 | (raw[64] & 1)), raw.subarray(1, 33));
}

/** (AES-128 key, CTR counter block, external AAD) from HKDF-SHA-256 over the ECDH secret. */
async function sealKeys(shared, rkid, epk) {
  const ikm = await subtle.importKey('raw', shared, 'HKDF', false, ['deriveBits']);
  const okm = new Uint8Array(await subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: concat(HKDF_INFO, rkid, epk) }, ikm, 384));
  const key = await subtle.importKey('raw', okm.subarray(0, 16), 'AES-CTR', false, ['encrypt']);
  return { key, counter: okm.slice(16, 32), aad: okm.slice(32, 48) };
}

/** One sealed "CC3:" code: [cert3, t] padded to 162 bytes, AES-128-CTR under a key agreed with
 * the reader key `reader` (see readerKey) from a fresh ephemeral key, signed by the device key
 * with the derived AAD as external AAD. Always 418 characters. `ephemeral` is for tests only. */
export async function mintSealedCode(certificate, keyPair, reader, nowSeconds = Date.now() / 1000,
  ephemeral = null) {
  const eph = ephemeral || await ephemeralKey();
  const epk = await compressedPoint(eph.publicKey);
  const shared = await subtle.deriveBits({ name: 'ECDH', public: reader.key }, eph.privateKey, 256);
  const { key, counter, aad } = await sealKeys(shared, reader.kid, epk);
  const plaintext = new Uint8Array(SEALED_PLAINTEXT_BYTES);
  const body = concat(Uint8Array.of(0x82), certificate, uint(checkedTime(nowSeconds)));
  if (body.length > SEALED_PLAINTEXT_BYTES) throw new RangeError('the sealed certificate is too large');
  plaintext.set(body);
  const ct = new Uint8Array(await subtle.encrypt({ name: 'AES-CTR', counter, length: 128 }, key, plaintext));
  const payload = concat(Uint8Array.of(0x83), bstr(reader.kid), bstr(epk), bstr(ct));
  const signature = await signEs256(keyPair, sigStructure(new Uint8Array(0), payload, aad));
  const raw = concat(Uint8Array.of(0x84, 0x40, 0xa0), bstr(payload), bstr(signature));
  if (raw.length !== SEALED_CODE_BYTES) throw new RangeError('a sealed code is 276 bytes');
  return SEALED_PREFIX + base45(raw);
}
