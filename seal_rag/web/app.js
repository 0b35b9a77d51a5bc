// The page of `seal-rag serve`: record or pick a clip, or type a question; stream the answer.
// No framework and no CDN, so it works offline. Document text is only ever set with
// textContent, never as HTML: passages are untrusted.
"use strict";

const RATE = 16000; // what the speech tower reads; the browser resamples the microphone to it
const $ = (id) => document.getElementById(id);

function setStatus(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

async function loadHealth() {
  try {
    const health = await (await fetch("/healthz")).json();
    $("about").textContent = `Model ${health.model.name} (${health.model.source}); ${health.index.chunks} passages indexed.`;
    $("key-row").hidden = !health.auth;
  } catch (error) {
    $("about").textContent = "The service does not answer: is `seal-rag serve` running?";
  }
}

// --- Recording: raw samples from the microphone, encoded as a 16-bit mono WAV ---------------

let recording = null;

async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  const context = new AudioContext({ sampleRate: RATE });
  const source = context.createMediaStreamSource(stream);
  // ScriptProcessorNode is deprecated but needs no separate worklet file and runs everywhere.
  const processor = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  processor.onaudioprocess = (event) => {
    const samples = event.inputBuffer.getChannelData(0);
    chunks.push(new Float32Array(samples));
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s));
    $("level").style.width = `${Math.min(100, peak * 300)}px`;
  };
  source.connect(processor);
  processor.connect(context.destination);
  recording = { stream, context, processor, chunks };
}

async function stopRecording() {
  const { stream, context, processor, chunks } = recording;
  recording = null;
  processor.disconnect();
  stream.getTracks().forEach((track) => track.stop());
  await context.close();
  $("level").style.width = "0";
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const samples = new Float32Array(total);
  let offset = 0;
  for (const c of chunks) { samples.set(c, offset); offset += c.length; }
  return wav(samples, RATE);
}

function wav(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return new Blob([buffer], { type: "audio/wav" });
}

$("record").addEventListener("click", async () => {
  const button = $("record");
  try {
    if (!recording) {
      await startRecording();
      button.setAttribute("aria-pressed", "true");
      button.textContent = "Stop and ask";
      setStatus("Recording… press the button again to ask.");
    } else {
      button.setAttribute("aria-pressed", "false");
      button.textContent = "Start recording";
      await ask(await stopRecording(), "audio/wav");
    }
  } catch (error) {
    recording = null;
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Start recording";
    setStatus(`Microphone unavailable: ${error.message}. Pick a file or type instead.`, true);
  }
});

$("file-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { setStatus("Choose an audio file first.", true); return; }
  ask(file, file.type || "application/octet-stream");
});

$("text-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) { setStatus("Type a question first.", true); return; }
  ask(JSON.stringify({ text }), "application/json");
});

// --- Asking: POST /v1/ask and read its server-sent events ------------------------------------

async function ask(body, type) {
  setStatus("Asking…");
  $("result").hidden = true;
  const headers = { "Content-Type": type, Accept: "text/event-stream" };
  const key = $("api-key").value;
  if (key) headers.Authorization = `Bearer ${key}`;
  const query = new URLSearchParams({ k: $("k").value, mode: $("mode").value });
  let response;
  try {
    response = await fetch(`/v1/ask?${query}`, { method: "POST", headers, body });
  } catch (error) {
    setStatus(`The service does not answer: ${error.message}`, true);
    return;
  }
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).error || message; } catch (ignored) { /* not JSON */ }
    setStatus(message, true);
    return;
  }
  await readEvents(response.body, handleEvent);
}

async function readEvents(stream, onEvent) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    let end;
    while ((end = pending.indexOf("\n\n")) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      // Lines split on "\n" alone: a regular expression's line end also matches U+2028 inside the JSON.
      const lines = block.split("\n");
      const name = lines.find((line) => line.startsWith("event: "))?.slice(7);
      const data = lines.find((line) => line.startsWith("data: "))?.slice(6);
      if (name && data !== undefined) onEvent(name, JSON.parse(data));
    }
  }
}

function handleEvent(name, data) {
  if (name === "sources") showSources(data);
  else if (name === "token") $("answer").textContent += data;
  else if (name === "error") setStatus(`The answer failed: ${data.error} (the sources stand).`, true);
  else if (name === "done") {
    const stages = Object.entries(data.timings).map(([stage, s]) => `${stage} ${Math.round(s * 1000)} ms`);
    $("timings").textContent = `Timings: ${stages.join(", ")}`;
    if (!$("status").classList.contains("error")) setStatus("Done.");
  }
}

function showSources(data) {
  $("result").hidden = false;
  $("answer").textContent = "";
  $("timings").textContent = "";
  $("result-heading").textContent = data.answer_kind === "extractive"
    ? "Answer (the best-matching sentence of the top passage; no language model)" : "Answer";
  $("transcript").hidden = !data.transcript;
  $("transcript").textContent = data.transcript ? `Transcript: ${data.transcript}` : "";
  const warnings = data.warnings || [];  // the clip decodes but sounds unlike a question (noise, a tone, clipping)
  $("warnings").hidden = warnings.length === 0;
  $("warnings").textContent = warnings.join(" ");
  const list = $("sources");
  list.replaceChildren();
  for (const hit of data.hits) {
    const item = document.createElement("li");
    const where = document.createElement("strong");
    where.className = "source";
    where.textContent = hit.source + (hit.page ? ` p.${hit.page}` : "");
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = ` score ${hit.score.toFixed(3)}`;
    const snippet = document.createElement("span");
    snippet.className = "snippet";
    snippet.textContent = hit.text.length > 240 ? `${hit.text.slice(0, 240)}…` : hit.text;
    item.append(where, score, snippet);
    list.append(item);
  }
}

loadHealth();
