// Drives the Bazaar web console in headless Chromium against a running
// node, as a merchant and then as an operator, saving a screenshot of each
// step. Started by host/bazaar/tests/console_e2e.rs, which prepares the
// node and passes everything in the environment:
//
//   BAZAAR_URL             the node, http://127.0.0.1:PORT
//   BAZAAR_OPERATOR_TOKEN  an operator token
//   BAZAAR_MERCHANT_TOKEN  a merchant token of BAZAAR_STORE
//   BAZAAR_STORE           the store
//   BAZAAR_SKU             a SKU with plenty of stock
//   BAZAAR_SOLD_OUT_SKU    a flash-sale SKU whose stock is all ordered
//   BAZAAR_PLUGIN          a plugin with two versions, the newer one active
//   BAZAAR_ROLLBACK_FROM   its active version
//   BAZAAR_ROLLBACK_TO     the version a rollback makes active
//   BAZAAR_DEVICE          a robot registered in warehouse HGH of BAZAAR_STORE
//   BAZAAR_ZONE            its zone
//   BAZAAR_SCREENSHOTS     where the screenshots go
//
// Exits 0 when every step saw what it expected, 1 otherwise (with the step
// and what the page showed).

import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** Where Debian's chromium package puts the browser. */
const CHROMIUM = '/usr/bin/chromium';

/** Longest wait for anything the page should show: the analytics figures
 * follow the journal within a second or two; this leaves room for a busy
 * machine without hiding a page that never updates. */
const STEP_TIMEOUT_MS = 30000;

/** Longest the whole run may take before it is called a failure. */
const RUN_TIMEOUT_MS = 300000;

/** Chromium's flags: headless, no sandbox (the tests may run as root), and
 * no background traffic, which this machine's closed network refuses. */
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; this driver is started by console_e2e.rs`);
  return value;
};

const base = env('BAZAAR_URL');
const operatorToken = env('BAZAAR_OPERATOR_TOKEN');
const merchantToken = env('BAZAAR_MERCHANT_TOKEN');
const store = env('BAZAAR_STORE');
const sku = env('BAZAAR_SKU');
const soldOutSku = env('BAZAAR_SOLD_OUT_SKU');
const plugin = env('BAZAAR_PLUGIN');
const rollbackFrom = env('BAZAAR_ROLLBACK_FROM');
const rollbackTo = env('BAZAAR_ROLLBACK_TO');
const device = env('BAZAAR_DEVICE');
const zone = env('BAZAAR_ZONE');
const screenshots = env('BAZAAR_SCREENSHOTS');

let step = 'starting';
let shot = 0;

/** Calls the API directly (as the test's own client, not the page). */
async function api(method, path, token, body, headers = {}) {
  const response = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return json;
}

/** `amountMinor` of a two-decimal currency as the console shows it, by
 * integer arithmetic: 1799700 → "17,997.00 CNY". */
function formatted(amountMinor, currency) {
  const amount = BigInt(amountMinor);
  const whole = (amount / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${whole}.${(amount % 100n).toString().padStart(2, '0')} ${currency}`;
}

/** The store's GMV as the analytics plugin defines it: the totals of
 * orders that are not cancelled. */
async function expectedGmv() {
  let after = 0;
  let gmv = 0n;
  for (;;) {
    const page = await api('GET', `/v1/stores/${store}/orders?limit=100&after=${after}`, merchantToken);
    for (const order of page.orders) {
      if (order.status !== 'cancelled') gmv += BigInt(order.totals.total.amount_minor);
    }
    if (page.next_after === null || page.next_after === undefined) return gmv;
    after = page.next_after;
  }
}

/** An order of `quantity` units of `what` shipped to Hangzhou. */
function orderBody(customer, what, quantity) {
  return {
    customer: { id: customer, segment: 'regular' },
    lines: [{ sku: what, quantity }],
    shipping_address: {
      country: 'CN', region: 'Zhejiang', city: 'Hangzhou', street: '1 Double Eleven Road', postal_code: '310000',
      location: { latitude_micro: 30274100, longitude_micro: 120155100 },
    },
  };
}

