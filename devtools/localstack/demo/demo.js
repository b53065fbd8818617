// pixel-relay demo page: a data-layer form, an offline stand-in for a GTM Custom Image tag,
// and a live view of each hit (what GTM saw, what the pixel answered, what the destination
// received: Pinpoint's event, or the Customer Profiles object and the event triggers it fired).
// Plain JavaScript, no build step; it talks only to the demo server that serves it, unless the
// page is opened with ?gtm=GTM-XXXXXXX to load a real container.
"use strict";

const POLL_MS = 500;
// A delivered event whose hit is not on this page yet gets this long to be matched.
const ORPHAN_GRACE_MS = 2000;
const STORAGE_KEY = "pixel-relay-demo.endpoint-id";
const OUTAGE_CALLS = 3;
const RELAY_BASE = ""; // the stand-in requests /events on this page's own origin
const GTM_ID = /^GTM-[A-Z0-9]{4,12}$/;
// How the page names the destination whose deliveries it shows (/api/config's destination);
// any other destination is shown by its own name.
const DESTINATIONS = {
  pinpoint: { name: "Pinpoint", call: "PutEvents calls" },
  "customer-profiles": { name: "Customer Profiles", call: "object writes" },
};

const state = {
  pixelUrl: "http://127.0.0.1:8000",
  destination: "pinpoint",
  cards: new Map(), // card key -> card
  byHitId: new Map(), // gtmcb (or server id) -> card
  byEventId: new Map(), // event_id -> card
  lastSeq: 0,
  deliveredCount: 0,
  orphans: new Map(), // event_id -> {record, firstSeen}
  pendingImages: new Set(),
  nextKey: 1,
  outageSince: null, // Date.now() when an outage was set; cleared by the next delivery
};

// ---------------------------------------------------------------------------------------
// The GTM Custom Image tag (stand-in)
// ---------------------------------------------------------------------------------------

/**
 * The Custom Image tag's Image URL for one data-layer message.
 *
 * Returns the template exactly as a user types it into GTM (one {{variable}} per data-layer
 * value), and the URL GTM requests once each variable is filled in. Every value goes through
 * encodeURIComponent, as the {{enc x}} Custom JavaScript variables do (GTM itself inserts
 * variables unencoded). `base` is the pixel's base URL; the route is /events.
 */
function customImageTagUrl(message, base) {
  const params = [
    ["event", "enc event", message.event],
    ["endpoint_id", "enc endpointId", message.endpointId],
    ["event_id", "Event ID", newEventId()],
  ];
  const groups = [
    ["evat_", "attributes"],
    ["evmt_", "metrics"],
    ["usat_", "userAttributes"],
  ];
  for (const [prefix, key] of groups) {
    for (const [name, value] of Object.entries(message[key] || {})) {
      params.push([prefix + encodeURIComponent(name), `enc ${key}.${name}`, value]);
    }
  }
  const template = params.map(([name, variable]) => `${name}={{${variable}}}`).join("&");
  // A data-layer value that is not set reads as undefined, and GTM writes "undefined".
  const filled = params.map(([name, , value]) => `${name}=${encodeURIComponent(value)}`).join("&");
  return {
    template: `${base}/events?${template}`,
    url: `${base}/events?${filled}`,
    eventId: params[2][2],
  };
}

/** GTM's cache buster: "Enable cache busting" appends gtmcb=<random number>. */
function withCacheBuster(url) {
  const gtmcb = String(Math.floor(Math.random() * 9e9) + 1e9);
  return { url: `${url}&gtmcb=${gtmcb}`, gtmcb };
}

/** A Custom Event trigger: every pushed message with an event name that is not GTM's own. */
function isCustomEvent(message) {
  return (
    message !== null &&
    typeof message === "object" &&
    typeof message.event === "string" &&
    !message.event.startsWith("gtm.")
  );
}

/**
 * Fire the Custom Image tag for one message: new Image(), Succeeded on load, Failed on error.
 * Returns the hit's card.
 */
function fireCustomImageTag(message) {
  const built = customImageTagUrl(message, RELAY_BASE);
  const { url, gtmcb } = withCacheBuster(built.url);
  const card = createCard({
    hitId: gtmcb,
    eventId: built.eventId,
    url,
    eventName: message.event,
    endpointId: message.endpointId,
    gtm: "pending",
  });
  const image = new Image();
  state.pendingImages.add(image); // keep a reference until it settles
  const settle = (outcome) => {
    state.pendingImages.delete(image);
    card.gtm = outcome;
    renderCard(card);
    pollHits();
  };
  image.onload = () => settle("succeeded");
  image.onerror = () => settle("failed");
  image.src = url;
  return card;
}

