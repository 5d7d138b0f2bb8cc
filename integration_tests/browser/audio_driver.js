// Listens to pullcast captures in headless Chromium over WHEP and analyses the received
// audio with WebAudio, for the AAC source matrix test (integration_tests/tests/aac_matrix.rs).
//
// Usage: node audio_driver.js '<json spec>'   (or the spec on stdin)
// Prints one JSON object on the last line of stdout: {"ok": true, "context": {...},
// "streams": [...]} or {"ok": false, "error": "..."}. It measures and decides nothing: the
// Rust test does.
//
// All streams play in one page, `batchSize` at a time: one RTCPeerConnection each (recvonly
// audio only), the remote stream on a muted <audio> element (Chromium feeds remote WebRTC
// audio to WebAudio only while the stream is also attached to a media element) and into one
// AudioContext: MediaStreamSource → AnalyserNode (smoothing 0) → gain 0 → destination, and
// MediaStreamSource → ChannelSplitter → one small AnalyserNode per channel.
//
// Spec:
//   pageUrl       page to open first (same origin as the WHEP endpoint), e.g. http://127.0.0.1:P/
//   streams       [{ "label": "...", "whepPath": "/whep/<percent-encoded name>" }, ...]
//   sampleRate    AudioContext rate (default 48000)
//   fftSize       AnalyserNode fftSize (default 32768)
//   batchSize     streams played at once (default: all); batches follow one another in the
//                 same page and AudioContext, each ended (DELETE, close) before the next
//   warmupMs      wait after a batch's connections are up before measuring it (default 2000);
//                 then, up to 10 s more, until each stream has played one analyser window
//                 + 200 ms
//   snapshots     number of analyser snapshots per stream (default 6)
//   snapshotEveryMs  time between snapshots (default: one analyser window, fftSize/sampleRate)
//   windowMs      envelope window for the gap analysis (default 5)
//   quietRatio    a window is "quiet" when its peak is below quietRatio × the median window
//                 peak of its snapshot (default 0.1, i.e. 20 dB down)
//   connectTimeoutMs  per connection (default 10000)
//   timeoutMs     hard limit of the whole run (default 60000)
//
// context: the AudioContext's state and rate, and per batch the measured wall time and how
// far AudioContext.currentTime advanced meanwhile (a stalled audio thread shows there).
// Per stream: postStatus, location, errors, connectedMs, trackMs, answerAudio (the answer's
// a=rtpmap / a=fmtp lines), the inbound-rtp audio stats at the first and the last snapshot
// (statsStart / statsEnd: packetsReceived, totalSamplesReceived, concealedSamples,
// silentConcealedSamples, concealmentEvents, insertedSamplesForDeceleration,
// removedSamplesForAcceleration, jitterBufferDelay, jitterBufferEmittedCount, audioLevel,
// wall ms), and the snapshots, each with: peakHz (largest bin above 20 Hz of
// getFloatFrequencyData, parabolic interpolation on the dB values), peakDb (analyser scale),
// toneFraction (power within ±15 Hz of the peak over the power from 20 Hz to Nyquist),
// spurHz/spurDb (largest bin farther than 50 Hz from the peak, dB relative to the peak),
// zeroCrossHz (rising zero crossings of the time-domain buffer per second), rmsDbfs/peakDbfs
// (getFloatTimeDomainData), medianWindowPeak, minWindowDb (quietest envelope window relative
// to the median), quietWindows, longestQuietMs, contextTime (AudioContext.currentTime when
// taken), channelRmsDbfs (RMS of the last 2048 samples of each of the first two channels: the
// second is silent when the browser decodes mono).
'use strict';

const { runDriver } = require('./chromium');

