// Mint a pixel-relay signed-hit token (HS256) with node:crypto only: Node.js 20+, no npm
// packages. Run it on your backend, never in the browser: whoever holds the secret can write
// to any endpoint. Render the token into the page for the logged-in visitor
// (docs/signed-hits.md).
//
//   PIXEL_TOKEN_SECRET=... node examples/mint-token.mjs --kid 2026-11 \
//       --endpoint-id ep-1 [--user-id user-1] [--ttl 3600] [--audience shop-prod]
//
// or `import { mintToken } from "./mint-token.mjs"`. The secret comes from the environment,
// not the command line, so it stays out of `ps` and shell history.

import { createHmac } from "node:crypto";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const base64url = (text) => Buffer.from(text, "utf8").toString("base64url");

/**
 * A token binding endpointId (claim `eid`) and userId (`sub`) until now + ttlSeconds,
 * and to one site (`aud`) when the pixel sets TOKEN_AUDIENCE.
 * @param {{secret: string, kid: string, endpointId: string, userId?: string,
 *          ttlSeconds?: number, now?: number, audience?: string}} options  now in ms
 * @returns {string}
 */
export function mintToken({
  secret,
  kid,
  endpointId,
  userId,
  ttlSeconds = 3600,
  now = Date.now(),
  audience,
}) {
  if (Buffer.byteLength(secret, "utf8") < 32) {
    throw new Error("the secret must be at least 32 bytes (RFC 7518, section 3.2)");
  }
  if (!kid || !endpointId || !Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new Error("kid, endpointId and a positive whole ttlSeconds are required");
  }
  const issued = Math.floor(now / 1000);
  const header = { alg: "HS256", typ: "JWT", kid };
  const claims = { eid: endpointId, iat: issued, exp: issued + ttlSeconds };
  if (userId !== undefined && userId !== null) claims.sub = userId;
  if (audience !== undefined && audience !== null) claims.aud = audience;
  const unsigned = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = createHmac("sha256", secret).update(unsigned).digest("base64url");
  return `${unsigned}.${signature}`;
}

function main() {
  const { values } = parseArgs({
    options: {
      kid: { type: "string" },
      "endpoint-id": { type: "string" },
      "user-id": { type: "string" },
      ttl: { type: "string", default: "3600" },
      audience: { type: "string" },
    },
  });
  const secret = process.env.PIXEL_TOKEN_SECRET ?? "";
  if (!secret) {
    console.error("set PIXEL_TOKEN_SECRET to the signing secret");
    return 2;
  }
  try {
    console.log(
      mintToken({
        secret,
        kid: values.kid,
        endpointId: values["endpoint-id"],
        userId: values["user-id"],
        ttlSeconds: Number(values.ttl),
        audience: values.audience,
      }),
    );
  } catch (error) {
    console.error(error.message);
    return 2;
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main();
}
