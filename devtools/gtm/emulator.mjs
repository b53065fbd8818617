// A strict stand-in for Google Tag Manager's template runtime: a template (.tpl, Template
// Gallery format) is loaded, its declared permissions checked, and its sandboxed code run
// with only the APIs Google documents for its kind of container (web or server), every call
// checked against the permission the template declares. docs/gtm-emulator.md says what is
// enforced and cites Google's pages for each rule.
//
// Nothing here touches Node or a browser: a platform (tests/gtm/harness.mjs in Node,
// devtools/gtm/page.mjs in a page) supplies the window, the clock, the network and the way
// code is compiled without the globals GTM's sandbox lacks.

import BROWSER_GLOBALS_DOCUMENT from './browser-globals.json' with { type: 'json' };

// Sections ---------------------------------------------------------------------------------

export function sections(text) {
  const found = {};
  let name = null;
  for (const line of text.split('\n')) {
    const header = /^___([A-Z_]+)___\s*$/.exec(line);
    if (header) {
      name = header[1];
      found[name] = [];
    } else if (name) {
      found[name].push(line);
    }
  }
  return Object.fromEntries(Object.entries(found).map(([k, v]) => [k, v.join('\n').trim()]));
}

// What exists ------------------------------------------------------------------------------

// Google's web template API reference (developers.google.com/tag-platform/tag-manager/
// templates/api): every API a web template may require.
export const WEB_APIS = new Set([
  'addConsentListener', 'addEventCallback', 'aliasInWindow', 'callInWindow', 'callLater',
  'copyFromDataLayer', 'copyFromWindow', 'createArgumentsQueue', 'createQueue', 'decodeUri',
  'decodeUriComponent', 'encodeUri', 'encodeUriComponent', 'fromBase64', 'generateRandom',
  'getContainerVersion', 'getCookieValues', 'getQueryParameters',
  'getReferrerQueryParameters', 'getReferrerUrl', 'getTimestamp', 'getTimestampMillis',
  'getType', 'getUrl', 'gtagSet', 'injectHiddenIframe', 'injectScript', 'isConsentGranted',
  'JSON', 'localStorage', 'logToConsole', 'makeInteger', 'makeNumber', 'makeString',
  'makeTableMap', 'Math', 'Object', 'parseUrl', 'queryPermission', 'readAnalyticsStorage',
  'readCharacterSet', 'readTitle', 'sendPixel', 'setCookie', 'setDefaultConsentState',
  'setInWindow', 'sha256', 'templateStorage', 'toBase64', 'updateConsentState',
]);

// Google's server-side API reference (.../tag-manager/server-side/api).
export const SERVER_APIS = new Set([
  'addEventCallback', 'addMessageListener', 'BigQuery', 'callLater', 'claimRequest',
  'computeEffectiveTldPlusOne', 'createRegex', 'decodeUri', 'decodeUriComponent', 'encodeUri',
  'encodeUriComponent', 'extractEventsFromMpv1', 'extractEventsFromMpv2', 'Firestore',
  'fromBase64', 'generateRandom', 'getAllEventData', 'getClientName', 'getContainerVersion',
  'getCookieValues', 'getEventData', 'getGoogleAuth', 'getGoogleScript', 'getRemoteAddress',
  'getRequestBody', 'getRequestHeader', 'getRequestMethod', 'getRequestPath',
  'getRequestQueryParameter', 'getRequestQueryParameters', 'getRequestQueryString',
  'getTimestamp', 'getTimestampMillis', 'getType', 'hasMessageListener', 'hmacSha256',
  'isRequestMpv1', 'isRequestMpv2', 'JSON', 'logToConsole', 'makeInteger', 'makeNumber',
  'makeString', 'makeTableMap', 'Math', 'Object', 'parseUrl', 'Promise', 'queryPermission',
  'returnResponse', 'runContainer', 'sendEventToGoogleAnalytics', 'sendHttpGet',
  'sendHttpRequest', 'sendMessage', 'sendPixelFromBrowser', 'setCookie', 'setPixelResponse',
  'setResponseBody', 'setResponseHeader', 'setResponseStatus', 'sha256', 'templateDataStorage',
  'toBase64',
]);

