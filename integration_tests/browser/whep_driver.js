// Drives headless Chromium as WHEP viewers of a pullcast server, for the end-to-end tests.
//
// Usage: node whep_driver.js '<json spec>'   (or the spec on stdin)
// Prints one JSON object on the last line of stdout: {"ok": true, "viewers": [...]} or
// {"ok": false, "error": "..."}. It asserts nothing itself: the Rust test does.
//
// Spec:
//   pageUrl      page to open first (same origin as the WHEP endpoint), e.g. http://127.0.0.1:P/
//   viewers      [{ "whepPath": "/whep/<percent-encoded name>" }, ...] started together, each its
//                own RTCPeerConnection (recvonly video + audio) and <video>/<audio> elements;
//                a viewer's "tcpOnly": true keeps the answer's TCP candidates only, its
//                "udpVia": "ip port" sends its UDP through that address (a test's relay)
//   runMs        how long each viewer is watched after its connection is up (default 5000)
//   pollMs       getStats interval while waiting for the first frame (default 10)
//   sampleMs     interval of the recorded timeline (default 250)
//   close        optional { "index": i, "atMs": t }: viewer i closes its connection and DELETEs
//                its session t ms after the run started
//   deleteAtEnd  DELETE every remaining session at the end (default true)
//   findAllAfterDelete  after the DELETEs, poll find_all (same origin) until no subscribers
//                or 5 s, and report the last list
//   timeoutMs    hard limit of the whole run (default 30000)
//
// It must not decide pass/fail, and it needs /usr/bin/chromium (or $CHROMIUM) and playwright-core.
'use strict';

const { runDriver } = require('./chromium');

