// A GTM container's runtime in a real page, built on the strict emulator: the data layer,
// Custom Event triggers, variables (constants, Data Layer Variables, Custom JavaScript, the
// built-in Event), Custom Image tags, and template tags run with emulator.mjs against the real
// browser (sendPixel is an image, injectScript a script element, createQueue an array on
// window). Only what the pixel-relay kit uses is implemented; anything else throws. It stands
// in for gtm.js in the browser tests (tests/gtm/test_browser_proof.py and the demo page's
// real-GTM mode), never in production.
//
//   import { startContainer } from '.../page.mjs';
//   startContainer(containerExport, {consent: {ad_storage: 'denied'}});
//
// What happened is in window.pixelRelayGtm: {fired: [{tag, event, outcome}], errors: [...]}.
import { BROWSER_GLOBALS, loadTemplate, newRun, runCode } from './emulator.mjs';

// Names a template's code must not see: every browser global that can be a parameter name.
const RESERVED = new Set([
  'undefined', 'NaN', 'Infinity', 'eval', 'arguments', 'await', 'yield', 'let', 'static',
  'implements', 'interface', 'package', 'private', 'protected', 'public', 'enum',
]);
const SHADOWED = [...BROWSER_GLOBALS, 'globalThis'].filter(
  (name) => /^[A-Za-z_$][\w$]*$/.test(name) && !RESERVED.has(name));

// Template code with every browser global shadowed by `undefined`, so a template that reaches
// for one instead of its `require`d API fails here as it would in GTM's sandbox.
export function compileInPage(parameters, code) {
  // The code in a function of its own, so its declarations may reuse a shadowed name.
  // eslint-disable-next-line no-new-func
  const fn = new Function(...SHADOWED, ...parameters, `return (function() {\n${code}\n})();`);
  const blanks = SHADOWED.map(() => undefined);
  return (...args) => fn(...blanks, ...args);
}

