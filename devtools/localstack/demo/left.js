// pixel-relay demo, the page a "leave the page" link lands on: for the two hits the demo page
// fired as it unloaded (the Custom Image tag's GET and a sendBeacon POST, one event, two event
// ids), show which reached the dry run. Only what the demo server reports counts: the relay's
// journal for the Image hit, and the dry run's deliveries for both.
"use strict";

const LEAVE_KEY = "pixel-relay-demo.left-page"; // written by demo.js as the link is followed
const POLL_MS = 500;
// A request that left the browser reaches the relay on loopback within milliseconds; one that
// has not after this long was cancelled with the page (it is still shown if it turns up).
const IMAGE_GRACE_MS = 5000;
// The consumer delivers an enqueued event within seconds; past this, say it has not.
const DELIVERY_GRACE_MS = 30000;

const seen = {
  lastSeq: 0,
  deliveredCount: 0,
  answers: new Map(), // hit id (gtmcb) -> journal entry
  deliveries: new Map(), // event_id -> first delivery record
};

function readLeave() {
  try {
    const record = JSON.parse(window.localStorage.getItem(LEAVE_KEY) || "null");
    if (record && record.image && record.beacon && record.leftAt) return record;
  } catch {
    // not JSON, or storage disabled
  }
  return null;
}

/** The Image hit: through the relay, so its answer is known if it left the browser. */
function imageOutcome(leave, waited) {
  const hit = leave.image;
  const answer = seen.answers.get(hit.hitId);
  const delivery = seen.deliveries.get(hit.eventId);
  const sent = { tone: "muted", label: "Requested", detail: "new Image(), then the page unloaded" };
  let pixel;
  if (answer) {
    const accepted = answer.status === 200 && !answer.reason;
    pixel = {
      tone: accepted ? "ok" : "bad",
      label: `${answer.status} ${accepted ? "accepted" : "not accepted"}`,
      detail: "the relay passed it on",
    };
  } else if (waited >= IMAGE_GRACE_MS) {
    pixel = {
      tone: "bad",
      label: "No answer",
      detail: `nothing through the relay within ${IMAGE_GRACE_MS / 1000} s: cancelled with the page`,
    };
  } else {
    pixel = { tone: "wait", label: "…", detail: "waiting for the relay" };
  }
  const lost = !delivery && (pixel.tone === "bad" || waited >= DELIVERY_GRACE_MS);
  return { hit, sent, pixel, ...dryRun(delivery, lost, waited) };
}

/** The beacon: straight to the pixel; only its delivery is visible from here. */
function beaconOutcome(leave, waited) {
  const hit = leave.beacon;
  const delivery = seen.deliveries.get(hit.eventId);
  const sent = hit.queued
    ? { tone: "ok", label: "Queued by the browser", detail: "sendBeacon returned true" }
    : { tone: "bad", label: "Refused by the browser", detail: "sendBeacon returned false" };
  const pixel = { tone: "muted", label: "Not visible", detail: "a beacon's answer is never read" };
  const lost = !delivery && (!hit.queued || waited >= DELIVERY_GRACE_MS);
  return { hit, sent, pixel, ...dryRun(delivery, lost, waited) };
}

function dryRun(delivery, lost, waited) {
  if (delivery) {
    return {
      verdict: "arrived",
      delivery: { tone: "ok", label: "Delivered", detail: `at ${clock(delivery.observed_at)}` },
    };
  }
  if (lost) {
    return {
      verdict: "lost",
      delivery: { tone: "bad", label: "Not delivered", detail: `nothing after ${seconds(waited)}` },
    };
  }
  return {
    verdict: "waiting",
    delivery: { tone: "wait", label: "Waiting", detail: `${seconds(waited)} since you left` },
  };
}

