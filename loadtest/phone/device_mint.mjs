// The phone side of device-bound codes ("CC2:", docs/code-format-v2.md) with WebCrypto only:
// the same bytes app.codes.device.mint_device_code makes, from a non-extractable P-256 key.
// Runs in a browser and in Node.js (globalThis.crypto.subtle). No dependencies.

const subtle = globalThis.crypto.subtle;
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
const ECDSA = { name: "ECDSA", hash: "SHA-256" };
const PROTECTED = Uint8Array.of(0xa1, 0x01, 0x26); // {1: -7}: ES256
const SIG_HEAD = Uint8Array.of(0x84, 0x6a, ...new TextEncoder().encode("Signature1"), 0x43, ...PROTECTED, 0x40);
const OUTER_HEAD = Uint8Array.of(0x84, 0x43, ...PROTECTED, 0xa0);

export function base45(bytes) {
  let out = "";
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

function head(major, n) { // CBOR head, shortest form (n < 2**32)
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x10000) return Uint8Array.of(m | 25, n >> 8, n & 0xff);
  return Uint8Array.of(m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

const bstr = (bytes) => concat(head(2, bytes.length), bytes);

/** A new device key: the private half cannot be exported (keep it in IndexedDB in a browser). */
export async function deviceKey() {
  return subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
}

/** The public JWK to send to POST /v1/me/devices. */
export async function publicJwk(keyPair) {
  const { kty, crv, x, y } = await subtle.exportKey("jwk", keyPair.publicKey);
  return { kty, crv, x, y };
}

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** Proof of possession: ES256 over "citycode-device-pop/1\n<purpose>\n<citizen_id>\n<signed_at>". */
export async function possessionProof(keyPair, purpose, citizenId, signedAt) {
  const message = new TextEncoder().encode(`citycode-device-pop/1\n${purpose}\n${citizenId}\n${signedAt}`);
  return b64url(new Uint8Array(await subtle.sign(ECDSA, keyPair.privateKey, message)));
}

/** One code: [certificate, t, nonce] signed by the device key, as "CC2:" + base45. */
export async function mintDeviceCode(certificate, keyPair, nowSeconds = Date.now() / 1000) {
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(8));
  const payload = concat(Uint8Array.of(0x83), bstr(certificate), head(0, Math.floor(nowSeconds)), bstr(nonce));
  const payloadBstr = bstr(payload);
  const signature = new Uint8Array(await subtle.sign(ECDSA, keyPair.privateKey, concat(SIG_HEAD, payloadBstr)));
  return "CC2:" + base45(concat(OUTER_HEAD, payloadBstr, bstr(signature)));
}