// Google's consent types (isConsentGranted, setDefaultConsentState).
export const CONSENT_TYPES = [
  'ad_storage', 'analytics_storage', 'functionality_storage', 'personalization_storage',
  'security_storage', 'ad_user_data', 'ad_personalization',
];

// "The first token in each path must not be a predefined key on browser global scope, nor a
// JavaScript keyword" (access_globals). The keys: what a fresh Chromium page has on window
// and its prototype chain (browser-globals.json, checked against Chromium by the tests).
export const BROWSER_GLOBALS = new Set(BROWSER_GLOBALS_DOCUMENT.names);
export const JAVASCRIPT_KEYWORDS = new Set([
  'await', 'break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default',
  'delete', 'do', 'else', 'enum', 'export', 'extends', 'false', 'finally', 'for', 'function',
  'if', 'implements', 'import', 'in', 'instanceof', 'interface', 'let', 'new', 'null',
  'package', 'private', 'protected', 'public', 'return', 'static', 'super', 'switch', 'this',
  'throw', 'true', 'try', 'typeof', 'var', 'void', 'while', 'with', 'yield',
]);

export class TemplateError extends Error {
  name = 'TemplateError';
}
export class PermissionError extends Error {
  name = 'PermissionError';
}

// Permissions ------------------------------------------------------------------------------

// GTM's typed permission values: 1 string, 2 list, 3 map, 8 boolean.
function plain(value) {
  switch (value.type) {
    case 1:
      return value.string;
    case 2:
      return (value.listItem || []).map(plain);
    case 3:
      return Object.fromEntries(value.mapKey.map((k, n) => [plain(k), plain(value.mapValue[n])]));
    case 8:
      return value.boolean;
    default:
      throw new TemplateError(`permission value type ${value.type} is not known to the emulator`);
  }
}

const WEB_PERMISSIONS = new Set([
  'access_globals', 'access_consent', 'inject_script', 'logging', 'send_pixel',
]);
const SERVER_PERMISSIONS = new Set(['logging', 'read_event_data', 'send_http']);

