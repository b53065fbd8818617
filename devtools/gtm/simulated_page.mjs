// A page in Node for the web tag and pixel-relay.js together, on a virtual clock: the tag runs
// on the strict emulator (emulator.mjs), injectScript runs the real script in the page's
// window, and what leaves the page (beacons, keepalive fetches, images) is recorded instead
// of sent. The benchmark counts requests with it (bench/template_transport.mjs); the browser
// proof (tests/gtm/test_browser_proof.py) does the same in Chromium.
import fs from 'node:fs';
import vm from 'node:vm';

import { newRun, runCode } from './emulator.mjs';

const SANDBOX_MISSING = [
  'JSON', 'Math', 'Date', 'encodeURIComponent', 'decodeURIComponent', 'encodeURI', 'decodeURI',
  'escape', 'unescape', 'parseInt', 'parseFloat', 'isNaN', 'isFinite', 'Number', 'String',
  'Boolean', 'RegExp', 'Function', 'eval', 'Promise', 'Symbol', 'Reflect', 'Proxy', 'Intl',
  'WebAssembly', 'Object', 'Array', 'globalThis',
];

// Template code compiled in a fresh V8 context without the globals GTM's sandbox lacks, so a
// template that uses one instead of its `require`d API fails as it would in GTM.
export function compileSandboxed(parameters, code, filename = 'template.js') {
  const context = vm.createContext({});
  vm.runInContext(`for (const n of ${JSON.stringify(SANDBOX_MISSING)}) delete globalThis[n];`, context);
  return vm.runInContext(`(function(${parameters.join(', ')}) {\n${code}\n})`, context, {
    filename,
    lineOffset: -1,
  });
}

// `scripts`: URL -> file for injectScript (any other URL fails to load). `beaconQuota`:
// the bytes sendBeacon and keepalive fetch may have in flight (64 KiB in Chromium).
export class SimulatedPage {
  constructor({ scripts = {}, sendBeacon = true, fetch = true, startAt = 1_800_000_000_000 } = {}) {
    this.now = startAt;
    this.timers = [];
    this.nextTimer = 1;
    this.requests = [];
    this.logs = [];
    this.listeners = { window: {}, document: {} };
    this.scripts = scripts;
    this.injected = {}; // cacheToken -> {status, waiting}
    const page = this;
    const VirtualDate = class extends Date {
      static now() {
        return page.now;
      }
    };
    const listen = (target) => (type, fn) => {
      (page.listeners[target][type] ||= []).push(fn);
    };
    const window = vm.createContext({
      Date: VirtualDate,
      setTimeout: (fn, ms) => page.schedule(fn, ms),
      clearTimeout: (id) => {
        page.timers = page.timers.filter((t) => t.id !== id);
      },
      addEventListener: listen('window'),
      document: { visibilityState: 'visible', addEventListener: listen('document') },
      navigator: {},
      console,
    });
    window.window = window;
    if (sendBeacon) {
      window.navigator.sendBeacon = (url, body) => {
        page.requests.push({ kind: 'beacon', method: 'POST', url: String(url), body: String(body), at: page.now });
        return true;
      };
    }
    if (fetch) {
      window.fetch = (url, init) => {
        page.requests.push({ kind: 'fetch', method: init.method, url: String(url), body: String(init.body), at: page.now });
        return Promise.resolve({});
      };
    }
    window.Image = class {
      set src(url) {
        page.requests.push({ kind: 'image', method: 'GET', url: String(url), body: null, at: page.now });
      }
    };
    this.window = window;
    this.hidden = false;
  }

  schedule(fn, ms) {
    const id = this.nextTimer++;
    this.timers.push({ id, at: this.now + Math.max(0, ms || 0), fn });
    return id;
  }

  // Runs every timer due within `ms`, in order, moving the clock to each.
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id);
      if (!due.length) break;
      const [timer] = due;
      this.timers = this.timers.filter((t) => t !== timer);
      this.now = Math.max(this.now, timer.at);
      timer.fn();
    }
    this.now = end;
  }

  // The visitor leaves: the page is hidden, then unloaded.
  leave() {
    this.window.document.visibilityState = 'hidden';
    for (const fn of this.listeners.document.visibilitychange || []) fn();
    for (const fn of this.listeners.window.pagehide || []) fn();
    this.timers = []; // nothing runs after the page is gone
  }

  injectScript(url, onSuccess, onFailure, cacheToken) {
    const token = cacheToken || `${url}#${this.nextTimer}`;
    let entry = this.injected[token];
    if (!entry) {
      entry = this.injected[token] = { status: 'loading', waiting: [] };
      const file = this.scripts[url];
      this.schedule(() => {
        if (file) {
          vm.runInContext(fs.readFileSync(file, 'utf8'), this.window, { filename: url });
          entry.status = 'loaded';
        } else {
          entry.status = 'failed';
        }
        for (const [ok, fail] of entry.waiting) (entry.status === 'loaded' ? ok : fail)();
        entry.waiting = [];
      }, 20);
    }
    if (entry.status === 'loading') {
      entry.waiting.push([onSuccess, onFailure]);
    } else {
      this.schedule(entry.status === 'loaded' ? onSuccess : onFailure, 0);
    }
  }

  platform({ consent = {} } = {}) {
    return {
      window: this.window,
      debug: true,
      eventData: {},
      now: () => this.now,
      random: (min, max) => min + Math.floor(Math.random() * (max - min + 1)),
      log: (text) => this.logs.push(text),
      consent: (type) => consent[type],
      callLater: (fn) => this.schedule(fn, 0),
      sendPixel: (url, onSuccess) => {
        this.requests.push({ kind: 'image', method: 'GET', url, body: null, at: this.now });
        this.schedule(onSuccess, 5);
      },
      injectScript: (url, ok, fail, token) => this.injectScript(url, ok, fail, token),
      sendHttpRequest: () => undefined,
    };
  }

  // Fires the loaded template once with `data`; its outcome arrives on the virtual clock.
  fire(loaded, data, options = {}) {
    const run = newRun(loaded, this.platform(options));
    runCode(run, data, compileSandboxed);
    return run;
  }
}
