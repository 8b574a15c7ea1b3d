// The viewer's microphone tap (runs on the browser's audio rendering thread, in an AudioWorklet).
// Resamples whatever rate the AudioContext runs at to 16 kHz mono and posts 32 ms chunks of
// little-endian int16 samples to the page, which forwards them over the WebSocket.
class Pcm16kProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / 16000;  // input samples per output sample
    this.pos = 0;                    // fractional read position within the current block
    this.prev = 0;                   // last sample of the previous block, for interpolation
    this.out = new Int16Array(512);
    this.n = 0;
  }
  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const ch = input[0];
    const len = ch.length;
    // Linear interpolation is enough for speech; the recognizer low-passes anyway.
    while (this.pos < len) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = i === 0 ? this.prev : ch[i - 1];
      const b = ch[i];
      const v = a + (b - a) * frac;
      const s = Math.max(-1, Math.min(1, v));
      this.out[this.n++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.n === this.out.length) {
        this.port.postMessage(this.out.buffer, [this.out.buffer]);
        this.out = new Int16Array(512);
        this.n = 0;
      }
      this.pos += this.step;
    }
    this.pos -= len;
    this.prev = ch[len - 1];
    return true;
  }
}
registerProcessor("pcm16k", Pcm16kProcessor);
