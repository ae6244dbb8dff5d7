// Drives a person's visit through the test site in headless Chromium: the pricing page, "Select
// Pro", the checkout form filled in and submitted, the "Billing settings" link. posthog-js on the
// pages reports all of it to Threadline's ingest.
//
// usage: node drive.mjs <pageURL>
//
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), DRIVE_EMAIL and DRIVE_CARD (what is typed
// into the checkout form), DRIVE_TIMEOUT_MS (the whole run, default 60000).
//
// When the journey is done and the page's network is idle (posthog-js has flushed), it prints one
// JSON line {"done":true,...} on stdout and keeps the browser open until its standard input closes,
// so that the caller decides when everything it waits for has arrived.
import { chromium } from 'playwright-core';

const pageURL = process.argv[2];
if (!pageURL) {
  console.error('usage: node drive.mjs <pageURL>');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const email = process.env.DRIVE_EMAIL || 'pro-buyer@example.com';
const card = process.env.DRIVE_CARD || '4242 4242 4242 4242';
const runTimeout = Number(process.env.DRIVE_TIMEOUT_MS || 60000);
const stepTimeout = 15000;

// Debian's Chromium as root on a machine without a network beyond loopback: no sandbox, no GPU,
// and none of the background connections to Google's hosts.
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

const log = (msg) => process.stderr.write(`drive: ${msg}\n`);

const watchdog = setTimeout(() => {
  log(`gave up after ${runTimeout} ms`);
  process.exit(3);
}, runTimeout);

const browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs, timeout: 30000 });
let failed = false;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(stepTimeout);
  const origin = new URL(pageURL).origin;
  const sent = { ingestRequests: 0, ingestFailures: 0 };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (err) => log(`page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    if (new URL(req.url()).origin === origin) return;
    const why = req.failure()?.errorText;
    // a request still in flight when its page navigates away is reported aborted; posthog-js sends
    // with keepalive, so it goes on, and whether it arrived is for the caller to check
    if (why !== 'net::ERR_ABORTED') sent.ingestFailures++;
    log(`request failed: ${req.method()} ${req.url()}: ${why}`);
  });
  page.on('response', (resp) => {
    const toIngest = new URL(resp.url()).origin !== origin;
    if (toIngest) sent.ingestRequests++;
    if (resp.status() >= 400) {
      if (toIngest) sent.ingestFailures++;
      log(`request answered ${resp.status()}: ${resp.request().method()} ${resp.url()}`);
    }
  });

  // Each page starts posthog-js; wait for it before acting, as a person would wait for the page.
  const posthogLoaded = () => page.locator('html[data-posthog="loaded"]').waitFor({ state: 'attached' });

  await page.goto(pageURL);
  await posthogLoaded();

  await page.getByRole('button', { name: 'Select Pro' }).click();
  await page.waitForURL(/\/checkout(\?|$)/);
  await posthogLoaded();

  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Card number').fill(card);
  // A person leaves the field before paying: its change event comes first (Chromium may otherwise
  // fire it within the same millisecond as the click, in either order).
  await page.getByLabel('Card number').press('Tab');
  await page.getByRole('button', { name: 'Pay now' }).click();
  await page.waitForURL(/\/confirmation(\?|$)/);
  await posthogLoaded();

  await page.getByRole('link', { name: 'Billing settings' }).click();
  await page.waitForURL(/\/settings\/billing$/);
  await posthogLoaded();

  // posthog-js flushes its queue every 250 ms; idle network means the last batch has been sent.
  await page.waitForLoadState('networkidle');
  process.stdout.write(JSON.stringify({ done: true, url: page.url(), ...sent }) + '\n');

  await new Promise((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.on('error', resolve);
    process.stdin.resume();
  });
  await page.close({ runBeforeUnload: true });
} catch (err) {
  failed = true;
  log(`journey failed: ${err.stack || err}`);
} finally {
  await browser.close();
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
