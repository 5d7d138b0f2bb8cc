// The in-page WHEP client the drivers share: injected into the page by runDriver (see
// chromium.js) before the driver's own in-page function runs, as `window.whep`. It offers,
// applies the answer, waits for the connection, and ends sessions; it measures and decides
// nothing.
'use strict';

window.whep = {
  // POSTs pc's offer to `path`, applies the answer and waits up to `connectTimeoutMs` for
  // the connection. `onState(state)` sees every connection state change. `tcpOnly` keeps
  // only the answer's TCP candidates (a client whose UDP is blocked). `udpVia` ("ip port")
  // keeps only the answer's UDP candidates, pointed at that address instead (a relay the
  // test put between the browser and the server). Returns
  // { status, text, locationHeader, location (absolute), postedAt, connectedAt, failed,
  //   error }: `failed` is null when connected, else the step that failed — 'post' (no answer,
  // or not 201: then `error` is null and `text` is the server's body), 'answer' (the answer
  // was refused) or 'connect' (no connection in time).
  async connect(pc, path, { connectTimeoutMs = 10000, onState = null, tcpOnly = false, udpVia = null } = {}) {
    const out = {
      status: null, text: null, locationHeader: null, location: null,
      postedAt: null, connectedAt: null, failed: null, error: null,
    };
    const connected = new Promise((resolve) => {
      pc.addEventListener('connectionstatechange', () => {
        if (onState) onState(pc.connectionState);
        if (pc.connectionState === 'connected') {
          if (out.connectedAt === null) out.connectedAt = performance.now();
          resolve(true);
        }
        if (pc.connectionState === 'failed') resolve(false);
      });
    });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    out.postedAt = performance.now();
    let resp;
    try {
      resp = await fetch(path, {
        method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer.sdp,
      });
    } catch (e) {
      return Object.assign(out, { failed: 'post', error: 'POST: ' + e });
    }
    out.status = resp.status;
    out.text = await resp.text();
    if (resp.status !== 201) return Object.assign(out, { failed: 'post' });
    out.locationHeader = resp.headers.get('Location');
    out.location = out.locationHeader ? new URL(out.locationHeader, location.href).href : null;
    let answer = tcpOnly
      ? out.text.split(/\r?\n/).filter((l) => !/^a=candidate:\S+ \d+ udp /i.test(l)).join('\r\n')
      : out.text;
    if (udpVia) {
      answer = answer.split(/\r?\n/)
        .filter((l) => !/^a=candidate:\S+ \d+ tcp /i.test(l))
        .map((l) => l.replace(/^(a=candidate:\S+ \d+ udp \d+ )\S+ \d+( typ host.*)$/i, `$1${udpVia}$2`))
        .join('\r\n');
    }
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    } catch (e) {
      return Object.assign(out, { failed: 'answer', error: 'setRemoteDescription: ' + e });
    }
    const timeout = new Promise((r) => setTimeout(() => r(false), connectTimeoutMs));
    if (!(await Promise.race([connected, timeout]))) {
      return Object.assign(out, { failed: 'connect', error: 'not connected: ' + pc.connectionState });
    }
    return out;
  },

  // Copies what connect() returned into a driver's per-viewer `result`: postStatus, location
  // (the header as sent), errors, and postBody when the POST or the answer failed. True when
  // both succeeded (connected or not).
  report(c, result) {
    result.postStatus = c.status;
    result.location = c.locationHeader;
    if (c.error) result.errors.push(c.error);
    if (c.failed === 'post' || c.failed === 'answer') {
      result.postBody = c.text;
      return false;
    }
    return true;
  },

  // A <video> (muted) and an <audio> element in the page that play pc's remote tracks, one
  // MediaStream per track as a player page does (the SDP's msid still puts both in one sync
  // group). Returns { video, audio }.
  playTracks(pc) {
    const video = document.createElement('video');
    video.muted = true; video.autoplay = true; video.playsInline = true;
    const audio = document.createElement('audio');
    audio.autoplay = true;
    document.body.appendChild(video);
    document.body.appendChild(audio);
    pc.addEventListener('track', (ev) => {
      const el = ev.track.kind === 'video' ? video : audio;
      el.srcObject = new MediaStream([ev.track]);
      el.play().catch(() => {});
    });
    return { video, audio };
  },

  // Ends a driver's viewer `v` ({ location, deleted, result }) once: DELETE, with the status
  // in result.deleteStatus and an error when no answer came.
  async endViewer(v) {
    if (!v.location || v.deleted) return;
    v.deleted = true;
    v.result.deleteStatus = await this.end(v.location);
    if (v.result.deleteStatus === 0) v.result.errors.push('DELETE: no answer');
  },

  // DELETEs a session (its absolute `location`); the HTTP status, 0 when no answer came.
  async end(sessionUrl) {
    try {
      return (await fetch(sessionUrl, { method: 'DELETE' })).status;
    } catch (e) {
      return 0;
    }
  },
};
