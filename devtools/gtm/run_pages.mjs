// Runs the web tag in simulated pages (simulated_page.mjs) and prints what left each page.
//
//   node devtools/gtm/run_pages.mjs < request.json
//
// request: {template: "<.tpl path>", scripts: {"<url>": "<file>"}, sendBeacon, fetch,
//           start_at (epoch ms, the pages' clock), pages: [{fires: [{data, after_ms}],
//           leave_after_ms}]}
// answer:  {pages: [{requests: [{kind, method, url, body, at}], logs, outcomes}]}
// Each fire runs after the page's clock has advanced by its after_ms; the visitor leaves
// leave_after_ms after the last fire (timers due before then run first).
import fs from 'node:fs';

import { loadTemplate } from './emulator.mjs';
import { SimulatedPage } from './simulated_page.mjs';

const request = JSON.parse(fs.readFileSync(0, 'utf8'));
const loaded = loadTemplate(fs.readFileSync(request.template, 'utf8'));
const pages = [];
for (const spec of request.pages) {
  const page = new SimulatedPage({
    scripts: request.scripts || {},
    sendBeacon: request.sendBeacon ?? true,
    fetch: request.fetch ?? true,
    ...(request.start_at ? { startAt: request.start_at } : {}),
  });
  const runs = [];
  for (const fire of spec.fires) {
    page.advance(fire.after_ms || 0);
    runs.push(page.fire(loaded, fire.data, { consent: fire.consent || {} }));
  }
  page.advance(spec.leave_after_ms || 0);
  page.leave();
  await new Promise((resolve) => setImmediate(resolve)); // keepalive fetches settle
  pages.push({ requests: page.requests, logs: page.logs, outcomes: runs.map((r) => r.outcome) });
}
process.stdout.write(JSON.stringify({ pages }));
