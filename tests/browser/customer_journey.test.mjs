// A French customer and an English one, each in headless Chromium (Debian's package), through
// opt-in with confirmation, opt-out, an access request from verification to download and an
// extension notice. A real SMTP server (python3-aiosmtpd) receives what Garde sends. Every
// page and message must be in the customer's language with no text of the other, name the
// controller, and pass axe-core with no serious or critical violation. Screenshots go to
// screenshots/journey/ (docs/screenshots/ holds a copy from a run).
//
//   node customer_journey.test.mjs <garde binary> <policies dir> <smtp_capture.py>
import { cpSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { linkIn, startGarde } from './harness.mjs';

const garde = process.argv[2] ?? process.env.GARDE_BINARY;
const sourcePolicies = process.argv[3] ?? process.env.GARDE_POLICIES;
const smtpCapture = process.argv[4] ?? process.env.GARDE_SMTP_CAPTURE;
const axeSource = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const shots = new URL('./screenshots/journey/', import.meta.url).pathname;
mkdirSync(shots, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A locale file's texts (flat "  key: text" lines under texts:).
function localeTexts(dir, lang) {
  const out = {};
  for (const line of readFileSync(join(dir, 'locales', `${lang}.yaml`), 'utf8').split('\n')) {
    const m = line.match(/^  ([\w.]+): (.*)$/);
    if (m) out[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return out;
}

// The texts of `other` that `lang` says differently: none of them may show on a `lang` page.
function foreignTexts(dir, lang, other, purposes) {
  const mine = localeTexts(dir, lang);
  const theirs = localeTexts(dir, other);
  const out = Object.entries(theirs)
    .filter(([k, v]) => v.length >= 12 && mine[k] !== v && !k.startsWith('date.'))
    .map(([, v]) => v);
  for (const p of purposes) {
    const t = p.translations;
    if (t[other] && t[lang] && t[other].title !== t[lang].title) out.push(t[other].title);
  }
  return out;
}

async function startAll() {
  const dir = mkdtempSync(join(tmpdir(), 'garde-journey-'));
  const policies = join(dir, 'policies');
  cpSync(sourcePolicies, policies, { recursive: true });
  // The newsletter asks for double opt-in.
  const purposes = readFileSync(join(policies, 'purposes.yaml'), 'utf8')
    .replace('  - id: marketing.email\n', '  - id: marketing.email\n    double_opt_in: true\n');
  writeFileSync(join(policies, 'purposes.yaml'), purposes);
  const g = await startGarde(garde, policies, smtpCapture);
  return { ...g, policies, stop: () => { g.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

const subjects = {
  fr: ['Merci de confirmer votre inscription', 'Confirmez votre demande concernant vos données personnelles',
    'Il nous faut plus de temps pour répondre à votre demande', 'Vos données sont prêtes'],
  en: ['Please confirm your subscription', 'Confirm your request about your personal data',
    'We need more time to answer your request', 'Your data is ready'],
};
const words = {
  fr: { form: 'Vos préférences de communication', newsletter: "Lettres d'information et offres par e-mail", save: 'Enregistrer mes choix',
    confirm: 'Oui, je confirme', access: 'Obtenir une copie de mes données',
    request: "Oui, j'ai fait cette demande", read: 'lire', who: 'Qui a accédé à vos données',
    reason: 'Les archives du magasin doivent être consultées.' },
  en: { form: 'Your communication preferences', newsletter: 'Email newsletters and offers', save: 'Save my choices', confirm: 'Yes, I confirm',
    access: 'Get a copy of my data', request: 'Yes, I made this request', read: 'read',
    who: 'Who accessed your data', reason: 'The shop archives must be searched.' },
};

for (const [lang, other] of [['fr', 'en'], ['en', 'fr']]) {
  test(`a ${lang} customer: opt-in with confirmation, opt-out, access request with extension`, async () => {
    const g = await startAll();
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
    try {
      const purposes = (await g.api('GET', '/v1/purposes')).json.items;
      const foreign = foreignTexts(g.policies, lang, other, purposes);
      assert.ok(foreign.length > 50);
      const email = `journey-${lang}@example.org`;
      const s = await g.api('POST', '/v1/subjects', { kind: 'person', fields: { email, first_name: 'Camille', language: lang } });
      assert.equal(s.status, 201);
      const id = s.json.id;
      const links = await g.api('POST', `/v1/subjects/${id}/links`, { uses: ['preferences'] });
      // The browser asks for the other language: the subject's own language wins.
      const context = await browser.newContext({ locale: other === 'fr' ? 'fr-FR' : 'en-GB', bypassCSP: true });
      const page = await context.newPage();
      let shot = 0;
      const checkPage = async (name) => {
        assert.equal(await page.getAttribute('html', 'lang'), lang, name);
        const text = await page.innerText('body');
        for (const t of foreign) assert.ok(!text.includes(t), `${name}: "${t}" is ${other}`);
        assert.match(text, /Maison Exemple SAS/, name);
        await page.addScriptTag({ path: axeSource });
        const result = await page.evaluate(async () => await window.axe.run());
        const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
        assert.deepEqual(bad.map((v) => `${v.id}: ${v.help}`), [], name);
        await page.screenshot({ path: join(shots, `${lang}-${String(++shot).padStart(2, '0')}-${name}.jpeg`),
          fullPage: true, type: 'jpeg', quality: 70 });
      };
      const check = async () => (await g.api('GET', `/v1/consent/check?subject=${id}&purpose=marketing.email&channel=email`)).json;

      // Opt-in: ticked and saved, it waits for the click in the e-mail.
      await page.goto(links.json.links[0].url);
      await checkPage('preferences');
      await page.getByRole('form', { name: words[lang].form }).getByLabel(words[lang].newsletter).check();
      await page.getByRole('button', { name: words[lang].save }).click();
      await page.getByRole('status').waitFor();
      await checkPage('preferences-pending');
      assert.equal((await check()).reason, 'no_consent');
      const [confirmMail] = await g.mailsTo(email, 1);
      await page.goto(linkIn(confirmMail, '/c/'));
      await checkPage('confirm');
      await page.getByRole('button', { name: words[lang].confirm }).click();
      await page.getByRole('status').waitFor();
      await checkPage('confirmed');
      const granted = await check();
      assert.equal(granted.reason, 'consent_granted');
      const history = (await g.api('GET', `/v1/subjects/${id}/consents`)).json.history;
      const receipt = history.at(-1).receipt.receipt;
      assert.ok(receipt.confirmation.requested_at <= receipt.confirmation.confirmed_at);

      // Opt-out, from the same page.
      await page.goto(links.json.links[0].url);
      await page.getByRole('form', { name: words[lang].form }).getByLabel(words[lang].newsletter).uncheck();
      await page.getByRole('button', { name: words[lang].save }).click();
      await page.getByRole('status').waitFor();
      assert.equal((await check()).reason, 'consent_withdrawn');

      // An access request: confirmed from the address on file, extended, answered.
      await page.getByRole('button', { name: words[lang].access }).click();
      await page.getByRole('status').waitFor();
      await checkPage('request-opened');
      const verify = (await g.mailsTo(email, 2))[1];
      await page.goto(linkIn(verify, '/r/'));
      await checkPage('request-confirm');
      await page.getByRole('button', { name: words[lang].request }).click();
      await page.getByRole('status').waitFor();
      const queue = await g.api('GET', `/v1/requests?subject=${id}`, undefined, g.officer);
      const rid = queue.json.items[0].id;
      assert.equal(queue.json.items[0].status, 'verified');
      assert.equal((await g.api('POST', `/v1/requests/${rid}:extend`, { by: 'P1M', reason: words[lang].reason }, g.officer)).status, 200);
      const extended = (await g.mailsTo(email, 3))[2];
      assert.ok(extended.text.includes(words[lang].reason));
      await page.goto(linkIn(extended, '/r/'));
      await checkPage('request-extended');
      assert.ok((await page.innerText('body')).includes(words[lang].reason));
      assert.equal((await g.api('POST', `/v1/requests/${rid}:complete`, {}, g.officer)).status, 200);
      const ready = (await g.mailsTo(email, 4))[3];
      assert.ok(!ready.text.includes(email), 'the data never travels in the mail');
      await page.goto(linkIn(ready, '/r/'));
      await checkPage('request-answered');
      await page.getByRole('link', { name: words[lang].read, exact: true }).click();
      await page.getByRole('heading', { name: words[lang].who }).waitFor();
      await checkPage('package');

      // Every message in the customer's language, naming the controller, and nothing else sent.
      const all = await g.mailsTo(email, 4);
      await sleep(500);
      assert.deepEqual((await g.mailsTo(email, 4)).map((m) => m.subject), subjects[lang]);
      for (const m of all) {
        assert.equal(m.headers['content-language'], lang);
        assert.equal(m.headers['auto-submitted'], 'auto-generated');
        assert.match(m.headers['list-id'], /<notices\.maison-exemple\.example>/);
        for (const body of [m.text, m.html]) {
          assert.match(body, /Maison Exemple SAS/);
          for (const t of foreign) assert.ok(!body.includes(t), `${m.subject}: "${t}" is ${other}`);
        }
      }
      await context.close();
    } finally {
      await browser.close();
      g.stop();
    }
  });
}
