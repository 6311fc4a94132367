// Verify a Confidant webhook delivery (docs/INTEGRATING.md, "Webhooks").
//
//   import { verifyConfidantSignature } from "./verify.mjs";
//   // in your handler, with the body exactly as received (bytes, before any JSON parsing):
//   if (!verifyConfidantSignature(rawBody, req.headers["confidant-signature"], process.env.CONFIDANT_WEBHOOK_SECRET)) {
//     return res.status(400).end();
//   }
//   const event = JSON.parse(rawBody);   // then deduplicate by event.id
//
// As a command (used by the tests): the body on stdin, the header as the argument, the secret
// in CONFIDANT_WEBHOOK_SECRET; exit 0 when the signature is good, 1 when not.
//   node verify.mjs "t=1700000000,v1=…" < body.json

import { createHmac, timingSafeEqual } from "node:crypto";
import { fileURLToPath } from "node:url";

/**
 * @param {Buffer|string} rawBody  the request body exactly as received
 * @param {string} header          the Confidant-Signature header: "t=<unix seconds>,v1=<hex>"
 * @param {string} secret          the webhook's secret as shown once ("whsec_…"), used as is
 * @param {number} toleranceSeconds how far t may be from now (replayed deliveries are refused)
 */
export function verifyConfidantSignature(rawBody, header, secret, toleranceSeconds = 300, nowSeconds = Date.now() / 1000) {
  if (typeof header !== "string" || typeof secret !== "string") return false;
  let t = null;
  const candidates = [];
  for (const part of header.split(",")) {
    const [key, value] = part.trim().split("=", 2);
    if (key === "t" && /^\d+$/.test(value ?? "")) t = Number(value);
    if (key === "v1" && /^[0-9a-f]{64}$/.test(value ?? "")) candidates.push(value);
  }
  if (t === null || candidates.length === 0) return false;
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = createHmac("sha256", Buffer.from(secret, "utf8"))
    .update(`${t}.`)
    .update(Buffer.isBuffer(rawBody) ? rawBody : Buffer.from(rawBody, "utf8"))
    .digest();
  // Constant-time comparison of equal-length buffers.
  return candidates.some((hex) => timingSafeEqual(Buffer.from(hex, "hex"), expected));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const ok = verifyConfidantSignature(Buffer.concat(chunks), process.argv[2], process.env.CONFIDANT_WEBHOOK_SECRET);
  console.log(ok ? "signature ok" : "signature INVALID");
  process.exit(ok ? 0 : 1);
}
