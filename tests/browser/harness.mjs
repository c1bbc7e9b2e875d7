// Starts the real garde binary for a browser test: a fresh data directory, an operator key
// (customer_management) and an officer key, `serve` on a free port with `extraArgs`.
//
//   const g = await startGarde(garde, policies, ['--smtp-host', '127.0.0.1']);
//   const r = await g.api('POST', '/v1/subjects', {...});   g.stop();
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function startGarde(garde, policies, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'garde-browser-'));
  const data = join(dir, 'data');
  const run = (...args) => execFileSync(garde, args, { encoding: 'utf8' }).trim().split('\n').pop();
  run('init', '--data-dir', data, '--policies', policies);
  const operator = run('apikey', 'create', '--data-dir', data, '--policies', policies,
    '--name', 'crm', '--role', 'operator', '--activity', 'customer_management');
  const officer = run('apikey', 'create', '--data-dir', data, '--policies', policies,
    '--name', 'dpo', '--role', 'officer');
  const proc = spawn(garde, ['serve', '--data-dir', data, '--policies', policies,
    '--listen', '127.0.0.1:0', ...extraArgs]);
  const base = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve(m[1]);
    });
    proc.on('exit', (code) => reject(new Error('garde exited ' + code)));
  });
  const api = async (method, path, body, key = operator) => {
    const r = await fetch(base + path, {
      method, headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: r.status, json: await r.json() };
  };
  const stop = () => { proc.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }); };
  return { base, api, operator, officer, data, stop };
}