// Runs inside the page.
async function runInPage(spec) {
  const runMs = spec.runMs ?? 5000;
  const pollMs = spec.pollMs ?? 10;
  const sampleMs = spec.sampleMs ?? 250;
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function inbound(pc) {
    const out = { video: null, audio: null };
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') out.video = s;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audio = s;
    });
    return out;
  }

  function sample(st, t) {
    const v = st.video || {};
    const a = st.audio || {};
    return {
      t,
      framesDecoded: v.framesDecoded ?? 0,
      framesDropped: v.framesDropped ?? 0,
      framesReceived: v.framesReceived ?? 0,
      frameWidth: v.frameWidth ?? 0,
      frameHeight: v.frameHeight ?? 0,
      freezeCount: v.freezeCount ?? 0,
      jitterBufferDelay: v.jitterBufferDelay ?? 0,
      jitterBufferEmittedCount: v.jitterBufferEmittedCount ?? 0,
      packetsLost: v.packetsLost ?? 0,
      keyFramesDecoded: v.keyFramesDecoded ?? 0,
      pliCount: v.pliCount ?? 0,
      nackCount: v.nackCount ?? 0,
      decoderImplementation: v.decoderImplementation ?? null,
      totalSamplesReceived: a.totalSamplesReceived ?? 0,
      audioLevel: a.audioLevel ?? 0,
      audioPacketsReceived: a.packetsReceived ?? 0,
      totalAudioEnergy: a.totalAudioEnergy ?? 0,
    };
  }

  async function startViewer(cfg, index) {
    const result = {
      index, postStatus: null, postBody: null, location: null, errors: [],
      answerCandidates: 0, connectedMs: null, firstFrameMs: null, firstFrameCallbackMs: null,
      timeline: [], final: null, closedAtMs: null, deleteStatus: null, states: [],
      answerCandidateLines: [], selectedRemote: null,
    };
    const v = { result, pc: null, location: null, deleted: false, closed: false };
    const pc = new RTCPeerConnection({ iceServers: [] });
    v.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const { video } = whep.playTracks(pc);
    video.width = 320; video.height = 180;
    // The first displayed frame, whenever it comes (it can come before connect() returns).
    let connectedAt = null;
    let firstFrameAt = null;
    const firstFrameDisplayed = () => {
      if (connectedAt !== null && firstFrameAt !== null) {
        result.firstFrameCallbackMs = Math.round(firstFrameAt - connectedAt);
      }
    };
    if ('requestVideoFrameCallback' in video) {
      video.requestVideoFrameCallback((when) => { firstFrameAt = when; firstFrameDisplayed(); });
    }
    const c = await whep.connect(pc, cfg.whepPath, {
      connectTimeoutMs: spec.connectTimeoutMs ?? 10000,
      tcpOnly: cfg.tcpOnly ?? false,
      udpVia: cfg.udpVia ?? null,
      onState: (state) => result.states.push([now(), state]),
    });
    v.location = c.location;
    if (!whep.report(c, result)) {
      pc.close();
      return v;
    }
    result.answerCandidates = (c.text.match(/^a=candidate:/gm) || []).length;
    result.answerCandidateLines = c.text.match(/^a=candidate:.*$/gm) || [];
    if (c.failed) return v;
    connectedAt = c.connectedAt;
    firstFrameDisplayed();
    result.connectedMs = Math.round(connectedAt - c.postedAt);
    // First decoded frame, polled finely.
    const deadline = performance.now() + 5000;
    while (performance.now() < deadline) {
      const st = await inbound(pc);
      if (st.video && st.video.framesDecoded > 0) {
        result.firstFrameMs = Math.round(performance.now() - connectedAt);
        break;
      }
      await sleep(pollMs);
    }
    v.connectedAt = connectedAt;
    result.selectedRemote = await selectedRemote(pc);
    return v;
  }

  // The server's address and port the connection uses: the selected candidate pair's
  // remote candidate ("ip:port"), or null.
  async function selectedRemote(pc) {
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId; });
    let pair = pairId ? stats.get(pairId) : null;
    if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
    const remote = pair ? stats.get(pair.remoteCandidateId) : null;
    if (!remote) return null;
    const where = `${remote.address ?? remote.ip}:${remote.port}`;
    return (remote.protocol ?? 'udp') === 'udp' ? where : `${remote.protocol}:${where}`;
  }

  const viewers = await Promise.all(spec.viewers.map((cfg, i) => startViewer(cfg, i)));
  const runStart = performance.now();
  let closeDone = false;
  while (performance.now() - runStart < runMs) {
    const t = Math.round(performance.now() - runStart);
    if (spec.close && !closeDone && t >= spec.close.atMs) {
      closeDone = true;
      const v = viewers[spec.close.index];
      if (v && v.pc) {
        v.result.closedAtMs = t;
        v.pc.close();
        v.closed = true;
        await whep.endViewer(v);
      }
    }
    for (const v of viewers) {
      if (!v.pc || v.closed || !v.location) continue;
      // Stamped when the statistics arrived (getStats takes a while on a busy machine).
      const st = await inbound(v.pc);
      v.result.timeline.push(sample(st, Math.round(performance.now() - runStart)));
    }
    await sleep(sampleMs);
  }
  for (const v of viewers) {
    if (v.pc && !v.closed && v.location) {
      v.result.final = sample(await inbound(v.pc), Math.round(performance.now() - runStart));
    }
  }
  const out = { viewers: viewers.map((v) => v.result) };
  if (spec.deleteAtEnd ?? true) {
    // DELETE first (the browser's connections stay open), then look at the server.
    for (const v of viewers) await whep.endViewer(v);
    if (spec.findAllAfterDelete) {
      const until = performance.now() + 5000;
      let list = null;
      while (performance.now() < until) {
        const r = await fetch('/rest-api/pull/rtmp/find_all', {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
        });
        list = r.status === 200 ? await r.json() : [];
        if (list.every((c) => (c.subscribers ?? 0) === 0)) break;
        await sleep(100);
      }
      out.findAllAfterDelete = list;
    }
    for (const v of viewers) if (v.pc) v.pc.close();
  }
  return out;
}

runDriver(runInPage, 30000);
