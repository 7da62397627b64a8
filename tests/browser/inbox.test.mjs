// The web UI in Debian's Chromium, against the whole stack that
// scripts/browser-test.sh starts (ramp serve with the built UI, ramp worker, the
// run's engine and PostgreSQL). Screenshots go to $RAMP_TEST_OUTPUT.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

// axe-core, put into the page through the DevTools protocol (page.evaluate), which
// the page's Content-Security-Policy does not govern: the app itself stays under it.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

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

/**
 * A token for `email` that also says the holder is in `groups` (the `groups` claim,
 * RAMP_JWT_GROUPS_CLAIM's default): `ramp token`'s, with the claim added and signed
 * again with the same secret (RAMP_JWT_SECRET, from scripts/browser-test.sh).
 */
function tokenInGroups(email, groups) {
  const [header, payload] = token(email).split('.');
  const claims = { ...JSON.parse(Buffer.from(payload, 'base64url').toString()), groups };
  const body = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = createHmac('sha256', process.env.RAMP_JWT_SECRET).update(body).digest('base64url');
  return `${body}.${signature}`;
}

/** The engine's REST API (the run's engine, which ramp uses too): GET, as JSON. */
async function engineGet(path) {
  const answer = await fetch(`${process.env.RAMP_CAMUNDA_URL}${path}`);
  if (!answer.ok) assert.fail(`GET ${path}: ${answer.status} ${await answer.text()}`);
  return answer.json();
}

