// The preference centre as a customer uses it, in headless Chromium (Debian's package):
// open a minted link, switch a purpose off, submit, and the API's consent check says no.
// Run twice: with JavaScript enabled and disabled. Screenshots go to screenshots/.
//
//   node preference_centre.test.mjs <garde binary> <policies dir> <smtp_capture.py>
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { linkIn, startGarde as startGarde_ } from './harness.mjs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const garde = process.argv[2] ?? process.env.GARDE_BINARY;
const policies = process.argv[3] ?? process.env.GARDE_POLICIES;
const smtpCapture = process.argv[4] ?? process.env.GARDE_SMTP_CAPTURE;
const shots = new URL('./screenshots/', import.meta.url).pathname;
mkdirSync(shots, { recursive: true });

const startGarde = () => startGarde_(garde, policies, smtpCapture);

async function customerWithConsent(g, email) {
  const s = await g.api('POST', '/v1/subjects', { kind: 'person', fields: { email } });
  assert.equal(s.status, 201);
  const id = s.json.id;
  for (const purpose of ['marketing.email', 'marketing.sms']) {
    const c = await g.api('POST', `/v1/subjects/${id}/consents`,
      { purpose, event: 'granted', notice_version: '2026-01', method: 'web_form' });
    assert.equal(c.status, 201);
  }
  const links = await g.api('POST', `/v1/subjects/${id}/links`, { uses: ['preferences'] });
  assert.equal(links.status, 201);
  return { id, url: links.json.links[0].url };
}

const check = async (g, id, purpose) =>
  (await g.api('GET', `/v1/consent/check?subject=${id}&purpose=${purpose}&channel=`)).json;

for (const javaScriptEnabled of [true, false]) {
  test(`switching e-mail off in the preference centre (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async () => {
    const g = await startGarde();
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const { id, url } = await customerWithConsent(g, `browser-${javaScriptEnabled}@example.org`);
      assert.equal((await check(g, id, 'marketing.email')).allowed, true);
      const context = await browser.newContext({ javaScriptEnabled, locale: 'fr-FR' });
      const page = await context.newPage();
      await page.goto(url);
      assert.equal(await page.getAttribute('html', 'lang'), 'fr');
      const email = page.getByRole('form', { name: 'Vos préférences de communication' })
        .getByLabel("Lettres d'information et offres par e-mail");
      assert.equal(await email.isChecked(), true);
      await page.screenshot({ path: join(shots, `preferences-before-js-${javaScriptEnabled}.png`), fullPage: true });
      await email.focus();                 // keyboard reachable
      await page.keyboard.press('Space');  // and operable
      assert.equal(await email.isChecked(), false);
      await page.getByRole('button', { name: 'Enregistrer mes choix' }).click();
      await page.getByRole('status').waitFor();
      assert.match(await page.getByRole('status').innerText(), /enregistrés/);
      await page.screenshot({ path: join(shots, `preferences-after-js-${javaScriptEnabled}.png`), fullPage: true });
      const decision = await check(g, id, 'marketing.email');
      assert.equal(decision.allowed, false);
      assert.equal(decision.reason, 'consent_withdrawn');
      assert.equal((await check(g, id, 'marketing.sms')).allowed, true);  // untouched
      await context.close();
    } finally {
      await browser.close();
      g.stop();
    }
  });
}

test('a GPC signal is recorded and the page says so', async () => {
  const g = await startGarde();
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  try {
    const { id, url } = await customerWithConsent(g, 'gpc@example.org');
    const context = await browser.newContext({ extraHTTPHeaders: { 'Sec-GPC': '1' } });
    const page = await context.newPage();
    await page.goto(url);
    assert.match(await page.getByRole('status').innerText(), /Global Privacy Control/);
    await page.screenshot({ path: join(shots, 'preferences-gpc.png'), fullPage: true });
    assert.equal((await check(g, id, 'marketing.email')).reason, 'consent_withdrawn');
  } finally {
    await browser.close();
    g.stop();
  }
});

test('a customer asks for a copy of their data, reads it, then asks for erasure (no JavaScript)', async () => {
  const g = await startGarde();
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  try {
    const { id, url } = await customerWithConsent(g, 'rights@example.org');
    const context = await browser.newContext({ javaScriptEnabled: false, locale: 'en-GB' });
    const page = await context.newPage();
    await page.goto(url);
    await page.getByRole('button', { name: 'Get a copy of my data' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await page.getByRole('status').innerText(), /We will answer by \d{1,2} [A-Z][a-z]+ \d{4}/);
    // A preference link may have been forwarded: the request waits for the customer to
    // confirm it through the one-hour link sent to their contact on file.
    const queue = await g.api('GET', `/v1/requests?subject=${id}`, undefined, g.officer);
    assert.equal(queue.json.items.length, 1);
    assert.equal(queue.json.items[0].status, 'received');
    // Sent to the contact on file, as the first message to this customer.
    const [confirm] = await g.mailsTo('rights@example.org', 1);
    assert.match(confirm.subject, /Confirm your request/);
    await page.goto(linkIn(confirm, '/r/'));
    await page.getByRole('button', { name: 'Yes, I made this request' }).click();
    await page.getByRole('status').waitFor();
    const done = await g.api('POST', `/v1/requests/${queue.json.items[0].id}:complete`, {}, g.officer);
    assert.equal(done.status, 200);
    // The answer's link opens the package; the preference page links none.
    await page.goto(url);
    assert.equal(await page.getByRole('link', { name: 'read', exact: true }).count(), 0);
    const answered = (await g.mailsTo('rights@example.org', 2))[1];
    assert.equal(answered.subject, 'Your data is ready');
    await page.goto(linkIn(answered, '/r/'));
    await page.getByRole('link', { name: 'read', exact: true }).click();
    await page.getByRole('heading', { name: 'Who accessed your data' }).waitFor();
    assert.match(await page.content(), /rights@example\.org/);
    await page.getByRole('heading', { name: 'Your rights' }).waitFor();
    await page.screenshot({ path: join(shots, 'access-package.png'), fullPage: true });
    // Erasure needs the box ticked (the browser enforces `required` without JavaScript).
    await page.goto(url);
    await page.getByLabel(/I understand that my data will be erased/).check();
    await page.getByLabel(/Never contact me again/).check();
    await page.getByRole('button', { name: 'Erase my data' }).click();
    await page.getByRole('status').waitFor();
    await page.screenshot({ path: join(shots, 'erasure-requested.png'), fullPage: true });
    const after = await g.api('GET', `/v1/requests?subject=${id}&type=erasure`, undefined, g.officer);
    assert.equal(after.json.items.length, 1);
    assert.equal(after.json.items[0].opened_by, 'subject');
    const verify = (await g.mailsTo('rights@example.org', 3))[2];
    assert.match(verify.subject, /Confirm your request/);
    await page.goto(linkIn(verify, '/r/'));
    await page.getByRole('button', { name: 'Yes, I made this request' }).click();
    await page.getByRole('status').waitFor();
    const erased = await g.api('POST', `/v1/requests/${after.json.items[0].id}:complete`, {}, g.officer);
    assert.equal(erased.status, 200);
    assert.equal(erased.json.result.contacts_suppressed, true);
    assert.equal(erased.json.result.data_key_destroyed, true);
  } finally {
    await browser.close();
    g.stop();
  }
});
