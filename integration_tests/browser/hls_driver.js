// Drives headless Chromium as an HLS player (hls.js) of a pullcast server, for the
// end-to-end tests: low-latency mode (blocking reloads, parts) or plain mode.
//
// Usage: node hls_driver.js '<json spec>'   (or the spec on stdin)
// Prints one JSON object on the last line of stdout: {"ok": true, ...} or
// {"ok": false, "error": "..."}. It asserts nothing itself: the Rust test does.
//
// Spec:
//   pageUrl     a page of the HLS listener's origin (the playlist is fetched from it)
//   playlistUrl the playlist, e.g. http://127.0.0.1:P/cam/cam.m3u8
//   lowLatency  hls.js lowLatencyMode (default true)
//   runMs       how long the player is watched after its first frame (default 8000)
//   sampleMs    interval of the recorded timeline (default 250)
//   timeoutMs   hard limit of the whole run (default 40000)
//
// Result: firstFrameMs (load → first decoded frame), start/final samples (frames decoded,
// dropped, currentTime, audio bytes decoded), delaysMs (Date.now() − hls.playingDate, the
// wall-clock delay behind the source by PROGRAM-DATE-TIME, one per sample after the first
// second), latencyS (hls.js's own estimate), audio (peak frequency of the played sound by a
// WebAudio analyser), requests (counts of playlist requests with _HLS_msn, _HLS_part,
// _HLS_skip, and of part/segment loads), errors.
//
// It must not decide pass/fail; it needs /usr/bin/chromium (or $CHROMIUM), playwright-core and
// hls.js (npm ci in this folder).
'use strict';

const { runDriver } = require('./chromium');

// Runs inside the page.
async function runInPage(spec) {
  const runMs = spec.runMs ?? 8000;
  const sampleMs = spec.sampleMs ?? 250;
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const result = {
    errors: [],
    timeline: [],
    delaysMs: [],
    supported: Hls.isSupported(),
    requests: { playlists: 0, msn: 0, part: 0, skip: 0, parts: 0, segments: 0, init: 0 },
  };
  const count = (url) => {
    const r = result.requests;
    if (url.includes('.m3u8')) {
      r.playlists += 1;
      if (url.includes('_HLS_msn=')) r.msn += 1;
      if (url.includes('_HLS_part=')) r.part += 1;
      if (url.includes('_HLS_skip=')) r.skip += 1;
    } else if (/_part\d+\.mp4/.test(url)) { r.parts += 1; (result.partUrls ??= []).push(url.replace(/^.*\//, "")); }
    else if (/_seg\d+\.mp4/.test(url)) r.segments += 1;
    else if (/_init\.mp4/.test(url)) r.init += 1;
  };
  const video = document.createElement('video');
  video.muted = false;
  video.autoplay = true;
  document.body.appendChild(video);
  const hls = new Hls({
    lowLatencyMode: spec.lowLatency ?? true,
    enableWorker: false,
    xhrSetup: (xhr, url) => count(url),
    debug: spec.debug ? ['log', 'info', 'warn', 'error', 'debug'].reduce((o, k) => {
      o[k] = (...a) => { (result.logs ??= []).push(`${now()} ${k} ${a.join(' ')}`.slice(0, 300)); };
      return o;
    }, {}) : false,
  });
  hls.on(Hls.Events.ERROR, (event, data) => {
    result.errors.push({ t: now(), type: data.type, details: data.details, fatal: data.fatal,
      url: data.url ?? data.frag?.url ?? null, status: data.response?.code ?? null });
  });
  hls.on(Hls.Events.LEVEL_LOADED, (event, data) => {
    const d = data.details;
    result.level = { live: d.live, partTarget: d.partTarget, targetduration: d.targetduration,
      canBlockReload: d.canBlockReload, canSkipUntil: d.canSkipUntil,
      partHoldBack: d.partHoldBack, fragments: d.fragments.length };
  });
  hls.loadSource(spec.playlistUrl);
  hls.attachMedia(video);

  // The played sound, through WebAudio.
  const ctx = new AudioContext();
  const source = ctx.createMediaElementSource(video);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  source.connect(analyser);
  const mute = ctx.createGain();
  mute.gain.value = 0;
  analyser.connect(mute).connect(ctx.destination);
  function peakHz() {
    const freq = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(freq);
    const binHz = ctx.sampleRate / analyser.fftSize;
    let k = 1;
    for (let i = 1; i < freq.length; i++) if (freq[i] > freq[k]) k = i;
    return { hz: Math.round(k * binHz), db: Math.round(freq[k]) };
  }

  video.play().catch((e) => result.errors.push({ t: now(), type: 'play', details: String(e) }));
  ctx.resume().catch(() => {});

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
  while (now() < 25000) {
    const s = sample();
    if (s.totalVideoFrames > 0) {
      result.firstFrameMs = s.t;
      break;
    }
    await sleep(20);
  }
  result.start = sample();
  const audioPeaks = [];
  while (now() < (result.firstFrameMs ?? 25000) + runMs) {
    await sleep(sampleMs);
    const s = sample();
    result.timeline.push(s);
    if (s.t > (result.firstFrameMs ?? 0) + 1000) {
      if (hls.playingDate) result.delaysMs.push(Date.now() - hls.playingDate.getTime());
      audioPeaks.push(peakHz());
    }
  }
  result.final = sample();
  result.latencyS = hls.latency;
  result.audio = audioPeaks;
  hls.destroy();
  return result;
}

runDriver(runInPage, 40000);