/** POSTs `body` to the engine's REST API; expects a success. */
async function enginePost(path, body) {
  const answer = await fetch(`${process.env.RAMP_CAMUNDA_URL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!answer.ok) assert.fail(`POST ${path}: ${answer.status} ${await answer.text()}`);
}

/** The running VOE of `starter` in the engine (one per business key). */
async function voeInstance(starter) {
  const instances = await engineGet(
    `/process-instance?businessKey=${encodeURIComponent(starter)}&processDefinitionKey=VOE&rootProcessInstances=true`,
  );
  assert.equal(instances.length, 1, `one VOE of ${starter}`);
  return instances[0].id;
}

/** The user task `instance` waits in, once the engine has it (within 20 s). */
async function openUserTask(instance) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const tasks = await engineGet(`/task?processInstanceId=${instance}`);
    if (tasks.length) return tasks[0];
    assert.ok(Date.now() < deadline, `a user task in ${instance} within 20 s`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

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

/** The pages axe-core checked, by what was on them (the last test asserts the list). */
const axeChecked = new Set();

/**
 * axe-core on the page as it stands: fails on any serious or critical violation,
 * naming the rule and the elements.
 */
async function accessible(page, what) {
  await page.evaluate(AXE_SOURCE + '\n;0');
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], `axe-core on ${what} (${page.url()})`);
  axeChecked.add(what);
}

/** A page signed in as `email` by pasting a token; with `groups`, the token says the
 * holder is in them. */
async function signedInPage(context, email, groups = null) {
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`${email}: ${message.text()}`);
  });
  await page.goto(`${UI}/signin`);
  await page.getByTestId('signin-token').fill(groups ? tokenInGroups(email, groups) : token(email));
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

function startThroughApi(email, key = 'VOE') {
  execFileSync(process.env.GRPCURL, [
    '-plaintext', '-H', `authorization: Bearer ${token(email)}`,
    '-d', JSON.stringify({ definition_key: key, business_key: email }),
    new URL(UI).host, 'ramp.v1.ProcessService/StartProcess',
  ]);
}

/** Starts a process for the page's user through the API (the start page has a test
 * of its own), then shows the user's processes. */
async function startProcess(page, key) {
  const email = (await page.locator('.user .email').innerText()).trim();
  startThroughApi(email, key);
  await page.goto(`${UI}/processes`);
  await page.getByTestId('process-item').first().waitFor({ timeout: 20_000 });
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

/** The inbox card of the form with this name (the form's id in the model). */
const card = (page, name) => page.locator(`[data-testid=inbox-item][data-form-name="${name}"]`);

/** Fills VOE's first form (company_details, open on `page`) for a standard supplier
 * reviewed by `reviewer`, and submits it. */
async function fillCompanyDetails(page, reviewer) {
  await page.getByLabel('Company name').fill('Acme Components');
  await choose(page, 'Country', 'Germany');
  await page.getByLabel('VAT number').fill('DE123456789');
  await page.getByLabel('Supplier contact email').fill('contact@acme.example');
  await page.getByLabel('Expected annual spend (EUR)').fill('250000');
  await page.getByLabel('Standard').check();
  await page.getByLabel('The supplier has signed our supplier code of conduct').check();
  await page.getByLabel('Reviewer email').fill(reviewer);
}

/** Approves the supplier on VOE's review form (qualify_supplier, open on `page`). */
async function approveSupplier(page) {
  await choose(page, 'Qualification level', 'A');
  await page.getByLabel('Payment terms (days)').fill('30');
  await page.getByLabel('Approve').check();
  await page.getByTestId('submit-form').click();
  await page.getByTestId('delivery-state').waitFor({ timeout: 20_000 });
}

async function openForm(page, name) {
  await page.goto(`${UI}/inbox`);
  const item = card(page, name);
  await item.first().waitFor({ timeout: 20_000 });
  await item.first().getByRole('link').first().click();
  await page.locator('.fjs-form').waitFor({ timeout: 20_000 }).catch(async (e) => {
    await page.screenshot({ path: `${OUT}/failed-open-${name}.png`, fullPage: true });
    throw e;
  });
}

test('a user starts VOE, fills its forms in the browser, and the process ends', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const ann = someone('ann');
  const page = await signedInPage(context, ann);
  await startVoe(page);

  // The first form appears in the inbox without a reload.
  await page.goto(`${UI}/inbox`);
  const first = card(page, 'company_details');
  await first.first().waitFor({ timeout: 20_000 });
  await page.screenshot({ path: `${OUT}/inbox.png`, fullPage: true });
  await accessible(page, 'the inbox');
  await first.first().getByRole('link').first().click();
  await page.locator('.fjs-form').waitFor({ timeout: 20_000 });
  await fillCompanyDetails(page, ann);
  await page.screenshot({ path: `${OUT}/form.png`, fullPage: true });
  await accessible(page, 'a form with a Camunda Form');
  await page.getByTestId('submit-form').click();
  await page.getByTestId('delivery-state').waitFor({ timeout: 20_000 });

  // The next form (the review, assigned to the reviewer: here the same user); its
  // card says what is reviewed (the model's ramp.context: company name, country).
  await page.goto(`${UI}/inbox`);
  const review = card(page, 'qualify_supplier');
  await review.waitFor({ timeout: 20_000 });
  assert.equal(await review.getByTestId('form-context').innerText(), 'Acme Components, DE');
  await openForm(page, 'qualify_supplier');
  await approveSupplier(page);

  // Approved: the supplier is onboarded in the engine's own user task, which the
  // group "reviewers" does (the test below, in the browser); here in the engine
  // directly, as Camunda Tasklist would.
  const onboarding = await openUserTask(await voeInstance(ann));
  assert.equal(onboarding.taskDefinitionKey, 'onboard_supplier');
  await enginePost(`/task/${onboarding.id}/complete`, {
    variables: { supplierNumber: { value: 'S-104233' }, bankDetailsVerified: { value: true } },
  });

  // The process list shows the end once reconciliation has seen it.
  const deadline = Date.now() + 30_000;
  for (;;) {
    await page.goto(`${UI}/processes`);
    await page.getByTestId('process-item').first().waitFor();
    if ((await page.getByTestId('process-item').filter({ hasText: /completed/i }).count()) > 0) break;
    await accessible(page, 'the processes');
    assert.ok(Date.now() < deadline, 'the process shows as completed within 30 s');
    await page.waitForTimeout(1_000);
  }

  // Looking back: both forms are on the completed page, delivered; one opens with
  // its answers as submitted, in the form's words.
  await page.goto(`${UI}/done`);
  const done = page.locator('[data-testid=done-item][data-form-name=company_details]');
  await done.waitFor({ timeout: 20_000 });
  assert.equal(await page.locator('[data-testid=done-item][data-form-name=qualify_supplier]').count(), 1);
  assert.equal(await done.getByTestId('done-delivery').innerText(), 'delivered');
  await accessible(page, 'the completed forms');
  await done.getByRole('link').first().click();
  const answers = page.getByTestId('answers');
  await answers.waitFor({ timeout: 20_000 });
  const answer = async (key) => (await page.locator(`[data-testid=answer][data-key=${key}] dd`).innerText()).trim();
  assert.equal(await answer('companyName'), 'Acme Components');
  assert.equal(await answer('country'), 'Germany', "a select's answer by its option's label");
  assert.equal(await answer('vatNumber'), 'DE123456789');
  assert.match(await page.locator('[data-testid=answer][data-key=country] dt').innerText(), /Country/);
  assert.equal(await page.getByTestId('delivery-state').innerText(), 'delivered');
  await page.screenshot({ path: `${OUT}/completed-form.png`, fullPage: true });
  await accessible(page, 'a completed form with its answers');
  await context.close();
});

test('a candidate claims a group task with one click and completes its Camunda Form; the other candidate, a moment late, is told and sees it go', async () => {
  // Ann requests an onboarding and approves it herself (she names herself reviewer).
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const ann = someone('ann');
  const page = await signedInPage(context, ann);
  await startVoe(page);
  await openForm(page, 'company_details');
  await fillCompanyDetails(page, ann);
  await page.getByTestId('submit-form').click();
  await page.getByTestId('delivery-state').waitFor({ timeout: 20_000 });
  await openForm(page, 'qualify_supplier');
  await approveSupplier(page);
  const instance = await voeInstance(ann);
  const task = await openUserTask(instance);
  assert.equal(task.taskDefinitionKey, 'onboard_supplier');
  assert.equal(task.assignee, null, 'nobody holds it yet');

  // Two members of "reviewers" (by their tokens' groups claim) see it as a group
  // task. The demo group is shared with other runs' tasks: the card of this
  // process is told by its process instance.
  const carolContext = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const carol = someone('carol');
  const carolPage = await signedInPage(carolContext, carol, ['reviewers']);
  const daveContext = await browser.newContext();
  const davePage = await signedInPage(daveContext, someone('dave'), ['reviewers']);
  const taskCard = (p) => p.locator(`[data-testid=inbox-item][data-process-instance-id="${instance}"]`);
  for (const p of [carolPage, davePage]) {
    await p.goto(`${UI}/inbox`);
    await taskCard(p).waitFor({ timeout: 20_000 });
  }
  const offered = taskCard(carolPage);
  assert.equal(await offered.getAttribute('data-kind'), 'user_task');
  assert.equal(await offered.getByTestId('group-task').innerText(), 'Group task · reviewers');
  assert.equal(await offered.getByTestId('priority').locator('dd').innerText(), '60');
  assert.equal(await offered.getByTestId('due').count(), 1, 'the model gives it a due date');
  assert.equal(await offered.locator('.card-title').innerText(), 'Onboard supplier');
  // Ann is no candidate: her inbox never shows it.
  await page.goto(`${UI}/inbox`);
  await page.waitForTimeout(1_000);
  assert.equal(await taskCard(page).count(), 0, 'not shown to who is no candidate');
  await carolPage.screenshot({ path: `${OUT}/inbox-group-task.png`, fullPage: true });
  await accessible(carolPage, 'the inbox with a group task');

  // Dave has the task's page open in a second tab; he and Carol both press Claim on
  // their cards. Dave's claim is held back in his browser until Carol's went
  // through: she wins, he is told in words.
  const daveForm = await daveContext.newPage();
  await daveForm.goto(new URL(await taskCard(davePage).getByRole('link').first().getAttribute('href'), UI).href);
  await daveForm.getByTestId('claim').waitFor({ timeout: 20_000 });
  assert.equal(await daveForm.getByTestId('group-task').innerText(), 'Group task · reviewers');
  assert.ok(await daveForm.getByTestId('submit-form').isDisabled(), 'an unclaimed task is claimed before it is filled');
  await accessible(daveForm, 'a group task before its claim');
  let carolWon;
  const carolClaimed = new Promise((resolve) => {
    carolWon = resolve;
  });
  await daveContext.route('**/ramp.v1.FormService/ClaimFormTask', async (route) => {
    await carolClaimed;
    await route.continue();
  });
  await taskCard(davePage).getByTestId('claim').click();
  await offered.getByTestId('claim').click();
  await carolPage.waitForURL((url) => url.pathname.startsWith('/forms/'), { timeout: 20_000 });
  await carolPage.locator('.fjs-form').waitFor({ timeout: 20_000 });
  assert.equal((await engineGet(`/task/${task.id}`)).assignee, carol, 'claimed in the engine');
  await carolPage.getByTestId('unclaim').waitFor();
  carolWon();
  const refused = davePage.getByTestId('claim-notice');
  await refused.waitFor({ timeout: 20_000 });
  assert.match(await refused.innerText(), /someone else claimed/i);
  assert.equal((await engineGet(`/task/${task.id}`)).assignee, carol, 'the first claim holds');

  // It leaves Dave's stream: his inbox no longer lists it, his open page says why.
  const gone = Date.now() + 20_000;
  while ((await taskCard(davePage).count()) > 0) {
    assert.ok(Date.now() < gone, "a task another candidate claimed leaves the inbox within 20 s");
    await davePage.waitForTimeout(200);
  }
  await davePage.screenshot({ path: `${OUT}/inbox-claimed-by-another.png`, fullPage: true });
  await accessible(davePage, 'the inbox after a claim another candidate won');
  await daveForm.getByTestId('form-gone').waitFor({ timeout: 20_000 });
  assert.match(await daveForm.getByTestId('form-gone').innerText(), /someone else claimed/i);
  assert.equal(await daveForm.getByTestId('form-status').innerText(), 'claimed');

  // Carol fills and submits its Camunda Form (onboard_supplier, by formRef).
  await carolPage.getByLabel('Supplier number').fill('S-104233');
  await carolPage.getByLabel('Bank details verified with the supplier').check();
  await carolPage.screenshot({ path: `${OUT}/form-user-task.png`, fullPage: true });
  await accessible(carolPage, 'a claimed user task with its Camunda Form');
  await carolPage.getByTestId('submit-form').click();
  await carolPage.getByTestId('delivery-state').waitFor({ timeout: 20_000 });

  // The task leaves her inbox, and the process moves on to its end in the engine.
  await carolPage.goto(`${UI}/inbox`);
  await carolPage.getByTestId('inbox-count').waitFor();
  const deadline = Date.now() + 30_000;
  while ((await taskCard(carolPage).count()) > 0) {
    assert.ok(Date.now() < deadline, 'the completed task leaves the inbox within 30 s');
    await carolPage.waitForTimeout(300);
  }
  for (;;) {
    const history = await engineGet(`/history/process-instance/${instance}`);
    if (history.state === 'COMPLETED') break;
    assert.ok(Date.now() < deadline, `the process ends within 30 s (${history.state})`);
    await carolPage.waitForTimeout(300);
  }
  const [done] = await engineGet(`/history/task?taskId=${task.id}`);
  assert.equal(done.deleteReason, 'completed');
  assert.equal(done.assignee, carol);
  const [number] = await engineGet(`/history/variable-instance?processInstanceId=${instance}&variableName=supplierNumber`);
  assert.equal(number.value, 'S-104233', "the form's answers are the process's variables");
  await context.close();
  await carolContext.close();
  await daveContext.close();
});

test('a second tab follows the inbox live, and another user sees none of it', async () => {
  const context = await browser.newContext();
  const ann = someone('ann');
  // The tabs of one browser share the sign-in (localStorage).
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
    await tab.locator('[data-testid=inbox-item][data-form-name=company_details]').first().waitFor({ timeout: 20_000 });
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
    await tab.locator('[data-testid=inbox-item][data-form-name=company_details]').first().waitFor({ timeout: 20_000 });
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
  await accessible(page, "a form with the server's violations");
  await context.close();
});

test("a person signs in with a demo account on the provider's login page; a new tab is signed in too", async () => {
  const OIDC_UI = process.env.RAMP_OIDC_UI_URL;
  assert.ok(OIDC_UI, 'RAMP_OIDC_UI_URL is set by scripts/browser-test.sh');
  const email = process.env.DEMO_OIDC_EMAIL;
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`oidc: ${message.text()}`);
  });
  await page.goto(`${OIDC_UI}/signin`);
  await page.getByTestId('signin-oidc').waitFor();
  await accessible(page, 'the sign-in page');
  await page.getByTestId('signin-oidc').click();

  // The provider's login page: a wrong password is refused, the right one signs in.
  await page.getByLabel('Email').waitFor({ timeout: 20_000 });
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Wrong email or password.').waitFor();
  await page.getByLabel('Password').fill(process.env.DEMO_OIDC_PASSWORD);
  await page.screenshot({ path: `${OUT}/oidc-login.png`, fullPage: true });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.origin === new URL(OIDC_UI).origin && !url.pathname.startsWith('/signin'), {
    timeout: 20_000,
  });
  await page.locator('.user .email').filter({ hasText: email }).waitFor();
  await page.screenshot({ path: `${OUT}/oidc-signed-in.png`, fullPage: true });
  // Its access token (kept by the OIDC library in localStorage) says the account's
  // groups, as the accounts file gives them: ramp reads candidate groups from it.
  const accessToken = await page.evaluate(() => {
    for (let i = 0; i < localStorage.length; i++) {
      const found = /"access_token":"([^"]+)"/.exec(localStorage.getItem(localStorage.key(i)) ?? '');
      if (found) return found[1];
    }
    return null;
  });
  assert.ok(accessToken, 'the access token is kept');
  const accessClaims = JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString());
  assert.deepEqual(accessClaims.groups, [process.env.DEMO_OIDC_GROUP]);
  assert.equal(accessClaims.email, email);

  // ramp takes the provider's token: the (empty) list of the user's processes loads.
  await page.goto(`${OIDC_UI}/processes`);
  await page.getByText('You have not started any process yet.').waitFor({ timeout: 20_000 });

  // A new tab of the same browser is signed in, without asking again.
  const tab = await context.newPage();
  tab.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`oidc tab: ${message.text()}`);
  });
  await tab.goto(`${OIDC_UI}/processes`);
  await tab.locator('.user .email').filter({ hasText: email }).waitFor({ timeout: 10_000 });
  assert.ok(!new URL(tab.url()).pathname.startsWith('/signin'), 'the new tab stays where it was opened');
  // Its calls carry the session.
  await tab.getByText('You have not started any process yet.').waitFor({ timeout: 20_000 });

  // Signing out in one tab signs the other out too.
  await tab.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL((url) => url.pathname.startsWith('/signin'), { timeout: 10_000 });
  await context.close();
});

test('at sign-in, a token the server refuses is told apart from an expired one', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${UI}/signin`);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const good = token(someone('ida'));
  // The same token with another signature: well formed, not expired, refused.
  const [header, payload] = good.split('.');
  const forged = `${header}.${payload}.${Buffer.from('not the signature').toString('base64url')}`;
  await page.getByTestId('signin-token').fill(forged);
  await page.getByTestId('signin-token-submit').click();
  const problem = page.locator('#token-error');
  await problem.waitFor();
  assert.match(await problem.innerText(), /server refused this token/i);
  assert.ok(new URL(page.url()).pathname.startsWith('/signin'), 'not signed in');
  await page.screenshot({ path: `${OUT}/signin-refused.png`, fullPage: true });

  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const expired = `${header}.${b64({ ...claims, exp: Math.floor(Date.now() / 1000) - 3600 })}.x`;
  await page.getByTestId('signin-token').fill(expired);
  await page.getByTestId('signin-token-submit').click();
  await page.locator('#token-error').filter({ hasText: /expired/ }).waitFor();
  assert.doesNotMatch(await problem.innerText(), /refused/);

  // A good one signs in.
  await page.getByTestId('signin-token').fill(good);
  await page.getByTestId('signin-token-submit').click();
  await page.waitForURL((url) => !url.pathname.startsWith('/signin'));
  await page.getByTestId('inbox-count').waitFor();
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
  await accessible(page, 'the inbox with a returned form');

  // The form says why above the answer, which is filled in as it was sent.
  await returned.first().getByRole('link').first().click();
  const reason = page.getByTestId('form-return-reason');
  await reason.waitFor({ timeout: 20_000 });
  await page.getByTestId('kv-row').first().waitFor();
  await page.screenshot({ path: `${OUT}/form-returned.png`, fullPage: true });
  await accessible(page, 'a returned form without a Camunda Form');
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

test('on a 390 px phone every label of the form reads whole, and a refused submit focuses the first invalid field', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await signedInPage(context, someone('gus'));
  await startVoe(page);
  await openForm(page, 'company_details');

  // Nothing cut: no label (radio and checkbox options, the consent text included)
  // is wider than its box, and none overflows the screen.
  const clipped = await page.locator('.fjs-container label').evaluateAll((labels) =>
    labels
      .filter((l) => l.offsetParent !== null)
      .filter((l) => l.scrollWidth > l.clientWidth + 1 || l.getBoundingClientRect().right > window.innerWidth)
      .map((l) => l.textContent.trim()),
  );
  assert.deepEqual(clipped, [], 'labels cut at 390 px');
  const consent = page.getByLabel('The supplier has signed our supplier code of conduct');
  assert.ok(await consent.isVisible(), 'the consent checkbox is there');
  const noScroll = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(noScroll, 'the page does not scroll sideways');
  await accessible(page, 'a form on a phone');

  // Submit with nothing filled in: focus goes to the first required field.
  await page.getByTestId('submit-form').click();
  await page.waitForFunction(() => document.activeElement?.getAttribute('aria-invalid') === 'true', null, {
    timeout: 5_000,
  });
  const focused = await page.evaluate(() => {
    const el = document.activeElement;
    return { id: el.id, label: document.querySelector(`label[for="${el.id}"]`)?.textContent ?? '' };
  });
  assert.match(focused.label, /Company name/, 'focus is on the first invalid field');
  // The app's focus ring (3 px), not form-js's one-pixel outline.
  const ring = await page.evaluate(() => {
    const el = document.activeElement;
    const group = el.closest('.fjs-input-group') ?? el;
    const style = getComputedStyle(group);
    return { width: style.outlineWidth, style: style.outlineStyle };
  });
  assert.deepEqual(ring, { width: '3px', style: 'solid' }, 'the focused field shows the app focus ring');
  await page.screenshot({ path: `${OUT}/phone-form.png`, fullPage: true });
  await accessible(page, 'a form with its own errors on a phone');

  await page.goto(`${UI}/inbox`);
  await page.getByTestId('inbox-item').first().waitFor();
  await page.screenshot({ path: `${OUT}/phone-inbox.png`, fullPage: true });
  await accessible(page, 'the inbox on a phone');
  await context.close();
});

