// The player page: play/stop over WebSocket signalling (WebRTC) or over LL-HLS with hls.js
// (to compare the two), live graphs from getStats() or the video element, and the capture
// console over the REST API.
import { PullcastClient } from '/pullcast.js';

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
// ?token=…: a play token (POST /rest-api/auth/token) sent with every play of this page.
const playToken = query.get('token');
const video = $('video');
let client = null;
let current = null;
let statsTimer = null;

// ---------------------------------------------------------------- live graphs
const GRAPHS = [
  ['bitrate', 'video bitrate', 'kbit/s'],
  ['fps', 'frames per second', 'fps'],
  ['resolution', 'resolution', ''],
  ['decoded', 'frames decoded', ''],
  ['dropped', 'frames dropped', ''],
  ['jitter', 'video jitter', 'ms'],
  ['audioLevel', 'audio level', ''],
];
const series = {};
for (const [key, label, unit] of GRAPHS) {
  const box = document.createElement('div');
  box.className = 'graph';
  box.innerHTML = `<div><span>${label}</span><span id="v-${key}">—</span></div><canvas id="c-${key}" width="250" height="50"></canvas>`;
  $('graphs').appendChild(box);
  series[key] = { values: [], unit };
}

function plot(key, value, text) {
  const s = series[key];
  $(`v-${key}`).textContent = text ?? `${value} ${s.unit}`;
  if (typeof value !== 'number' || !isFinite(value)) return;
  s.values.push(value);
  if (s.values.length > 120) s.values.shift();
  const c = $(`c-${key}`);
  const g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(...s.values, 1e-9);
  g.beginPath();
  s.values.forEach((v, i) => {
    const x = (i / 119) * c.width;
    const y = c.height - (v / max) * (c.height - 4) - 2;
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.strokeStyle = '#2f6fdd';
  g.stroke();
}

let last = null;
async function sampleStats() {
  if (hlsSession) return sampleVideo();
  if (!current) return;
  const report = await current.pc.getStats();
  let v = null, a = null;
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') v = r;
    if (r.type === 'inbound-rtp' && r.kind === 'audio') a = r;
  });
  const now = performance.now();
  if (v) {
    if (last) {
      const dt = (now - last.t) / 1000;
      plot('bitrate', Math.round(((v.bytesReceived - last.bytes) * 8) / 1000 / dt));
      plot('fps', Math.round((v.framesDecoded - last.frames) / dt));
    }
    last = { t: now, bytes: v.bytesReceived, frames: v.framesDecoded };
    plot('resolution', v.frameWidth || 0, v.frameWidth ? `${v.frameWidth}×${v.frameHeight}` : '—');
    plot('decoded', v.framesDecoded || 0, String(v.framesDecoded || 0));
    plot('dropped', v.framesDropped || 0, String(v.framesDropped || 0));
    plot('jitter', Math.round((v.jitter || 0) * 1000));
  }
  if (a) plot('audioLevel', a.audioLevel || 0, (a.audioLevel || 0).toFixed(3));
}

// HLS: what the video element itself decoded (no getStats), and the bytes hls.js loaded.
function sampleVideo() {
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  const frames = q ? q.totalVideoFrames : 0;
  const now = performance.now();
  if (last) {
    const dt = (now - last.t) / 1000;
    plot('bitrate', Math.round(((hlsSession.bytes - last.bytes) * 8) / 1000 / dt));
    plot('fps', Math.round((frames - last.frames) / dt));
  }
  last = { t: now, bytes: hlsSession.bytes, frames };
  plot('resolution', video.videoWidth, video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : '—');
  plot('decoded', frames, String(frames));
  plot('dropped', q ? q.droppedVideoFrames : 0, String(q ? q.droppedVideoFrames : 0));
  plot('jitter', NaN, '—');
  plot('audioLevel', NaN, '—');
}

// ---------------------------------------------------------------- play / stop
function showStatus(status, reason) {
  $('status').textContent = status;
  $('status').className = status;
  $('reason').textContent = reason || '';
  const active = status === 'PENDING' || status === 'PLAYING';
  $('stop').disabled = !active;
  $('play').disabled = active;
  $('transport').disabled = active;
}

async function playWebRtc(name) {
  try {
    if (!client) {
      client = new PullcastClient();
      client.onclose = () => { client = null; if (!hlsSession) showStatus('DISCONNECTED'); };
      await client.connect();
    }
    showStatus('PENDING');
    last = null;
    current = await client.play(name, video, (s) => {
      showStatus(s.status, s.reason);
      if (s.status === 'STOPPED' || s.status === 'FAILED') {
        clearInterval(statsTimer);
        current = null;
      }
    }, { token: playToken });
    clearInterval(statsTimer);
    statsTimer = setInterval(sampleStats, 1000);
  } catch (e) {
    if ($('status').textContent !== 'FAILED') showStatus('FAILED', String(e.message || e));
  }
}

// ---------------------------------------------------------------- HLS
// The stream's LL-HLS playlist on this origin (the token, if any, is carried by the server
// into every URI of the playlist).
let hlsSession = null;
let hlsScript = null;

