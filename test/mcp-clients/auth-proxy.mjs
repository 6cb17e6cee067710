// node auth-proxy.mjs PORT TARGET_ORIGIN
//
// Listens on 127.0.0.1:PORT and forwards every request to TARGET_ORIGIN
// (http://127.0.0.1:8765) with "Authorization: Bearer $CODINGBRAIN_TOKEN"
// added, keeping the Host and Origin headers exactly as the client sent
// them. It lets the conformance suite, which sends no credentials, check
// DNS-rebinding protection against a server that requires a token.
import http from "node:http";

const [port, target] = process.argv.slice(2);
const token = process.env.CODINGBRAIN_TOKEN;
if (!port || !target || !token) {
  console.error("usage: CODINGBRAIN_TOKEN=… node auth-proxy.mjs PORT TARGET_ORIGIN");
  process.exit(2);
}
const t = new URL(target);
http
  .createServer((req, res) => {
    const up = http.request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url,
        headers: { ...req.headers, authorization: `Bearer ${token}` } },
      (ur) => { res.writeHead(ur.statusCode, ur.headers); ur.pipe(res); },
    );
    up.on("error", (e) => { res.writeHead(502); res.end(String(e)); });
    req.pipe(up);
  })
  .listen(Number(port), "127.0.0.1", () => console.log(`auth proxy on 127.0.0.1:${port} -> ${target}`));
