// The recording page: microphone (Web Audio -> 16 kHz 16-bit WAV made here, no ffmpeg) or a
// file upload, POST /v1/assess, then the scores coloured from red (low) to green (high).
"use strict";

const $ = (id) => document.getElementById(id);
const ASPECTS = ["accuracy", "completeness", "fluency", "prosodic", "total"];
const TARGET_RATE = 16000;
let recorded = null; // Blob of the last recording (WAV)
let recorder = null; // {stop: async () => Float32Array, rate}
let limits = { max_upload_bytes: 10 * 1024 * 1024, max_duration_s: 60 };

// ---------------------------------------------------------------- WAV encoding

function downsample(samples, rate) {
  if (rate === TARGET_RATE) return samples;
  const ratio = rate / TARGET_RATE;
  const out = new Float32Array(Math.floor(samples.length / ratio));
  for (let i = 0; i < out.length; i++) {
    // average the input samples that fall into this output sample (a crude low-pass)
    const a = Math.floor(i * ratio), b = Math.min(samples.length, Math.floor((i + 1) * ratio));
    let sum = 0;
    for (let j = a; j < b; j++) sum += samples[j];
    out[i] = b > a ? sum / (b - a) : 0;
  }
  return out;
}

function encodeWav(samples, rate) {
  const buf = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + samples.length * 2, true); str(8, "WAVE");
  str(12, "fmt "); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true);
  v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buf], { type: "audio/wav" });
}

// ---------------------------------------------------------------- microphone

const WORKLET = `class Tap extends AudioWorkletProcessor {
  process(inputs) { if (inputs[0][0]) this.port.postMessage(inputs[0][0].slice(0)); return true; }
}
registerProcessor("tap", Tap);`;

async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false },
  });
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(stream);
  const chunks = [];
  let node;
  if (ctx.audioWorklet) {
    const url = URL.createObjectURL(new Blob([WORKLET], { type: "text/javascript" }));
    await ctx.audioWorklet.addModule(url);
    node = new AudioWorkletNode(ctx, "tap");
    node.port.onmessage = (e) => chunks.push(e.data);
  } else { // older browsers
    node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (e) => chunks.push(e.inputBuffer.getChannelData(0).slice(0));
  }
  source.connect(node);
  node.connect(ctx.destination); // keeps the graph pulling; the tap outputs silence
  return {
    rate: ctx.sampleRate,
    async stop() {
      source.disconnect(); node.disconnect();
      stream.getTracks().forEach((t) => t.stop());
      await ctx.close();
      const n = chunks.reduce((k, c) => k + c.length, 0);
      const all = new Float32Array(n);
      let o = 0;
      for (const c of chunks) { all.set(c, o); o += c.length; }
      return all;
    },
  };
}

let timer = null;
async function toggleRecording() {
  const btn = $("record");
  if (!recorder) {
    try {
      recorder = await startRecording();
    } catch (err) {
      return say(`Microphone not available: ${err.message}`, true);
    }
    recorded = null;
    $("file").value = "";
    btn.textContent = "■ Stop";
    btn.classList.add("recording");
    const t0 = Date.now();
    timer = setInterval(() => {
      const s = (Date.now() - t0) / 1000;
      $("rec-time").textContent = `${s.toFixed(1)} s`;
      if (s >= limits.max_duration_s) toggleRecording();
    }, 100);
    return;
  }
  clearInterval(timer);
  const rec = recorder;
  recorder = null;
  btn.textContent = "● Record";
  btn.classList.remove("recording");
  const samples = downsample(await rec.stop(), rec.rate);
  recorded = encodeWav(samples, TARGET_RATE);
  $("rec-time").textContent = `recorded ${(samples.length / TARGET_RATE).toFixed(1)} s`;
  $("rec-time").dataset.samples = String(samples.length);
  const preview = $("preview");
  preview.src = URL.createObjectURL(recorded);
  preview.hidden = false;
}

// ---------------------------------------------------------------- scoring

function say(text, isError = false) {
  const m = $("message");
  m.textContent = text;
  m.classList.toggle("error", isError);
}

function colour(value, top) {
  if (value === null || value === undefined) return "#ccc";
  // most human scores sit in the top half of the scale: spread 40%..95% over red..green
  const f = Math.max(0, Math.min(1, (value / top - 0.4) / 0.55));
  return `hsl(${Math.round(120 * f)}, 70%, ${f > 0.5 ? 72 : 78}%)`;
}

