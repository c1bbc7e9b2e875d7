// The officer's console in headless Chromium (Debian's package): an officer signs in with
// their key and does a day's work — the request queue (verify, complete, extend, reject),
// the register, the audit log with an entry's inclusion proof checked in the page, consent
// statistics, retention runs — then signs out; with JavaScript on and off; each page passes
// axe-core with no serious or critical violation. Refusals: a wrong key, an operator key, an
// auditor on the queue, a form without the session's CSRF token, a revoked key, a tampered
// proof. Screenshots go to screenshots/console-*.jpeg (some are kept in docs/screenshots/).
//
//   node console.test.mjs <garde binary> <policies dir> <smtp_capture.py>
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startGarde as startGarde_ } from './harness.mjs';

const garde = process.argv[2] ?? process.env.GARDE_BINARY;
const policies = process.argv[3] ?? process.env.GARDE_POLICIES;
const smtpCapture = process.argv[4] ?? process.env.GARDE_SMTP_CAPTURE;
const shots = new URL('./screenshots/', import.meta.url).pathname;
mkdirSync(shots, { recursive: true });
const axeSource = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const launch = () => chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});

// Customers, consents and two open requests, made through the API as a CRM would.
async function seed(g) {
  const ids = [];
  for (let i = 0; i < 6; i++) {
    const s = await g.api('POST', '/v1/subjects', { kind: 'person', fields: { email: `console-${i}@example.org` } });
    assert.equal(s.status, 201);
    ids.push(s.json.id);
    const c = await g.api('POST', `/v1/subjects/${s.json.id}/consents`,
      { purpose: 'marketing.email', event: 'granted', notice_version: '2026-01', method: 'web_form' });
    assert.equal(c.status, 201);
  }
  const open = async (type, subject) => {
    const r = await g.api('POST', '/v1/requests', { type, subject });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    return r.json.id;
  };
  // Two records of one customer ("Rob" and "Robert" at one postal code).
  const twins = [];
  for (const first_name of ['Robert', 'Rob']) {
    const s = await g.api('POST', '/v1/subjects', { kind: 'person',
      fields: { first_name, last_name: 'Dupont', postal_code: '75011', email: `${first_name}.dupont@example.org` } });
    assert.equal(s.status, 201);
    twins.push(s.json.id);
  }
  return { ids, twins, access: await open('access', ids[0]), erasure: await open('erasure', ids[1]) };
}