function buildRow(transport, title, url) {
  const item = document.createElement("li");
  item.className = "hit";
  item.setAttribute("data-testid", "leave-outcome");
  item.dataset.transport = transport;
  item.innerHTML = `
    <div class="hit-head">
      <span class="hit-event"></span>
      <span class="hit-endpoint" data-testid="leave-event-id"></span>
    </div>
    <code class="hit-url"></code>
    <ol class="steps">
      <li class="step" data-step="sent"><span class="step-label">Browser</span><strong></strong><span class="detail"></span></li>
      <li class="step" data-step="pixel"><span class="step-label">Pixel answered</span><strong></strong><span class="detail"></span></li>
      <li class="step" data-step="delivery"><span class="step-label">Dry run</span><strong></strong><span class="detail"></span></li>
    </ol>`;
  item.querySelector(".hit-event").textContent = title;
  item.querySelector(".hit-url").textContent = url;
  item.querySelector(".hit-url").title = url;
  return item;
}

function renderRow(item, outcome) {
  item.dataset.eventId = outcome.hit.eventId;
  item.dataset.verdict = outcome.verdict;
  item.dataset.delivery = { arrived: "delivered", lost: "never", waiting: "waiting" }[outcome.verdict];
  item.querySelector("[data-testid=leave-event-id]").textContent = `event_id ${outcome.hit.eventId}`;
  for (const [name, step] of Object.entries({
    sent: outcome.sent,
    pixel: outcome.pixel,
    delivery: outcome.delivery,
  })) {
    const node = item.querySelector(`[data-step=${name}]`);
    node.className = `step ${step.tone}`;
    node.querySelector("strong").textContent = step.label;
    node.querySelector(".detail").textContent = step.detail;
  }
}

function summary(image, beacon) {
  const word = { arrived: "arrived", lost: "was lost", waiting: "is still on its way" };
  return `The beacon ${word[beacon.verdict]}; the Image hit ${word[image.verdict]}.`;
}

async function poll() {
  const entries = await fetchJson(`/api/hits?after=${seen.lastSeq}`);
  for (const entry of entries) {
    seen.lastSeq = Math.max(seen.lastSeq, entry.seq);
    if (!seen.answers.has(entry.id)) seen.answers.set(entry.id, entry);
  }
  const records = await fetchJson(`/api/delivered?after=${seen.deliveredCount}`);
  for (const record of records) {
    seen.deliveredCount = Math.max(seen.deliveredCount, record.index + 1);
    if (!seen.deliveries.has(record.event_id)) seen.deliveries.set(record.event_id, record);
  }
}

async function fetchJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${(await response.text()).trim()}`);
  return response.json();
}

function clock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function seconds(milliseconds) {
  return `${(Math.max(0, milliseconds) / 1000).toFixed(1)} s`;
}

async function start() {
  const leave = readLeave();
  const what = document.getElementById("left-what");
  const status = document.getElementById("left-summary");
  if (!leave) {
    what.textContent =
      "Nothing to show: follow the “Push and leave the page” link on the demo page first.";
    document.body.dataset.ready = "true";
    return;
  }
  what.textContent =
    `You left at ${clock(leave.leftAt)} right after pushing “${leave.event}” for ` +
    `endpoint ${leave.endpointId || "(none)"}. Two tags fired for it:`;
  const list = document.getElementById("left-outcomes");
  const imageRow = buildRow("image", "Custom Image tag · GET /events (relay)", leave.image.url);
  const beaconRow = buildRow(
    "beacon",
    "Beacon · navigator.sendBeacon · POST /events",
    `${leave.beacon.url}  ←  ${leave.beacon.line}`,
  );
  list.append(imageRow, beaconRow);
  document.body.dataset.ready = "true";
  for (;;) {
    let error = null;
    try {
      await poll();
    } catch (failed) {
      error = failed;
    }
    const waited = Date.now() - Date.parse(leave.leftAt);
    const image = imageOutcome(leave, waited);
    const beacon = beaconOutcome(leave, waited);
    renderRow(imageRow, image);
    renderRow(beaconRow, beacon);
    status.textContent = error
      ? `The demo server is not answering (${error.message}); the outcomes shown may be stale.`
      : summary(image, beacon);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

document.addEventListener("DOMContentLoaded", start);
