// Drives headless Chromium as an HTTP-FLV player (mpegts.js, the maintained flv.js) of a
// pullcast server, for the end-to-end tests.
//
// Usage: node flv_driver.js '<json spec>'   (or the spec on stdin)
// Prints one JSON object on the last line of stdout: {"ok": true, ...} or
// {"ok": false, "error": "..."}. It asserts nothing itself: the Rust test does.
//
// Spec:
//   pageUrl    a page of the server's origin (the FLV URL is fetched from it), e.g.
//              http://127.0.0.1:P/
//   flvUrl     the stream, e.g. http://127.0.0.1:P/cam.flv
//   runMs      how long the player is watched after its first frame (default 5000)
//   sampleMs   interval of the recorded timeline (default 250)
//   timeoutMs  hard limit of the whole run (default 30000)
//
// It must not decide pass/fail, and it needs /usr/bin/chromium (or $CHROMIUM), playwright-core
// and mpegts.js (npm ci in this folder).
'use strict';

const { runDriver } = require('./chromium');

// Runs inside the page.
async function runInPage(spec) {
  const runMs = spec.runMs ?? 5000;
  const sampleMs = spec.sampleMs ?? 250;
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const result = { errors: [], timeline: [], supported: mpegts.isSupported() };
  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  document.body.appendChild(video);
  const player = mpegts.createPlayer(
    { type: 'flv', isLive: true, url: spec.flvUrl },
    { enableWorker: false, liveBufferLatencyChasing: true },
  );
  player.on(mpegts.Events.ERROR, (type, detail, info) => {
    result.errors.push({ t: now(), type, detail, info: JSON.stringify(info ?? null) });
  });
  player.on(mpegts.Events.MEDIA_INFO, (info) => {
    result.mediaInfo = {
      hasAudio: info.hasAudio,
      hasVideo: info.hasVideo,
      audioCodec: info.audioCodec,
      videoCodec: info.videoCodec,
      audioSampleRate: info.audioSampleRate,
      width: info.width,
      height: info.height,
    };
  });
  player.attachMediaElement(video);
  player.load();
  video.play().catch((e) => result.errors.push({ t: now(), type: 'play', detail: String(e) }));

  function sample() {
    const q = video.getVideoPlaybackQuality();
    return {
      t: now(),
      currentTime: video.currentTime,
      totalVideoFrames: q.totalVideoFrames,
      droppedVideoFrames: q.droppedVideoFrames,
      videoWidth: video.videoWidth,
      videoHeight: video.videoHeight,
      audioDecodedBytes: video.webkitAudioDecodedByteCount ?? 0,
      readyState: video.readyState,
    };
  }
  // The first frame, then runMs of playback.
  while (now() < 15000) {
    const s = sample();
    if (s.totalVideoFrames > 0) {
      result.firstFrameMs = s.t;
      break;
    }
    await sleep(20);
  }
  const start = sample();
  result.start = start;
  while (now() < (result.firstFrameMs ?? 15000) + runMs) {
    await sleep(sampleMs);
    result.timeline.push(sample());
  }
  result.final = sample();
  player.destroy();
  return result;
}

runDriver(runInPage, 30000);