async function signIn(page, g, key) {
  await page.goto(g.base + '/console/');
  assert.match(page.url(), /\/console\/sign-in$/);
  await page.getByLabel(/API key|Clé d'API/).fill(key);
  await page.getByRole('button', { name: /Sign in|Se connecter/ }).click();
}

// axe-core on the page as it stands: no serious or critical violation.
async function axe(page, name) {
  await page.addScriptTag({ path: axeSource });
  const result = await page.evaluate(async () => await window.axe.run());
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(' ')})`), [], name);
}

const requestStatus = async (g, id) => (await g.api('GET', `/v1/requests/${id}`, undefined, g.officer)).json;

for (const javaScriptEnabled of [true, false]) {
  test(`an officer's day in the console (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async () => {
    const g = await startGarde_(garde, policies, smtpCapture);
    const browser = await launch();
    try {
      const { ids, twins, access, erasure } = await seed(g);
      // bypassCSP lets the test inject axe-core; the CSP itself is checked in its own test.
      const context = await browser.newContext({ javaScriptEnabled, locale: 'en-GB', bypassCSP: true });
      const page = await context.newPage();
      // axe-core runs in the page: with JavaScript on (the pages are the same without).
      const shot = async (name) => {
        if (!javaScriptEnabled) return;
        await axe(page, name);
        await page.screenshot({ path: join(shots, `console-${name}.jpeg`), fullPage: true, type: 'jpeg', quality: 70 });
      };

      // Sign-in: a wrong key is refused, the officer's key opens the queue.
      await page.goto(g.base + '/console/');
      await shot('sign-in');
      await signIn(page, g, 'gk_not-a-key');
      await assert.doesNotReject(page.getByRole('alert').filter({ hasText: 'This key is not valid.' }).waitFor());
      await signIn(page, g, g.officer);
      await page.getByRole('heading', { name: 'Data-subject requests' }).waitFor();
      const [cookie] = (await context.cookies()).filter((c) => c.name === 'garde_console');
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, 'Strict');
      assert.equal(cookie.path, '/console');
      assert.equal(cookie.secure, false, 'plain HTTP here: a Secure cookie would not come back');
      assert.ok(!cookie.value.includes(g.officer.slice(3)), 'the cookie is not the key');
      const queue = await page.locator('table').innerText();
      assert.ok(queue.includes(access) && queue.includes(erasure), queue);
      await shot('requests');

      // Work the access request: verify, then complete.
      await page.getByRole('link', { name: access }).click();
      await page.getByLabel('How it was checked').fill('ID card seen at the shop');
      await page.getByRole('button', { name: 'Mark verified' }).click();
      await page.getByRole('status').filter({ hasText: 'The request is verified.' }).waitFor();
      assert.equal((await requestStatus(g, access)).status, 'verified');
      await shot('request');
      await page.getByRole('button', { name: 'Complete' }).click();
      await page.getByRole('status').filter({ hasText: 'The request is completed.' }).waitFor();
      assert.equal((await requestStatus(g, access)).status, 'completed');

      // The erasure request: extended with a reason (then listed as extended), then rejected.
      await page.goto(`${g.base}/console/requests/${erasure}`);
      await page.getByRole('group', { name: 'Extend the deadline' }).getByLabel('Reason (told to the customer)')
        .fill('Archives must be searched.');
      await page.getByRole('button', { name: 'Extend' }).click();
      await page.getByRole('status').filter({ hasText: 'The deadline is extended.' }).waitFor();
      const extended = await requestStatus(g, erasure);
      assert.equal(extended.extended, true);
      await page.goto(`${g.base}/console/requests?view=extended`);
      assert.ok((await page.locator('table').innerText()).includes(erasure));
      assert.ok(!(await page.locator('table').innerText()).includes(access));
      await page.goto(`${g.base}/console/requests/${erasure}`);
      await page.getByRole('group', { name: 'Reject the request' }).getByLabel('Reason (told to the customer)')
        .fill('Legal obligation to keep the invoices.');
      await page.getByRole('button', { name: 'Reject' }).click();
      await page.getByRole('status').filter({ hasText: 'The request is rejected.' }).waitFor();
      assert.equal((await requestStatus(g, erasure)).status, 'rejected');

      // The register: activities, findings with file:line, history.
      await page.getByRole('link', { name: 'Register' }).click();
      await page.getByRole('heading', { name: 'Register of processing activities' }).waitFor();
      await page.getByRole('heading', { name: 'History of changes' }).waitFor();
      assert.ok(await page.locator('a[href="/console/register/customer_management"]').count() === 1);
      await shot('register');
      await page.locator('a[href="/console/register/customer_management"]').click();
      assert.match(await page.locator('main').innerText(), /customer_management/);
      await shot('activity');

      // The audit log: this customer's entries, one entry's proof checked in the page.
      await page.getByRole('link', { name: 'Audit log' }).click();
      await page.getByLabel('Subject id').fill(ids[0]);
      await page.getByRole('button', { name: 'Search' }).click();
      const rows = page.locator('tbody tr');
      assert.ok(await rows.count() >= 2, 'entries about the customer');
      assert.ok((await page.locator('tbody').innerText()).includes('request.complete'));
      await shot('audit');
      await rows.first().getByRole('link').click();
      await page.getByRole('heading', { name: 'Proof' }).waitFor();
      assert.equal(await page.getAttribute('[data-server-check]', 'data-server-check'), 'ok');
      if (javaScriptEnabled) {
        await page.waitForSelector('#browser-check[data-browser-check]');
        assert.equal(await page.getAttribute('#browser-check', 'data-browser-check'), 'ok');
        assert.match(await page.locator('#browser-check').innerText(), /Checked in your browser/);
      } else {
        assert.match(await page.locator('#browser-check').innerText(), /needs JavaScript/);
      }
      await shot('audit-entry');

      // Consent over time: a chart with a text alternative, and its figures as a table.
      await page.getByRole('link', { name: 'Consent' }).click();
      await page.getByLabel('Purpose').selectOption('marketing.email');
      await page.getByRole('button', { name: 'Show' }).click();
      assert.equal(await page.locator('figure svg[role=img]').count(), 1);
      assert.match(await page.locator("tbody").last().innerText(), /8\s+6 \(75 %\)\s*$/);
      await shot('consent');

      // Likely duplicates: merged from the list, then the merge reverted.
      await page.getByRole('link', { name: 'Duplicates' }).click();
      const [keep, merge] = [...twins].sort();
      const pair = page.locator('tbody tr').filter({ hasText: merge });
      assert.match(await pair.innerText(), new RegExp(keep));
      await shot('duplicates');
      await pair.getByRole('button', { name: `Merge ${merge} into ${keep}` }).click();
      await page.getByRole('status').filter({ hasText: `${merge} is merged into ${keep}` }).waitFor();
      const moved = await fetch(`${g.base}/v1/subjects/${merge}`,
        { headers: { Authorization: 'Bearer ' + g.operator, 'X-Purpose': 'customer_management' }, redirect: 'manual' });
      assert.equal(moved.status, 308);
      await shot('merged');
      await page.getByRole('button', { name: 'Revert this merge' }).click();
      await page.getByRole('status').filter({ hasText: 'is reverted' }).waitFor();
      const back = await fetch(`${g.base}/v1/subjects/${merge}`,
        { headers: { Authorization: 'Bearer ' + g.operator, 'X-Purpose': 'customer_management' } });
      assert.equal(back.status, 200);

      // Imports: one made through the API shows with its row count.
      const csv = 'First name;Last name;Email;Phone;Birth date;Postal code;City;Customer number;Total spend\r\n' +
        'Léa;Martin;lea.import@example.org;;;;;;\r\nNoé;Petit;noe.import@example.org;;;;;;\r\n';
      const imported = await fetch(`${g.base}/v1/imports?mapping=spreadsheet`, {
        method: 'POST', body: csv, headers: { Authorization: 'Bearer ' + g.operator, 'Content-Type': 'text/csv' } });
      assert.equal(imported.status, 200, await imported.text());
      await page.getByRole('link', { name: 'Imports' }).click();
      const importRow = page.locator('tbody tr').first();
      assert.match(await importRow.innerText(), /written\s+2\s/);
      await shot('imports');

      await page.getByRole('link', { name: 'Retention' }).click();
      await page.getByRole('heading', { name: 'Retention runs' }).waitFor();
      await shot('retention');

      // French, for the same session.
      await page.goto(`${g.base}/console/requests?lang=fr`);
      assert.equal(await page.getAttribute('html', 'lang'), 'fr');
      await page.getByRole('heading', { name: 'Demandes des personnes' }).waitFor();
      await page.goto(`${g.base}/console/register`);
      await page.getByRole('heading', { name: 'Registre des activités de traitement' }).waitFor();
      await shot('register-fr');

      // Sign out: the session is gone, pages lead back to sign-in.
      await page.getByRole('button', { name: 'Se déconnecter' }).click();
      await page.waitForURL(/\/console\/sign-in$/);
      await page.goto(`${g.base}/console/requests`);
      assert.match(page.url(), /\/console\/sign-in$/);

      // Every page view is in the audit log, as the key's own reads.
      const viewed = (await g.api('GET', '/v1/audit?action=console.view&limit=1000', undefined, g.officer)).json.items;
      const pages = new Set(viewed.map((e) => e.fields[0]));
      for (const p of ['requests', 'request', 'register', 'register.activity', 'audit.entry', 'consent', 'duplicates', 'imports', 'retention']) {
        assert.ok(pages.has(p), `console.view of ${p}`);
      }
      const officerId = viewed[0].actor;
      assert.ok(viewed.every((e) => e.actor === officerId && e.role === 'officer'));
      const signIns = (await g.api('GET', '/v1/audit?action=console.sign_in', undefined, g.officer)).json.items;
      assert.equal(signIns.length, 1);
      const searches = (await g.api('GET', `/v1/audit?action=audit.search&subject=${ids[0]}`, undefined, g.officer)).json.items;
      assert.equal(searches.length, 1);
    } finally {
      await browser.close();
      g.stop();
    }
  });
}

