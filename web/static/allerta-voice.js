// Allerta compose page: record the voice message in the browser, and listen to exactly what citizens will hear.
// No inline script (CSP). The recording is made as 16-bit PCM WAV (AudioWorklet, or ScriptProcessor where
// AudioWorklet is missing) because sox, which converts it on the server, cannot read MediaRecorder's WebM/Opus.
"use strict";
(function () {
  const compose = document.getElementById("compose");
  if (!compose) return;
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const MAX_SECONDS = 180;  // gateway/core/audio.convert_recording refuses longer recordings

  // --- recording ------------------------------------------------------------------------
  const recorder = document.getElementById("recorder");
  const startButton = document.getElementById("record-start");
  const stopButton = document.getElementById("record-stop");
  const status = document.getElementById("record-status");
  const fileInput = document.getElementById("recording");
  let session = null;

  function encodeWav(chunks, rate) {
    const length = chunks.reduce((n, c) => n + c.length, 0);
    const buffer = new ArrayBuffer(44 + length * 2);
    const view = new DataView(buffer);
    const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
    text(0, "RIFF"); view.setUint32(4, 36 + length * 2, true); text(8, "WAVE");
    text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, length * 2, true);
    let offset = 44;
    for (const chunk of chunks) {
      for (let i = 0; i < chunk.length; i++, offset += 2) {
        const s = Math.max(-1, Math.min(1, chunk[i]));
        view.setInt16(offset, s < 0 ? s * 0x8000 : s * 0x7fff, true);
      }
    }
    return new Blob([buffer], {type: "audio/wav"});
  }

  async function startRecording() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioContext) {
      status.textContent = recorder.dataset.tUnsupported; return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: true,
                                                                   noiseSuppression: true}});
    } catch (e) { status.textContent = recorder.dataset.tDenied; return; }
    const context = new AudioContext();
    const source = context.createMediaStreamSource(stream);
    const chunks = [];
    let node;
    if (context.audioWorklet && window.AudioWorkletNode) {
      await context.audioWorklet.addModule(recorder.dataset.worklet);
      node = new AudioWorkletNode(context, "allerta-recorder", {numberOfOutputs: 1, outputChannelCount: [1]});
      node.port.onmessage = (event) => chunks.push(event.data);
    } else {
      node = context.createScriptProcessor(4096, 1, 1);
      node.onaudioprocess = (event) => chunks.push(new Float32Array(event.inputBuffer.getChannelData(0)));
    }
    source.connect(node);
    node.connect(context.destination);  // the node outputs silence; connected so the graph runs it
    session = {stream, context, source, node, chunks, timer: setTimeout(stopRecording, MAX_SECONDS * 1000)};
    compose.querySelector('input[name="voice_source"][value="browser"]').checked = true;
    startButton.disabled = true; stopButton.disabled = false;
    status.textContent = recorder.dataset.tRecording;
  }

  async function stopRecording() {
    if (!session) return;
    const {stream, context, source, node, chunks, timer} = session;
    session = null;
    clearTimeout(timer);
    source.disconnect(); node.disconnect();
    for (const track of stream.getTracks()) track.stop();
    const rate = context.sampleRate;
    await context.close();
    const blob = encodeWav(chunks, rate);
    const transfer = new DataTransfer();
    transfer.items.add(new File([blob], "registrazione.wav", {type: "audio/wav"}));
    fileInput.files = transfer.files;  // sent with the form, like an uploaded file
    const seconds = chunks.reduce((n, c) => n + c.length, 0) / rate;
    status.textContent = recorder.dataset.tRecorded.replace("{seconds}", seconds.toFixed(1));
    startButton.disabled = false; stopButton.disabled = true;
  }

  if (recorder) {
    startButton.addEventListener("click", function () {
      startRecording().catch(function () { status.textContent = recorder.dataset.tUnsupported; });
    });
    stopButton.addEventListener("click", stopRecording);
  }

  // --- listening before sending -----------------------------------------------------------
  const listen = document.getElementById("listen");
  if (!listen) return;
  const player = document.getElementById("listen-player");
  const listenStatus = document.getElementById("listen-status");
  let lastUrl = null;
  document.getElementById("listen-button").addEventListener("click", async function () {
    listenStatus.textContent = listen.dataset.tWorking;
    const data = new FormData(compose);
    let response;
    try {
      response = await fetch(listen.dataset.url, {method: "POST", credentials: "same-origin",
                                                  headers: {Accept: "audio/*, application/json", "X-CSRFToken": csrf()},
                                                  body: data});
    } catch (e) { listenStatus.textContent = listen.dataset.tFailed; return; }
    if (!response.ok) {
      let message = listen.dataset.tFailed;
      try { const body = await response.json(); message = body.message || body.error || message; } catch (e) { /* HTML */ }
      listenStatus.textContent = message;
      return;
    }
    const blob = await response.blob();
    if (lastUrl) URL.revokeObjectURL(lastUrl);
    lastUrl = URL.createObjectURL(blob);  // CSP: media-src 'self' blob:
    player.src = lastUrl;
    player.hidden = false;
    listenStatus.textContent = "";
    player.play().catch(function () { /* autoplay refused: the controls are there */ });
  });
})();
