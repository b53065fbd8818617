// Runs a GTM custom template (.tpl, Template Gallery format) in Node: its sandboxed code with
// the `require`d APIs it uses, checked against the permissions the template declares, and the
// scenarios of its ___TESTS___ section with GTM's test API (mock, assertApi, assertThat,
// runCode, fail). A stand-in for GTM's template editor, not a copy of it: what it implements
// is listed in API below; anything else a template requires fails loudly.
//
//   node tests/gtm/harness.mjs TEMPLATE.tpl          run the scenarios; JSON report on stdout,
//                                                     exit 1 when one fails
//   node tests/gtm/harness.mjs TEMPLATE.tpl --run    run the code once with the JSON on stdin
//                                                     {data, eventData, mocks}; print the calls
//
// The code runs in a fresh V8 context without the globals GTM's sandbox lacks (JSON, Math,
// Date, encodeURIComponent, String, Number, Promise, ...), so a template that uses one
// instead of its `require`d API fails here as it would in GTM.
import fs from 'node:fs';
import vm from 'node:vm';

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

// The YAML GTM writes for ___TESTS___: `scenarios:` with `- name:` / `  code: |-` items and an
// optional top-level `setup: |-`. Only that subset.
export function parseTests(text) {
  const lines = text.split('\n');
  const scenarios = [];
  let setup = '';
  let i = 0;
  const unquote = (s) => {
    s = s.trim();
    if ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'"))) {
      return s.startsWith('"') ? JSON.parse(s) : s.slice(1, -1).replace(/''/g, "'");
    }
    return s;
  };
  const block = (keyIndent) => {
    const body = [];
    i++;
    while (i < lines.length) {
      const line = lines[i];
      const indent = line.length - line.trimStart().length;
      if (line.trim() !== '' && indent <= keyIndent) break;
      body.push(line);
      i++;
    }
    const nonEmpty = body.filter((l) => l.trim() !== '');
    const strip = Math.min(...nonEmpty.map((l) => l.length - l.trimStart().length));
    return body.map((l) => l.slice(strip)).join('\n').replace(/\s+$/, '');
  };
  while (i < lines.length) {
    const line = lines[i];
    let match;
    if (/^scenarios:\s*(\[\])?\s*$/.test(line)) {
      i++;
    } else if ((match = /^- name:\s*(.*)$/.exec(line))) {
      scenarios.push({ name: unquote(match[1]), code: '' });
      i++;
    } else if (/^ {2}code:\s*\|-?\s*$/.test(line)) {
      if (!scenarios.length) throw new Error('___TESTS___: code before any scenario name');
      scenarios[scenarios.length - 1].code = block(2);
    } else if (/^setup:\s*\|-?\s*$/.test(line)) {
      setup = block(0);
    } else if (line.trim() === '') {
      i++;
    } else {
      throw new Error(`___TESTS___: cannot read line ${i + 1}: ${line}`);
    }
  }
  return { setup, scenarios };
}

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
      throw new Error(`permission value type ${value.type} is not known to the harness`);
  }
}

export function permissions(template) {
  const text = template.WEB_PERMISSIONS ?? template.SERVER_PERMISSIONS ?? '[]';
  const granted = {};
  for (const entry of JSON.parse(text)) {
    const params = {};
    for (const p of entry.instance.param || []) params[p.key] = plain(p.value);
    granted[entry.instance.key.publicId] = params;
  }
  return granted;
}

// Permission checks ------------------------------------------------------------------------

// GTM's URL match patterns: same scheme, the host exactly or `*.` for any subdomain, the
// pattern's path as a prefix of the URL's path (a final `*` is implied).
function urlMatches(pattern, url) {
  let p;
  let u;
  try {
    p = new URL(pattern.replace('://*.', '://wildcard.'));
    u = new URL(url);
  } catch {
    return false;
  }
  if (p.protocol !== u.protocol || p.port !== u.port) return false;
  if (pattern.includes('://*.')) {
    const domain = p.hostname.slice('wildcard.'.length);
    if (!u.hostname.endsWith('.' + domain)) return false;
  } else if (p.hostname !== u.hostname) {
    return false;
  }
  return u.pathname.startsWith(p.pathname.replace(/\*$/, ''));
}

function urlsAllowed(params, url) {
  if (!params) return false;
  if (params.allowedUrls === 'any') return true;
  return (params.urls || []).some((pattern) => urlMatches(pattern, url));
}

function allows(granted, permission, ...args) {
  const params = granted[permission];
  switch (permission) {
    case 'logging':
      return Boolean(params);
    case 'send_pixel':
    case 'send_http':
      return urlsAllowed(params, args[0]);
    case 'access_globals': {
      const [access, key] = args;
      return Boolean(params) && (params.keys || []).some((k) => k.key === key && k[access] === true);
    }
    case 'access_consent': {
      const [type, access] = args;
      return (
        Boolean(params) &&
        (params.consentTypes || []).some((c) => c.consentType === type && c[access || 'read'])
      );
    }
    case 'read_event_data':
      return (
        Boolean(params) &&
        (params.eventDataAccess === 'any' ||
          args[0] === undefined ||
          (params.keyPatterns || []).includes(args[0]))
      );
    default:
      throw new Error(`permission ${permission} is not known to the harness`);
  }
}

