// Allerta: the audio worklet of the browser recorder (allerta-voice.js). It hands every block of
// microphone samples (mono, Float32, the context's rate) to the page, which writes a WAV that sox reads.
"use strict";
class AllertaRecorder extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input.length && input[0].length) this.port.postMessage(input[0].slice(0));
    return true;
  }
}
registerProcessor("allerta-recorder", AllertaRecorder);