test('console refusals: keys and roles, CSRF, revocation, a tampered proof, the page policy', async () => {
  const g = await startGarde_(garde, policies, smtpCapture);
  const browser = await launch();
  try {
    const { access } = await seed(g);
    // Operator keys do not open the console.
    let context = await browser.newContext({ locale: 'en-GB' });
    let page = await context.newPage();
    await signIn(page, g, g.operator);
    await page.getByRole('alert').filter({ hasText: 'The console is for officer, auditor and admin keys.' }).waitFor();
    assert.equal((await context.cookies()).length, 0);
    await context.close();

    // Behind TLS (a proxy saying so, or an https public URL) the cookie is Secure.
    const viaTls = await fetch(`${g.base}/console/sign-in`, {
      method: 'POST', redirect: 'manual', body: 'key=' + encodeURIComponent(g.officer),
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Forwarded-Proto': 'https' },
    });
    assert.equal(viaTls.status, 303);
    assert.match(viaTls.headers.get('set-cookie'), /; HttpOnly; SameSite=Strict; Secure$/);

    // An auditor reads the audit log but not the request queue.
    const auditor = g.createKey('auditor', 'auditor');
    context = await browser.newContext({ locale: 'en-GB' });
    page = await context.newPage();
    await signIn(page, g, auditor.token);
    await page.waitForURL(/\/console\/audit$/);
    assert.equal(await page.getByRole('link', { name: 'Requests' }).count(), 0);
    const refused = await page.goto(`${g.base}/console/requests/${access}`);
    assert.equal(refused.status(), 403);

    // The page policy lets the page's own proof script run (no bypass here) and nothing else.
    await page.goto(`${g.base}/console/audit`);
    await page.locator('tbody tr').first().getByRole('link').click();
    await page.waitForSelector('#browser-check[data-browser-check]');
    assert.equal(await page.getAttribute('#browser-check', 'data-browser-check'), 'ok');
    const headers = (await page.goto(page.url())).headers();
    assert.match(headers['content-security-policy'], /script-src 'self'/);
    assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);

    // A changed byte in the entry the page holds: the browser's check fails.
    await page.route('**/console/audit/*', async (route) => {
      const response = await route.fetch();
      const body = (await response.text()).replace(/("entry":"\{\\"v\\":1,\\"seq\\":)(\d+)/, (m, head, n) => head + (Number(n) + 1));
      await route.fulfill({ response, body });
    });
    await page.goto(page.url());
    await page.waitForSelector('#browser-check[data-browser-check]');
    assert.equal(await page.getAttribute('#browser-check', 'data-browser-check'), 'failed');
    await page.unroute('**/console/audit/*');

    // A form posted without the session's CSRF token changes nothing.
    const officer2 = g.createKey('officer-two', 'officer');
    const officerContext = await browser.newContext({ locale: 'en-GB' });
    const officerPage = await officerContext.newPage();
    await signIn(officerPage, g, officer2.token);
    await officerPage.getByRole('heading', { name: 'Data-subject requests' }).waitFor();
    const forged = await officerPage.request.post(`${g.base}/console/requests/${access}/verify`, {
      form: { note: 'forged' }, maxRedirects: 0,
    });
    assert.equal(forged.status(), 403);
    const wrongToken = await officerPage.request.post(`${g.base}/console/requests/${access}/verify`, {
      form: { note: 'forged', csrf: 'x'.repeat(43) }, maxRedirects: 0,
    });
    assert.equal(wrongToken.status(), 403);
    assert.equal((await requestStatus(g, access)).status, 'received');

    // Revoking the key (from the CLI, another process) ends its sessions at once.
    g.revokeKey(officer2.id);
    await officerPage.goto(`${g.base}/console/requests`);
    assert.match(officerPage.url(), /\/console\/sign-in$/);
  } finally {
    await browser.close();
    g.stop();
  }
});