test('Cancel asks first; the form open in another tab hears at once that it was withdrawn', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const hal = someone('hal');
  const processes = await signedInPage(context, hal);
  await startVoe(processes);
  await processes.goto(`${UI}/processes`);
  await processes.getByTestId('process-item').first().waitFor();
  const form = await signedInPage(context, hal);
  await openForm(form, 'company_details');
  await form.getByLabel('Company name').fill('Half-typed Ltd');

  // One click on Cancel only asks.
  await processes.getByTestId('cancel-process').first().click();
  const question = processes.getByTestId('cancel-confirmation');
  await question.waitFor();
  assert.match(await question.innerText(), /Cancel this process\?/);
  assert.equal(
    await processes.evaluate(() => document.activeElement?.getAttribute('data-testid')),
    'confirm-cancel',
    'focus moves to the question',
  );
  await processes.screenshot({ path: `${OUT}/cancel-confirmation.png`, fullPage: true });
  await accessible(processes, 'the processes with a cancel to confirm');
  await processes.getByTestId('keep-process').click();
  await question.waitFor({ state: 'detached', timeout: 5_000 }); // No, keep it: the question goes
  assert.equal(await processes.getByTestId('process-state').first().innerText(), 'active', 'nothing was cancelled');

  await processes.getByTestId('cancel-process').first().click();
  await processes.getByTestId('confirm-cancel').click();
  await processes.getByTestId('process-state').filter({ hasText: 'cancelled' }).first().waitFor({ timeout: 20_000 });

  // The open form says so, from the inbox stream, and cannot be submitted.
  const gone = form.getByTestId('form-gone');
  await gone.waitFor({ timeout: 10_000 });
  assert.match(await gone.innerText(), /withdrawn/i);
  assert.equal(await form.getByTestId('form-status').innerText(), 'withdrawn');
  assert.ok(await form.getByTestId('submit-form').isDisabled(), 'Submit is off');
  assert.ok(await form.getByTestId('save-draft').isDisabled(), 'Save draft is off');
  await form.screenshot({ path: `${OUT}/form-withdrawn.png`, fullPage: true });
  await accessible(form, 'a form told of its withdrawal');
  await context.close();
});