const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed(1));

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render(a) {
  const result = $("result");
  result.dataset.status = a.status;
  const reason = $("reason");
  reason.hidden = !a.reason;
  const scored = a.status === "mismatch" && Object.values(a.utterance).some((v) => v);
  const label = a.status === "ok" ? "Note" : scored ? "Text mismatch" : "Could not score";
  reason.textContent = `${label}: ${a.reason || ""}`;
  reason.classList.toggle("failed", a.status !== "ok");

  const utt = $("utterance");
  utt.replaceChildren();
  for (const name of ASPECTS) {
    const v = a.utterance[name];
    const card = el("div", "card");
    card.style.setProperty("--c", colour(v, 10));
    card.append(el("div", "name", name));
    const s = el("div", "score", fmt(v));
    s.dataset.aspect = name;
    s.dataset.value = v === null ? "" : String(v);
    card.append(s);
    utt.append(card);
  }

  // why the sentence sits below its words: what the words alone give it (pronscore.levels)
  const why = $("from-words");
  why.hidden = a.from_words === null || a.from_words === undefined;
  if (!why.hidden) {
    const costly = a.words.filter((w) => (w.sentence_cost ?? 0) >= 0.05)
      .sort((x, y) => y.sentence_cost - x.sentence_cost).slice(0, 3)
      .map((w) => `${w.text.toLowerCase()} −${w.sentence_cost.toFixed(1)}`);
    why.textContent = `From the words alone the sentence gets ${fmt(a.from_words)} ` +
      "(experts rate a sentence below its words)" +
      (costly.length ? `; costing most: ${costly.join(", ")}` : "");
  }

  const words = $("words");
  words.replaceChildren();
  for (const w of a.words) {
    const box = el("div", "word");
    const main = w.total ?? w.accuracy;
    box.style.setProperty("--c", colour(main, 10));
    box.dataset.total = main === null ? "" : String(main);
    const t = el("div", "text", w.text.toLowerCase());
    if (w.status === "omitted") { t.classList.add("mis"); t.title = "not read"; t.textContent += " (not read)"; }
    else if (w.mispronounced) { t.classList.add("mis"); t.title = "likely mispronounced"; }
    box.append(t);
    box.append(el("div", "nums", `acc ${fmt(w.accuracy)} · stress ${fmt(w.stress)} · total ${fmt(w.total)}`));
    const ph = el("div", "phones");
    for (const p of w.phones) {
      const s = el("span", "phone", p.phone.replace(/[0-9]/g, ""));
      s.style.setProperty("--c", colour(p.score, 2));
      s.dataset.score = p.score === null ? "" : String(p.score);
      s.title = `${p.phone}: ${fmt(p.score)} / 2` +
        (p.start !== null && p.start !== undefined ? ` · ${p.start.toFixed(2)}–${p.end.toFixed(2)} s` : "");
      ph.append(s);
    }
    box.append(ph);
    const heard = w.phones.filter((p) => p.heard);
    if (heard.length) {
      const base = (p) => p.phone.replace(/[0-9]/g, "");
      const said = heard.map((p) => `${base(p)} sounded like ${p.heard}`).join(", ");
      box.append(el("div", "heard", said));
    }
    words.append(box);
  }
  result.hidden = false;
}

async function submit(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  const file = $("file").files[0];
  const audio = file || recorded;
  if (!text) return say("Type or pick the sentence you read.", true);
  if (!audio) return say("Record yourself or choose an audio file first.", true);
  if (audio.size > limits.max_upload_bytes) {
    return say(`The file is larger than ${(limits.max_upload_bytes / 1048576).toFixed(0)} MB.`, true);
  }
  const body = new FormData();
  body.append("audio", audio, file ? file.name : "recording.wav");
  body.append("text", text);
  const btn = $("submit");
  btn.disabled = true;
  say("Scoring…");
  try {
    const resp = await fetch("/v1/assess", { method: "POST", body });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const wait = resp.headers.get("Retry-After");
      say(`${data.detail || resp.statusText}${wait ? ` (try again in ${wait} s)` : ""}`, true);
      return;
    }
    render(data);
    say(data.status === "ok" ? "Done." : "Scored with problems — see the note.");
  } catch (err) {
    say(`Request failed: ${err.message}`, true);
  } finally {
    btn.disabled = false;
  }
}

async function init() {
  $("record").addEventListener("click", toggleRecording);
  $("form").addEventListener("submit", submit);
  $("file").addEventListener("change", () => {
    recorded = null;
    $("rec-time").textContent = "";
    $("preview").hidden = true;
  });
  try {
    const info = await (await fetch("/v1/info")).json();
    limits = info.limits;
    $("model").textContent = `model: ${info.model}`;
    for (const s of info.sentences) {
      const o = document.createElement("option");
      o.value = s;
      $("sentences").append(o);
    }
  } catch (err) {
    say("Server not reachable.", true);
  }
  document.body.dataset.ready = "1";
}

init();
