// The viewer page's logic (runs in the browser). Protocol: see synesthesia/stream/server.py.
// Frames arrive as a JSON "frame" text message followed by the JPEG as a binary message; the
// newest decoded frame is drawn and acknowledged. State is kept on window.synesthesia so that
// the real-browser tests (and a curious person in the console) can read it.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const canvas = $("view");
  const ctx = canvas.getContext("2d");
  const token = new URLSearchParams(location.search).get("token");
  const state = (window.synesthesia = {
    connected: false, framesReceived: 0, framesDrawn: 0, framesSkipped: 0, lastDrawn: -1,
    bytes: 0, events: [], errors: [], hud: null, mic: "off", micChunks: 0,
  });
  let ws = null;
  let pendingMeta = null;
  let decoding = false;
  let newest = null;  // {meta, blob} waiting while a decode is in flight
  const drawTimes = [];
  const recvLog = [];

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  function addLine(listId, text) {
    const li = document.createElement("li");
    li.textContent = text;
    const list = $(listId);
    list.appendChild(li);
    while (list.children.length > 50) list.removeChild(list.firstChild);
    list.scrollTop = list.scrollHeight;
  }

  async function drawNewest() {
    if (decoding || !newest) return;
    decoding = true;
    const { meta, blob } = newest;
    newest = null;
    try {
      const bitmap = await createImageBitmap(blob);
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      ctx.drawImage(bitmap, 0, 0);
      bitmap.close();
      state.framesDrawn++;
      state.lastDrawn = meta ? meta.frame : -1;
      drawTimes.push(performance.now());
      if (meta) send({ type: "ack", frame: meta.frame });
    } catch (err) {
      state.errors.push(String(err));
    } finally {
      decoding = false;
      if (newest) drawNewest();
    }
  }

  function onEvent(ev) {
    state.events.push(ev);
    if (state.events.length > 200) state.events.shift();
    switch (ev.type) {
      case "hello": $("status").textContent = `connected as ${ev.client}`; break;
      case "transcript": addLine("transcript", `${ev.source === "typed" ? "typed" : "heard"}: ${ev.text}`); break;
      case "intent": addLine("intents", `${ev.intent} (${Number(ev.weight).toFixed(2)}) — ${ev.prompt || ""}`); break;
      case "hud": state.hud = ev; break;
      case "error": state.errors.push(ev.error); $("status").textContent = `server: ${ev.error}`; break;
      case "audio": $("status").textContent = `mic: ${ev.seconds}s heard, level ${ev.rms}`; break;
    }
  }

  function renderHud() {
    const now = performance.now();
    while (drawTimes.length && now - drawTimes[0] > 2000) drawTimes.shift();
    while (recvLog.length && now - recvLog[0][0] > 2000) recvLog.shift();
    const span = drawTimes.length > 1 ? (drawTimes[drawTimes.length - 1] - drawTimes[0]) / 1000 : 0;
    const fps = span > 0 ? (drawTimes.length - 1) / span : 0;
    const bytes = recvLog.reduce((a, [, n]) => a + n, 0);
    const h = state.hud || {};
    const e = h.encoder || {};
    const lat = h.latency_ms || {};
    // Per-stage latency of the last frame that answered a prompt or utterance (it carries the
    // trace's hop timestamps); untraced frames only have the render -> encode hops.
    const stage = (state.lastTraced && state.lastTraced.t) || (state.lastMeta && state.lastMeta.t) || {};
    const ms = (a, b) => (stage[a] && stage[b] ? ((stage[b] - stage[a]) / 1e6).toFixed(1) : "–");
    $("hud").textContent = [
      `fps ${fps.toFixed(1)} drawn · ${(bytes * 8 / 2000).toFixed(0)} kbps in`,
      `dropped: server ${h.dropped ?? 0} · encoder ${e.dropped ?? 0} · page ${state.framesSkipped}`,
      `encoder ${e.mode ?? "?"} q${e.quality ?? "?"} 1/${e.scale ?? "?"} · ${e.kbps ?? "?"}/${e.target_kbps ?? "?"} kbps · ${e.encode_ms_p50 ?? "?"} ms`,
      `latency ms: speech→intent ${ms("speech_end", "intent")} · typed→intent ${ms("transcript", "intent")} · intent→frame ${ms("intent", "rendered")}`,
      `  frame→encoded ${ms("rendered", "encoded")} · encoded→wire p99 ${lat.encoded_to_wire_p99 ?? "–"} · wire→shown ${lat.wire_to_displayed_p50 ?? "–"}`,
    ].join("\n");
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ""}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { state.connected = true; };
    ws.onclose = () => {
      state.connected = false;
      $("status").textContent = "disconnected; retrying…";
      stopMic();
      setTimeout(connect, 1000);
    };
    ws.onmessage = (msg) => {
      if (typeof msg.data === "string") {
        let ev;
        try { ev = JSON.parse(msg.data); } catch { return; }
        if (ev.type === "frame") pendingMeta = ev; else onEvent(ev);
        return;
      }
      state.framesReceived++;
      state.bytes += msg.data.byteLength;
      recvLog.push([performance.now(), msg.data.byteLength]);
      if (newest) state.framesSkipped++;
      newest = { meta: pendingMeta, blob: new Blob([msg.data], { type: "image/jpeg" }) };
      // Frames keep their trace until the next one; the first frame seen with a new trace is
      // the one whose hop timestamps give the per-stage latencies.
      const tr = pendingMeta && pendingMeta.trace && pendingMeta.trace.length ? pendingMeta.trace.join() : null;
      if (tr !== null && (!state.lastTraced || state.lastTraced.trace.join() !== tr)) state.lastTraced = pendingMeta;
      state.lastMeta = pendingMeta;
      pendingMeta = null;
      drawNewest();
    };
  }

  $("prompt-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("prompt").value.trim();
    if (!text) return;
    send({ type: "prompt", text });
    $("prompt").value = "";
  });

  let audio = null;
  async function startMic() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
    const context = new AudioContext();
    await context.audioWorklet.addModule("/viewer/mic-worklet.js");
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "pcm16k", { numberOfInputs: 1, numberOfOutputs: 0 });
    node.port.onmessage = (m) => {
      if (ws && ws.readyState === WebSocket.OPEN) { ws.send(m.data); state.micChunks++; }
    };
    // The server must hear "start" before the first PCM chunk, or it rejects the chunk.
    send({ type: "mic", state: "start", rate: 16000, format: "s16le" });
    source.connect(node);
    await context.resume();
    audio = { stream, context };
    state.mic = "on";
    $("mic").setAttribute("aria-pressed", "true");
  }
  function stopMic() {
    if (!audio) return;
    send({ type: "mic", state: "stop" });
    audio.stream.getTracks().forEach((t) => t.stop());
    audio.context.close();
    audio = null;
    state.mic = "off";
    $("mic").setAttribute("aria-pressed", "false");
  }
  $("mic").addEventListener("click", () => {
    if (audio) { stopMic(); return; }
    state.mic = "starting";
    startMic().catch((err) => { state.mic = "error"; state.errors.push(String(err)); $("status").textContent = `mic: ${err}`; });
  });
  state.toggleMic = () => $("mic").click();

  setInterval(renderHud, 500);
  connect();
})();