test('the start page starts a process by its name; cards and form pages name the task and the process', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signedInPage(context, someone('ivy'));
  // The empty inbox points to the start page.
  await page.goto(`${UI}/inbox`);
  await page.getByTestId('empty-inbox-start').click();
  await page.waitForURL((url) => url.pathname === '/start');
  const voe = page.locator('[data-testid=startable][data-key=VOE]');
  await voe.waitFor({ timeout: 20_000 });
  assert.match(await voe.innerText(), /Vendor Onboarding Evaluation/);
  assert.match(await voe.innerText(), /describes a new supplier/, 'the description from the model');
  assert.doesNotMatch(await page.locator('main').innerText(), /definition key/i, 'no jargon');
  await page.screenshot({ path: `${OUT}/start.png`, fullPage: true });
  await accessible(page, 'the start page');
  await voe.getByTestId('start-button').click();
  await page.getByTestId('start-message').filter({ hasText: 'Started Vendor Onboarding Evaluation.' }).waitFor();

  await page.goto(`${UI}/inbox`);
  const item = card(page, 'company_details');
  await item.waitFor({ timeout: 20_000 });
  assert.equal(await item.getByRole('link').first().innerText(), 'Enter company details');
  assert.equal(await item.getByTestId('process-name').innerText(), 'Vendor Onboarding Evaluation');
  await page.screenshot({ path: `${OUT}/inbox-names.png`, fullPage: true });
  await item.getByRole('link').first().click();
  await page.getByTestId('form-title').filter({ hasText: 'Enter company details' }).waitFor({ timeout: 20_000 });
  await page.waitForFunction(() => document.title.startsWith('Enter company details'));
  assert.equal(await page.title(), 'Enter company details · Vendor Onboarding Evaluation · ramp');
  assert.equal(await page.getByTestId('process-name').innerText(), 'Vendor Onboarding Evaluation');
  await context.close();
});

