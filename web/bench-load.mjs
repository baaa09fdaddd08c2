// Building the bundled INT8 model in the browser module under Node (simd128 build): the first
// `new Squint(...)` in a fresh instance, then the median of the next ones, with the digests
// given (as the page does after hashing with WebCrypto). Prints one JSON line.
//   node web/bench-load.mjs [--loads 8]
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { wasmModule, modelFiles, bundled } from './tests/common.mjs';

const { values } = parseArgs({ options: { loads: { type: 'string', default: '8' } } });
const loads = Number(values.loads);
if (!Number.isInteger(loads) || loads < 2) throw new Error(`--loads ${values.loads}: want an integer >= 2`);

const glue = await wasmModule('simd128');
const f = modelFiles(bundled);
const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');
const digests = JSON.stringify({ 'config.json': sha(f.config), 'tokenizer.json': sha(f.tokenizer), [f.weights]: sha(f.bytes) });
const ts = [];
for (let i = 0; i < loads; i++) {
  const t = performance.now();
  const model = new glue.Squint(f.config, f.tokenizer, f.weights, f.bytes, f.manifest, digests);
  ts.push(performance.now() - t);
  model.free();
}
const later = ts.slice(1).sort((a, b) => a - b);
console.log(JSON.stringify({ loads, first_ms: +ts[0].toFixed(1), later_median_ms: +later[Math.floor(later.length / 2)].toFixed(1) }));
