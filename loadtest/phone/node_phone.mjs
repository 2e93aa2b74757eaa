// A phone on the command line (Node.js): prints its public JWK and a proof, reads the certificate
// (base64url, one line) from stdin, then prints `count` codes, one a line, and the mint time.
//   node loadtest/phone/node_phone.mjs <citizen_id> <count>
import { deviceKey, mintDeviceCode, possessionProof, publicJwk } from "./device_mint.mjs";
import { createInterface } from "node:readline";

const [citizenId, count] = [process.argv[2], Number(process.argv[3] || 1)];
const key = await deviceKey();
const signedAt = Math.floor(Date.now() / 1000);
console.log(JSON.stringify({ jwk: await publicJwk(key), signed_at: signedAt,
  signature: await possessionProof(key, "register", citizenId, signedAt) }));
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const certificate = Uint8Array.from(Buffer.from(line.trim(), "base64url"));
  const started = performance.now();
  const codes = [];
  for (let i = 0; i < count; i++) codes.push(await mintDeviceCode(certificate, key));
  const perCode = (performance.now() - started) / count;
  for (const code of codes) console.log(code);
  console.log(JSON.stringify({ mint_ms: perCode }));
  break;
}
