// Drives pullcast's own player page (served at /) in headless Chromium: types a stream name,
// clicks Play, records the statuses the page shows and the WebRTC statistics, then clicks
// Stop. For the end-to-end tests of the WebSocket signalling.
//
// Usage: node player_driver.js '<json spec>'
// Spec: { "pageUrl": "http://127.0.0.1:P/", "name": "cam1" | "rtmp://…", "runMs": 5000,
//         "stop": true, "timeoutMs": 30000, "transport": "webrtc" | "hls" }
// Prints one JSON line: {"ok": true, "statuses": [...], "firstFrameMs": n, "samples": [...],
// "final": {...}, "reason": "...", "sent": [...], "samePeerConnection": bool} or
// {"ok": false, "error": "..."}. Samples and statuses carry `wall` (ms since the epoch) so a
// test can line them up with what it did to the source; `sent` lists the signalling messages
// the page sent (pings/pongs left out). It decides nothing.
//
// "transport": "hls" (absent: WebRTC, as above) chooses HLS on the page before Play: then
// `firstFrameMs` is Play → first decoded frame, the samples are the video element's
// (getVideoPlaybackQuality: framesDecoded = totalVideoFrames, framesDropped; width, height,
// currentTime) with the page's delay behind the source (`delayMs`, `delayText` as shown),
// `hls` is the player's configuration and `requests` counts the page's playlist requests
// (with `_HLS_msn`: blocking reloads), parts and segments; after Stop, `afterStop` says
// whether the player is gone and the element empty.
//
// Every run also reports what the page's Content-Security-Policy blocked
// (`cspViolations`, securitypolicyviolation events from the page's start), the page's
// uncaught errors (`pageErrors`), its console errors (`consoleErrors`) and the answers of
// status 400 and above to its requests (`httpErrors`: "404 http://…").
'use strict';

const { launch } = require('./chromium');

