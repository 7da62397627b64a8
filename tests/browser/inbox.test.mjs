// The web UI in Debian's Chromium, against the whole stack that
// scripts/browser-test.sh starts (ramp serve with the built UI, ramp worker, the
// run's engine and PostgreSQL). Screenshots go to $RAMP_TEST_OUTPUT.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const UI = process.env.RAMP_UI_URL;
const OUT = process.env.RAMP_TEST_OUTPUT ?? '.';
// The flags that work on this kind of machine (closed network, no GPU, root).
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const token = (email, roles = []) =>
  execFileSync(process.env.RAMP_BIN, ['token', '--email', email, ...roles.flatMap((r) => ['--role', r])], {
    encoding: 'utf8',
  }).trim();

const someone = (name) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;

let browser;
const consoleErrors = [];

before(async () => {
  assert.ok(UI, 'RAMP_UI_URL is set by scripts/browser-test.sh');
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});
after(async () => {
  await browser?.close();
});

async function signedInPage(context, email) {
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`${email}: ${message.text()}`);
  });
  await page.goto(`${UI}/signin`);
  await page.getByTestId('signin-token').fill(token(email));
  await page.getByTestId('signin-token-submit').click();
  await page.waitForURL((url) => !url.pathname.startsWith('/signin'));
  return page;
}

/** A form-js select: open the field with this label, pick the option with this text. */
async function choose(page, label, option) {
  const field = page.locator('.fjs-form-field').filter({ has: page.locator('label', { hasText: label }) });
  await field.locator('.fjs-input-group').first().click();
  await page.locator('.fjs-dropdownlist-item').filter({ hasText: option }).first().click();
}

function startThroughApi(email) {
  execFileSync(process.env.GRPCURL, [
    '-plaintext', '-H', `authorization: Bearer ${token(email)}`,
    '-d', JSON.stringify({ definition_key: 'VOE', business_key: email }),
    new URL(UI).host, 'ramp.v1.ProcessService/StartProcess',
  ]);
}

async function startProcess(page, key) {
  await page.goto(`${UI}/processes`);
  await page.getByTestId('start-definition').fill(key);
  await page.getByTestId('start-process').click();
  await page.getByTestId('process-item').first().waitFor();
}

const startVoe = (page) => startProcess(page, 'VOE');

/** The name/value editor's answers (forms without a Camunda Form), as shown. */
const kvAnswers = (page) =>
  page.getByTestId('kv-row').evaluateAll((rows) =>
    Object.fromEntries(
      rows
        .map((row) => ['kv-key', 'kv-value'].map((id) => row.querySelector(`[data-testid=${id}]`).value))
        .filter(([key]) => key !== ''),
    ),
  );

/** Adds an answer in the name/value editor; type is text, number, boolean or json. */
async function addAnswer(page, key, type, value) {
  const rows = await page.getByTestId('kv-row').count();
  await page.getByRole('button', { name: 'Add an answer' }).click();
  // The new row by its place: `last()` could still find the old last row before
  // the new one renders.
  const row = page.getByTestId('kv-row').nth(rows);
  await row.waitFor();
  await row.getByTestId('kv-key').fill(key);
  await row.getByLabel(/^Type /).selectOption(type);
  if (type === 'boolean') await row.getByTestId('kv-value').selectOption(value);
  else await row.getByTestId('kv-value').fill(value);
}

/** The inbox card of the form with this name (exactly). */
const card = (page, name) =>
  page.getByTestId('inbox-item').filter({ has: page.locator('.form-name', { hasText: new RegExp(`^${name}$`) }) });

async function openForm(page, name) {
  await page.goto(`${UI}/inbox`);
  const item = page.getByTestId('inbox-item').filter({ hasText: name });
  await item.first().waitFor({ timeout: 20_000 });
  await item.first().getByRole('link').first().click();
  await page.locator('.fjs-form').waitFor({ timeout: 20_000 });
}

