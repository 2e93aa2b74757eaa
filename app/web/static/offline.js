// The hook for offline codes (issue #10: device-bound codes). Not implemented yet.
//
// When the phone cannot reach the service, app.js asks this module for a code. Once the
// device-bound format exists, this module will:
//   - register(): create a non-extractable WebCrypto P-256 key (crypto.subtle.generateKey with
//     {name: 'ECDSA', namedCurve: 'P-256'}, extractable false), keep the CryptoKeyPair in
//     IndexedDB, send the public key to POST /v1/me/devices, and keep the device certificate;
//   - mint(): sign a short-lived code with that key, embedding the certificate, and answer
//     {code, expires_at, refresh_after, mode: 'offline'} like POST /v1/me/code does.
// Until then mint() answers null and the page says it is offline instead of showing a stale code.

/** Whether this device can mint codes offline (a registered key and a valid certificate). */
export async function available() {
  return false;
}

/** Prepare offline minting while online (key + device certificate). No-op until issue #10. */
export async function register() {
  return null;
}

/** A code minted on the device, or null when offline minting is not available. */
export async function mint() {
  return null;
}