async function snap(page, name) {
  shot += 1;
  const file = join(screenshots, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

async function signIn(page, token, role) {
  await page.goto(`${base}/console#/login`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#role').filter({ hasText: `Signed in as ${role}` }).waitFor();
}

async function run() {
  await mkdir(screenshots, { recursive: true });
  const profile = await mkdtemp(join(tmpdir(), 'bazaar-console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  const problems = [];
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    // Script errors and content-security-policy refusals fail the run;
    // the browser's own note on each refused API call (4xx) does not.
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
        problems.push(`console error: ${message.text()}`);
      }
    });

    step = 'the console page is served with its security policy';
    const response = await page.goto(`${base}/console`);
    if (response.status() !== 200) throw new Error(`GET /console answered ${response.status()}`);
    const policy = response.headers()['content-security-policy'] ?? '';
    if (!policy.includes("default-src 'none'") || !policy.includes("script-src 'self'")) {
      throw new Error(`the console's Content-Security-Policy is ${JSON.stringify(policy)}`);
    }
    await page.getByLabel('API token').waitFor();
    await snap(page, 'login');

    step = 'a wrong token is refused on the login page';
    await page.getByLabel('API token').fill('bzr_not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'does not know this token' }).waitFor();

    step = 'a merchant signs in and lands on the live dashboard';
    await signIn(page, merchantToken, 'merchant');
    await page.getByRole('heading', { name: `Double-11 live: ${store}` }).waitFor();

    step = 'the GMV counter shows the orders placed before the page opened';
    const currency = (await api('GET', `/v1/stores/${store}`, merchantToken)).currency;
    let gmv = await expectedGmv();
    await page.locator(`#gmv[data-gmv-minor="${gmv}"]`).waitFor();
    const shown = await page.locator('#gmv').textContent();
    if (shown !== formatted(gmv, currency)) throw new Error(`the GMV reads ${shown}, not ${formatted(gmv, currency)}`);
    await snap(page, 'dashboard-before');

    step = 'orders placed through the API move the GMV counter';
    for (let n = 0; n < 3; n++) {
      await api('POST', `/v1/stores/${store}/orders`, merchantToken, orderBody(`live-${n}`, sku, 1 + n),
        { 'Idempotency-Key': `console-e2e-live-${n}` });
    }
    gmv = await expectedGmv();
    await page.locator(`#gmv[data-gmv-minor="${gmv}"]`).waitFor();
    const moved = await page.locator('#gmv').textContent();
    if (moved !== formatted(gmv, currency)) throw new Error(`the GMV reads ${moved}, not ${formatted(gmv, currency)}`);
    await page.locator('#live-state').filter({ hasText: 'live' }).waitFor();

    step = 'the dashboard lists the best seller, the sold-out SKU and the orders chart';
    const unitsSold = 1 + 2 + (1 + 2 + 3);
    await page.locator('#top-units').getByRole('row').filter({ hasText: sku }).getByRole('cell', { name: String(unitsSold), exact: true }).waitFor();
    await page.locator('#top-revenue').getByRole('cell', { name: sku, exact: true }).waitFor();
    await page.locator('#stock-alerts .stock-out').filter({ hasText: soldOutSku }).waitFor();
    await page.locator('#chart-summary').filter({ hasText: 'orders in the' }).waitFor();
    await page.locator('#plugin-health').filter({ hasText: 'healthy' }).waitFor();
    await snap(page, 'dashboard-live');

    step = 'the analytics page shows the queries as tables';
    await page.getByRole('link', { name: 'Analytics', exact: true }).click();
    await page.getByRole('table', { name: 'Headline' }).getByRole('row').filter({ hasText: 'GMV' })
      .filter({ hasText: formatted(gmv, currency) }).waitFor();
    await page.getByRole('table', { name: 'Flash-sale sell-through' }).getByRole('cell', { name: soldOutSku, exact: true }).waitFor();
    await snap(page, 'analytics');

    step = 'the orders page lists the orders and pays one';
    await page.getByRole('link', { name: 'Orders', exact: true }).click();
    await page.getByRole('heading', { name: `Orders: ${store}` }).waitFor();
    const reserved = (await api('GET', `/v1/stores/${store}/orders?limit=100`, merchantToken)).orders
      .filter((order) => order.status === 'reserved');
    if (reserved.length === 0) throw new Error('no reserved order to pay');
    const number = reserved[reserved.length - 1].number;
    await page.getByRole('button', { name: `Pay order ${number}`, exact: true }).click();
    await page.getByRole('row').filter({ hasText: `#${number}` }).getByText('paid', { exact: true }).waitFor();
    const paid = await api('GET', `/v1/stores/${store}/orders/${number}`, merchantToken);
    if (paid.status !== 'paid') throw new Error(`order ${number} is ${paid.status} after Pay`);
    await snap(page, 'orders');

    step = 'the marketplace shows an invalid configuration refused with its JSON pointer';
    await page.getByRole('link', { name: 'Marketplace', exact: true }).click();
    await page.getByRole('heading', { name: `Marketplace: ${store}` }).waitFor();
    await page.getByRole('button', { name: 'Enable pricing-promotions' }).click();
    const form = page.getByRole('form', { name: 'Configure Promotions' });
    await form.getByLabel('Configuration (JSON)').fill(JSON.stringify({ currency: 'CNY', spend_thresholds: [{ every: '200.00' }] }, null, 2));
    for (const box of await form.getByRole('checkbox', { name: /^Allow it to/ }).all()) await box.check();
    await form.getByRole('button', { name: 'Enable' }).click();
    const refusal = form.getByRole('alert');
    await refusal.filter({ hasText: '/spend_thresholds/0' }).waitFor();
    const refused = await api('GET', `/v1/stores/${store}/plugins`, merchantToken);
    if (refused.plugins.some((p) => p.plugin === 'pricing-promotions')) throw new Error('a refused configuration enabled the plugin');
    await snap(page, 'marketplace-refused');

    step = 'the marketplace enables and configures pricing-promotions';
    const config = { currency: 'CNY', spend_thresholds: [{ every: '200.00', off: '20.00' }] };
    await form.getByLabel('Configuration (JSON)').fill(JSON.stringify(config, null, 2));
    await form.getByLabel('Priority').fill('5');
    await form.getByRole('button', { name: 'Enable' }).click();
    await page.locator('#plugin-pricing-promotions').getByText('enabled', { exact: true }).waitFor();
    const enabled = (await api('GET', `/v1/stores/${store}/plugins`, merchantToken)).plugins
      .find((p) => p.plugin === 'pricing-promotions');
    if (!enabled || enabled.settings.priority !== 5 || enabled.config.spend_thresholds?.[0]?.off !== '20.00') {
      throw new Error(`the store's pricing-promotions settings are ${JSON.stringify(enabled)}`);
    }
    if (!['log', 'config'].every((c) => enabled.settings.consented.includes(c))) {
      throw new Error(`consent was not recorded: ${JSON.stringify(enabled.settings.consented)}`);
    }
    await snap(page, 'marketplace-enabled');

    step = 'the fleet page lists the robot and draws the warehouse map';
    await page.getByRole('link', { name: 'Fleet', exact: true }).click();
    await page.getByRole('heading', { name: `Fleet: ${store}` }).waitFor();
    await page.getByRole('table', { name: 'Devices' }).getByRole('cell', { name: device, exact: true }).waitFor();
    await page.locator('#bus-state').filter({ hasText: 'device bus connected' }).waitFor();
    await page.getByRole('img', { name: 'Map of HGH' }).waitFor();
    await snap(page, 'fleet');

    step = `the merchant stops zone HGH/${zone} and resumes it`;
    await page.getByRole('button', { name: `Emergency stop HGH/${zone}`, exact: true }).click();
    await page.getByRole('table', { name: 'Zones' }).getByRole('row').filter({ hasText: `HGH/${zone}` }).getByText('stopped', { exact: true }).waitFor();
    const held = await api('GET', `/v1/stores/${store}/devices`, merchantToken);
    if (!held.stopped_zones.some((z) => z.warehouse === 'HGH' && z.zone === zone)) {
      throw new Error(`the node does not hold the zone: ${JSON.stringify(held.stopped_zones)}`);
    }
    await snap(page, 'fleet-stopped');
    await page.getByRole('button', { name: `Resume HGH/${zone}`, exact: true }).click();
    await page.getByRole('table', { name: 'Zones' }).getByRole('row').filter({ hasText: `HGH/${zone}` }).getByText('running', { exact: true }).waitFor();

    step = 'the merchant signs out and an operator signs in';
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
    await signIn(page, operatorToken, 'operator');

    step = `the operator rolls ${plugin} back from ${rollbackFrom} to ${rollbackTo}`;
    await page.getByRole('link', { name: 'Plugins', exact: true }).click();
    await page.getByRole('link', { name: plugin, exact: true }).click();
    await page.locator('#active-version').filter({ hasText: rollbackFrom }).waitFor();
    await snap(page, 'plugin-before-rollback');
    await page.getByRole('button', { name: `Roll back ${plugin}` }).click();
    await page.locator('#active-version').filter({ hasText: rollbackTo }).waitFor();
    const after = await api('GET', `/v1/plugins/${plugin}`, operatorToken);
    if (after.active !== rollbackTo) throw new Error(`the node's active version is ${after.active}`);
    await snap(page, 'plugin-rolled-back');

    step = 'the operator sees the breakers and the stores';
    await page.getByRole('link', { name: 'Breakers', exact: true }).click();
    await page.locator('#breakers').filter({ hasText: 'No breaker has recent failures' }).waitFor();
    await page.getByRole('link', { name: 'Stores', exact: true }).click();
    await page.locator('#stores').getByRole('link', { name: store, exact: true }).waitFor();
    await snap(page, 'stores');

    if (problems.length > 0) {
      step = 'the page ran without script errors or policy refusals';
      throw new Error(problems.join('\n'));
    }
  } catch (error) {
    const page = context.pages()[0];
    if (page) await snap(page, 'failure').catch(() => {});
    throw error;
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

const timer = setTimeout(() => {
  console.error(`console e2e: timed out after ${RUN_TIMEOUT_MS} ms at step: ${step}`);
  process.exit(1);
}, RUN_TIMEOUT_MS);

try {
  await run();
  clearTimeout(timer);
  console.log(`console e2e: every step passed (${shot} screenshots in ${screenshots})`);
} catch (error) {
  clearTimeout(timer);
  console.error(`console e2e: failed at step: ${step}\n${error.stack ?? error}`);
  process.exit(1);
}