/** Behave like GTM's dataLayer: process what is already queued, then every push. */
function installGtmStandIn() {
  const dataLayer = (window.dataLayer = window.dataLayer || []);
  const push = dataLayer.push;
  dataLayer.push = function (...messages) {
    const length = push.apply(dataLayer, messages);
    for (const message of messages) {
      if (isCustomEvent(message)) fireTags(message);
    }
    return length;
  };
  for (const message of dataLayer) {
    if (isCustomEvent(message)) fireTags(message);
  }
}

/** The real GTM snippet for a container (needs internet access). */
function loadRealGtm(containerId) {
  window.dataLayer = window.dataLayer || [];
  window.dataLayer.push({ "gtm.start": Date.now(), event: "gtm.js" });
  const script = document.createElement("script");
  script.async = true;
  script.src = `https://www.googletagmanager.com/gtm.js?id=${encodeURIComponent(containerId)}`;
  script.onerror = () => {
    setMode(`GTM ${containerId}: could not load gtm.js (offline?)`, "error");
  };
  document.head.appendChild(script);
}

// ---------------------------------------------------------------------------------------
// Leaving the page: the Image tag and a beacon for the same push
// ---------------------------------------------------------------------------------------

// What the page a "leave the page" link lands on (/left, left.js) reads: the two hits fired.
const LEAVE_KEY = "pixel-relay-demo.left-page";
// A push with this set fires a beacon tag too, as the tag template does with "the page may
// unload" ticked.
const PAGE_MAY_UNLOAD = "pageMayUnload";

/** Every tag whose trigger matches the message: the Image tag always, the beacon when asked. */
function fireTags(message) {
  const card = fireCustomImageTag(message);
  if (message[PAGE_MAY_UNLOAD] === true) {
    rememberLeave(message, card, fireBeaconTag(message));
  }
}

/**
 * The beacon tag: the same event data as one line (the query string a GET would carry, with
 * its own event id), handed to navigator.sendBeacon for POST /events straight at the pixel,
 * cross-origin as from a real site. The browser sends it even once the page is gone; the page
 * learns only whether the browser queued it, never what the pixel answered.
 */
function fireBeaconTag(message) {
  const built = customImageTagUrl(message, "");
  const line = built.url.slice(built.url.indexOf("?") + 1);
  const url = `${state.pixelUrl}/events`;
  let queued = false;
  try {
    queued = navigator.sendBeacon(url, line);
  } catch {
    queued = false; // a URL sendBeacon rejects: reported as not queued
  }
  return { eventId: built.eventId, url, line, queued };
}

function rememberLeave(message, card, beacon) {
  const record = {
    event: message.event,
    endpointId: message.endpointId,
    leftAt: new Date().toISOString(),
    image: { eventId: card.eventId, hitId: card.hitId, url: card.url },
    beacon,
  };
  try {
    window.localStorage.setItem(LEAVE_KEY, JSON.stringify(record));
  } catch {
    // storage disabled: the landing page says it has nothing to show
  }
}

/** The "leave the page" link: push the form's event, then let the browser follow the link. */
function installLeaveLink() {
  const link = document.getElementById("leave-page");
  if (gtmContainer()) {
    const note = document.createElement("p");
    note.className = "small";
    note.textContent =
      "Needs the GTM stand-in: with a real container this page cannot tell which tags fired.";
    link.replaceWith(note);
    return;
  }
  link.addEventListener("click", (clicked) => {
    if (document.body.dataset.ready !== "true") {
      clicked.preventDefault(); // the stand-in is not installed yet: nothing would fire
      return;
    }
    // No preventDefault: the navigation starts as soon as this handler returns.
    window.dataLayer.push({ ...messageFromForm(), [PAGE_MAY_UNLOAD]: true });
  });
}

// ---------------------------------------------------------------------------------------
// The form and the buttons
// ---------------------------------------------------------------------------------------

function newEventId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return window.crypto.randomUUID();
  }
  // Outside a secure context (page opened through a LAN address): the same v4 format.
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function randomEndpointId() {
  const bytes = window.crypto.getRandomValues(new Uint8Array(6));
  return "demo-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function endpointIdField() {
  return document.getElementById("endpoint-id");
}