// APIs -------------------------------------------------------------------------------------

const typeOf = (value) =>
  value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;

// name -> [permission check or null, default behaviour]
function apis(state) {
  const need = (permission, ...args) => {
    if (!allows(state.granted, permission, ...args)) {
      throw new Error(`permission denied: ${permission} ${JSON.stringify(args)}`);
    }
  };
  return {
    callInWindow: [(path) => need('access_globals', 'execute', path), () => undefined],
    encodeUriComponent: [
      null,
      (value) => {
        if (typeof value !== 'string') throw new Error('encodeUriComponent takes a string');
        return encodeURIComponent(value);
      },
    ],
    generateRandom: [null, (min, max) => min + Math.floor(Math.random() * (max - min + 1))],
    getAllEventData: [() => need('read_event_data'), () => structuredClone(state.eventData)],
    getEventData: [
      (key) => need('read_event_data', key),
      (key) =>
        String(key)
          .split('.')
          .reduce((value, part) => (value == null ? undefined : value[part]), state.eventData),
    ],
    getTimestampMillis: [null, () => Date.now()],
    getType: [null, typeOf],
    isConsentGranted: [(type) => need('access_consent', type, 'read'), () => true],
    JSON: [
      null,
      {
        parse: (text) => {
          try {
            return JSON.parse(text);
          } catch {
            return undefined;
          }
        },
        stringify: (value) => JSON.stringify(value),
      },
    ],
    logToConsole: [() => need('logging'), (...args) => state.logs.push(args.join(' '))],
    makeInteger: [null, (value) => Math.trunc(Number(value))],
    makeNumber: [null, (value) => Number(value)],
    makeString: [null, (value) => String(value)],
    makeTableMap: [
      null,
      (table, key, value) =>
        Array.isArray(table) ? Object.fromEntries(table.map((row) => [row[key], row[value]])) : null,
    ],
    Promise: [
      null,
      {
        create: (resolver) => new Promise(resolver),
        all: (list) => Promise.all(list),
        resolve: (value) => Promise.resolve(value),
      },
    ],
    queryPermission: [null, (permission, ...args) => allows(state.granted, permission, ...args)],
    sendHttpRequest: [(url) => need('send_http', url), () => undefined],
    sendPixel: [(url) => need('send_pixel', url), () => undefined],
  };
}

// Object-valued APIs (JSON, Promise) are handed out as they are; function APIs are recorded,
// permission-checked, and answered by a mock when one is set.
function makeRequire(state) {
  const table = apis(state);
  return (name) => {
    if (!(name in table)) throw new Error(`require('${name}'): not implemented by the harness`);
    const [check, behaviour] = table[name];
    if (typeof behaviour !== 'function') return state.mocks[name] ?? behaviour;
    return (...args) => {
      (state.calls[name] ||= []).push(args);
      if (check) check(...args);
      if (name in state.mocks) {
        const mocked = state.mocks[name];
        return typeof mocked === 'function' ? mocked(...args) : mocked;
      }
      return behaviour(...args);
    };
  };
}

const MISSING_IN_SANDBOX = [
  'JSON', 'Math', 'Date', 'encodeURIComponent', 'decodeURIComponent', 'encodeURI', 'decodeURI',
  'escape', 'unescape', 'parseInt', 'parseFloat', 'isNaN', 'isFinite', 'Number', 'String',
  'Boolean', 'RegExp', 'Function', 'eval', 'Promise', 'Symbol', 'Reflect', 'Proxy', 'Intl',
  'WebAssembly', 'Object', 'Array', 'globalThis',
];

function sandbox() {
  const context = vm.createContext({});
  vm.runInContext(
    `for (const name of ${JSON.stringify(MISSING_IN_SANDBOX)}) delete globalThis[name];`,
    context,
  );
  return context;
}

function compile(context, parameters, code, filename) {
  return vm.runInContext(`(function(${parameters.join(', ')}) {\n${code}\n})`, context, {
    filename,
    lineOffset: -1,
  });
}

export function newState(template, eventData = {}) {
  return {
    template,
    granted: permissions(template),
    code: template.SANDBOXED_JS_FOR_WEB_TEMPLATE ?? template.SANDBOXED_JS_FOR_SERVER,
    eventData,
    calls: {},
    mocks: {},
    logs: [],
    outcome: null,
  };
}

