// The browser module in Node (V8, like Chrome): kernels exact, answers right, errors thrown as
// exceptions with their message, and INT8 logits bit-identical to the native build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { wasmModule, load, modelFiles, bundled, dataDir, required, nativeLogits, bitsOf, AMAZON, AMAZON_Q } from './common.mjs';

const glue = await wasmModule('simd128');

test('the simd128 build runs the simd128 kernel, exactly', () => {
  assert.equal(glue.kernel(), 'simd128');
  const checked = JSON.parse(glue.selfTest(60, 11));
  assert.deepEqual(checked, ['scalar', 'simd128']);
});

test('answers the Amazon question; bad input throws a clear error', () => {
  const model = load(glue, bundled);
  assert.equal(JSON.parse(model.info()).precision, 'int8-static');
  const [best] = JSON.parse(model.answer(AMAZON_Q, AMAZON, ''));
  assert.match(best.answer, /^Amazonia/);
  assert.equal([...AMAZON].slice(best.start, best.end).join(''), best.answer);
  assert.throws(() => model.answer('', AMAZON, ''), /question/i);
  assert.throws(() => model.answer(AMAZON_Q, AMAZON, '{"top_k": 0}'), /top_k/);
  assert.throws(() => model.answer(AMAZON_Q, AMAZON, '{"colour": 1}'), /colour/);
  // A context far longer than one window is answered across windows.
  const filler = 'The weather was mild that year in the valley. '.repeat(120);
  const long = `${filler}${AMAZON}`;
  const [far] = JSON.parse(model.answer(AMAZON_Q, long, ''));
  assert.ok(far.start >= [...filler].length, `answer ${JSON.stringify(far)} is not in the Amazon paragraph`);
  assert.match(far.answer, /Amaz/);
  assert.equal([...long].slice(far.start, far.end).join(''), far.answer);
  model.free();
});

test('a tampered or unlisted model file is refused with the file named', () => {
  const f = modelFiles(bundled);
  const bad = Uint8Array.from(f.bytes);
  bad[4096] ^= 0x40;
  assert.throws(() => new glue.Squint(f.config, f.tokenizer, f.weights, bad, f.manifest), /model\.int8\.safetensors/);
  assert.throws(() => new glue.Squint(f.config, f.tokenizer, f.weights, f.bytes, undefined), /manifest\.json/);
  assert.throws(() => new glue.Squint(f.config, f.tokenizer, 'weights.bin', f.bytes, f.manifest), /weights\.bin/);
  assert.throws(() => new glue.Squint(new TextEncoder().encode('{'), f.tokenizer, f.weights, f.bytes, f.manifest), /config\.json/);
});

test('digests computed by WebCrypto stand in for hashing in wasm and are checked', async () => {
  const f = modelFiles(bundled);
  const hex = async (bytes) => Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex');
  const sums = { 'config.json': await hex(f.config), 'tokenizer.json': await hex(f.tokenizer), [f.weights]: await hex(f.bytes) };
  const hashed = load(glue, bundled);
  const given = new glue.Squint(f.config, f.tokenizer, f.weights, f.bytes, f.manifest, JSON.stringify(sums));
  assert.deepEqual(given.logits(AMAZON_Q, AMAZON, ''), hashed.logits(AMAZON_Q, AMAZON, ''));
  given.free();
  hashed.free();
  // A digest that disagrees with the manifest (the file changed in the cache) is refused.
  const bad = Uint8Array.from(f.bytes);
  bad[4096] ^= 0x40;
  const wrong = JSON.stringify({ ...sums, [f.weights]: await hex(bad) });
  assert.throws(() => new glue.Squint(f.config, f.tokenizer, f.weights, bad, f.manifest, wrong), /model\.int8\.safetensors.*does not match/);
  assert.throws(() => new glue.Squint(f.config, f.tokenizer, f.weights, f.bytes, f.manifest, '{"x":'), /digests/);
  assert.throws(() => new glue.Squint(f.config, f.tokenizer, f.weights, f.bytes, f.manifest, '{"vocab.txt": "00"}'), /vocab\.txt/);
});

test('a model built before its digests arrive is usable only once they check out', async () => {
  const f = modelFiles(bundled);
  const hex = async (bytes) => Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex');
  const sums = { 'config.json': await hex(f.config), 'tokenizer.json': await hex(f.tokenizer), [f.weights]: await hex(f.bytes) };
  const hashed = load(glue, bundled);
  const unchecked = new glue.UncheckedSquint(f.config, f.tokenizer, f.weights, f.bytes, f.manifest);
  assert.equal(typeof unchecked.answer, 'undefined', 'an unchecked model cannot answer');
  const model = unchecked.verify(JSON.stringify(sums));
  assert.deepEqual(model.logits(AMAZON_Q, AMAZON, ''), hashed.logits(AMAZON_Q, AMAZON, ''));
  assert.throws(() => unchecked.verify(JSON.stringify(sums)), /already verified/);
  unchecked.free();
  model.free();
  hashed.free();
  // Without digests the files are hashed in wasm; tensor bytes changed in the cache still parse,
  // and are refused when checked, with or without the page's digest of them.
  const bad = Uint8Array.from(f.bytes);
  bad[bad.length - 1] ^= 0x40;
  const own = JSON.stringify({ ...sums, [f.weights]: await hex(bad) });
  for (const digests of [undefined, own]) {
    const built = new glue.UncheckedSquint(f.config, f.tokenizer, f.weights, bad, f.manifest);
    assert.throws(() => built.verify(digests), /model\.int8\.safetensors.*does not match/);
    built.free();
  }
  const none = new glue.UncheckedSquint(f.config, f.tokenizer, f.weights, f.bytes, f.manifest);
  none.verify(undefined).free();
  // Truncation is refused before anything is built.
  assert.throws(() => new glue.UncheckedSquint(f.config, f.tokenizer, f.weights, f.bytes.subarray(1), f.manifest), /truncated/);
  const digestsWrong = new glue.UncheckedSquint(f.config, f.tokenizer, f.weights, f.bytes, f.manifest);
  assert.throws(() => digestsWrong.verify('{"x":'), /digests/);
  digestsWrong.free();
});

test('INT8 logits are bit-identical to native on 200 public-dev questions', { timeout: 600_000 }, (t) => {
  if (!dataDir) {
    if (required) assert.fail('SQUINT_DATA_DIR is not set and ../shared/data is missing');
    t.skip('no SQuAD data (../shared/data): parity not checked');
    return;
  }
  const native = nativeLogits(200);
  assert.equal(native.length, 200);
  const model = load(glue, bundled);
  let same = 0;
  const differing = [];
  for (const q of native) {
    const bits = bitsOf(model.logits(q.question, q.context, ''));
    if (bits === q.bits) same++;
    else differing.push(q.id);
  }
  console.log(`parity: ${same}/${native.length} questions with bit-identical INT8 logits (simd128 wasm vs native)`);
  assert.deepEqual(differing, []);
  model.free();
});