function rememberedEndpointId() {
  try {
    const saved = window.localStorage.getItem(STORAGE_KEY);
    if (saved) return saved;
    const fresh = randomEndpointId();
    window.localStorage.setItem(STORAGE_KEY, fresh);
    return fresh;
  } catch {
    return randomEndpointId(); // storage disabled
  }
}

function remember(endpointId) {
  try {
    window.localStorage.setItem(STORAGE_KEY, endpointId);
  } catch {
    // storage disabled: the id lasts as long as the page
  }
}

/** The data-layer message the form describes. */
function messageFromForm() {
  const value = (id) => document.getElementById(id).value;
  const attributes = {};
  for (const row of [1, 2, 3]) {
    const name = value(`attr-name-${row}`).trim();
    if (name) attributes[name] = value(`attr-value-${row}`);
  }
  const metrics = {};
  const metricName = value("metric-name").trim();
  if (metricName) metrics[metricName] = value("metric-value").trim();
  return {
    event: value("event-name").trim(),
    endpointId: value("endpoint-id").trim(),
    attributes,
    metrics,
  };
}

function showTemplate() {
  const { template } = customImageTagUrl(messageFromForm(), state.pixelUrl);
  // Line breaks only between parameters; <wbr> adds no text, so copying gets the URL as is.
  const shown = document.getElementById("template");
  shown.replaceChildren();
  template.split(/(?=[?&])/).forEach((part, index) => {
    if (index) shown.append(document.createElement("wbr"));
    shown.append(part);
  });
}

/** Typical refused hits, each as a site might push it. */
const REFUSED_EXAMPLES = {
  "try-missing-endpoint": () => ({
    // The endpoint id cookie is not set yet, so the variable is empty.
    event: "purchase",
    endpointId: "",
    attributes: { product: "shoes" },
    metrics: { price: "49.90" },
  }),
  "try-long-value": () => ({
    event: "review",
    endpointId: currentEndpointId(),
    attributes: {
      product: "shoes",
      text: "Great shoes, very comfortable from day one. ".repeat(6).trim(),
    },
    metrics: {},
  }),
  "try-profile-attribute": () => ({
    event: "signup",
    endpointId: currentEndpointId(),
    attributes: {},
    metrics: {},
    userAttributes: { plan: "premium" },
  }),
};

function currentEndpointId() {
  return endpointIdField().value.trim() || rememberedEndpointId();
}

