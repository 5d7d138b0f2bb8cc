// Measures how Chromium plays out audio and video of one WHEP viewer on the RTP timelines,
// for the lip-sync test. Video: every displayed frame's RTP timestamp and expected display
// time (requestVideoFrameCallback), plus whether it is a bright "flash" frame (judged on a
// 16x9 canvas copy). Audio: the RTP timestamp of the audio last played out and when
// (RTCRtpReceiver.getSynchronizationSources, polled every 10 ms: the moment the audio was
// handed to the playout device) and, once a second, the device's own delay from there to the
// speaker ('media-playout' stats) — no WebAudio tap, whose own buffering is not what the
// browser synchronises.
//
// Usage: node lipsync_driver.js '<json spec>'
// Spec: { "pageUrl": "http://127.0.0.1:P/", "whepPath": "/whep/NAME", "runMs": 35000,
//         "timeoutMs": 60000 }
// Prints one JSON line: {"ok": true, "flashes": [{display, rtp}], "audio": [{playout, rtp,
// perfNow, dateNow}], "samples": [{t, video, audio, playout}], "connectedAt": ms} or {"ok": false, "error": ...}.
// Times are performance.now() ms unless named otherwise. It decides nothing.
'use strict';

const { runDriver } = require('./chromium');

async function runInPage(spec) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const out = { flashes: [], audio: [], samples: [], connectedAt: null, errors: [] };
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  const audioTransceiver = pc.addTransceiver('audio', { direction: 'recvonly' });
  const { video } = whep.playTracks(pc);
  const canvas = new OffscreenCanvas(16, 9);
  const g = canvas.getContext('2d', { willReadFrequently: true });
  let bright = false;
  const onFrame = (now, md) => {
    g.drawImage(video, 0, 0, 16, 9);
    const d = g.getImageData(0, 0, 16, 9).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += d[i + 1];
    const isBright = sum / (d.length / 4) > 128;
    if (isBright && !bright) out.flashes.push({ display: md.expectedDisplayTime, rtp: md.rtpTimestamp ?? null });
    bright = isBright;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);

  const c = await whep.connect(pc, spec.whepPath);
  if (c.failed) throw new Error(c.error ?? `POST ${c.status}: ${c.text}`);
  out.connectedAt = c.connectedAt;
  const start = performance.now();
  let lastStats = start;
  let lastPlayout = null;
  while (performance.now() - start < (spec.runMs || 35000)) {
    for (const s of audioTransceiver.receiver.getSynchronizationSources()) {
      if (s.timestamp !== lastPlayout) {
        lastPlayout = s.timestamp;
        out.audio.push({ playout: s.timestamp, rtp: s.rtpTimestamp, perfNow: performance.now(), dateNow: Date.now() });
      }
    }
    if (performance.now() - lastStats > 1000) {
      lastStats = performance.now();
      const report = await pc.getStats();
      const s = { t: performance.now() };
      report.forEach((x) => {
        if (x.type === 'inbound-rtp') {
          s[x.kind] = {
            estimatedPlayoutTimestamp: x.estimatedPlayoutTimestamp ?? null,
            jitterBufferDelay: x.jitterBufferDelay ?? null,
            jitterBufferEmittedCount: x.jitterBufferEmittedCount ?? null,
          };
        }
        if (x.type === 'media-playout') {
          s.playout = { totalPlayoutDelay: x.totalPlayoutDelay ?? null, totalSamplesCount: x.totalSamplesCount ?? null };
        }
      });
      out.samples.push(s);
    }
    await sleep(10);
  }
  await whep.end(c.location);
  pc.close();
  if (out.errors.length) throw new Error(out.errors.join('; '));
  return out;
}

runDriver(runInPage, 60000);
