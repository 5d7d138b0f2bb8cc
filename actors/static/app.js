// The player page: play/stop over WebSocket signalling with live graphs from getStats(),
// and the capture console over the REST API.
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

// ---------------------------------------------------------------- play / stop
function showStatus(status, reason) {
  $('status').textContent = status;
  $('status').className = status;
  $('reason').textContent = reason || '';
  const active = status === 'PENDING' || status === 'PLAYING';
  $('stop').disabled = !active;
  $('play').disabled = active;
}

$('play').onclick = async () => {
  const name = $('name').value.trim();
  if (!name) return;
  // Play is a user gesture, so sound may start (the element is muted only for autoplay).
  video.muted = false;
  try {
    if (!client) {
      client = new PullcastClient();
      client.onclose = () => { client = null; showStatus('DISCONNECTED'); };
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
};
$('stop').onclick = () => current && current.stop();
// For automation (tests, monitoring): the stream being played and its RTCPeerConnection.
window.pullcastPlayer = { get stream() { return current; } };
$('name').addEventListener('keydown', (e) => { if (e.key === 'Enter') $('play').click(); });
const wanted = query.get('stream');
if (wanted) $('name').value = wanted;

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