// A URL match pattern: scheme, host (exact, or `*.` then a domain for its subdomains), an
// optional port, and a path that the URL's path starts with (`*` in it matches anything).
function parsePattern(pattern) {
  const match = /^(https?):\/\/(\*\.)?([a-z0-9.-]+)(?::([0-9]+))?(\/[^?#\s]*)$/i.exec(pattern);
  if (!match) return null;
  const [, scheme, wildcard, host, port, path] = match;
  if (host.includes('*') || host.startsWith('.') || host.endsWith('.')) return null;
  const escaped = path.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return {
    scheme: scheme.toLowerCase(), subdomains: Boolean(wildcard), host: host.toLowerCase(),
    port: port || '', path: new RegExp('^' + escaped),
  };
}

export function urlMatches(pattern, url) {
  const p = typeof pattern === 'string' ? parsePattern(pattern) : pattern;
  let u;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (!p || u.protocol !== p.scheme + ':' || u.port !== p.port || u.username || u.password) {
    return false;
  }
  const host = u.hostname.toLowerCase();
  if (p.subdomains ? !host.endsWith('.' + p.host) : host !== p.host) return false;
  return p.path.test(u.pathname);
}

function keyProblem(key) {
  if (typeof key !== 'string' || !/^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/.test(key)) {
    return `access_globals key ${JSON.stringify(key)} is not a dot-separated path`;
  }
  const first = key.split('.')[0];
  if (BROWSER_GLOBALS.has(first)) {
    return `access_globals key ${key}: its first token ${first} is a predefined key on ` +
      'browser global scope (Google: "The first token in each path must not be a predefined ' +
      'key on browser global scope, nor a JavaScript keyword")';
  }
  if (JAVASCRIPT_KEYWORDS.has(first)) {
    return `access_globals key ${key}: its first token ${first} is a JavaScript keyword`;
  }
  return null;
}

function urlListProblems(permission, patterns) {
  return (patterns || [])
    .filter((pattern) => !parsePattern(pattern))
    .map((pattern) => `${permission}: ${JSON.stringify(pattern)} is not a URL match pattern`);
}

// The template's declared permissions, each checked; problems stop the template from loading.
export function permissions(template, kind) {
  const text = kind === 'web' ? template.WEB_PERMISSIONS : template.SERVER_PERMISSIONS;
  const known = kind === 'web' ? WEB_PERMISSIONS : SERVER_PERMISSIONS;
  const granted = {};
  const problems = [];
  for (const entry of JSON.parse(text || '[]')) {
    const id = entry.instance.key.publicId;
    const params = {};
    for (const p of entry.instance.param || []) params[p.key] = plain(p.value);
    if (!known.has(id)) {
      problems.push(`permission ${id} is not one the emulator knows for ${kind} templates`);
      continue;
    }
    switch (id) {
      case 'logging':
        if (!['debug', 'all'].includes(params.environments)) {
          problems.push('logging: environments is debug or all');
        }
        break;
      case 'send_pixel':
      case 'send_http':
        if (!['any', 'specific'].includes(params.allowedUrls)) {
          problems.push(`${id}: allowedUrls is any or specific`);
        }
        problems.push(...urlListProblems(id, params.urls));
        break;
      case 'inject_script':
        problems.push(...urlListProblems(id, params.urls));
        break;
      case 'access_globals':
        for (const key of params.keys || []) {
          const problem = keyProblem(key.key);
          if (problem) problems.push(problem);
        }
        break;
      case 'access_consent':
        for (const consent of params.consentTypes || []) {
          if (!CONSENT_TYPES.includes(consent.consentType)) {
            problems.push(`access_consent: ${consent.consentType} is not a consent type`);
          }
        }
        break;
      case 'read_event_data':
        if (!['any', 'specific'].includes(params.eventDataAccess)) {
          problems.push('read_event_data: eventDataAccess is any or specific');
        }
        break;
      default:
        break;
    }
    granted[id] = params;
  }
  return { granted, problems };
}

function allowsUrl(params, url) {
  if (!params || typeof url !== 'string') return false;
  if (params.allowedUrls === 'any') return true;
  return (params.urls || []).some((pattern) => urlMatches(pattern, url));
}

// Whether the granted permissions allow this (queryPermission's arguments).
export function allows(granted, permission, ...args) {
  const params = granted[permission];
  switch (permission) {
    case 'logging':
      return Boolean(params);
    case 'send_pixel':
    case 'send_http':
      return allowsUrl(params, args[0]);
    case 'inject_script':
      return Boolean(params) && (params.urls || []).some((pattern) => urlMatches(pattern, args[0]));
    case 'access_globals': {
      const [access, key] = args;
      const needs = access === 'readwrite' ? ['read', 'write'] : [access];
      return Boolean(params) && (params.keys || []).some(
        (k) => k.key === key && !keyProblem(k.key) && needs.every((n) => k[n] === true));
    }
    case 'access_consent': {
      const [type, access] = args;
      return Boolean(params) && (params.consentTypes || []).some(
        (c) => c.consentType === type && c[access || 'read'] === true);
    }
    case 'read_event_data':
      return Boolean(params) && (params.eventDataAccess === 'any' || args[0] === undefined ||
        (params.keyPatterns || []).includes(args[0]));
    default:
      return false;
  }
}

// Loading ------------------------------------------------------------------------------------

export function loadTemplate(text) {
  const template = sections(text);
  const info = JSON.parse(template.INFO || '{}');
  const contexts = info.containerContexts || [];
  const kind = contexts.includes('SERVER') ? 'server' : 'web';
  const code = kind === 'web' ? template.SANDBOXED_JS_FOR_WEB_TEMPLATE : template.SANDBOXED_JS_FOR_SERVER;
  if (code === undefined) {
    throw new TemplateError(`the template has no sandboxed code for a ${kind} container`);
  }
  const { granted, problems } = permissions(template, kind);
  if (problems.length) {
    throw new TemplateError('the template declares permissions GTM does not allow: ' +
      problems.join('; '));
  }
  return { template, kind, code, granted };
}

// Values crossing the sandbox: plain data only (GTM converts them; functions are wrapped).
function copyOut(value) {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(copyOut);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copyOut(v)]));
}

