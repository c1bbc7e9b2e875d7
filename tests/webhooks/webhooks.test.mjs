// Webhook deliveries as recipients receive them, judged by the official Standard Webhooks
// library (npm `standardwebhooks`), not by Garde's own code: every delivery's signature, each
// secret of a rotation, order per subject, retries with back-off, dead letters an officer
// replays, nothing lost across kill -9, and no personal data in any payload.
//
//   node webhooks.test.mjs <garde binary> <policies dir>
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { prismJudge } from '../openapi/prism_judge.mjs';

const garde = process.argv[2] ?? process.env.GARDE_BINARY;
const policies = process.argv[3] ?? process.env.GARDE_POLICIES;
const secret = () => 'whsec_' + randomBytes(32).toString('base64');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, check, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(50);
  }
}

// A recipient: verifies each request with the library and records what it got. `mode(path)`
// says how to answer: 'ok', 'fail' (503) or a number of failures per webhook-id first.
function receiver(secrets) {
  const got = [];
  const attempts = new Map();
  const modes = new Map();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const path = req.url;
      const id = req.headers['webhook-id'];
      const n = (attempts.get(path + id) ?? 0) + 1;
      attempts.set(path + id, n);
      const mode = modes.get(path) ?? 'ok';
      const fail = mode === 'fail' || (typeof mode === 'number' && n <= mode);
      if (fail) {
        res.writeHead(503).end();
        return;
      }
      const verified = (secrets[path] ?? []).map((s) => {
        try {
          new Webhook(s).verify(body, req.headers);
          return true;
        } catch {
          return false;
        }
      });
      got.push({ path, id, attempts: n, headers: req.headers, body, verified,
                 message: JSON.parse(body) });
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`, got, modes, close: () => server.close() })));
}

function startGarde(data, extra = []) {
  const proc = spawn(garde, ['serve', '--data-dir', data, '--policies', policies,
    '--listen', '127.0.0.1:0', ...extra]);
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const base = new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve(m[1]);
    });
    proc.on('exit', (code) => reject(new Error('garde exited ' + code + ': ' + err)));
  });
  return { proc, base };
}

test('recipients hear every change, signed, in order, at least once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'garde-webhooks-'));
  const data = join(dir, 'data');
  const run = (...args) => execFileSync(garde, args, { encoding: 'utf8' }).trim().split('\n').pop();
  run('init', '--data-dir', data, '--policies', policies);
  const key = (name, role, ...activities) => run('apikey', 'create', '--data-dir', data,
    '--policies', policies, '--name', name, '--role', role,
    ...activities.flatMap((a) => ['--activity', a]));
  const operator = key('crm', 'operator', 'customer_management');
  const officer = key('dpo', 'officer');

  const crmSecret = secret();
  const oldSecret = secret();
  const newSecret = secret();
  const downSecret = secret();
  const r = await receiver({ '/crm': [crmSecret], '/mailer': [oldSecret, newSecret],
                             '/sms': [downSecret] });
  r.modes.set('/mailer', 2);      // two failures per event, then accepted
  r.modes.set('/sms', 'fail');    // down until told otherwise
  const hooks = join(dir, 'webhooks.yaml');
  writeFileSync(hooks, `endpoints:
  - id: crm
    url: ${r.url}/crm
    recipient: CRM hosting provider
    events: [consent.changed, subject.rectified, subject.erased, subject.restricted,
             request.completed, suppression.added]
    secrets: ["${crmSecret}"]
  - id: mailer
    url: ${r.url}/mailer
    recipient: MailerCloud Inc.
    events: [consent.changed, subject.erased]
    secrets: ["${newSecret}", "${oldSecret}"]
    first_retry: PT1S
  - id: sms
    url: ${r.url}/sms
    recipient: SMS gateway
    events: [subject.erased]
    secrets: ["${downSecret}"]
    first_retry: PT1S
    max_age: PT3S
`);
  let g = startGarde(data, ['--webhooks-file', hooks]);
  try {
    let base = await g.base;
    const judged = await prismJudge();
    const api = async (method, path, body, k = operator) => {
      const headers = { Authorization: 'Bearer ' + k, 'Content-Type': 'application/json' };
      const sent = body ? JSON.stringify(body) : undefined;
      const res = await fetch(base + path, { method, headers, body: sent });
      const text = await res.text();
      await judged(method, path, headers, sent, res.status, res.headers, text);
      return { status: res.status, json: text ? JSON.parse(text) : null };
    };

    // One customer's life: consent, rectification, objection, erasure.
    const planted = 'planted.webhook@example.org';
    const s = await api('POST', '/v1/subjects', { kind: 'person',
      fields: { email: planted, first_name: 'Plantedname' } });
    assert.equal(s.status, 201);
    const id = s.json.id;
    assert.equal((await api('POST', `/v1/subjects/${id}/consents`, { purpose: 'marketing.email',
      event: 'granted', notice_version: '2026-01', method: 'web_form' })).status, 201);
    assert.equal((await api('PATCH', `/v1/subjects/${id}`, { fields: { first_name: 'Renamed' } })).status, 200);
    assert.equal((await api('POST', `/v1/subjects/${id}/consents`, { purpose: 'marketing.email',
      event: 'objected', method: 'web_form' })).status, 201);
    const opened = await api('POST', '/v1/requests', { type: 'erasure', subject: id });
    assert.equal(opened.status, 201);
    for (const step of ['verify', 'complete']) {
      assert.equal((await api('POST', `/v1/requests/${opened.json.id}:${step}`, { note: 'letter' },
        officer)).status, 200);
    }

    // The CRM gets the five topics, in the order they happened, each signed.
    const crmTopics = ['consent.changed', 'subject.rectified', 'consent.changed',
      'suppression.added', 'subject.erased', 'request.completed'];
    const crm = await until('the crm deliveries', () => {
      const mine = r.got.filter((m) => m.path === '/crm' && m.message.data.subject === id);
      return mine.length >= crmTopics.length ? mine : null;
    });
    assert.deepEqual(crm.map((m) => m.message.type), crmTopics);
    for (const m of crm) {
      assert.deepEqual(m.verified, [true], 'the library verifies ' + m.message.type);
      assert.equal(m.headers['webhook-id'].startsWith('evt_'), true);
    }
    assert.deepEqual(crm[1].message.data.fields, ['first_name']);
    assert.equal(crm[4].message.data.fully_erased, true);

    // A delivery altered in transit fails the library's check: the checks above can fail.
    const forged = crm[0];
    assert.throws(() => new Webhook(crmSecret).verify(forged.body.replace('granted', 'refused'),
      forged.headers));

    // Rotation: both secrets sign, so the recipient verifies with the old one and the new one.
    const mailer = await until('the mailer deliveries after retries', () => {
      const mine = r.got.filter((m) => m.path === '/mailer' && m.message.data.subject === id);
      return mine.length >= 3 ? mine : null;
    }, 40000);
    assert.deepEqual(mailer.map((m) => m.message.type),
      ['consent.changed', 'consent.changed', 'subject.erased']);
    for (const m of mailer) {
      assert.deepEqual(m.verified, [true, true]);
      assert.equal(m.attempts, 3, 'accepted at the third attempt');
    }

    // No personal data in any payload.
    for (const m of r.got) {
      assert.equal(m.body.includes(planted), false);
      assert.equal(m.body.includes('Plantedname'), false);
      assert.equal(m.body.includes('Renamed'), false);
    }

    // The SMS gateway is down: after max_age the erasure is a dead letter the officer sees,
    // and replays once the gateway is back.
    const dead = await until('a dead letter', async () => {
      const list = await api('GET', '/v1/webhooks/deliveries?status=dead&endpoint=sms', null, officer);
      assert.equal(list.status, 200);
      return list.json.items.find((d) => d.subject === id && d.topic === 'subject.erased');
    }, 20000);
    assert.ok(dead.attempts >= 2, 'retried before dying: ' + dead.attempts);
    assert.match(dead.last_error, /503/);
    assert.equal((await api('GET', '/v1/webhooks/deliveries', null, operator)).status, 403);
    r.modes.set('/sms', 'ok');
    const replayed = await api('POST', `/v1/webhooks/deliveries/${dead.id}:replay`, null, officer);
    assert.equal(replayed.status, 200);
    assert.equal(replayed.json.status, 'pending');
    const sms = await until('the replayed delivery', () =>
      r.got.find((m) => m.path === '/sms' && m.message.data.subject === id));
    assert.deepEqual(sms.verified, [true]);
    assert.equal((await api('POST', '/v1/webhooks/deliveries/999999:replay', null, officer)).status, 404);

    // kill -9 between commit and delivery: the CRM is down while a change commits; garde is
    // killed; restarted, it delivers — nothing is lost.
    r.modes.set('/crm', 'fail');
    const later = await api('POST', '/v1/subjects', { kind: 'person', fields: { email: 'later@example.org' } });
    assert.equal(later.status, 201);
    assert.equal((await api('POST', `/v1/subjects/${later.json.id}/consents`, { purpose: 'marketing.email',
      event: 'granted', notice_version: '2026-01', method: 'web_form' })).status, 201);
    g.proc.kill('SIGKILL');
    await new Promise((resolve) => g.proc.on('exit', resolve));
    r.modes.set('/crm', 'ok');
    g = startGarde(data, ['--webhooks-file', hooks]);
    base = await g.base;
    const after = await until('the delivery after kill -9', () =>
      r.got.find((m) => m.path === '/crm' && m.message.data.subject === later.json.id &&
                        m.message.type === 'consent.changed'));
    assert.deepEqual(after.verified, [true]);
    // At least once: every event of a subscribed topic reached the CRM.
    const outbox = execFileSync('sqlite3', [join(data, 'garde.db'),
      "SELECT id FROM outbox WHERE topic IN ('consent.changed','subject.rectified','subject.erased'," +
      "'subject.restricted','request.completed','suppression.added')"], { encoding: 'utf8' })
      .trim().split('\n');
    await until('every crm event', () => {
      const ids = new Set(r.got.filter((m) => m.path === '/crm').map((m) => m.id));
      return outbox.every((e) => ids.has(e));
    });

  } finally {
    // Whatever failed, nothing is left running to hold the test past its failure.
    if (g.proc.exitCode === null) {
      g.proc.kill('SIGTERM');
      await new Promise((resolve) => g.proc.on('exit', resolve));
    }
    r.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a webhooks file naming no register recipient or an unknown topic stops the service', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'garde-webhooks-bad-'));
  const data = join(dir, 'data');
  execFileSync(garde, ['init', '--data-dir', data, '--policies', policies]);
  const hooks = join(dir, 'webhooks.yaml');
  writeFileSync(hooks, `endpoints:
  - id: x
    url: http://127.0.0.1:9/x
    recipient: Somebody Else Ltd
    events: [subject.erased, subject.notice]
    secrets: ["whsec_short"]
`);
  const g = startGarde(data, ['--webhooks-file', hooks]);
  await assert.rejects(g.base, (e) => {
    assert.match(e.message, /exited 1/);
    assert.match(e.message, /webhooks\.yaml:2/);
    assert.match(e.message, /Somebody Else Ltd/);
    assert.match(e.message, /subject\.notice/);
    assert.match(e.message, /whsec_/);
    return true;
  });
  rmSync(dir, { recursive: true, force: true });
});
