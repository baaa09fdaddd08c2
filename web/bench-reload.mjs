// Cached reload of the demo page in headless Chromium: the page as a user opens it (default
// SIMD choice, bundled INT8 model already in the Cache API), reloaded N times. Per reload: time
// to "ready", the worker's own load time, the first answer (reload to answer shown) and the
// model's latency for that first answer and a second one. Prints one JSON line of medians.
// --root serves another copy of web/www (e.g. another commit's build, to compare).
//   node web/bench-reload.mjs [--reloads 12] [--root DIR]
import { parseArgs } from 'node:util';
import { bundled } from './tests/common.mjs';
import { startServer, launch } from './tests/browser.mjs';

const { values } = parseArgs({ options: { reloads: { type: 'string', default: '12' }, root: { type: 'string' } } });
const reloads = Number(values.reloads);
if (!Number.isInteger(reloads) || reloads < 1) throw new Error(`--reloads ${values.reloads}: want a positive integer`);

const median = (ts) => {
  const s = [...ts].sort((a, b) => a - b);
  return +s[Math.floor(s.length / 2)].toFixed(1);
};
const state = (page, want) => page.waitForFunction((w) => w.includes(document.body.dataset.state), want, { timeout: 90_000 });

const server = await startServer([bundled], values.root);
const context = await launch();
try {
  const page = await context.newPage();
  await page.goto(server.url);
  await state(page, ['ready']); // the first visit downloads and caches the model
  const runs = { ready_ms: [], load_ms: [], first_answer_ms: [], first_latency_ms: [], second_latency_ms: [] };
  for (let i = 0; i < reloads; i++) {
    const t0 = Date.now();
    await page.reload();
    await state(page, ['ready', 'error']);
    runs.ready_ms.push(Date.now() - t0);
    const status = await page.textContent('#model-status');
    const loaded = status.match(/loaded in (\d+) ms from the cache/);
    if (!loaded) throw new Error(`reload ${i}: not loaded from the cache: ${status}`);
    runs.load_ms.push(Number(loaded[1]));
    for (const [phase, ms] of Object.entries(JSON.parse(await page.getAttribute('body', 'data-phases') ?? '{}'))) {
      (runs[`load_${phase}_ms`] ??= []).push(ms);
    }
    for (const key of ['first', 'second']) {
      await page.click('#submit');
      await state(page, ['answered', 'error']);
      if (key === 'first') runs.first_answer_ms.push(Date.now() - t0);
      runs[`${key}_latency_ms`].push(parseFloat(await page.textContent('#latency')));
    }
  }
  const kernel = await page.textContent('#kernel');
  console.log(JSON.stringify({ reloads, kernel, ...Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)])) }));
} finally {
  await context.close();
  server.stop();
}