function playlistUrl(name) {
  const folder = encodeURIComponent(name);
  const url = `/${folder}/${folder}.m3u8`;
  return playToken ? `${url}?token=${encodeURIComponent(playToken)}` : url;
}

// hls.js (vendored, served by pullcast) is loaded on the first HLS play only.
function loadHlsJs() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsScript) {
    hlsScript = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = '/vendor/hls.light.min.js';
      script.onload = () => (window.Hls ? resolve(window.Hls) : reject(new Error('hls.js did not load')));
      script.onerror = () => {
        hlsScript = null;
        script.remove();
        reject(new Error('cannot load the HLS player (/vendor/hls.light.min.js)'));
      };
      document.head.appendChild(script);
    });
  }
  return hlsScript;
}

// The server's reason for a refused playlist is its JSON body: {"error": "Stream not found"}.
function refusal(status, body) {
  let why = '';
  try { why = JSON.parse(body).error || ''; } catch (_) { /* not JSON */ }
  return `the playlist answered HTTP ${status}${why ? `: ${why}` : ''}`;
}

function hlsErrorText(data) {
  const code = data.response && data.response.code;
  if (code) {
    let body = '';
    // Playlists are loaded as text; a media file's loader has no responseText (throws).
    try { body = (data.networkDetails && data.networkDetails.responseText) || ''; } catch (_) { /* binary */ }
    return `${refusal(code, body)} (${data.details})`;
  }
  const playlist = /^(manifest|level)Load/.test(data.details);
  if (data.response && data.response.code === 0) {
    return `no answer from the server for the ${playlist ? 'playlist' : 'media'} (${data.details})`;
  }
  if (playlist) {
    return `cannot load the playlist (${data.details}${data.error ? `: ${data.error.message}` : ''})`;
  }
  return `${data.type}: ${data.details}${data.error ? ` — ${data.error.message}` : ''}`;
}

// Wall-clock delay behind the source, from the playlist's EXT-X-PROGRAM-DATE-TIME: hls.js's
// playingDate, or Safari's getStartDate() + currentTime when it plays natively.
function hlsDelayMs(session) {
  let date = null;
  if (session.hls) {
    date = session.hls.playingDate;
  } else if (typeof video.getStartDate === 'function') {
    const start = video.getStartDate().getTime();
    if (Number.isFinite(start) && start > 0) date = new Date(start + video.currentTime * 1000);
  }
  if (!date || !Number.isFinite(date.getTime())) return null;
  return Date.now() - date.getTime();
}

function showDelay() {
  const ms = hlsSession ? hlsDelayMs(hlsSession) : null;
  $('delay').textContent = ms === null ? '' : `delay behind the source: ${(ms / 1000).toFixed(2)} s`;
}

// Ends the HLS session: the player destroyed, the element emptied. A reason means FAILED.
function endHls(status, reason) {
  const session = hlsSession;
  if (!session) return;
  hlsSession = null;
  clearInterval(statsTimer);
  clearInterval(session.delayTimer);
  for (const [event, handler] of session.listeners) video.removeEventListener(event, handler);
  if (session.hls) session.hls.destroy();
  video.removeAttribute('src');
  video.load();
  $('delay').textContent = '';
  showStatus(status, reason);
}

