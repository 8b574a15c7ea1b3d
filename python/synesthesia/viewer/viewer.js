// The viewer page's logic (runs in the browser). Protocol: see synesthesia/stream/server.py.
// Frames arrive as a JSON "frame" text message followed by the picture as a binary message: a
// JPEG (decoded with createImageBitmap, newest first) or an H.264 access unit (decoded in order
// by WebCodecs' VideoDecoder, which the page announces in its hello when the browser has it).
// Every drawn frame is acknowledged. State is kept on window.synesthesia so that
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
    codecs: ["jpeg"], codec: null, decoderConfig: null, videoPaint: null, keyFrames: 0, resyncs: 0, decodeErrors: 0,
    openedAt: null, joinMs: null,  // socket open -> first frame drawn, for this connection
    // Per drawn frame, performance.now() ms at each step in the page: [codec, frame, received
    // (the socket message), decode started (VideoDecoder.decode / createImageBitmap), decoded
    // (output callback / bitmap ready), drawn (ack sent), and the server's "encoded" stamp
    // (CLOCK_MONOTONIC ns) from the frame's meta]. The last 512, for the benches.
    timing: [],
  });
  // H.264 as the server sends it: Annex B (no description), High profile, level 3.1.
  const AVC = { codec: "avc1.64001F", optimizeForLatency: true, hardwareAcceleration: "no-preference" };
  let decoder = null;
  let waitKey = true;     // a decoder starts at a key chunk, and again after any loss
  const inflight = new Map();  // chunk timestamp -> frame meta, until its VideoFrame comes out
  let chunkTime = 0;
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
    const { meta, blob, recv } = newest;
    newest = null;
    try {
      const start = performance.now();
      const bitmap = await createImageBitmap(blob);
      const out = performance.now();
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      ctx.drawImage(bitmap, 0, 0);
      bitmap.close();
      drawn(meta, "jpeg", recv, start, out);
    } catch (err) {
      state.errors.push(String(err));
    } finally {
      decoding = false;
      if (newest) drawNewest();
    }
  }

  function probeCodecs() {
    // The page says what it can decode; the server sends H.264 only to pages that can.
    if (typeof VideoDecoder === "undefined") return Promise.resolve(["jpeg"]);
    return VideoDecoder.isConfigSupported(AVC)
      .then((r) => {
        state.decoderConfig = r.config;  // what the browser understood of AVC (tests read it)
        return r.supported ? ["h264", "jpeg"] : ["jpeg"];
      })
      .catch(() => ["jpeg"]);
  }

  // Painting a decoded VideoFrame. ctx.drawImage(frame) converts YUV to RGB on the page's main
  // thread, 3-4 ms for 1280x704 in software; VideoFrame.copyTo(..., {format: "RGBA"}) converts
  // in under 1 ms and putImageData only copies (bench/results/stream-h264.md). drawImage stays
  // the fallback: a browser whose copyTo cannot convert, a frame with non-square pixels.
  let rgbaCopy = true;
  let image = null;
  let painting = false;
  let nextFrame = null;  // the newest decoded frame waiting while one is being painted

  function drawVideoFrame(frame) {
    const chunk = inflight.get(frame.timestamp) || null;
    inflight.delete(frame.timestamp);
    if (nextFrame) { nextFrame.frame.close(); state.framesSkipped++; }
    nextFrame = { frame, chunk, out: performance.now() };
    if (!painting) paintNewest();
  }

  async function paintNewest() {
    painting = true;
    while (nextFrame) {
      const { frame, chunk, out } = nextFrame;
      nextFrame = null;
      try {
        await paint(frame);
        if (chunk) drawn(chunk.meta, "h264", chunk.recv, chunk.start, out);
        else drawn(null);
      } catch (err) {
        state.errors.push(`paint: ${err}`);
      } finally {
        frame.close();
      }
    }
    painting = false;
  }

  async function paint(frame) {
    const w = frame.displayWidth, h = frame.displayHeight;
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const rect = frame.visibleRect;
    if (rgbaCopy && rect && rect.width === w && rect.height === h) {
      if (!image || image.width !== w || image.height !== h) image = new ImageData(w, h);
      try {
        await frame.copyTo(image.data, { format: "RGBA", colorSpace: "srgb" });
        ctx.putImageData(image, 0, 0);
        state.videoPaint = "copyTo";
        return;
      } catch (err) {
        rgbaCopy = false;  // this browser cannot convert in copyTo: draw from now on
        state.errors.push(`copyTo RGBA: ${err}`);
      }
    }
    ctx.drawImage(frame, 0, 0);
    state.videoPaint = "drawImage";
  }

  function drawn(meta, codec, recv, start, out) {
    state.framesDrawn++;
    state.lastDrawn = meta ? meta.frame : -1;
    const now = performance.now();
    drawTimes.push(now);
    if (state.joinMs === null && state.openedAt !== null) state.joinMs = now - state.openedAt;
    if (meta) send({ type: "ack", frame: meta.frame });
    if (meta && codec) {
      state.timing.push([codec, meta.frame, recv, start, out, now, (meta.t && meta.t.encoded) || null]);
      if (state.timing.length > 512) state.timing.shift();
    }
  }

  function resync(reason) {
    // Anything wrong with the video (a decode error, a gap in the sequence): drop the decoder's
    // state, ask for a key frame and draw nothing until it comes.
    state.resyncs++;
    state.errors.push(`video: ${reason}`);
    waitKey = true;
    inflight.clear();
    if (decoder && decoder.state !== "closed") { try { decoder.close(); } catch (e) { /* closed already */ } }
    decoder = null;
    send({ type: "resync" });
  }

  function makeDecoder() {
    const d = new VideoDecoder({
      output: drawVideoFrame,
      error: (e) => { state.decodeErrors++; if (decoder === d) resync(String(e)); },
    });
    d.configure(AVC);
    return d;
  }

  let lastSeq = null;
  function onVideo(meta, data, recv) {
    if (meta.seq !== undefined && lastSeq !== null && meta.seq !== lastSeq + 1 && !meta.key && !waitKey) {
      resync(`gap ${lastSeq} -> ${meta.seq}`);
    }
    lastSeq = meta.seq;
    if (waitKey) {
      if (!meta.key) { state.framesSkipped++; return; }
      waitKey = false;
    }
    if (!decoder || decoder.state === "closed") decoder = makeDecoder();
    if (meta.key) state.keyFrames++;
    if (decoder.decodeQueueSize > 8) {
      // The page itself cannot keep up (a slow machine, a background tab): rather than show
      // the past, drop what is queued and start again at a key frame.
      state.framesSkipped += decoder.decodeQueueSize;
      resync("decoder behind");
      return;
    }
    chunkTime += 40000;
    inflight.set(chunkTime, { meta, recv, start: performance.now() });
    if (inflight.size > 64) inflight.delete(inflight.keys().next().value);
    try {
      decoder.decode(new EncodedVideoChunk({ type: meta.key ? "key" : "delta", timestamp: chunkTime, data }));
    } catch (err) {
      state.decodeErrors++;
      resync(String(err));
    }
  }

  function onEvent(ev) {
    state.events.push(ev);
    if (state.events.length > 200) state.events.shift();
    switch (ev.type) {
      case "hello":
        $("status").textContent = `connected as ${ev.client}`;
        send({ type: "hello", codecs: state.codecs });
        break;
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
      `${state.codec ?? "?"} · encoder ${e.codec ?? ""} ${e.mode ?? "?"} q${e.quality ?? "?"} 1/${e.scale ?? "?"} · ${e.kbps ?? "?"}/${e.target_kbps ?? "?"} kbps · ${e.encode_ms_p50 ?? "?"} ms`,
      `latency ms: speech→intent ${ms("speech_end", "intent")} · typed→intent ${ms("transcript", "intent")} · intent→frame ${ms("intent", "rendered")}`,
      `  frame→encoded ${ms("rendered", "encoded")} · encoded→wire p99 ${lat.encoded_to_wire_p99 ?? "–"} · wire→shown ${lat.wire_to_displayed_p50 ?? "–"}`,
    ].join("\n");
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ""}`);
    ws.binaryType = "arraybuffer";
    waitKey = true;  // a new connection starts a new video stream
    lastSeq = null;
    ws.onopen = () => { state.connected = true; state.openedAt = performance.now(); state.joinMs = null; };
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
      const recv = performance.now();
      state.framesReceived++;
      state.bytes += msg.data.byteLength;
      recvLog.push([recv, msg.data.byteLength]);
      const meta = pendingMeta;
      pendingMeta = null;
      state.codec = (meta && meta.codec) || "jpeg";
      // Frames keep their trace until the next one; the first frame seen with a new trace is
      // the one whose hop timestamps give the per-stage latencies.
      const tr = meta && meta.trace && meta.trace.length ? meta.trace.join() : null;
      if (tr !== null && (!state.lastTraced || state.lastTraced.trace.join() !== tr)) state.lastTraced = meta;
      state.lastMeta = meta;
      if (meta && meta.codec === "h264") { onVideo(meta, msg.data, recv); return; }
      if (newest) state.framesSkipped++;
      newest = { meta, recv, blob: new Blob([msg.data], { type: "image/jpeg" }) };
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
  probeCodecs().then((codecs) => { state.codecs = codecs; connect(); });
})();
