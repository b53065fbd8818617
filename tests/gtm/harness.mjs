// Runs a GTM custom template (.tpl) in Node on the strict emulator (devtools/gtm/emulator.mjs):
// the scenarios of its ___TESTS___ section with GTM's test API (mock, assertApi, assertThat,
// runCode, fail), or its code once with given data. Every API a template requires must exist
// for its kind of container and every call must be allowed by the permissions it declares;
// a template whose declared permissions GTM does not allow does not load at all.
//
//   node tests/gtm/harness.mjs TEMPLATE.tpl          run the scenarios; JSON report on stdout,
//                                                     exit 1 when one fails (or it won't load)
//   node tests/gtm/harness.mjs TEMPLATE.tpl --run    run the code once with the JSON on stdin
//                                                     {data, eventData, mocks, consent, debug,
//                                                      window}; print the calls
//
// The code runs in a fresh V8 context without the globals GTM's sandbox lacks (JSON, Math,
// Date, encodeURIComponent, String, Number, Promise, ...), so a template that uses one
// instead of its `require`d API fails here as it would in GTM.
import fs from 'node:fs';

import { loadTemplate, newRun, runCode, sections } from '../../devtools/gtm/emulator.mjs';
import { compileSandboxed } from '../../devtools/gtm/simulated_page.mjs';

export { sections };

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

// Node as GTM's runtime -------------------------------------------------------------------

export const compile = compileSandboxed;

// What the page, the network and the clock do when a scenario does not mock an API: nothing
// is sent, the clock is the machine's. `input` may set the consent state, the preview flag and
// the window's contents.
export function nodePlatform(input = {}) {
  const logs = [];
  return {
    logs,
    window: input.window ? structuredClone(input.window) : {},
    debug: input.debug ?? true,
    eventData: input.eventData || {},
    now: () => Date.now(),
    random: (min, max) => min + Math.floor(Math.random() * (max - min + 1)),
    log: (text) => logs.push(text),
    consent: (type) => (input.consent || {})[type],
    callLater: (fn) => setImmediate(fn),
    sendPixel: () => {},
    injectScript: () => {},
    sendHttpRequest: () => undefined,
  };
}

// Test API ---------------------------------------------------------------------------------

const typeOf = (value) =>
  value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;

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

function testApi(run) {
  const failure = (message) => {
    throw new Error(message);
  };
  return {
    mock: (name, value) => {
      run.mocks[name] = value;
    },
    assertApi: (name) => {
      const calls = () => run.calls[name] || [];
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
    runCode: (data) => runCode(run, data, compile),
    fail: failure,
  };
}

export function runScenarios(text) {
  const loaded = loadTemplate(text);
  const { setup, scenarios } = parseTests(loaded.template.TESTS || '');
  return scenarios.map(({ name, code }) => {
    const platform = nodePlatform();
    const run = newRun(loaded, platform);
    const api = testApi(run);
    const names = ['mock', 'assertApi', 'assertThat', 'runCode', 'fail'];
    try {
      const scenario = compile(names, `${setup}\n${code}`, name);
      scenario(api.mock, api.assertApi, api.assertThat, api.runCode, api.fail);
      return { name, passed: true };
    } catch (error) {
      return { name, passed: false, error: String(error && error.stack ? error.stack : error) };
    }
  });
}

// --run: declarative mocks from JSON. sendPixel: "success" | "failure" (which callback runs);
// injectScript: "success" | "failure"; sendHttpRequest: {statusCode, headers, body}, answered
// to the callback or the promise; any other name: the value the API returns.
function declarativeMocks(spec) {
  const mocks = {};
  for (const [name, value] of Object.entries(spec || {})) {
    if (name === 'sendPixel' || name === 'injectScript') {
      mocks[name] = (url, onSuccess, onFailure) => (value === 'success' ? onSuccess() : onFailure());
    } else if (name === 'sendHttpRequest') {
      mocks[name] = (url, second) => {
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
  const text = fs.readFileSync(file, 'utf8');
  if (mode === '--run') {
    const input = JSON.parse(fs.readFileSync(0, 'utf8'));
    const platform = nodePlatform(input);
    let run = null;
    let error = null;
    try {
      const loaded = loadTemplate(text);
      run = newRun(loaded, platform);
      run.mocks = declarativeMocks(input.mocks);
      runCode(run, input.data, compile);
    } catch (e) {
      error = String(e);
    }
    await new Promise((resolve) => setImmediate(resolve)); // callbacks queued with callLater
    const calls = JSON.parse(JSON.stringify(run ? run.calls : {}, (k, v) =>
      typeof v === 'function' ? '<function>' : v));
    process.stdout.write(JSON.stringify({
      calls, logs: platform.logs, outcome: run && run.outcome, error, window: platform.window,
    }));
    return 0;
  }
  let results;
  try {
    results = runScenarios(text);
  } catch (error) {
    process.stdout.write(JSON.stringify({ template: file, error: String(error), results: [] }));
    return 1;
  }
  process.stdout.write(JSON.stringify({ template: file, results }, null, 2));
  return results.length && results.every((r) => r.passed) ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