test('a user starts VOE, fills its forms in the browser, and the process ends', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const ann = someone('ann');
  const page = await signedInPage(context, ann);
  await startVoe(page);

  // The first form appears in the inbox without a reload.
  await page.goto(`${UI}/inbox`);
  const first = page.getByTestId('inbox-item').filter({ hasText: 'company_details' });
  await first.first().waitFor({ timeout: 20_000 });
  await page.screenshot({ path: `${OUT}/inbox.png`, fullPage: true });
  await first.first().getByRole('link').first().click();
  await page.locator('.fjs-form').waitFor({ timeout: 20_000 });
  await page.getByLabel('Company name').fill('Acme Components');
  await choose(page, 'Country', 'Germany');
  await page.getByLabel('VAT number').fill('DE123456789');
  await page.getByLabel('Supplier contact email').fill('contact@acme.example');
  await page.getByLabel('Expected annual spend (EUR)').fill('250000');
  await page.getByLabel('Standard').check();
  await page.getByLabel('The supplier has signed our supplier code of conduct').check();
  await page.getByLabel('Reviewer email').fill(ann);
  await page.screenshot({ path: `${OUT}/form.png`, fullPage: true });
  await page.getByTestId('submit-form').click();
  await page.getByTestId('delivery-state').waitFor({ timeout: 20_000 });

  // The next form (the review, assigned to the reviewer: here the same user).
  await openForm(page, 'qualify_supplier');
  await choose(page, 'Qualification level', 'A');
  await page.getByLabel('Payment terms (days)').fill('30');
  await page.getByLabel('Approve').check();
  await page.getByTestId('submit-form').click();
  await page.getByTestId('delivery-state').waitFor({ timeout: 20_000 });

  // The process list shows the end once reconciliation has seen it.
  const deadline = Date.now() + 30_000;
  for (;;) {
    await page.goto(`${UI}/processes`);
    await page.getByTestId('process-item').first().waitFor();
    if ((await page.getByTestId('process-item').filter({ hasText: /completed/i }).count()) > 0) break;
    assert.ok(Date.now() < deadline, 'the process shows as completed within 30 s');
    await page.waitForTimeout(1_000);
  }
  await context.close();
});

test('a second tab follows the inbox live, and another user sees none of it', async () => {
  const context = await browser.newContext();
  const ann = someone('ann');
  // Each tab signs in (the token lives in the tab's session storage).
  const first = await signedInPage(context, ann);
  await first.goto(`${UI}/inbox`);
  const second = await signedInPage(context, ann);
  await second.goto(`${UI}/inbox`);

  const other = await browser.newContext();
  const bob = await signedInPage(other, someone('bob'));
  await bob.goto(`${UI}/inbox`);

  const starter = await signedInPage(context, ann);
  await startVoe(starter);

  for (const tab of [first, second]) {
    await tab.getByTestId('inbox-item').filter({ hasText: 'company_details' }).first().waitFor({ timeout: 20_000 });
  }
  await bob.waitForTimeout(1_000);
  assert.equal(await bob.getByTestId('inbox-item').count(), 0, "another user's forms are not shown");
  await context.close();
  await other.close();
});

test('eight tabs of one user all stay live', async () => {
  const context = await browser.newContext();
  const ann = someone('ann');
  const tabs = [];
  for (let i = 0; i < 8; i++) tabs.push(await signedInPage(context, ann));
  for (const tab of tabs) await tab.goto(`${UI}/inbox`);
  // Started through the API, so that all eight tabs stay on their inbox.
  startThroughApi(ann);
  for (const tab of tabs) {
    await tab.getByTestId('inbox-item').filter({ hasText: 'company_details' }).first().waitFor({ timeout: 20_000 });
  }
  await context.close();
});

test("the server's field violations show on the form", async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signedInPage(context, someone('eve'));
  await startVoe(page);
  await openForm(page, 'company_details');
  await page.getByLabel('Company name').fill('Acme Components');
  await choose(page, 'Country', 'Germany');
  await page.getByLabel('VAT number').fill('DE123456789');
  // Two dots in a row: form-js's email check lets it pass, the server's does not.
  await page.getByLabel('Supplier contact email').fill('con..tact@acme.example');
  await page.getByLabel('Expected annual spend (EUR)').fill('1000');
  await page.getByLabel('Standard').check();
  await page.getByLabel('The supplier has signed our supplier code of conduct').check();
  await page.getByLabel('Reviewer email').fill('reviewer@example.com');
  await page.getByTestId('submit-form').click();
  const violation = page.getByTestId('violation').filter({ hasText: 'contactEmail' });
  await violation.first().waitFor({ timeout: 20_000 });
  assert.match(await violation.first().innerText(), /email/i);
  await context.close();
});

