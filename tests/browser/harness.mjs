// Starts the real garde binary for a browser test: a fresh data directory, an operator key
// (customer_management) and an officer key, a real SMTP server capturing its messages
// (tests/mail/smtp_capture.py, Debian's python3-aiosmtpd), and `serve` on a free port.
//
//   const g = await startGarde(garde, policies, smtpCapture);
//   const r = await g.api('POST', '/v1/subjects', {...});
//   const [mail] = await g.mailsTo('ana@example.org', 1);   g.stop();
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prismJudge } from '../openapi/prism_judge.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves with the first match of `pattern` in what `proc` prints.
function waitForOutput(proc, pattern, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(pattern);
      if (m) resolve(m[1]);
    });
    proc.on('exit', (code) => reject(new Error(`${what} exited ${code}`)));
  });
}

export async function startGarde(garde, policies, smtpCapture, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'garde-browser-'));
  const mails = join(dir, 'mails');
  const smtp = spawn('/usr/bin/python3', [smtpCapture, mails]);
  const smtpPort = await waitForOutput(smtp, /listening (\d+)/, 'smtp_capture');
  const data = join(dir, 'data');
  const run = (...args) => execFileSync(garde, args, { encoding: 'utf8' }).trim().split('\n').pop();
  run('init', '--data-dir', data, '--policies', policies);
  const operator = run('apikey', 'create', '--data-dir', data, '--policies', policies,
    '--name', 'crm', '--role', 'operator', '--activity', 'customer_management');
  const officer = run('apikey', 'create', '--data-dir', data, '--policies', policies,
    '--name', 'dpo', '--role', 'officer');
  const proc = spawn(garde, ['serve', '--data-dir', data, '--policies', policies,
    '--listen', '127.0.0.1:0', '--smtp-host', '127.0.0.1', '--smtp-port', smtpPort,
    '--smtp-tls', 'none', '--mail-from', 'notices@maison-exemple.example', ...extraArgs]);
  const base = await waitForOutput(proc, /listening on (http:\/\/127\.0\.0\.1:\d+)/, 'garde');
  const judged = await prismJudge();
  const api = async (method, path, body, key = operator) => {
    const headers = { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' };
    const sent = body ? JSON.stringify(body) : undefined;
    const r = await fetch(base + path, { method, headers, body: sent });
    const text = await r.text();
    await judged(method, path, headers, sent, r.status, r.headers, text);
    return { status: r.status, json: text ? JSON.parse(text) : null };
  };
  // The messages captured for `to`, as Python's email package read them; waits for `n`.
  const mailsTo = async (to, n) => {
    for (let i = 0; i < 300; i++) {
      let got = [];
      try {
        got = readdirSync(mails).filter((f) => f.endsWith('.json')).sort()
          .map((f) => JSON.parse(readFileSync(join(mails, f), 'utf8')))
          .filter((m) => m.rcpt_tos.includes(to));
      } catch { /* no message yet */ }
      if (got.length >= n) return got;
      await sleep(100);
    }
    throw new Error(`fewer than ${n} messages to ${to}`);
  };
  const stop = () => {
    proc.kill('SIGTERM');
    smtp.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  // Another key, made with the CLI beside the running service: { id, token }.
  const createKey = (name, role, ...activities) => {
    const out = execFileSync(garde, ['apikey', 'create', '--data-dir', data, '--policies', policies,
      '--name', name, '--role', role, ...activities.flatMap((a) => ['--activity', a])], { encoding: 'utf8' });
    return { id: out.match(/key_[0-9a-z]+/)[0], token: out.trim().split('\n').pop() };
  };
  const revokeKey = (id) => execFileSync(garde, ['apikey', 'revoke', '--data-dir', data, '--id', id]);
  return { base, api, operator, officer, data, mailsTo, createKey, revokeKey, stop };
}

// The first link to this service in a message's text.
export const linkIn = (mail, path) =>
  mail.text.match(new RegExp(`http://127\\.0\\.0\\.1:\\d+${path}[^\\s]+`))[0];
