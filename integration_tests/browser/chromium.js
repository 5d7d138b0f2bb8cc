// Launches the system Chromium headless with the flags that work on this machine (see
// shared TESTING.md): loopback ICE candidates allowed, no mDNS hiding, autoplay with sound,
// no background traffic. Shared by the driver scripts.
'use strict';

const path = require('path');
const { chromium } = require('playwright-core');

const LAUNCH_ARGS = [
  '--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: LAUNCH_ARGS,
  });
}

// The driver's spec: the first argument, or standard input.
async function readSpec() {
  if (process.argv[2]) return JSON.parse(process.argv[2]);
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// Reads the spec, opens spec.pageUrl (any answer: the page only gives the in-page calls
// their origin), adds the shared in-page WHEP client (`window.whep`, whep_client.js) and the
// scripts of spec.scripts (paths under this folder), runs
// `inPage(spec)` there and prints its result as one JSON line with
// "ok": true (plus the page's last console lines and the browser version), or
// {"ok": false, "error": ...}. A hard limit of spec.timeoutMs (default `defaultTimeoutMs`)
// ends the driver with {"ok": false}.
async function runDriver(inPage, defaultTimeoutMs) {
  let browser;
  const spec = await readSpec();
  const limit = spec.timeoutMs ?? defaultTimeoutMs;
  const hardLimit = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: `driver timed out after ${limit} ms` }));
    process.exit(2);
  }, limit);
  try {
    browser = await launch();
    // The page is one of the server's, whose Content-Security-Policy (rightly) refuses
    // inline scripts such as the injected WHEP client: the drivers' own code is let in.
    // (player_driver.js uses the page as it is, CSP included.)
    const context = await browser.newContext({ bypassCSP: true });
    const page = await context.newPage();
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    await page.goto(spec.pageUrl, { waitUntil: 'domcontentloaded' }).catch(() => {});
    await page.addScriptTag({ path: path.join(__dirname, 'whep_client.js') });
    // Players a driver asks for (e.g. node_modules/mpegts.js/dist/mpegts.js).
    for (const script of spec.scripts ?? []) {
      await page.addScriptTag({ path: path.join(__dirname, script) });
    }
    const result = await page.evaluate(inPage, spec);
    result.ok = true;
    result.console = consoleLines.slice(-20);
    result.chromium = browser.version();
    console.log(JSON.stringify(result));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String((e && e.stack) || e) }));
    process.exitCode = 1;
  } finally {
    clearTimeout(hardLimit);
    if (browser) await browser.close().catch(() => {});
  }
}

module.exports = { launch, runDriver, LAUNCH_ARGS };
