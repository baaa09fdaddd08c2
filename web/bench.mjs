// Browser-module latency at one sequence length, 1 thread: Node (simd128) and headless Chromium
// (simd128 and relaxed-simd), INT8 and FP32 models. Prints one JSON line per measurement.
//   node web/bench.mjs [--seq 384] [--iters 10] [--fp32 DIR]
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { wasmModule, load, bundled } from './tests/common.mjs';
import { fp32Model, startServer, launch } from './tests/browser.mjs';

const { values } = parseArgs({ options: { seq: { type: 'string', default: '384' }, iters: { type: 'string', default: '10' }, fp32: { type: 'string' } } });
const seq = Number(values.seq), iters = Number(values.iters);
const fp32 = values.fp32 ?? fp32Model();
const models = [['int8-static', bundled], ...(fp32 ? [['fp32', fp32]] : [])];

const stats = (ts) => {
  ts.sort((a, b) => a - b);
  return { median_ms: +ts[Math.floor(ts.length / 2)].toFixed(2), p90_ms: +ts[Math.min(ts.length - 1, Math.floor(0.9 * ts.length))].toFixed(2) };
};
const report = (host, kernel, precision, ts) => console.log(JSON.stringify({ engine: 'squint-wasm', host, kernel, precision, seq, threads: 1, ...stats(ts) }));

// Node: V8 as in Chrome, but Node 20's relaxed SIMD is experimental (its relaxed dot is wrong),
// so Node runs the simd128 build only.
const glue = await wasmModule('simd128');
for (const [precision, dir] of models) {
  const model = load(glue, dir);
  for (let i = 0; i < 2; i++) model.forward(seq);
  const ts = [];
  for (let i = 0; i < iters; i++) { const t = performance.now(); model.forward(seq); ts.push(performance.now() - t); }
  report('node', glue.kernel(), precision, ts);
  model.free();
}

const server = await startServer(models.map(([, dir]) => dir));
const context = await launch();
try {
  const page = await context.newPage();
  await page.goto(`${server.url}models/index.json`);
  for (const level of ['simd128', 'relaxed']) {
    for (const [precision] of models) {
      const r = await page.evaluate(async ({ level, precision, seq, iters }) => {
        const glue = await import(`/pkg/${level}/squint_web.js`);
        await glue.default({ module_or_path: `/pkg/${level}/squint_web_bg.wasm` });
        const index = await (await fetch('/models/index.json')).json();
        const entry = index.find((m) => m.precision === precision);
        const get = async (name) => new Uint8Array(await (await fetch(`/models/${entry.id}/${name}`)).arrayBuffer());
        const model = new glue.Squint(await get('config.json'), await get('tokenizer.json'), entry.weights,
          await get(entry.weights), entry.files.includes('manifest.json') ? await get('manifest.json') : undefined);
        for (let i = 0; i < 2; i++) model.forward(seq);
        const ts = [];
        for (let i = 0; i < iters; i++) { const t = performance.now(); model.forward(seq); ts.push(performance.now() - t); }
        model.free();
        return { kernel: glue.kernel(), ts };
      }, { level, precision, seq, iters });
      report('chromium', r.kernel, precision, r.ts);
      await page.reload();
    }
  }
} finally {
  await context.close();
  server.stop();
}
