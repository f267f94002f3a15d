// The tomsip softphone: WebRTC audio (Opus both ways) signalled over the authenticated WebSocket
// /ws/stream/{call_id}, which also carries the call state, transcripts and the rating.
// Plain JavaScript, no build step. window.softphone exposes the page's state for tests.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  ws: null, pc: null, mic: null, audioCtx: null, rated: false, ended: false,
  remotePeak: 0, transcripts: [], callState: "idle", lastError: "",
};
window.softphone = state;

function setState(value) {
  state.callState = value;
  $("state").textContent = value;
  if (value === "rating") showRating("The assistant asks how it went:");
}

function showError(text) {
  state.lastError = text;
  $("error").textContent = text;
}

function addTranscript(role, text) {
  state.transcripts.push({ role, text });
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "caller" ? "You:" : "Assistant:";
  item.append(who, document.createTextNode(text));
  $("transcript").appendChild(item);
  item.scrollIntoView({ block: "nearest" });
}

function meter(stream, element, onLevel) {
  const source = state.audioCtx.createMediaStreamSource(stream);
  const analyser = state.audioCtx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  const draw = () => {
    if (state.ended) { element.style.width = "0%"; return; }
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const x of data) sum += x * x;
    const rms = Math.sqrt(sum / data.length);
    // dBFS mapped to the bar: -60 dB empty, 0 dB full (speech sits around -30 to -15).
    const db = 20 * Math.log10(Math.max(rms, 1e-6));
    element.style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100)).toFixed(0)}%`;
    if (onLevel) onLevel(rms);
    requestAnimationFrame(draw);
  };
  draw();
}

function send(event) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(event));
}

async function waitForIce(pc) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000); // send what was gathered so far
  });
}

async function connect(callId, token) {
  showError("");
  state.ended = false;
  state.rated = false;
  $("rating").hidden = true;
  $("connect").disabled = true;
  setState("connecting");
  try {
    state.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (err) {
    showError("Microphone permission is needed to call: " + err.message);
    $("connect").disabled = false;
    setState("idle");
    return;
  }
  state.audioCtx = new AudioContext();
  meter(state.mic, $("mic-level"));

  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  state.mic.getAudioTracks().forEach((track) => pc.addTrack(track, state.mic));
  pc.addEventListener("track", (event) => {
    const stream = event.streams[0] || new MediaStream([event.track]);
    $("remote-audio").srcObject = stream;
    meter(stream, $("spk-level"), (rms) => { state.remotePeak = Math.max(state.remotePeak, rms); });
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "failed") showError("The media connection failed.");
  });
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/ws/stream/${encodeURIComponent(callId)}?token=${encodeURIComponent(token)}`;
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.addEventListener("open", () => {
    $("hangup").disabled = false;
    send({ type: "rtc_offer", sdp: pc.localDescription.sdp });
  });
  ws.addEventListener("message", async (message) => {
    if (typeof message.data !== "string") return; // PCM frames are for stream clients, not used here
    const event = JSON.parse(message.data);
    if (event.type === "rtc_answer") await pc.setRemoteDescription({ type: "answer", sdp: event.sdp });
    else if (event.type === "state") setState(event.state);
    else if (event.type === "transcript") addTranscript(event.role, event.text);
    else if (event.type === "error") showError(`${event.code}: ${event.message}`);
    else if (event.type === "ended") finish(`ended (${event.reason})`);
  });
  ws.addEventListener("close", (event) => {
    if (!state.ended) {
      const why = event.code === 1000 ? "" : ` (closed ${event.code}${event.reason ? ": " + event.reason : ""})`;
      if (why) showError("The connection closed" + why + ".");
      finish("ended");
    }
  });
}

function finish(label) {
  if (state.ended) return;
  state.ended = true;
  setState(label);
  $("connect").disabled = false;
  $("hangup").disabled = true;
  if (state.pc) state.pc.close();
  if (state.mic) state.mic.getTracks().forEach((t) => t.stop());
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.close(1000);
}

function showRating(title) {
  if (state.rated || state.ended) return;
  $("rating").hidden = false;
  $("rating").querySelector("h2").textContent = title;
}

function rate(value) {
  state.rated = true;
  send({ type: "feedback", rating: value });
  $("rating-result").textContent = `Thank you: you rated this call ${value} of 5.`;
  $("rating-buttons").querySelectorAll("button").forEach((b) => { b.disabled = true; });
  if (state.hangingUp) send({ type: "stop" });
}

$("connect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  connect($("call-id").value.trim(), $("token").value.trim());
});

$("hangup").addEventListener("click", () => {
  // Ask for the rating while the call is still live (feedback for a finished call is refused).
  if (!state.rated) {
    state.hangingUp = true;
    showRating("Before you go: how did it go?");
    return;
  }
  send({ type: "stop" });
});

$("rating-buttons").addEventListener("click", (event) => {
  const value = Number(event.target.dataset.rating);
  if (value) rate(value);
});

$("skip-rating").addEventListener("click", () => {
  state.rated = true;
  $("rating").hidden = true;
  if (state.hangingUp) send({ type: "stop" });
});

window.softphone.stats = async () => {
  const out = { bytesReceived: 0, packetsReceived: 0, bytesSent: 0, codec: "" };
  if (!state.pc) return out;
  const report = await state.pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.bytesReceived = s.bytesReceived;
      out.packetsReceived = s.packetsReceived;
    }
    if (s.type === "outbound-rtp" && s.kind === "audio") out.bytesSent = s.bytesSent;
    if (s.type === "codec" && s.mimeType) out.codec = s.mimeType;
  });
  return out;
};

// ?call_id=...&token=...&autostart=1 fills the form (and calls): handy for links minted by a backend.
const params = new URLSearchParams(location.search);
if (params.get("call_id")) $("call-id").value = params.get("call_id");
if (params.get("token")) $("token").value = params.get("token");
if (params.get("autostart") === "1" && params.get("call_id") && params.get("token")) {
  connect(params.get("call_id"), params.get("token"));
}
