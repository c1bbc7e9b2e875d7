// The upstream of the Prism proxy that judges the end-to-end suite (e2e_via_prism.sh). The
// harness sends each request to its garde directly — the test sees Garde's own answer — and
// then the same request to Prism, naming in X-Garde-Replay the file where it wrote Garde's
// answer; this relay answers Prism with exactly that answer, so Prism validates the very
// request and response of the test without Garde seeing the request twice.
//
//   node relay.mjs   -> prints "relay listening PORT"
import http from 'node:http';
import { readFileSync } from 'node:fs';

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    try {
      const answer = JSON.parse(readFileSync(String(req.headers['x-garde-replay']), 'utf8'));
      const headers = answer.headers.filter(([k]) => !['content-length', 'connection', 'transfer-encoding', 'keep-alive'].includes(k.toLowerCase()));
      const body = Buffer.from(answer.body, 'base64');
      res.writeHead(answer.status, [...headers.flat(), 'content-length', String(body.length)]);
      res.end(body);
    } catch (e) {
      res.writeHead(599, { 'content-type': 'text/plain' });
      res.end(`relay: ${e.message}\n`);
    }
  });
});
server.keepAliveTimeout = 1000;
server.listen(0, '127.0.0.1', () => console.log(`relay listening ${server.address().port}`));
