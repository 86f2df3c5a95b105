// facemark's live face-filter page: camera frames go to /v1/stream as JPEGs, one in flight at a
// time; each answer's faces are drawn over the video with the chosen overlay. Photos go to
// /v1/detect (JSON) and /v1/filter (the drawn image). No libraries, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const view = $("view");
const ctx = view.getContext("2d");
const video = $("video");
const grab = document.createElement("canvas");

// What the page knows, readable by tests and by a person in the console.
const state = { faces: [], frames: 0, replies: 0, lastReply: null, overlaysDrawn: 0, error: null };
window.facemark = state;

function overlay() {
  return document.querySelector('input[name="overlay"]:checked').value;
}

function say(text) {
  $("status").textContent = text;
}

// Named points of one face, whichever scheme the model has (kaggle15 names, or iBUG 68 ones).
function anchors(face) {
  const byName = {};
  for (const p of face.points) byName[p.name] = p;
  const mean = (prefix) => {
    const ps = face.points.filter((p) => p.name.startsWith(prefix));
    return ps.length ? { x: ps.reduce((s, p) => s + p.x, 0) / ps.length, y: ps.reduce((s, p) => s + p.y, 0) / ps.length } : null;
  };
  return {
    leftEye: byName.left_eye_center || mean("left_eye_"),
    rightEye: byName.right_eye_center || mean("right_eye_"),
    nose: byName.nose_tip || byName.nose_bridge_03,
    mouthLeft: byName.mouth_left_corner || byName.outer_lip_06,
    mouthRight: byName.mouth_right_corner || byName.outer_lip_00,
  };
}

