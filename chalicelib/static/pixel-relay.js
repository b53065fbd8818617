/*! pixel-relay.js: batches the hits of the pixel-relay GTM tag and sends them as beacons.
 *
 * The tag template (gtm/pixel-relay-tag.tpl) injects this script from the stage's own API
 * (GET /pixel-relay.js) and hands it each hit through the array `window.pixelRelayQueue`
 * (GTM's createQueue): {v: 1, url: "<stage>/events", line: "<the hit's query string>"}.
 * Hits wait here until MAX_HITS of them, or MAX_BYTES, are waiting, or MAX_WAIT_MS has passed
 * since the first, or the page is hidden or left (visibilitychange to hidden, pagehide): then
 * they leave as one POST /events, text/plain, one hit per line, each line stamped with
 * sent_at (this clock, so the relay can correct it). A batch goes with
 * navigator.sendBeacon (delivered after the page is gone), else fetch with keepalive, else
 * as one image request per hit. docs/gtm-setup.md, "How the tag sends".
 */
(function (window) {
  "use strict";
  var QUEUE = "pixelRelayQueue";
  var VERSION = 1;
  var MAX_HITS = 20;
  // sendBeacon and keepalive fetch share 64 KiB (65,536 bytes) of bodies in flight: a batch
  // stays well under it so the page's other beacons still fit.
  var MAX_BYTES = 48 * 1024;
  var MAX_WAIT_MS = 5000;
  var EVENTS_PATH = /^https?:\/\/[^?#\s]+\/events$/;

  var queue = window[QUEUE];
  if (Object.prototype.toString.call(queue) !== "[object Array]") {
    queue = window[QUEUE] = [];
  }
  if (queue.pixelRelayInstalled) {
    return; // loaded twice: the first copy already drains the queue
  }
  queue.pixelRelayInstalled = true;

  var batches = {}; // url -> {lines, bytes, timer}

  function hidden() {
    return window.document && window.document.visibilityState === "hidden";
  }

  function take(item) {
    if (!item || item.v !== VERSION || typeof item.line !== "string" ||
        typeof item.url !== "string" || !EVENTS_PATH.test(item.url) || !item.line) {
      return; // not a hit this version of the script can send
    }
    var batch = batches[item.url];
    if (!batch) {
      batch = batches[item.url] = { lines: [], bytes: 0, timer: null };
    }
    // Lines are percent-encoded ASCII (the tag encodes every name and value): one byte a
    // character, plus the newline and the sent_at this script appends.
    var size = item.line.length + 32;
    if (batch.lines.length && batch.bytes + size > MAX_BYTES) {
      flush(item.url);
    }
    batch.lines.push(item.line);
    batch.bytes += size;
    if (batch.lines.length >= MAX_HITS || hidden()) {
      flush(item.url);
    } else if (batch.timer === null) {
      batch.timer = window.setTimeout(function () { flush(item.url); }, MAX_WAIT_MS);
    }
  }

  function drain() {
    var items = queue.splice(0, queue.length);
    for (var i = 0; i < items.length; i++) {
      take(items[i]);
    }
  }

  function flush(url) {
    var batch = batches[url];
    if (!batch || !batch.lines.length) {
      return;
    }
    if (batch.timer !== null) {
      window.clearTimeout(batch.timer);
    }
    var lines = batch.lines;
    delete batches[url];
    var stamp = "&sent_at=" + Date.now();
    var body = lines.join(stamp + "\n") + stamp;
    send(url, body, lines, stamp);
  }

  function flushAll() {
    drain();
    for (var url in batches) {
      if (Object.prototype.hasOwnProperty.call(batches, url)) {
        flush(url);
      }
    }
  }

  function send(url, body, lines, stamp) {
    var navigator = window.navigator;
    try {
      if (navigator && typeof navigator.sendBeacon === "function" &&
          navigator.sendBeacon(url, body)) {
        return; // queued by the browser: sent even once the page is gone
      }
    } catch (refused) {
      // a URL or body the browser refuses: try the next way
    }
    if (typeof window.fetch === "function") {
      try {
        window.fetch(url, {
          method: "POST", body: body, keepalive: true, mode: "no-cors", credentials: "omit",
        }).catch(function () { images(url, lines, stamp); });
        return;
      } catch (refused) {
        // fall through to images
      }
    }
    images(url, lines, stamp);
  }

  function images(url, lines, stamp) {
    for (var i = 0; i < lines.length; i++) {
      new window.Image().src = url + "?" + lines[i] + stamp;
    }
  }

  var push = queue.push;
  queue.push = function () {
    var length = push.apply(queue, arguments);
    drain();
    return length;
  };
  window.addEventListener("pagehide", flushAll);
  if (window.document) {
    window.document.addEventListener("visibilitychange", function () {
      if (hidden()) {
        flushAll();
      }
    });
  }
  drain();
})(window);