async function simulateOutage() {
  const status = document.getElementById("outage-status");
  const button = document.getElementById("outage");
  button.disabled = true;
  try {
    const response = await fetch("/api/outage", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ calls: OUTAGE_CALLS }),
    });
    if (response.status === 204) {
      state.outageSince = Date.now();
      status.className = "outage-status active";
      status.textContent =
        `${destinationName()} will fail its next ${OUTAGE_CALLS} ${destinationInfo().call}. ` +
        "Send an event and watch its card wait, then arrive.";
    } else {
      status.className = "outage-status error";
      status.textContent = `The outage was not set: ${response.status} ${(await response.text()).trim()}`;
    }
  } catch (error) {
    status.className = "outage-status error";
    status.textContent = `The demo server did not answer: ${error}`;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Cards: one per hit
// ---------------------------------------------------------------------------------------

function createCard(fields) {
  const card = {
    key: state.nextKey++,
    hitId: null,
    eventId: null,
    url: "",
    eventName: "",
    endpointId: "",
    gtm: "unknown",
    answer: null,
    deliveries: [],
    sentAt: Date.now(),
    element: null,
    ...fields,
  };
  state.cards.set(card.key, card);
  if (card.hitId) state.byHitId.set(card.hitId, card);
  if (card.eventId) {
    state.byEventId.set(card.eventId, card);
    const orphan = state.orphans.get(card.eventId);
    if (orphan) {
      state.orphans.delete(card.eventId);
      card.deliveries.push(orphan.record);
    }
  }
  card.element = buildCardElement(card);
  document.getElementById("hits").prepend(card.element);
  document.getElementById("empty").hidden = true;
  renderCard(card);
  return card;
}

function buildCardElement(card) {
  const item = element("li", { class: "hit", "data-testid": "hit" });
  item.innerHTML = `
    <div class="hit-head">
      <span class="hit-event" data-testid="hit-event"></span>
      <span class="hit-endpoint" data-testid="hit-endpoint"></span>
      <span class="hit-time" data-testid="hit-time"></span>
    </div>
    <code class="hit-url" data-testid="hit-url"></code>
    <ol class="steps">
      <li class="step" data-testid="gtm"><span class="step-label">GTM tag</span><strong></strong><span class="detail"></span></li>
      <li class="step" data-testid="answer"><span class="step-label">Pixel answered</span><strong></strong><span class="detail"></span></li>
      <li class="step" data-testid="delivery"><span class="step-label"></span><strong></strong><span class="detail"></span></li>
    </ol>
    <pre class="reason" data-testid="reason" hidden></pre>
    <div class="delivered" data-testid="delivered-block" hidden>
      <p class="delivered-caption"></p>
      <pre class="json" data-testid="delivered"></pre>
      <pre class="json" data-testid="delivered-endpoint" hidden></pre>
      <ul class="triggers" data-testid="triggers" hidden></ul>
    </div>`;
  item.querySelector("[data-testid=delivery] .step-label").textContent = destinationName();
  return item;
}

function renderCard(card) {
  const item = card.element;
  const answer = card.answer;
  const delivery = deliveryState(card);
  item.dataset.hitId = card.hitId || "";
  item.dataset.eventId = card.eventId || "";
  item.dataset.gtm = card.gtm;
  item.dataset.status = answer ? String(answer.status) : "";
  item.dataset.delivery = delivery.state;

  item.querySelector(".hit-event").textContent = card.eventName || "(no event name)";
  item.querySelector(".hit-endpoint").textContent = card.endpointId
    ? `endpoint ${card.endpointId}`
    : "no endpoint id";
  const time = item.querySelector(".hit-time");
  time.textContent = clock(answer ? Date.parse(answer.at) : card.sentAt);
  const url = item.querySelector(".hit-url");
  url.textContent = shortenUrl(card.url);
  url.title = card.url;

  const gtm = gtmState(card);
  setStep(item, "gtm", gtm.tone, gtm.label, gtm.detail);
  const pixel = answerState(answer);
  setStep(item, "answer", pixel.tone, pixel.label, pixel.detail);
  setStep(item, "delivery", delivery.tone, delivery.label, delivery.detail);

  const reason = item.querySelector(".reason");
  reason.hidden = !(answer && answer.reason);
  reason.textContent = answer && answer.reason ? answer.reason : "";

  const block = item.querySelector(".delivered");
  const record = card.deliveries[0];
  block.hidden = !record;
  if (record && record.destination === "customer-profiles") {
    renderProfileObject(item, record);
  } else if (record) {
    const caption = item.querySelector(".delivered-caption");
    const path = `BatchItem["${record.endpoint_id}"].Events["${record.event_id}"]`;
    caption.textContent =
      `Delivered at ${clock(Date.parse(record.observed_at))} · PutEvents ` +
      `BatchItem["${record.endpoint_id}"].Events["${shortId(record.event_id)}"]`;
    caption.title = `PutEvents ${path}`;
    item.querySelector("[data-testid=delivered]").textContent = formatJson(record.event);
    const endpoint = item.querySelector("[data-testid=delivered-endpoint]");
    const update = record.endpoint && Object.keys(record.endpoint).length ? record.endpoint : null;
    endpoint.hidden = !update;
    endpoint.textContent = update ? `Endpoint update: ${formatJson(update)}` : "";
  }
  renderCounters();
}

/** A Customer Profiles delivery: the object as stored, and the event triggers it fired. */
function renderProfileObject(item, record) {
  const received = record.received || {};
  const object = received.Object || {};
  const caption = item.querySelector(".delivered-caption");
  caption.textContent =
    `Delivered at ${clock(Date.parse(record.observed_at))} · profile object ` +
    `${received.ObjectTypeName || ""} on the profile of endpoint ${record.endpoint_id}`;
  caption.title = `object_id ${object.object_id || ""}`;
  item.querySelector("[data-testid=delivered]").textContent = formatJson(object);
  item.querySelector("[data-testid=delivered-endpoint]").hidden = true;
  const list = item.querySelector("[data-testid=triggers]");
  list.replaceChildren();
  const verdicts = received.EventTriggers || [];
  for (const verdict of verdicts) {
    const reached = verdict.WouldStart && verdict.CampaignReached;
    const line = element("li", {
      class: reached ? "trigger start" : "trigger held",
      "data-testid": "trigger",
      "data-trigger": verdict.EventTriggerName,
    });
    line.textContent = triggerVerdict(verdict);
    if (verdict.Campaign) line.title = `${verdict.Campaign} (trigger ${verdict.EventTriggerName})`;
    list.append(line);
  }
  if (!verdicts.length) {
    const line = element("li", { class: "trigger none", "data-testid": "no-trigger" });
    line.textContent = "No event trigger matched this object: no campaign would start";
    list.append(line);
  }
  list.hidden = false;
}

/** What one fired (or held) trigger did: the campaign it started and the profile that
 * campaign would reach, or why nothing started. */
function triggerVerdict(verdict) {
  const trigger = verdict.EventTriggerName;
  if (!verdict.WouldStart) {
    return `Trigger ${trigger} matched; no campaign start: ${verdict.Reason}`;
  }
  if (!verdict.CampaignReached) {
    return `Trigger ${trigger} fired; no campaign started: ${verdict.CampaignReason}`;
  }
  const campaign = verdict.Campaign.split("/").pop();
  const assumed = verdict.Reason ? ` ${verdict.Reason}` : "";
  return `Campaign ${campaign} would reach profile ${verdict.ProfileId}${assumed}`;
}

/** The header, the outage button and its note name the destination the page shows. */
function showDestination() {
  const info = destinationInfo();
  document.getElementById("flow-destination").textContent = info.name;
  document.getElementById("outage").textContent =
    `Simulate a ${info.name} outage (next ${OUTAGE_CALLS} calls fail)`;
  document.getElementById("outage-calls").textContent = info.call;
}

function destinationInfo() {
  return DESTINATIONS[state.destination] || { name: state.destination, call: "calls" };
}

function destinationName() {
  return destinationInfo().name;
}

function setStep(item, testid, tone, label, detail) {
  const step = item.querySelector(`[data-testid="${testid}"]`);
  step.className = `step ${tone}`;
  step.querySelector("strong").textContent = label;
  step.querySelector(".detail").textContent = detail;
}

function gtmState(card) {
  switch (card.gtm) {
    case "succeeded":
      return { tone: "ok", label: "Succeeded", detail: "image loaded" };
    case "failed":
      return { tone: "bad", label: "Failed", detail: "image did not load" };
    case "pending":
      return { tone: "wait", label: "Firing…", detail: "loading the image" };
    default: {
      const inferred = card.answer && card.answer.status === 200 ? "Succeeded" : "Failed";
      const detail = card.answer ? `would show ${inferred}` : "";
      return { tone: "muted", label: "not from this page", detail };
    }
  }
}

function answerState(answer) {
  if (!answer) return { tone: "wait", label: "…", detail: "waiting for the relay" };
  const type = answer.content_type ? answer.content_type.split(";")[0] : "no content type";
  if (answer.status === 200 && !answer.reason) {
    return { tone: "ok", label: "200 accepted", detail: `${type}, event on the queue` };
  }
  const labels = {
    400: "400 refused",
    502: "502 pixel unreachable",
    503: "503 not enqueued",
  };
  return { tone: "bad", label: labels[answer.status] || `${answer.status}`, detail: type };
}

function deliveryState(card) {
  const answer = card.answer;
  if (card.deliveries.length) {
    const count = card.deliveries.length;
    const arrived = Date.parse(card.deliveries[0].observed_at);
    const latency = answer ? `${seconds(arrived - Date.parse(answer.at))} after the hit` : clock(arrived);
    return {
      state: "delivered",
      tone: count > 1 ? "warn" : "ok",
      label: count > 1 ? `Delivered ${count} times` : "Delivered once",
      detail: count > 1 ? "same event id: drop the copies" : latency,
    };
  }
  if (!answer) return { state: "pending", tone: "muted", label: "…", detail: "" };
  if (answer.status === 200 && !answer.reason) {
    if (!card.eventId) {
      return {
        state: "unmatched",
        tone: "muted",
        label: "On the queue",
        detail: "no event_id in the URL to match a delivery",
      };
    }
    const waited = Date.now() - Date.parse(answer.at);
    return {
      state: "waiting",
      tone: "wait",
      label: "Waiting for the consumer",
      detail: `on the queue for ${seconds(waited)}${state.outageSince !== null ? `; ${destinationName()} failing` : ""}`,
    };
  }
  const why = {
    400: "refused: nothing queued",
    502: "the pixel was not reached",
    503: "SQS did not take it; GTM won't retry",
  };
  return {
    state: "never",
    tone: "bad",
    label: "Never reached the queue",
    detail: why[answer.status] || "the pixel did not accept it",
  };
}

// ---------------------------------------------------------------------------------------
// Polling the demo server
// ---------------------------------------------------------------------------------------

let hitsInFlight = null;

/** New journal entries: what the pixel answered to each hit the relay passed on. */
function pollHits() {
  if (!hitsInFlight) {
    hitsInFlight = fetchJson(`/api/hits?after=${state.lastSeq}`)
      .then((entries) => {
        for (const entry of entries) applyJournalEntry(entry);
      })
      .finally(() => {
        hitsInFlight = null;
      });
  }
  return hitsInFlight;
}

function applyJournalEntry(entry) {
  state.lastSeq = Math.max(state.lastSeq, entry.seq);
  let card = state.byHitId.get(entry.id);
  if (!card || card.answer) {
    // A hit this page did not send (another tab, real GTM, curl through the relay).
    const params = new URLSearchParams(entry.query);
    card = createCard({
      hitId: card ? null : entry.id,
      eventId: params.get("event_id"),
      url: `/events?${entry.query}`,
      eventName: params.get("event") || "",
      endpointId: params.get("endpoint_id") || "",
      gtm: "unknown",
    });
  }
  card.answer = entry;
  renderCard(card);
  announce(card);
}

async function pollDelivered() {
  const records = await fetchJson(`/api/delivered?after=${state.deliveredCount}`);
  for (const record of records) {
    state.deliveredCount = Math.max(state.deliveredCount, record.index + 1);
    if (state.outageSince !== null && Date.parse(record.observed_at) >= state.outageSince) {
      // A call to the destination succeeded: the failing calls are used up.
      state.outageSince = null;
      const status = document.getElementById("outage-status");
      status.className = "outage-status over";
      status.textContent = `${destinationName()} is back: the consumer's retry delivered what was waiting.`;
    }
    const card = state.byEventId.get(record.event_id);
    if (card) {
      card.deliveries.push(record);
      renderCard(card);
      announce(card);
    } else {
      state.orphans.set(record.event_id, { record, firstSeen: Date.now() });
    }
  }
  for (const [eventId, orphan] of state.orphans) {
    if (Date.now() - orphan.firstSeen < ORPHAN_GRACE_MS) continue;
    // Delivered, but its hit never passed this page (curl straight at the pixel).
    state.orphans.delete(eventId);
    const card = createCard({
      eventId,
      url: "(sent straight to the pixel, not through this page)",
      eventName: orphan.record.event.EventType,
      endpointId: orphan.record.endpoint_id,
      gtm: "unknown",
    });
    card.deliveries.push(orphan.record);
    renderCard(card);
  }
}

async function pollForever() {
  for (;;) {
    try {
      await pollHits();
      await pollDelivered();
      setConnection(true);
    } catch (error) {
      setConnection(false, error);
    }
    for (const card of state.cards.values()) {
      if (card.element.dataset.delivery === "waiting") renderCard(card);
    }
    renderCounters();
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function fetchJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${(await response.text()).trim()}`);
  return response.json();
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

function renderCounters() {
  const cards = [...state.cards.values()];
  const count = (predicate) => cards.filter(predicate).length;
  const accepted = count((c) => c.answer && c.answer.status === 200 && !c.answer.reason);
  const refused = count((c) => c.answer && !(c.answer.status === 200 && !c.answer.reason));
  const delivered = count((c) => c.deliveries.length > 0);
  const waiting = count((c) => c.element.dataset.delivery === "waiting");
  document.getElementById("counters").textContent =
    `${cards.length} hits · ${accepted} accepted · ${refused} refused · ${delivered} delivered` +
    (waiting ? ` · ${waiting} waiting` : "");
}

function announce(card) {
  const gtm = gtmState(card).label;
  const answer = answerState(card.answer).label;
  const delivery = deliveryState(card).label;
  document.getElementById("announce").textContent =
    `${card.eventName}: GTM ${gtm}; pixel ${answer}; ${delivery}.`;
}

let connected = true;

function setConnection(ok, error) {
  if (ok === connected) return;
  connected = ok;
  if (ok) {
    setMode(modeLabel(), "");
  } else {
    setMode(`demo server not answering (${error && error.message ? error.message : error})`, "error");
  }
}

function modeLabel() {
  const gtm = gtmContainer();
  return gtm ? `Real GTM container ${gtm}` : "GTM stand-in (offline)";
}

function setMode(text, tone) {
  const mode = document.getElementById("mode");
  mode.textContent = text;
  mode.className = `mode ${tone}`;
}

function gtmContainer() {
  const id = new URLSearchParams(window.location.search).get("gtm");
  return id && GTM_ID.test(id) ? id : null;
}

/** The URL with long values cut, so a card stays one line; the full URL is its tooltip. */
function shortenUrl(url) {
  const [path, query] = url.split("?", 2);
  if (query === undefined) return url;
  const parts = query.split("&").map((pair) => {
    const [name, ...rest] = pair.split("=");
    const value = rest.join("=");
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(value)) return `${name}=${value.slice(0, 8)}…`;
    if (value.length > 24) return `${name}=${value.slice(0, 16)}…(${value.length})`;
    return pair;
  });
  return `${path}?${parts.join("&")}`;
}

function shortId(id) {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

/** JSON with small objects on one line. */
function formatJson(value, indent = "") {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  const array = Array.isArray(value);
  const [open, close] = array ? ["[", "]"] : ["{", "}"];
  const entries = array ? value.map((v) => [null, v]) : Object.entries(value);
  if (!entries.length) return open + close;
  const inner = entries.map(
    ([key, v]) => (key === null ? "" : `${JSON.stringify(key)}: `) + formatJson(v, `${indent}  `),
  );
  const flat = `${open}${inner.join(", ")}${close}`;
  if (indent && flat.length + indent.length <= 76 && !flat.includes("\n")) return flat;
  return `${open}\n${inner.map((s) => `${indent}  ${s}`).join(",\n")}\n${indent}${close}`;
}

function clock(milliseconds) {
  const date = new Date(milliseconds);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function seconds(milliseconds) {
  return `${(Math.max(0, milliseconds) / 1000).toFixed(1)} s`;
}

function element(tag, attributes) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// ---------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------

async function start() {
  const endpoint = endpointIdField();
  endpoint.value = rememberedEndpointId();
  endpoint.addEventListener("change", () => {
    if (endpoint.value.trim()) remember(endpoint.value.trim());
  });
  document.getElementById("new-endpoint").addEventListener("click", () => {
    endpoint.value = randomEndpointId();
    remember(endpoint.value);
    showTemplate();
  });
  document.getElementById("event-form").addEventListener("input", showTemplate);
  document.getElementById("event-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    window.dataLayer.push(messageFromForm());
  });
  for (const [id, example] of Object.entries(REFUSED_EXAMPLES)) {
    document.getElementById(id).addEventListener("click", () => window.dataLayer.push(example()));
  }
  document.getElementById("outage").addEventListener("click", simulateOutage);
  document.getElementById("copy-template").addEventListener("click", async (clicked) => {
    const text = document.getElementById("template").textContent;
    try {
      await navigator.clipboard.writeText(text);
      clicked.target.textContent = "Copied";
    } catch {
      window.getSelection().selectAllChildren(document.getElementById("template"));
      clicked.target.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => (clicked.target.textContent = "Copy"), 2000);
  });
  document.getElementById("relay-base").textContent = window.location.origin;
  const example = document.getElementById("gtm-example");
  example.textContent = `${window.location.origin}/?gtm=GTM-XXXXXXX`;

  try {
    const config = await fetchJson("/api/config");
    state.pixelUrl = config.pixel_url;
    state.destination = config.destination || state.destination;
  } catch {
    // keep the default; polling reports the server as unreachable
  }
  showDestination();
  showTemplate();

  const container = gtmContainer();
  if (container) {
    setMode(modeLabel(), "real");
    loadRealGtm(container);
  } else {
    if (new URLSearchParams(window.location.search).has("gtm")) {
      setMode("GTM stand-in (the gtm= value is not a GTM-XXXXXXX id)", "error");
    }
    installGtmStandIn();
  }
  document.body.dataset.ready = "true";
  pollForever();
}

document.addEventListener("DOMContentLoaded", start);
document.addEventListener("DOMContentLoaded", installLeaveLink);