export function runCode(state, data) {
  const recorded = (name, outcome) => () => {
    (state.calls[name] ||= []).push([]);
    state.outcome = state.outcome ?? outcome;
  };
  const input = { ...data, gtmOnSuccess: recorded('gtmOnSuccess', 'success'),
    gtmOnFailure: recorded('gtmOnFailure', 'failure') };
  const run = compile(sandbox(), ['require', 'data'], state.code, 'template.js');
  return run(makeRequire(state), input);
}

// Test API ---------------------------------------------------------------------------------

function same(a, b) {
  if (a === b) return true;
  if (typeOf(a) !== typeOf(b)) return false;
  if (typeOf(a) === 'array') return a.length === b.length && a.every((x, n) => same(x, b[n]));
  if (typeOf(a) === 'object') {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => same(a[k], b[k]));
  }
  return typeof a === 'number' && Number.isNaN(a) && Number.isNaN(b);
}

const show = (value) => (typeof value === 'function' ? '<function>' : JSON.stringify(value));

function testApi(state) {
  const failure = (message) => {
    throw new Error(message);
  };
  return {
    mock: (name, value) => {
      state.mocks[name] = value;
    },
    assertApi: (name) => {
      const calls = () => state.calls[name] || [];
      return {
        wasCalled: () => calls().length || failure(`${name} was not called`),
        wasNotCalled: () =>
          calls().length && failure(`${name} was called: ${calls().map((c) => c.map(show))}`),
        wasCalledWith: (...args) =>
          calls().some((call) => same(call.slice(0, args.length), args) && call.length >= args.length) ||
          failure(`${name} was not called with ${args.map(show)}; calls: ${JSON.stringify(calls().map((c) => c.map(show)))}`),
      };
    },
    assertThat: (actual) => ({
      isEqualTo: (expected) =>
        same(actual, expected) || failure(`expected ${show(expected)}, got ${show(actual)}`),
      isNotEqualTo: (other) => !same(actual, other) || failure(`got ${show(actual)}`),
      isTrue: () => actual === true || failure(`expected true, got ${show(actual)}`),
      isFalse: () => actual === false || failure(`expected false, got ${show(actual)}`),
      isUndefined: () => actual === undefined || failure(`expected undefined, got ${show(actual)}`),
      isDefined: () => actual !== undefined || failure('expected a value, got undefined'),
      contains: (item) =>
        (typeof actual === 'string' ? actual.includes(item) : (actual || []).some((x) => same(x, item))) ||
        failure(`${show(actual)} does not contain ${show(item)}`),
    }),
    runCode: (data) => runCode(state, data),
    fail: failure,
  };
}

export function runScenarios(template) {
  const { setup, scenarios } = parseTests(template.TESTS || '');
  return scenarios.map(({ name, code }) => {
    const state = newState(template);
    const api = testApi(state);
    const names = ['mock', 'assertApi', 'assertThat', 'runCode', 'fail', 'require'];
    try {
      const run = compile(sandbox(), names, `${setup}\n${code}`, name);
      run(api.mock, api.assertApi, api.assertThat, api.runCode, api.fail, makeRequire(state));
      return { name, passed: true };
    } catch (error) {
      return { name, passed: false, error: String(error && error.stack ? error.stack : error) };
    }
  });
}

// --run: declarative mocks from JSON. sendPixel: "success" | "failure" (which callback runs);
// sendHttpRequest: {statusCode, headers, body}, answered to the callback or the promise;
// any other name: the value the API returns.
function declarativeMocks(spec) {
  const mocks = {};
  for (const [name, value] of Object.entries(spec || {})) {
    if (name === 'sendPixel') {
      mocks[name] = (url, onSuccess, onFailure) => (value === 'success' ? onSuccess() : onFailure());
    } else if (name === 'sendHttpRequest') {
      mocks[name] = (url, second, third, fourth) => {
        const { statusCode, headers = {}, body = '' } = value;
        if (typeof second === 'function') return second(statusCode, headers, body);
        return Promise.resolve({ statusCode, headers, body });
      };
    } else {
      mocks[name] = value;
    }
  }
  return mocks;
}

async function main(argv) {
  const [file, mode] = argv;
  const template = sections(fs.readFileSync(file, 'utf8'));
  if (mode === '--run') {
    const input = JSON.parse(fs.readFileSync(0, 'utf8'));
    const state = newState(template, input.eventData || {});
    state.mocks = declarativeMocks(input.mocks);
    let error = null;
    try {
      runCode(state, input.data);
    } catch (e) {
      error = String(e);
    }
    await new Promise((resolve) => setImmediate(resolve));  // promise-form callbacks
    const calls = JSON.parse(JSON.stringify(state.calls, (k, v) =>
      typeof v === 'function' ? '<function>' : v));
    process.stdout.write(JSON.stringify({ calls, logs: state.logs, outcome: state.outcome, error }));
    return 0;
  }
  const results = runScenarios(template);
  process.stdout.write(JSON.stringify({ template: file, results }, null, 2));
  return results.length && results.every((r) => r.passed) ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