test('a user signs in through OpenID Connect and the API accepts the token', async () => {
  const OIDC_UI = process.env.RAMP_OIDC_UI_URL;
  assert.ok(OIDC_UI, 'RAMP_OIDC_UI_URL is set by scripts/browser-test.sh');
  const context = await browser.newContext();
  const page = await context.newPage();
  const dana = someone('dana');
  await page.goto(`${OIDC_UI}/signin`);
  await page.getByTestId('signin-oidc').click();
  // The provider's development login page: any name, any password.
  await page.locator('input[name=login]').fill(dana);
  await page.locator('input[name=password]').fill('any');
  await page.locator('button[type=submit]').click();
  await page.waitForLoadState();
  if (!page.url().startsWith(OIDC_UI)) {
    // The consent page.
    await page.locator('button[type=submit]').first().click();
  }
  await page.waitForURL((url) => url.origin === new URL(OIDC_UI).origin && !url.pathname.startsWith('/signin'), {
    timeout: 20_000,
  });
  await page.goto(`${OIDC_UI}/processes`);
  await page.getByTestId('start-definition').fill('VOE');
  await page.getByTestId('start-process').click();
  await page.getByTestId('process-item').first().waitFor({ timeout: 20_000 });
  assert.match(await page.getByTestId('process-item').first().innerText(), /active|starting/i);
  await context.close();
});

test('a refused answer shows its reason on the form; the corrected answer goes through and the next form appears', async () => {
  // tests/browser/models/Approval.bpmn: request_approval has no Camunda Form, and the
  // gateway after its receive task reads `approved`.
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signedInPage(context, someone('fay'));
  await startProcess(page, 'Approval');

  // A first answer without `approved`: ramp takes it, the engine will not.
  await page.goto(`${UI}/inbox`);
  await card(page, 'request_approval').first().waitFor({ timeout: 20_000 });
  const marked = await card(page, 'request_approval').getByTestId('returned').count();
  assert.equal(marked, 0, 'a new form is not marked returned');
  await card(page, 'request_approval').first().getByRole('link').first().click();
  await page.getByTestId('kv-row').first().waitFor({ timeout: 20_000 });
  await addAnswer(page, 'comment', 'text', 'Fine by me');
  await page.getByTestId('submit-form').click();
  await page.getByTestId('delivery-state').waitFor({ timeout: 20_000 });
  // The page follows the delivery (10 s): the refusal brings the form back in place.
  await page.getByTestId('form-return-reason').waitFor({ timeout: 15_000 });

  // It comes back to its author: marked in the inbox, with the reason.
  await page.goto(`${UI}/inbox`);
  const returned = card(page, 'request_approval').filter({ has: page.getByTestId('returned') });
  await returned.first().waitFor({ timeout: 30_000 });
  assert.match(await returned.first().getByTestId('return-reason').innerText(), /approved/);
  await page.screenshot({ path: `${OUT}/inbox-returned.png`, fullPage: true });

  // The form says why above the answer, which is filled in as it was sent.
  await returned.first().getByRole('link').first().click();
  const reason = page.getByTestId('form-return-reason');
  await reason.waitFor({ timeout: 20_000 });
  await page.getByTestId('kv-row').first().waitFor();
  await page.screenshot({ path: `${OUT}/form-returned.png`, fullPage: true });
  const text = await reason.innerText();
  assert.match(text, /could not use your answer/i);
  assert.match(text, /approved/);
  assert.doesNotMatch(text, /https?:|Exception|[0-9a-f]{8}-[0-9a-f]{4}-/, 'no engine detail reaches the user');
  const answers = await kvAnswers(page);
  assert.equal(answers.comment, 'Fine by me', 'the refused answer is filled in');
  assert.deepEqual(Object.keys(answers), ['comment'], 'nothing but the answer: no variable ramp keeps for itself');

  // The corrected answer: approved = yes (a boolean, as the gateway compares it).
  await addAnswer(page, 'approved', 'boolean', 'true');
  await page.getByTestId('submit-form').click();
  await page.getByTestId('delivery-state').waitFor({ timeout: 20_000 });

  // The process moved on: the next form is in the inbox, the returned one is gone.
  await page.goto(`${UI}/inbox`);
  await card(page, 'confirm').first().waitFor({ timeout: 30_000 });
  assert.equal(await card(page, 'request_approval').count(), 0, 'the answered form left the inbox');
  assert.equal(await card(page, 'confirm').getByTestId('returned').count(), 0, 'the next form is a new one');
  await context.close();
});

test('no errors in the console', () => {
  assert.deepEqual(consoleErrors, []);
});
