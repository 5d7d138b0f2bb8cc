// pullcast.js — a small client for pullcast's WebSocket signalling (docs/signalling.md).
//
//   import { PullcastClient } from '/pullcast.js';
//   const client = new PullcastClient();            // ws(s)://<this host>/ws
//   await client.connect();                          // resolves on ESTABLISHED
//   const stream = await client.play('cam1', videoElement, s => console.log(s.status));
//   ...
//   stream.stop();                                   // → STOPPED
//
// A name may be a local stream name, a pulled uri, or an rtmp:// URL (pulled on demand).

export class PullcastClient {
  constructor(url) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.url = url || `${scheme}//${location.host}/ws`;
    this.streams = new Map();
    this.next = 1;
    this.onclose = null;
    this.sessionId = null;
  }

  /** Opens the socket; resolves with the session id once the server says ESTABLISHED. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onmessage = (e) => this._receive(JSON.parse(e.data), resolve);
      ws.onerror = () => reject(new Error(`cannot connect to ${this.url}`));
      ws.onclose = () => {
        for (const s of this.streams.values()) s._update({ status: 'STOPPED', reason: 'DISCONNECTED' });
        this.streams.clear();
        if (this.onclose) this.onclose();
      };
    });
  }

  /**
   * Plays `name` into `video` (a <video> element). `onStatus({status, reason, code})` hears
   * PENDING, PLAYING, STOPPED and FAILED (`code`: why a play was refused, e.g. 401, 403).
   * `options.token`: a token for this play (e.g. one a web app got from
   * POST /rest-api/auth/token). Resolves with a handle once the answer is applied.
   */
  async play(name, video, onStatus, options = {}) {
    const id = `s${this.next++}`;
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const media = new MediaStream();
    pc.ontrack = (e) => {
      media.addTrack(e.track);
      if (video && video.srcObject !== media) video.srcObject = media;
    };
    const stream = new PlayingStream(this, id, name, pc, onStatus);
    this.streams.set(id, stream);
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const message = { type: 'play', id, name, sdp: pc.localDescription.sdp };
    if (options.token) message.token = options.token;
    this._send(message);
    await stream.answered;
    return stream;
  }

  /** Closes the socket (its streams end on the server). */
  close() {
    if (this.ws) this.ws.close();
  }

  _send(message) {
    this.ws.send(JSON.stringify(message));
  }

  _receive(m, established) {
    if (m.type === 'session' && m.status === 'ESTABLISHED') {
      this.sessionId = m.sessionId;
      established(m.sessionId);
    } else if (m.type === 'ping') {
      this._send({ type: 'pong', ts: m.ts });
    } else if (m.type === 'answer') {
      const s = this.streams.get(m.id);
      if (s) s._answer(m.sdp);
    } else if (m.type === 'status') {
      const s = this.streams.get(m.id);
      if (s) s._update(m);
    } else if (m.type === 'error') {
      console.warn('pullcast:', m.message);
    }
  }
}

/** One stream being played. */
export class PlayingStream {
  constructor(client, id, name, pc, onStatus) {
    this.client = client;
    this.id = id;
    this.name = name;
    this.pc = pc;
    this.status = 'NEW';
    this.reason = null;
    this.onStatus = onStatus || (() => {});
    this.answered = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
  }

  /** Asks the server to stop; the status becomes STOPPED. */
  stop() {
    if (this.status === 'STOPPED' || this.status === 'FAILED') return;
    this.client._send({ type: 'stop', id: this.id });
  }

  async _answer(sdp) {
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      this._resolve(this);
    } catch (e) {
      this._reject(e);
    }
  }

  _update(m) {
    this.status = m.status;
    this.reason = m.reason || null;
    if (m.status === 'FAILED') this._reject(new Error(m.reason || 'FAILED'));
    if (m.status === 'STOPPED' || m.status === 'FAILED') {
      this.pc.close();
      this.client.streams.delete(this.id);
    }
    this.onStatus({ status: m.status, reason: m.reason || null });
  }
}

/** Resolves when the browser has gathered its ICE candidates (host candidates: quick). */
function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === 'complete') {
        pc.removeEventListener('icegatheringstatechange', done);
        resolve();
      }
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 2000);
  });
}