function drawSunglasses(a) {
  const dx = a.leftEye.x - a.rightEye.x, dy = a.leftEye.y - a.rightEye.y;
  const d = Math.hypot(dx, dy);
  ctx.save();
  ctx.translate((a.leftEye.x + a.rightEye.x) / 2, (a.leftEye.y + a.rightEye.y) / 2);
  ctx.rotate(Math.atan2(dy, dx));
  ctx.fillStyle = "rgba(20, 20, 20, 0.92)";
  ctx.strokeStyle = "#000";
  ctx.lineWidth = Math.max(2, d * 0.06);
  for (const side of [-1, 1]) {
    ctx.beginPath();
    ctx.ellipse(side * d / 2, 0, d * 0.42, d * 0.28, 0, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
  ctx.beginPath();
  ctx.moveTo(-d * 0.1, -d * 0.05);
  ctx.lineTo(d * 0.1, -d * 0.05);
  ctx.stroke();
  ctx.restore();
}

function drawMoustache(a) {
  const mx = (a.mouthLeft.x + a.mouthRight.x) / 2, my = (a.mouthLeft.y + a.mouthRight.y) / 2;
  const dx = a.mouthLeft.x - a.mouthRight.x, dy = a.mouthLeft.y - a.mouthRight.y;
  const w = Math.hypot(dx, dy);
  ctx.save();
  ctx.translate((mx + a.nose.x) / 2, (my + a.nose.y) / 2);
  ctx.rotate(Math.atan2(dy, dx));
  ctx.fillStyle = "rgb(70, 40, 25)";
  for (const side of [-1, 1]) {
    ctx.beginPath();
    ctx.moveTo(0, -w * 0.05);
    ctx.quadraticCurveTo(side * w * 0.4, -w * 0.3, side * w * 0.8, -w * 0.05);
    ctx.quadraticCurveTo(side * w * 0.45, w * 0.12, 0, w * 0.08);
    ctx.fill();
  }
  ctx.restore();
}

function drawFaces(faces, scale) {
  ctx.save();
  ctx.scale(scale, scale);
  for (const face of faces) {
    const a = anchors(face);
    const kind = overlay();
    if (kind === "sunglasses" && a.leftEye && a.rightEye) drawSunglasses(a);
    else if (kind === "moustache" && a.mouthLeft && a.mouthRight && a.nose) drawMoustache(a);
    else {
      ctx.fillStyle = "#3f3";
      for (const p of face.points) {
        ctx.beginPath();
        ctx.arc(p.x, p.y, 2.5 / scale, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    state.overlaysDrawn++;
  }
  ctx.restore();
}

// ---- live camera ----
let socket = null, stream = null, sentAt = new Map(), sent = 0, waiting = false, fpsTimes = [];

function render() {
  if (!stream) return;
  if (video.videoWidth) {
    view.width = video.videoWidth;
    view.height = video.videoHeight;
    ctx.drawImage(video, 0, 0);
    drawFaces(state.faces, 1);
  }
  requestAnimationFrame(render);
}

function sendFrame() {
  if (!socket || socket.readyState !== WebSocket.OPEN || waiting || !video.videoWidth) return;
  grab.width = video.videoWidth;
  grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  waiting = true;
  grab.toBlob((blob) => {
    if (!blob || !socket || socket.readyState !== WebSocket.OPEN) { waiting = false; return; }
    sentAt.set(sent++, performance.now());
    socket.send(blob);
  }, "image/jpeg", 0.8);
}

function onReply(event) {
  const reply = JSON.parse(event.data);
  waiting = false;
  state.replies++;
  state.lastReply = reply;
  if (reply.error) {
    state.error = reply.error;
    say(reply.error);
  } else {
    state.faces = reply.faces;
    state.frames++;
    const now = performance.now();
    fpsTimes.push(now);
    while (fpsTimes.length && now - fpsTimes[0] > 2000) fpsTimes.shift();
    const latency = now - (sentAt.get(reply.frame) ?? now);
    sentAt.delete(reply.frame);
    $("fps").textContent = (fpsTimes.length / 2).toFixed(1);
    $("latency").textContent = `${latency.toFixed(0)} ms`;
    $("faces").textContent = String(reply.faces.length);
    document.body.dataset.faces = String(reply.faces.length);
  }
  sendFrame();
}

async function start() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    say(`No camera (${err.name}): use a photo below.`);
    stream = null;
    return;
  }
  video.srcObject = stream;
  await video.play();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${proto}://${location.host}/v1/stream?model=${encodeURIComponent($("model").value)}`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => { say("Camera on: landmarks are live."); sendFrame(); };
  socket.onmessage = onReply;
  socket.onclose = () => { if (stream) say("The server closed the stream."); };
  $("start").disabled = true;
  $("stop").disabled = false;
  $("stop").focus();
  requestAnimationFrame(render);
}

function stop() {
  if (socket) socket.close();
  if (stream) stream.getTracks().forEach((t) => t.stop());
  socket = null;
  stream = null;
  waiting = false;
  $("start").disabled = false;
  $("stop").disabled = true;
  $("start").focus();
  say("Camera off.");
}

// ---- a photo ----
async function sendPhoto(file) {
  const status = $("photo-status");
  status.textContent = `Sending ${file.name}…`;
  const model = encodeURIComponent($("model").value);
  const type = file.type || "application/octet-stream";
  const detect = await fetch(`/v1/detect?model=${model}`, { method: "POST", body: file, headers: { "Content-Type": type } });
  const body = await detect.json();
  $("json").textContent = JSON.stringify(body, null, 2);
  if (!detect.ok) { status.textContent = body.error; return; }
  const drawn = await fetch(`/v1/filter?model=${model}&overlay=${overlay()}`, { method: "POST", body: file, headers: { "Content-Type": type } });
  if (!drawn.ok) { status.textContent = (await drawn.json()).error; return; }
  const img = $("result");
  img.src = URL.createObjectURL(await drawn.blob());
  img.hidden = false;
  status.textContent = `${body.faces.length} face${body.faces.length === 1 ? "" : "s"} in ${file.name}.`;
}

function setup() {
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stop);
  $("file").addEventListener("change", (e) => e.target.files[0] && sendPhoto(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) sendPhoto(e.dataTransfer.files[0]);
  });
  fetch("/v1/models").then((r) => r.json()).then((models) => {
    for (const m of models) {
      const option = new Option(`${m.name} (${m.points.length} points)`, m.name, m.default, m.default);
      $("model").add(option);
    }
  });
}

setup();
