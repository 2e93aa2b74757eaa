// The phone side of device-bound codes ("CC2:", sealed "CC3:"; docs/code-format-v2.md) with
// WebCrypto only. One implementation: the citizen app's module, re-exported for the load tools
// (Node.js and the browser benchmark load it through this path).
export * from "../../app/web/static/devicecode.js";