// Runs inside the page.
async function runInPage(spec) {
  const sampleRate = spec.sampleRate ?? 48000;
  const fftSize = spec.fftSize ?? 32768;
  const warmupMs = spec.warmupMs ?? 2000;
  const snapshots = spec.snapshots ?? 6;
  const bufferMs = (fftSize / sampleRate) * 1000;
  const snapshotEveryMs = spec.snapshotEveryMs ?? bufferMs;
  const windowMs = spec.windowMs ?? 5;
  const quietRatio = spec.quietRatio ?? 0.1;
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const ctx = new AudioContext({ sampleRate });
  try { await ctx.resume(); } catch (e) { /* reported through ctx.state */ }
  const context = { state: ctx.state, sampleRate: ctx.sampleRate, baseLatency: ctx.baseLatency ?? null };

  async function audioStats(pc) {
    let found = null;
    const report = await pc.getStats();
    report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') found = s; });
    const a = found || {};
    return {
      wall: Math.round(performance.now()),
      packetsReceived: a.packetsReceived ?? 0,
      packetsLost: a.packetsLost ?? 0,
      totalSamplesReceived: a.totalSamplesReceived ?? 0,
      concealedSamples: a.concealedSamples ?? 0,
      silentConcealedSamples: a.silentConcealedSamples ?? 0,
      concealmentEvents: a.concealmentEvents ?? 0,
      insertedSamplesForDeceleration: a.insertedSamplesForDeceleration ?? 0,
      removedSamplesForAcceleration: a.removedSamplesForAcceleration ?? 0,
      jitterBufferDelay: a.jitterBufferDelay ?? 0,
      jitterBufferEmittedCount: a.jitterBufferEmittedCount ?? 0,
      audioLevel: a.audioLevel ?? 0,
      codecId: a.codecId ?? null,
    };
  }

  function channelRms(analysers) {
    return analysers.map((a) => {
      const x = new Float32Array(a.fftSize);
      a.getFloatTimeDomainData(x);
      let sum = 0;
      for (const s of x) sum += s * s;
      const rms = Math.sqrt(sum / x.length);
      return rms > 0 ? Math.round(2000 * Math.log10(rms)) / 100 : -200;
    });
  }

  function analyse(an) {
    const freq = new Float32Array(an.frequencyBinCount);
    const time = new Float32Array(an.fftSize);
    an.getFloatFrequencyData(freq);
    an.getFloatTimeDomainData(time);
    const binHz = sampleRate / an.fftSize;
    const lo = Math.max(1, Math.ceil(20 / binHz));
    let k = lo;
    for (let i = lo; i < freq.length - 1; i++) if (freq[i] > freq[k]) k = i;
    let delta = 0;
    if (k > lo && k < freq.length - 1 && Number.isFinite(freq[k - 1]) && Number.isFinite(freq[k + 1])) {
      const a = freq[k - 1], b = freq[k], c = freq[k + 1];
      const den = a - 2 * b + c;
      if (den !== 0) delta = (0.5 * (a - c)) / den;
    }
    const peakHz = (k + delta) * binHz;
    let tone = 0, total = 0, spurBin = -1;
    const toneBins = Math.ceil(15 / binHz), farBins = Math.ceil(50 / binHz);
    for (let i = lo; i < freq.length; i++) {
      const p = Number.isFinite(freq[i]) ? Math.pow(10, freq[i] / 10) : 0;
      total += p;
      if (Math.abs(i - k) <= toneBins) tone += p;
      else if (Math.abs(i - k) > farBins && (spurBin < 0 || freq[i] > freq[spurBin])) spurBin = i;
    }
    // Time domain: level, rising zero crossings, envelope windows.
    let sum = 0, peak = 0, rising = 0, first = -1, last = -1;
    for (let i = 0; i < time.length; i++) {
      const x = time[i];
      sum += x * x;
      if (Math.abs(x) > peak) peak = Math.abs(x);
      if (i > 0 && time[i - 1] < 0 && x >= 0) {
        rising++;
        if (first < 0) first = i;
        last = i;
      }
    }
    const rms = Math.sqrt(sum / time.length);
    const zeroCrossHz = rising > 1 ? ((rising - 1) * sampleRate) / (last - first) : 0;
    const win = Math.max(1, Math.round((windowMs / 1000) * sampleRate));
    const peaks = [];
    for (let s = 0; s + win <= time.length; s += win) {
      let m = 0;
      for (let i = s; i < s + win; i++) m = Math.max(m, Math.abs(time[i]));
      peaks.push(m);
    }
    const sorted = peaks.slice().sort((x, y) => x - y);
    const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
    let quiet = 0, run = 0, longest = 0;
    for (const m of peaks) {
      if (m < quietRatio * median || median === 0) { quiet++; run++; longest = Math.max(longest, run); }
      else run = 0;
    }
    const db = (v) => (v > 0 ? 20 * Math.log10(v) : -200);
    const r2 = (v) => Math.round(v * 100) / 100;
    return {
      t: now(),
      contextTime: r2(ctx.currentTime * 1000) / 1000,
      peakHz: r2(peakHz),
      peakDb: r2(freq[k]),
      toneFraction: total > 0 ? Math.round((tone / total) * 10000) / 10000 : 0,
      spurHz: spurBin >= 0 ? r2(spurBin * binHz) : null,
      spurDb: spurBin >= 0 && Number.isFinite(freq[spurBin]) ? r2(freq[spurBin] - freq[k]) : null,
      zeroCrossHz: r2(zeroCrossHz),
      rmsDbfs: r2(db(rms)),
      peakDbfs: r2(db(peak)),
      medianWindowPeak: Math.round(median * 10000) / 10000,
      minWindowDb: median > 0 ? r2(db(sorted[0] / median)) : -200,
      quietWindows: quiet,
      longestQuietMs: longest * windowMs,
    };
  }

  async function startStream(cfg, index) {
    const result = {
      index, label: cfg.label ?? null, postStatus: null, postBody: null, location: null,
      errors: [], connectedMs: null, trackMs: null, elementPlaying: null, states: [], answerAudio: [],
      snapshots: [], statsStart: null, statsEnd: null, deleteStatus: null,
    };
    const v = { result, pc: null, analyser: null, location: null, deleted: false };
    const pc = new RTCPeerConnection({ iceServers: [] });
    v.pc = pc;
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const audio = document.createElement('audio');
    audio.muted = true; audio.autoplay = true;
    document.body.appendChild(audio);
    const posted = performance.now();
    pc.ontrack = (ev) => {
      result.trackMs = Math.round(performance.now() - posted);
      const stream = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      audio.srcObject = stream;
      audio.play().then(() => { result.elementPlaying = true; })
        .catch((e) => { result.elementPlaying = false; result.errors.push('play(): ' + e); });
      const source = ctx.createMediaStreamSource(stream);
      const analyser = ctx.createAnalyser();
      analyser.fftSize = fftSize;
      analyser.smoothingTimeConstant = 0;
      const sink = ctx.createGain();
      sink.gain.value = 0;
      source.connect(analyser);
      analyser.connect(sink);
      // Per-channel levels: a mono stream leaves the splitter's second output silent.
      const splitter = ctx.createChannelSplitter(2);
      source.connect(splitter);
      v.channels = [0, 1].map((c) => {
        const a = ctx.createAnalyser();
        a.fftSize = 2048;
        splitter.connect(a, c);
        a.connect(sink);
        return a;
      });
      sink.connect(ctx.destination);
      v.analyser = analyser;
    };
    const c = await whep.connect(pc, cfg.whepPath, {
      connectTimeoutMs: spec.connectTimeoutMs ?? 10000,
      onState: (state) => result.states.push([now(), state]),
    });
    v.location = c.location;
    if (!whep.report(c, result)) {
      pc.close();
      v.pc = null;
      return v;
    }
    result.answerAudio = c.text.split(/\r?\n/).filter((l) => /^a=(rtpmap|fmtp):/.test(l));
    if (c.failed) return v;
    result.connectedMs = Math.round(c.connectedAt - posted);
    return v;
  }

  // One batch at a time: each batch's viewers start together, are measured together, then
  // DELETE their sessions and close (the server transcodes only while a capture has viewers).
  const batchSize = Math.max(1, spec.batchSize ?? spec.streams.length);
  const results = [];
  context.batches = [];
  for (let first = 0; first < spec.streams.length; first += batchSize) {
    const batch = spec.streams.slice(first, first + batchSize);
    const batchStart = performance.now();
    const streams = await Promise.all(batch.map((cfg, i) => startStream(cfg, first + i)));
    await sleep(warmupMs);
    const live = streams.filter((v) => v.pc && v.analyser);
    // The first snapshot looks one analyser window back: start measuring once every stream
    // has played at least that much plus 200 ms (a slow start on a busy machine would
    // otherwise show up as a quiet gap). Up to 10 s more; a stream that never gets there is
    // measured anyway and fails on its own numbers.
    const enough = fftSize + 0.2 * sampleRate;
    const playedDeadline = performance.now() + 10000;
    while (performance.now() < playedDeadline) {
      const played = await Promise.all(live.map((v) => audioStats(v.pc)));
      if (played.every((a) => (a ? a.totalSamplesReceived : 0) >= enough)) break;
      await sleep(50);
    }
    for (const v of live) v.result.statsStart = await audioStats(v.pc);
    const measureStart = performance.now();
    const contextStart = ctx.currentTime;
    for (let s = 0; s < snapshots; s++) {
      const due = measureStart + s * snapshotEveryMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      for (const v of live) {
        const snap = analyse(v.analyser);
        snap.channelRmsDbfs = channelRms(v.channels);
        v.result.snapshots.push(snap);
      }
    }
    for (const v of live) v.result.statsEnd = await audioStats(v.pc);
    context.batches.push({
      first, count: batch.length, state: ctx.state,
      measuredMs: Math.round(performance.now() - measureStart),
      contextAdvancedMs: Math.round((ctx.currentTime - contextStart) * 1000),
    });
    for (const v of streams) await whep.endViewer(v);
    for (const v of streams) if (v.pc) v.pc.close();
    context.batches[context.batches.length - 1].totalMs = Math.round(performance.now() - batchStart);
    results.push(...streams.map((v) => v.result));
  }
  context.stateAtEnd = ctx.state;
  await ctx.close().catch(() => {});
  return { context, streams: results };
}

runDriver(runInPage, 60000);