test('a session ramp stops taking is said to be over once, not four times', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const short = execFileSync(process.env.RAMP_BIN, ['token', '--email', someone('jo'), '--ttl', '5s'], {
    encoding: 'utf8',
  }).trim();
  await page.goto(`${UI}/signin`);
  await page.getByTestId('signin-token').fill(short);
  await page.getByTestId('signin-token-submit').click();
  await page.waitForURL((url) => url.pathname.startsWith('/inbox'));
  await page.getByTestId('signed-out').waitFor({ timeout: 30_000 });
  await page.waitForTimeout(1_000);
  const text = await page.locator('body').innerText();
  const said = text.match(/sign in again|signed out/gi) ?? [];
  assert.equal(said.length, 1, `one message, not: ${JSON.stringify(said)}`);
  assert.equal(await page.getByTestId('offline').count(), 0);
  await page.screenshot({ path: `${OUT}/signed-out.png`, fullPage: true });
  await accessible(page, 'the inbox signed out');
  await context.close();
});

/** Reloads the page until check() holds (the worker and the deliveries run apart). */
async function reloadUntil(page, what, check, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    await page.reload();
    await page.getByTestId('process-title').waitFor({ timeout: 20_000 });
    await page.locator('[aria-busy=true]').waitFor({ state: 'detached', timeout: 20_000 }).catch(() => {});
    if (await check()) return;
    assert.ok(Date.now() < deadline, `${what} within ${ms / 1000} s`);
    await page.waitForTimeout(1_000);
  }
}

