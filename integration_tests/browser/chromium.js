// Launches the system Chromium headless with the flags that work on this machine (see
// shared TESTING.md): loopback ICE candidates allowed, no mDNS hiding, autoplay with sound,
// no background traffic. Shared by the driver scripts.
'use strict';

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

module.exports = { launch, LAUNCH_ARGS };
