// A phone on the command line (Node.js): prints its public JWK and a register proof (one JSON
// line), reads one job line (JSON, see phone.mjs: certificate, sealed_certificate, reader, count),
// then prints the result as one JSON line: the codes of both forms and the mint times.
//   node loadtest/phone/node_phone.mjs <citizen_id>
import { createInterface } from "node:readline";
import { hello, mint } from "./phone.mjs";

console.log(JSON.stringify(await hello(process.argv[2] || "cit_test")));
for await (const line of createInterface({ input: process.stdin })) {
  console.log(JSON.stringify(await mint(JSON.parse(line))));
  break;
}
