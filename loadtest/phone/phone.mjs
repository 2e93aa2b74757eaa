// A test phone on top of the app's minting module (devicecode.js): one device key, a proof of
// possession, then codes of both forms for a job. Node.js (node_phone.mjs), Chromium
// (tests/devices/test_phone_webcrypto.py, bench.html) run this same file.
import {
  deviceKey, fromB64url, mintDeviceCode, mintSealedCode, possessionProof, publicJwk, readerKey,
} from "./device_mint.mjs";

let key = null;

/** Make the device key (non-extractable); answer its public JWK and a register proof. */
export async function hello(citizenId, signedAt = Math.floor(Date.now() / 1000)) {
  key = await deviceKey();
  return { jwk: await publicJwk(key), signed_at: signedAt, extractable: key.privateKey.extractable,
    signature: await possessionProof(key, "register", citizenId, signedAt) };
}

async function ephemeralFrom(jwk) { // a fixed ephemeral key, so a test can compare bytes
  const curve = { name: "ECDH", namedCurve: "P-256" };
  const { kty, crv, x, y, d } = jwk;
  return { privateKey: await crypto.subtle.importKey("jwk", { kty, crv, x, y, d }, curve, false, ["deriveBits"]),
    publicKey: await crypto.subtle.importKey("jwk", { kty, crv, x, y }, curve, true, []) };
}

async function timed(count, make) {
  const codes = [];
  const started = performance.now();
  for (let i = 0; i < count; i++) codes.push(await make());
  return { codes, ms: (performance.now() - started) / Math.max(1, count) };
}

/** job: {certificate, sealed_certificate?, reader? (an entry of reader_keys), ephemeral? (JWK
 * with d), now? (epoch s), count} → {codes, mint_ms, sealed, sealed_mint_ms}. */
export async function mint(job) {
  const count = job.count ?? 1;
  const now = () => job.now ?? Date.now() / 1000;
  const cert = fromB64url(job.certificate);
  const plain = await timed(count, () => mintDeviceCode(cert, key, now()));
  const out = { codes: plain.codes, mint_ms: plain.ms, sealed: [], sealed_mint_ms: null };
  if (job.sealed_certificate && job.reader) {
    const cert3 = fromB64url(job.sealed_certificate);
    const reader = await readerKey(job.reader);
    const eph = job.ephemeral ? await ephemeralFrom(job.ephemeral) : null;
    const sealed = await timed(count, () => mintSealedCode(cert3, key, reader, now(), eph));
    Object.assign(out, { sealed: sealed.codes, sealed_mint_ms: sealed.ms });
  }
  return out;
}
