// Prism's validating proxy judging the API exchanges of the JavaScript suites (browser,
// webhooks): garde answers the test; the same request then goes to Prism, whose upstream (in
// this process) replays garde's very answer, and a response at odds with api/openapi.json
// throws. Started once per test process.
//
//   const judged = await prismJudge();
//   const r = await fetch(url, {method, headers, body}); const text = await r.text();
//   await judged(method, path, headers, body, r.status, r.headers, text);
import { spawn } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';

const here = new URL('.', import.meta.url).pathname;

function waitForOutput(proc, pattern, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      if (pattern.test(out)) resolve();
    });
    proc.on('exit', (code) => reject(new Error(`${what} exited ${code}: ${out}`)));
  });
}

let judge;
export async function prismJudge() {
  judge ??= (async () => {
    const answers = new Map();
    const relay = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const a = answers.get(req.headers['x-garde-replay']);
        if (!a) { res.writeHead(599); res.end(); return; }
        res.writeHead(a.status, { ...a.headers, 'content-length': String(a.body.length) });
        res.end(a.body);
      });
    });
    await new Promise((r) => relay.listen(0, '127.0.0.1', r));
    const port = await new Promise((resolve, reject) => {
      const probe = http.createServer().listen(0, '127.0.0.1', () => {
        const p = probe.address().port;
        probe.close(() => resolve(p));
      });
      probe.on('error', reject);
    });
    const prism = spawn(join(here, 'node_modules/.bin/prism'),
      ['proxy', join(here, '../../api/openapi.json'), `http://127.0.0.1:${relay.address().port}`,
        '-p', String(port), '-h', '127.0.0.1'], { env: { ...process.env, NO_COLOR: '1' } });
    await waitForOutput(prism, /(Prism is listening)/, 'prism');
    // Nothing of the judge keeps the test process alive: Prism goes when the tests are done.
    relay.on('connection', (socket) => socket.unref());
    relay.unref();
    prism.stdout.unref();
    prism.stderr?.unref();
    prism.unref();
    process.on('exit', () => prism.kill());
    let next = 0;
    return async (method, path, headers, body, status, answerHeaders, answerBody) => {
      const id = String(++next);
      const kept = Object.fromEntries([...answerHeaders].filter(([k]) =>
        !['content-length', 'connection', 'keep-alive', 'transfer-encoding'].includes(k)));
      answers.set(id, { status, headers: kept, body: Buffer.from(answerBody) });
      const r = await fetch(`http://127.0.0.1:${port}${path}`, {
        method, headers: { ...headers, 'x-garde-replay': id }, body, redirect: 'manual',
      });
      await r.arrayBuffer();
      answers.delete(id);
      const violations = JSON.parse(r.headers.get('sl-violations') ?? '[]')
        .filter((v) => v.location?.[0] === 'response');
      if (violations.length) {
        throw new Error(`Prism: ${method} ${path} -> ${status}: ${JSON.stringify(violations)}`);
      }
    };
  })();
  return judge;
}