test("a process's page shows its forms and their states; a submitted form's new state shows after a reload", async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const kim = someone('kim');
  const page = await signedInPage(context, kim);
  await startVoe(page);

  // The processes page links each process to its page.
  await page.getByTestId('process-item').first().getByTestId('process-link').click();
  await page.waitForURL((url) => /^\/processes\/[^/]+$/.test(url.pathname));
  const form = (name) => page.locator(`[data-testid=process-form][data-form-name=${name}]`);
  await reloadUntil(page, 'the first form shows', async () => (await form('company_details').count()) === 1);
  assert.equal(await page.getByTestId('process-title').innerText(), 'Vendor Onboarding Evaluation');
  assert.equal(await page.getByTestId('process-state').innerText(), 'active');
  assert.ok((await page.getByTestId('process-facts').innerText()).includes(kim), 'who started it');
  assert.match(await page.locator('main').innerText(), /Forms assigned to you/, 'the page says the list may be partial');
  const first = form('company_details');
  assert.equal(await first.getByTestId('process-form-link').innerText(), 'Enter company details');
  assert.equal(await first.getByTestId('process-form-status').innerText(), 'pending');
  assert.equal(await first.getByTestId('process-form-delivery').count(), 0, 'nothing delivered yet');
  await page.screenshot({ path: `${OUT}/process.png`, fullPage: true });
  await accessible(page, 'a process with its forms');

  // On a phone it reads without scrolling sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scroll at 390 px');
  await page.screenshot({ path: `${OUT}/phone-process.png`, fullPage: true });
  await accessible(page, 'a process on a phone');
  await page.setViewportSize({ width: 1200, height: 900 });

  // The link opens the form; submitted, it shows as completed and delivered, and
  // the next form (the review, assigned to the same user) joins the list.
  const processUrl = page.url();
  await first.getByTestId('process-form-link').click();
  await page.locator('.fjs-form').waitFor({ timeout: 20_000 });
  await page.getByLabel('Company name').fill('Looking Back Ltd');
  await choose(page, 'Country', 'Germany');
  await page.getByLabel('VAT number').fill('DE123456789');
  await page.getByLabel('Supplier contact email').fill('contact@lookingback.example');
  await page.getByLabel('Expected annual spend (EUR)').fill('1000');
  await page.getByLabel('Standard').check();
  await page.getByLabel('The supplier has signed our supplier code of conduct').check();
  await page.getByLabel('Reviewer email').fill(kim);
  await page.getByTestId('submit-form').click();
  await page.getByTestId('delivery-state').waitFor({ timeout: 20_000 });

  await page.goto(processUrl);
  await reloadUntil(page, 'the submitted form shows delivered and the next one pending', async () => {
    const delivery = first.getByTestId('process-form-delivery');
    return (
      (await first.getByTestId('process-form-status').innerText()) === 'completed' &&
      (await delivery.count()) === 1 &&
      (await delivery.innerText()) === 'delivered' &&
      (await form('qualify_supplier').count()) === 1
    );
  });
  assert.equal(await form('qualify_supplier').getByTestId('process-form-status').innerText(), 'pending');
  assert.equal(await page.getByTestId('process-form').count(), 2);
  await page.screenshot({ path: `${OUT}/process-moved-on.png`, fullPage: true });
  await accessible(page, 'a process with a submitted form');
  await context.close();
});

test('no errors in the console', () => {
  assert.deepEqual(consoleErrors, []);
});