function typeOf(value) {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

function pathIn(root, path) {
  const parts = path.split('.');
  let parent = root;
  for (const part of parts.slice(0, -1)) {
    parent = parent == null ? undefined : parent[part];
  }
  return { parent, last: parts[parts.length - 1] };
}

// The APIs ---------------------------------------------------------------------------------

// name -> function(...args) for `run`, each checking its permission first. `platform`:
// {window, now(), random(min, max), log(text), consent(type) -> 'granted'|'denied'|undefined,
//  debug, sendPixel(url, ok, fail), injectScript(url, ok, fail, token),
//  sendHttpRequest(url, ...), eventData, callLater(fn)}.
function implementations(run) {
  const { granted, platform } = run;
  const need = (permission, ...args) => {
    if (!allows(granted, permission, ...args)) {
      throw new PermissionError(
        `permission denied: ${permission} ${args.map((a) => JSON.stringify(a)).join(' ')}`);
    }
  };
  const encoded = (encode) => (value) => {
    try {
      return encode(String(value));
    } catch {
      return undefined; // Google: "Returns undefined when provided with invalid input (a lone surrogate)"
    }
  };
  return {
    callInWindow: (path, ...args) => {
      need('access_globals', 'execute', path);
      const { parent, last } = pathIn(platform.window, path);
      const fn = parent == null ? undefined : parent[last];
      if (typeof fn !== 'function') return undefined;
      const result = fn.apply(parent, args.map(copyOut));
      return typeof result === 'function' ? undefined : copyOut(result);
    },
    callLater: (fn) => platform.callLater(fn),
    copyFromWindow: (key) => {
      need('access_globals', 'read', key);
      const { parent, last } = pathIn(platform.window, key);
      return parent == null ? undefined : copyOut(parent[last]);
    },
    createQueue: (key) => {
      need('access_globals', 'readwrite', key);
      const { parent, last } = pathIn(platform.window, key);
      if (parent == null) throw new Error(`createQueue: ${key}'s path does not exist`);
      if (!Array.isArray(parent[last])) parent[last] = [];
      const array = parent[last];
      return (value) => {
        array.push(copyOut(value));
      };
    },
    decodeUri: encoded(decodeURI),
    decodeUriComponent: encoded(decodeURIComponent),
    encodeUri: encoded(encodeURI),
    encodeUriComponent: encoded(encodeURIComponent),
    generateRandom: (min, max) => platform.random(min, max),
    getAllEventData: () => {
      need('read_event_data');
      return copyOut(platform.eventData);
    },
    getEventData: (key) => {
      need('read_event_data', key);
      return copyOut(String(key).split('.')
        .reduce((value, part) => (value == null ? undefined : value[part]), platform.eventData));
    },
    getTimestamp: () => platform.now(),
    getTimestampMillis: () => platform.now(),
    getType: typeOf,
    injectScript: (url, onSuccess, onFailure, cacheToken) => {
      need('inject_script', url);
      platform.injectScript(url, onSuccess || (() => {}), onFailure || (() => {}), cacheToken);
    },
    isConsentGranted: (type) => {
      need('access_consent', type, 'read');
      // Google: granted "if the consent type has been set to 'granted' or not set at all".
      return platform.consent(type) !== 'denied';
    },
    JSON: {
      parse: (text) => {
        try {
          return JSON.parse(String(text));
        } catch {
          return undefined;
        }
      },
      stringify: (value) => {
        try {
          return JSON.stringify(value);
        } catch {
          return undefined;
        }
      },
    },
    logToConsole: (...args) => {
      need('logging');
      if (granted.logging.environments === 'all' || platform.debug) {
        platform.log(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
      }
    },
    makeInteger: (value) => Math.trunc(Number(value)),
    makeNumber: (value) => Number(value),
    makeString: (value) => String(value),
    makeTableMap: (table, key, value) => {
      if (!Array.isArray(table) || !table.length) return null;
      return Object.fromEntries(table.map((row) => [row[key], row[value]]));
    },
    Math: {
      abs: Math.abs, ceil: Math.ceil, floor: Math.floor, max: Math.max, min: Math.min,
      pow: Math.pow, round: Math.round, sqrt: Math.sqrt,
    },
    Promise: {
      create: (resolver) => new Promise(resolver),
      all: (list) => Promise.all(list),
      resolve: (value) => Promise.resolve(value),
    },
    queryPermission: (permission, ...args) => allows(granted, permission, ...args),
    sendHttpRequest: (url, ...rest) => {
      need('send_http', url);
      return platform.sendHttpRequest(url, ...rest);
    },
    sendPixel: (url, onSuccess, onFailure) => {
      need('send_pixel', url);
      platform.sendPixel(url, onSuccess || (() => {}), onFailure || (() => {}));
    },
    setInWindow: (key, value, overrideExisting) => {
      need('access_globals', 'write', key);
      const { parent, last } = pathIn(platform.window, key);
      if (parent == null) return false;
      if (parent[last] !== undefined && !overrideExisting) return false;
      parent[last] = copyOut(value);
      return true;
    },
  };
}

const OBJECT_APIS = new Set(['JSON', 'Math', 'Promise']);

// `require` for one run: an API the container kind lacks, or one not implemented here, fails
// loudly; every function API is recorded (`calls`), checked, and answered by a mock if one is
// set (`mocks`, the test API's), else by the platform.
export function makeRequire(run) {
  const table = implementations(run);
  const available = run.kind === 'web' ? WEB_APIS : SERVER_APIS;
  return (name) => {
    if (!available.has(name)) {
      throw new TemplateError(`require('${name}'): no such API in ${run.kind} templates`);
    }
    if (!(name in table)) {
      throw new TemplateError(`require('${name}'): not implemented by the emulator`);
    }
    const behaviour = table[name];
    if (OBJECT_APIS.has(name)) return run.mocks[name] ?? behaviour;
    return (...args) => {
      (run.calls[name] ||= []).push(args);
      if (name in run.mocks) {
        // A mock stands for the API's effect, never for its permission.
        checkOnly(run, name, args);
        const mocked = run.mocks[name];
        return typeof mocked === 'function' ? mocked(...args) : mocked;
      }
      return behaviour(...args);
    };
  };
}

const PERMISSION_OF = {
  callInWindow: (args) => ['access_globals', 'execute', args[0]],
  copyFromWindow: (args) => ['access_globals', 'read', args[0]],
  createQueue: (args) => ['access_globals', 'readwrite', args[0]],
  setInWindow: (args) => ['access_globals', 'write', args[0]],
  getAllEventData: () => ['read_event_data'],
  getEventData: (args) => ['read_event_data', args[0]],
  injectScript: (args) => ['inject_script', args[0]],
  isConsentGranted: (args) => ['access_consent', args[0], 'read'],
  logToConsole: () => ['logging'],
  sendHttpRequest: (args) => ['send_http', args[0]],
  sendPixel: (args) => ['send_pixel', args[0]],
};

function checkOnly(run, name, args) {
  const of = PERMISSION_OF[name];
  if (!of) return;
  const [permission, ...rest] = of(args);
  if (!allows(run.granted, permission, ...rest)) {
    throw new PermissionError(
      `permission denied: ${permission} ${rest.map((a) => JSON.stringify(a)).join(' ')}`);
  }
}

// A run of a template: its code executed once with `data` (gtmOnSuccess/gtmOnFailure added).
export function newRun(loaded, platform) {
  return {
    kind: loaded.kind,
    code: loaded.code,
    granted: loaded.granted,
    platform,
    calls: {},
    mocks: {},
    outcome: null,
  };
}

export function runCode(run, data, compile) {
  const settle = (name, outcome) => () => {
    (run.calls[name] ||= []).push([]);
    run.outcome = run.outcome ?? outcome;
    if (run.onOutcome) run.onOutcome(outcome);
  };
  const input = {
    ...data,
    gtmOnSuccess: settle('gtmOnSuccess', 'success'),
    gtmOnFailure: settle('gtmOnFailure', 'failure'),
  };
  return compile(['require', 'data'], run.code)(makeRequire(run), input);
}