async function playHls(name) {
  showStatus('PENDING');
  last = null;
  const url = playlistUrl(name);
  const session = { name, url, hls: null, bytes: 0, listeners: [], delayTimer: null, mediaRecovered: false };
  hlsSession = session;
  const on = (event, handler) => {
    session.listeners.push([event, handler]);
    video.addEventListener(event, handler);
  };
  const native = video.canPlayType('application/vnd.apple.mpegurl') !== '';
  let Hls = null;
  try {
    Hls = await loadHlsJs();
  } catch (e) {
    if (!native) {
      if (hlsSession === session) endHls('FAILED', String(e.message || e));
      return;
    }
  }
  if (hlsSession !== session) return; // stopped while loading
  if (video.srcObject) video.srcObject = null;
  on('playing', () => { showStatus('PLAYING'); showDelay(); });
  on('waiting', () => { if ($('status').textContent === 'PLAYING') $('reason').textContent = 'buffering…'; });
  on('ended', () => endHls('STOPPED', 'the stream ended'));
  if (Hls && Hls.isSupported()) {
    const hls = new Hls({ lowLatencyMode: true, enableWorker: false });
    session.hls = hls;
    hls.on(Hls.Events.FRAG_LOADED, (event, data) => {
      if (data.payload) session.bytes += data.payload.byteLength || 0;
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      video.play().catch(() => { video.muted = true; video.play().catch(() => {}); });
    });
    hls.on(Hls.Events.ERROR, (event, data) => {
      if (hlsSession !== session || !data.fatal) return;
      // A media error once: hls.js can rebuild its buffers; a second one ends the play.
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !session.mediaRecovered) {
        session.mediaRecovered = true;
        $('reason').textContent = `recovering from ${data.details}`;
        hls.recoverMediaError();
        return;
      }
      endHls('FAILED', hlsErrorText(data));
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (native) {
    on('error', async () => {
      const media = video.error;
      let reason = `the video element failed (${media ? media.message || `code ${media.code}` : 'unknown error'})`;
      try {
        const r = await fetch(url);
        if (!r.ok) reason = refusal(r.status, await r.text());
      } catch (_) { /* keep the element's reason */ }
      if (hlsSession === session) endHls('FAILED', reason);
    });
    video.src = url;
    video.play().catch(() => { video.muted = true; video.play().catch(() => {}); });
  } else {
    endHls('FAILED', 'this browser can play HLS neither with Media Source Extensions nor natively');
    return;
  }
  clearInterval(statsTimer);
  statsTimer = setInterval(sampleStats, 1000);
  session.delayTimer = setInterval(showDelay, 1000);
}

$('play').onclick = () => {
  const name = $('name').value.trim();
  if (!name) return;
  // Play is a user gesture, so sound may start (the element is muted only for autoplay).
  video.muted = false;
  if ($('transport').value === 'hls') playHls(name);
  else playWebRtc(name);
};
$('stop').onclick = () => {
  if (hlsSession) endHls('STOPPED');
  else if (current) current.stop();
};
// For automation (tests, monitoring): the transport, the WebRTC stream being played and its
// RTCPeerConnection, or the hls.js player and the delay behind the source (ms) it plays at.
window.pullcastPlayer = {
  get transport() { return $('transport').value; },
  get stream() { return current; },
  get hls() { return hlsSession && hlsSession.hls; },
  get delayMs() { return hlsSession ? hlsDelayMs(hlsSession) : null; },
};
$('name').addEventListener('keydown', (e) => { if (e.key === 'Enter') $('play').click(); });
const wanted = query.get('stream');
if (wanted) $('name').value = wanted;
// ?transport=hls: the page opens with HLS chosen.
if (query.get('transport') === 'hls' || query.get('transport') === 'webrtc') $('transport').value = query.get('transport');

// ---------------------------------------------------------------- capture console (REST)
async function rest(method, body) {
  const r = await fetch(`/rest-api/pull/rtmp/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body || {}),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* empty body */ }
  return { status: r.status, json };
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

async function refresh() {
  const { status, json } = await rest('find_all');
  const body = $('captures');
  body.innerHTML = '';
  if (status !== 200) return;
  for (const c of json) {
    const tr = document.createElement('tr');
    tr.appendChild(cell(c.localStreamName));
    tr.appendChild(cell(c.uri));
    const retry = c.retry
      ? ` (retry ${c.retry.attempt}${c.retry.nextAttemptInMs ? `, next in ${(c.retry.nextAttemptInMs / 1000).toFixed(1)} s` : ''})`
      : '';
    const st = cell(c.status + retry + (c.reason ? ` — ${c.reason}` : ''));
    st.className = c.status;
    // Why a stream flapped: its last status transitions.
    if (Array.isArray(c.history) && c.history.length > 1) {
      const details = document.createElement('details');
      const summary = document.createElement('summary');
      summary.textContent = `history (${c.history.length})${c.reconnects ? `, ${c.reconnects} reconnect(s)` : ''}`;
      details.appendChild(summary);
      for (const h of c.history) {
        const line = document.createElement('div');
        line.textContent = `${h.time} ${h.status}${h.reason ? ` — ${h.reason}` : ''}`;
        line.className = h.status;
        details.appendChild(line);
      }
      st.appendChild(details);
    }
    tr.appendChild(st);
    const bframes = c.bFrames && c.bFrames.detected
      ? (c.bFrames.transcodingForWebrtc ? ' · B-frames, transcoded for WebRTC' : ' · B-frames')
      : '';
    tr.appendChild(cell(c.video ? `${c.video.codec} ${c.video.profile} ${c.video.width}×${c.video.height} ${c.video.frameRate ?? ''}${bframes}` : '—'));
    tr.appendChild(cell(c.audio ? `${c.audio.profile} ${c.audio.sampleRate} Hz ${c.audio.channels} ch` : '—'));
    tr.appendChild(cell(String(c.bitrateKbps)));
    tr.appendChild(cell(String(c.subscribers)));
    const actions = document.createElement('td');
    const watch = document.createElement('button');
    watch.textContent = 'Watch';
    watch.onclick = () => { $('name').value = c.localStreamName; $('play').click(); };
    const stop = document.createElement('button');
    stop.textContent = 'Terminate';
    stop.onclick = async () => { await rest('terminate', { uri: c.uri }); refresh(); };
    actions.append(watch, ' ', stop);
    tr.appendChild(actions);
    body.appendChild(tr);
  }
}

$('pull').onclick = async () => {
  const uri = $('uri').value.trim();
  const body = { uri, record: $('record').checked ? 'true' : 'false' };
  if ($('local').value.trim()) body.localStreamName = $('local').value.trim();
  const { status, json } = await rest('pull', body);
  $('console-message').textContent = status === 200 ? `pulling ${uri}` : `${status}: ${json && json.error}`;
  refresh();
};
$('refresh').onclick = refresh;
refresh();
setInterval(refresh, 3000);