function pagePlatform(consent) {
  const injected = {};
  return {
    window,
    debug: true,
    eventData: {},
    now: () => Date.now(),
    random: (min, max) => min + Math.floor(Math.random() * (max - min + 1)),
    log: (text) => console.log(text),
    consent: (type) => consent[type],
    callLater: (fn) => setTimeout(fn, 0),
    sendPixel: (url, onSuccess, onFailure) => {
      const image = new Image();
      image.onload = () => onSuccess();
      image.onerror = () => onFailure();
      image.src = url;
    },
    // Google: with a cache token "only one script element will be created to request the
    // JavaScript. Any additional attempts to load will result in the given onSuccess and
    // onFailure methods being queued until the script loads."
    injectScript: (url, onSuccess, onFailure, cacheToken) => {
      const key = cacheToken || `${url}#${Math.random()}`;
      let entry = injected[key];
      if (!entry) {
        entry = injected[key] = { status: 'loading', waiting: [] };
        const script = document.createElement('script');
        script.async = true;
        const settle = (status) => () => {
          entry.status = status;
          for (const [ok, fail] of entry.waiting) (status === 'loaded' ? ok : fail)();
          entry.waiting = [];
        };
        script.onload = settle('loaded');
        script.onerror = settle('failed');
        script.src = url;
        document.head.appendChild(script);
      }
      if (entry.status === 'loading') {
        entry.waiting.push([onSuccess, onFailure]);
      } else {
        setTimeout(entry.status === 'loaded' ? onSuccess : onFailure, 0);
      }
    },
    sendHttpRequest: () => {
      throw new Error('sendHttpRequest: not in a web container');
    },
  };
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// GTM's data model: each push merged into it, objects recursively, anything else replaced.
function merge(model, message) {
  for (const [key, value] of Object.entries(message)) {
    if (isPlainObject(value) && isPlainObject(model[key])) {
      merge(model[key], value);
    } else {
      model[key] = isPlainObject(value) ? merge({}, value) : value;
    }
  }
  return model;
}

export function startContainer(container, { consent = {} } = {}) {
  const version = container.containerVersion;
  const state = (window.pixelRelayGtm = { fired: [], errors: [] });
  const platform = pagePlatform(consent);
  const templates = {};
  for (const template of version.customTemplate || []) {
    templates[template.templateId] = loadTemplate(template.templateData);
  }
  const variables = Object.fromEntries((version.variable || []).map((v) => [v.name, v]));
  const model = {};
  let event = undefined;

  const param = (item, key) => {
    const found = (item.parameter || []).find((p) => p.key === key);
    if (!found) throw new Error(`${item.name}: no parameter ${key}`);
    return found.value;
  };

  function resolve(name) {
    if (name === 'Event' || name === '_event') return event;
    const variable = variables[name];
    if (!variable) throw new Error(`no variable ${name}`);
    switch (variable.type) {
      case 'c':
        return param(variable, 'value');
      case 'v': {
        let value = model;
        for (const key of param(variable, 'name').split('.')) {
          value = value == null ? undefined : value[key];
        }
        return value;
      }
      case 'jsm': {
        const refs = [];
        const code = param(variable, 'javascript').replace(/\{\{([^}]+)\}\}/g, (_, n) => {
          refs.push(resolve(n));
          return `__refs[${refs.length - 1}]`;
        });
        // Custom JavaScript variables are page code in GTM too.
        // eslint-disable-next-line no-new-func
        return new Function('__refs', `return (${code})();`)(refs);
      }
      default:
        throw new Error(`variable type ${variable.type} is not implemented here`);
    }
  }

  const fill = (text) => {
    const only = /^\{\{([^}]+)\}\}$/.exec(text);
    if (only) return resolve(only[1]);
    return text.replace(/\{\{([^}]+)\}\}/g, (_, n) => String(resolve(n)));
  };
  const value = (p) => {
    if (p.type === 'BOOLEAN') return p.value === 'true';
    if (p.type === 'LIST') return p.list.map(value);
    if (p.type === 'MAP') return Object.fromEntries(p.map.map((m) => [m.key, value(m)]));
    return fill(p.value);
  };

  function condition(item) {
    const left = String(fill(param(item, 'arg0')));
    const right = String(fill(param(item, 'arg1')));
    const negate = (item.parameter || []).some((p) => p.key === 'negate' && p.value === 'true');
    let result;
    switch (item.type) {
      case 'EQUALS':
        result = left === right;
        break;
      case 'MATCH_REGEX':
        result = new RegExp(right).test(left);
        break;
      case 'CONTAINS':
        result = left.includes(right);
        break;
      default:
        throw new Error(`condition type ${item.type} is not implemented here`);
    }
    return negate ? !result : result;
  }

  function triggered(trigger) {
    if (trigger.type !== 'CUSTOM_EVENT') {
      throw new Error(`trigger type ${trigger.type} is not implemented here`);
    }
    return (trigger.customEventFilter || []).every(condition) &&
      (trigger.filter || []).every(condition);
  }

  function consentGiven(tag) {
    const settings = tag.consentSettings;
    if (!settings || settings.consentStatus !== 'NEEDED') return true;
    return settings.consentType.list.every((item) => consent[item.value] !== 'denied');
  }

  function fireTag(tag) {
    const record = { tag: tag.name, event, outcome: null };
    state.fired.push(record);
    if (tag.type === 'img') {
      let url = fill(param(tag, 'url'));
      if (param(tag, 'useCacheBuster') === 'true') {
        url += (url.includes('?') ? '&' : '?') + param(tag, 'cacheBusterQueryParam') + '=' +
          Math.floor(Math.random() * 1e10);
      }
      platform.sendPixel(url, () => (record.outcome = 'success'), () => (record.outcome = 'failure'));
      return;
    }
    const templateId = /^cvt_[^_]+_(.+)$/.exec(tag.type);
    if (!templateId || !templates[templateId[1]]) {
      throw new Error(`tag type ${tag.type} is not implemented here`);
    }
    const fields = Object.fromEntries(tag.parameter.map((p) => [p.key, value(p)]));
    const run = newRun(templates[templateId[1]], platform);
    run.onOutcome = (outcome) => {
      record.outcome = record.outcome ?? outcome;
    };
    runCode(run, fields, compileInPage);
  }

  function process(message) {
    if (!isPlainObject(message)) return;
    merge(model, message);
    if (typeof message.event !== 'string') return;
    event = message.event;
    const fired = new Set(
      (version.trigger || []).filter((t) => triggered(t)).map((t) => t.triggerId));
    for (const tag of version.tag || []) {
      if (tag.paused || !(tag.firingTriggerId || []).some((id) => fired.has(id))) continue;
      if (!consentGiven(tag)) continue;
      try {
        fireTag(tag);
      } catch (error) {
        state.errors.push(`${tag.name}: ${error}`);
        console.error(`pixel-relay GTM runtime: ${tag.name}: ${error}`);
      }
    }
  }

  const dataLayer = (window.dataLayer = window.dataLayer || []);
  const push = dataLayer.push;
  dataLayer.push = function (...messages) {
    const length = push.apply(dataLayer, messages);
    for (const message of messages) process(message);
    return length;
  };
  for (const message of dataLayer.slice()) process(message);
  return state;
}
