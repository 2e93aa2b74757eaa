// Codes made on this phone when the service cannot be reached (docs/code-format-v2.md §4, §6.3).
//
// register(citizenId), while online: a WebCrypto ECDSA P-256 key pair whose private half cannot
// be exported (extractable false) is made once and kept, as a CryptoKeyPair, in IndexedDB; its
// public key goes to POST /v1/me/devices with a proof of possession, and the answer (device
// certificate, sealed certificate, reader keys, expiry) is kept next to it. After refresh_after
// the certificate is renewed (POST /v1/me/devices/{id}/certificate); a device removed meanwhile
// (404, 409) starts again with a new key. Everything is stored under the signed-in citizen's id;
// forget() (signing out) deletes it all, the key included, and removes the device at the service.
//
// mint(), offline: a sealed "CC3:" code when a reader key's window holds the clock and the sealed
// certificate is valid, else a signed "CC2:" code while the certificate is valid, else null (the
// page then says it is offline). The answer is shaped like POST /v1/me/code's, plus the mode.
import * as api from './api.js';
import * as dc from './devicecode.js';

const DB_NAME = 'citycode-offline';
const STORE = 'devices'; // one record per citizen id
const CURRENT = 'citycode.deviceOwner'; // localStorage: whose record the signed-in page uses
const LABEL = 'CityCode web app';
const MIN_REFRESH_S = 5;

/** Whether this browser can keep a device key and mint (WebCrypto needs HTTPS or localhost). */
export const supported = () => Boolean(globalThis.crypto && globalThis.crypto.subtle && globalThis.indexedDB);

// -- IndexedDB -----------------------------------------------------------------------------------
function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'citizen_id' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function inStore(mode, action) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

const load = (citizenId) => inStore('readonly', (s) => s.get(citizenId));
const save = (record) => inStore('readwrite', (s) => s.put(record));

// -- the clock -----------------------------------------------------------------------------------
// The service's clock as this phone last saw it: api.serverNow() while the page has talked to the
// service, else the phone's clock corrected by the offset measured at the last registration.
const seconds = (record) => (Date.now() + (record.clock_offset_ms || 0)) / 1000;

function keep(citizenId, keyPair, answer) {
  return {
    citizen_id: citizenId, keyPair, device_id: answer.device_id, certificate: answer.certificate,
    issued_at: answer.issued_at, expires_at: answer.expires_at, refresh_after: answer.refresh_after,
    code_seconds: answer.code_seconds, sealed_certificate: answer.sealed_certificate || null,
    reader_keys: answer.reader_keys || [], clock_offset_ms: api.serverNow() - Date.now(),
  };
}

/** What the page shows about this phone's offline codes. */
function status(record) {
  return record && record.device_id
    ? { device_id: record.device_id, expires_at: record.expires_at, sealed: Boolean(record.sealed_certificate) }
    : null;
}

async function proof(keyPair, purpose, citizenId) {
  const signedAt = Math.floor(api.serverNow() / 1000);
  return { signed_at: signedAt, signature: await dc.possessionProof(keyPair, purpose, citizenId, signedAt) };
}

// -- registering (online) ------------------------------------------------------------------------
let pending = null;

/** Register this phone for the signed-in citizen, or renew its certificate when due. Resolves to
 * {device_id, expires_at, sealed} or null (no WebCrypto/IndexedDB); rejects with api errors. */
export function register(citizenId) {
  if (!supported()) return Promise.resolve(null);
  if (!pending) pending = ensure(citizenId).finally(() => { pending = null; });
  return pending;
}

async function ensure(citizenId) {
  localStorage.setItem(CURRENT, citizenId);
  let record = await load(citizenId);
  if (record && record.device_id) {
    const now = api.serverNow() / 1000;
    if (now < record.refresh_after && now < record.expires_at) return status(record);
    try {
      const answer = await api.refreshDevice(record.device_id, { proof: await proof(record.keyPair, 'refresh', citizenId) });
      record = keep(citizenId, record.keyPair, answer);
      await save(record);
      return status(record);
    } catch (err) {
      if (err instanceof api.ApiError && err.status === 403) await withdraw();
      if (!(err instanceof api.ApiError) || (err.status !== 404 && err.status !== 409)) throw err;
      record = null; // removed (from another device, or by the service): a new key, a new device
    }
  }
  const keyPair = record && record.keyPair && !record.device_id ? record.keyPair : await dc.deviceKey();
  await save({ citizen_id: citizenId, keyPair }); // the key is kept even if the network fails now
  const answer = await api.registerDevice({
    public_key: await dc.publicJwk(keyPair), proof: await proof(keyPair, 'register', citizenId), label: LABEL,
  });
  const registered = keep(citizenId, keyPair, answer);
  await save(registered);
  return status(registered);
}

// -- minting (offline) ---------------------------------------------------------------------------
async function current() {
  const citizenId = localStorage.getItem(CURRENT);
  if (!citizenId || !supported()) return null;
  const record = await load(citizenId).catch(() => null);
  return record && record.device_id && record.keyPair ? record : null;
}

const readerFor = (record, t) => (record.sealed_certificate
  ? (record.reader_keys || []).find((k) => k.valid_from <= t && t < k.valid_until) : undefined);

/** Whether a code can be minted here now: {sealed} or null. */
export async function available() {
  const record = await current();
  if (!record) return null;
  const t = seconds(record);
  return t < record.expires_at ? { sealed: Boolean(readerFor(record, t)) } : null;
}

const iso = (s) => new Date(s * 1000).toISOString();

/** A code minted on this phone: {code, expires_at, refresh_after, mode: 'offline-sealed' |
 * 'offline'}, or null when there is no valid certificate. */
export async function mint() {
  const record = await current();
  if (!record) return null;
  const t = Math.floor(seconds(record));
  if (t >= record.expires_at) return null;
  const reader = readerFor(record, t);
  const code = reader
    ? await dc.mintSealedCode(dc.fromB64url(record.sealed_certificate), record.keyPair, await dc.readerKey(reader), t)
    : await dc.mintDeviceCode(dc.fromB64url(record.certificate), record.keyPair, t);
  const expires = Math.min(t + record.code_seconds, record.expires_at);
  const refresh = Math.min(expires, t + Math.max(MIN_REFRESH_S, Math.floor((record.code_seconds * 2) / 3)));
  return { code, expires_at: iso(expires), refresh_after: iso(refresh), mode: reader ? 'offline-sealed' : 'offline' };
}

/** The service refused a code (a suspended citizen): stop minting here. The key stays, so the
 * next registration after a restoration gets a certificate for the same device again. */
export async function withdraw() {
  const record = await current();
  if (record) await save({ citizen_id: record.citizen_id, keyPair: record.keyPair });
}

// -- signing out ---------------------------------------------------------------------------------
/** Forget every device key and certificate kept here, then (best effort, with the token being
 * signed out) remove the devices at the service, which revokes their certificates. */
export async function forget(appToken) {
  localStorage.removeItem(CURRENT);
  if (!supported()) return;
  const records = await inStore('readonly', (s) => s.getAll()).catch(() => []);
  await inStore('readwrite', (s) => s.clear()).catch(() => {});
  if (!appToken) return;
  await Promise.all(records.filter((r) => r.device_id)
    .map((r) => api.removeDevice(r.device_id, appToken).catch(() => {})));
}