async function main() {
  const spec = JSON.parse(process.argv[2]);
  const browser = await launch();
  const timer = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: `timed out after ${spec.timeoutMs || 30000} ms` }));
    process.exit(3);
  }, spec.timeoutMs || 30000);
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    const consoleErrors = [];
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      console.error('page:', m.text());
      consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(String((e && e.stack) || e)));
    const httpErrors = [];
    page.on('response', (r) => { if (r.status() >= 400) httpErrors.push(`${r.status()} ${r.url()}`); });
    // Before any of the page's own scripts: what its CSP blocks, from the first byte on.
    await page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__cspViolations.push({ directive: e.effectiveDirective, blocked: e.blockedURI,
          source: e.sourceFile, line: e.lineNumber, sample: e.sample });
      });
    });
    await page.goto(spec.pageUrl);
    const result = await page.evaluate(async (spec) => {
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const t0 = performance.now();
      const now = () => Math.round(performance.now() - t0);
      const statuses = [];
      const sent = [];
      const realSend = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) {
        try {
          const m = JSON.parse(data);
          if (m.type !== 'ping' && m.type !== 'pong') sent.push({ wall: Date.now(), type: m.type });
        } catch (e) { /* not JSON: not ours */ }
        return realSend.call(this, data);
      };
      const statusEl = document.getElementById('status');
      new MutationObserver(() => statuses.push({ t: now(), wall: Date.now(), status: statusEl.textContent,
        reason: document.getElementById('reason').textContent })).observe(statusEl, { childList: true, characterData: true, subtree: true });
      // First-frame time, connection 'connected' → first decoded video frame, taken on every
      // peer connection the page makes: the event's own time, then getStats every 10 ms
      // (the page's PLAYING comes later, at the server's first video write).
      const firstFrame = { connectedAt: null, decodedAt: null };
      const RealPeerConnection = window.RTCPeerConnection;
      window.RTCPeerConnection = class extends RealPeerConnection {
        constructor(...args) {
          super(...args);
          this.addEventListener('connectionstatechange', () => {
            if (this.connectionState !== 'connected' || firstFrame.connectedAt !== null) return;
            firstFrame.connectedAt = now();
            (async () => {
              const deadline = performance.now() + 10000;
              while (performance.now() < deadline && this.connectionState === 'connected') {
                let decoded = 0;
                (await this.getStats()).forEach((x) => {
                  if (x.type === 'inbound-rtp' && x.kind === 'video') decoded = x.framesDecoded || 0;
                });
                if (decoded > 0) { firstFrame.decodedAt = now(); return; }
                await sleep(10);
              }
            })();
          });
        }
      };
      if (spec.transport === 'hls') return playHls(spec, { sleep, now, statuses, sent, statusEl });
      // Chromium only measures the audio it plays: unmute (autoplay is allowed by the flags).
      document.getElementById('video').muted = false;
      document.getElementById('name').value = spec.name;
      document.getElementById('play').click();
      // Wait for a terminal answer or PLAYING.
      const deadline = performance.now() + 15000;
      while (performance.now() < deadline) {
        const s = statusEl.textContent;
        if (s === 'PLAYING' || s === 'FAILED' || s === 'STOPPED') break;
        await sleep(10);
      }
      const stream = window.pullcastPlayer.stream;
      const out = { statuses, sent, samples: [], firstFrameMs: null, connectedAt: null };
      if (!stream) return out;
      const pc = stream.pc;
      async function stats() {
        const r = await pc.getStats();
        let v = {}, a = {};
        r.forEach((x) => {
          if (x.type === 'inbound-rtp' && x.kind === 'video') v = x;
          if (x.type === 'inbound-rtp' && x.kind === 'audio') a = x;
        });
        return { t: now(), wall: Date.now(), framesDecoded: v.framesDecoded || 0, framesDropped: v.framesDropped || 0,
          freezeCount: v.freezeCount || 0, width: v.frameWidth || 0, height: v.frameHeight || 0,
          totalSamplesReceived: a.totalSamplesReceived || 0, audioLevel: a.audioLevel || 0,
          connection: pc.connectionState };
      }
      const firstDeadline = performance.now() + 10000;
      while (performance.now() < firstDeadline && firstFrame.decodedAt === null) await sleep(10);
      out.connectedAt = firstFrame.connectedAt;
      if (firstFrame.connectedAt !== null && firstFrame.decodedAt !== null) {
        out.firstFrameMs = firstFrame.decodedAt - firstFrame.connectedAt;
      }
      // Stats every 100 ms: a test that times an event (frames again after an outage) reads
      // it to within one interval.
      const start = performance.now();
      while (performance.now() - start < (spec.runMs || 5000)) {
        out.samples.push(await stats());
        await sleep(100);
      }
      out.samples.push(await stats());
      out.samePeerConnection = window.pullcastPlayer.stream === stream && stream.pc === pc;
      if (spec.stop) {
        document.getElementById('stop').click();
        const stopDeadline = performance.now() + 5000;
        while (performance.now() < stopDeadline && statusEl.textContent !== 'STOPPED') await sleep(20);
      }
      return out;

      // The page's HLS path: Play with HLS chosen, then what the video element decodes.
      async function playHls(spec, { sleep, now, statuses, sent, statusEl }) {
        performance.setResourceTimingBufferSize(100000);
        const video = document.getElementById('video');
        const select = document.getElementById('transport');
        select.value = 'hls';
        select.dispatchEvent(new Event('change', { bubbles: true }));
        video.muted = false;
        document.getElementById('name').value = spec.name;
        const clicked = now();
        document.getElementById('play').click();
        const out = { transport: 'hls', statuses, sent, samples: [], firstFrameMs: null };
        // The first playlist waits for the muxer's first segment: a longer start than WebRTC's.
        const deadline = performance.now() + 25000;
        while (performance.now() < deadline) {
          const s = statusEl.textContent;
          if (s === 'PLAYING' || s === 'FAILED' || s === 'STOPPED') break;
          await sleep(10);
        }
        if (statusEl.textContent !== 'PLAYING') return out;
        const player = window.pullcastPlayer;
        const quality = () => video.getVideoPlaybackQuality();
        const firstDeadline = performance.now() + 10000;
        while (performance.now() < firstDeadline && quality().totalVideoFrames === 0) await sleep(10);
        if (quality().totalVideoFrames > 0) out.firstFrameMs = now() - clicked;
        const sample = () => {
          const q = quality();
          return { t: now(), wall: Date.now(), framesDecoded: q.totalVideoFrames, framesDropped: q.droppedVideoFrames,
            width: video.videoWidth, height: video.videoHeight, currentTime: video.currentTime,
            delayMs: player.delayMs, delayText: document.getElementById('delay').textContent,
            status: statusEl.textContent };
        };
        const start = performance.now();
        while (performance.now() - start < (spec.runMs || 5000)) {
          out.samples.push(sample());
          await sleep(100);
        }
        out.samples.push(sample());
        const hls = player.hls;
        out.hls = hls ? { lowLatencyMode: hls.config.lowLatencyMode, enableWorker: hls.config.enableWorker,
          latencyS: hls.latency } : null;
        const requests = { playlists: 0, msn: 0, parts: 0, segments: 0, init: 0, script: 0 };
        for (const e of performance.getEntriesByType('resource')) {
          const url = e.name;
          if (url.includes('/vendor/hls.light.min.js')) requests.script += 1;
          else if (url.includes('.m3u8')) {
            requests.playlists += 1;
            if (url.includes('_HLS_msn=')) requests.msn += 1;
          } else if (/_part\d+\.mp4/.test(url)) requests.parts += 1;
          else if (/_seg\d+\.mp4/.test(url)) requests.segments += 1;
          else if (/_init\.mp4/.test(url)) requests.init += 1;
        }
        out.requests = requests;
        if (spec.stop) {
          document.getElementById('stop').click();
          const stopDeadline = performance.now() + 5000;
          while (performance.now() < stopDeadline && statusEl.textContent !== 'STOPPED') await sleep(20);
          out.afterStop = { hls: player.hls !== null, src: video.getAttribute('src'),
            delayText: document.getElementById('delay').textContent };
        }
        return out;
      }
    }, spec);
    result.cspViolations = await page.evaluate(() => window.__cspViolations);
    result.pageErrors = pageErrors;
    result.consoleErrors = consoleErrors;
    result.httpErrors = httpErrors;
    result.ok = true;
    result.final = result.statuses.length ? result.statuses[result.statuses.length - 1] : null;
    console.log(JSON.stringify(result));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) }));
  } finally {
    clearTimeout(timer);
    await browser.close();
  }
}

main();
