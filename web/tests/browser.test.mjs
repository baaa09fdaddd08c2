// The demo page in real headless Chromium: loads the model in a worker, answers the Amazon
// question with the answer highlighted, long contexts and empty questions, the cached reload,
// the INT8/FP32 toggle, a phone-width layout, and the relaxed-SIMD build bit-identical to native.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { repo, bundled, dataDir, required, nativeLogits, AMAZON } from './common.mjs';
import { chromiumPath, fp32Model, startServer, launch } from './browser.mjs';

const shots = join(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'), 'web-tests');
mkdirSync(shots, { recursive: true });
let server, context, page;

before(async () => {
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install chromium`);
  const fp32 = fp32Model();
  if (!fp32 && required) throw new Error('the FP32 model in ../shared/data/models is missing');
  server = await startServer(fp32 ? [bundled, fp32] : [bundled]);
  context = await launch();
  page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
});

after(async () => {
  await context?.close();
  server?.stop();
});

async function ask(question, ctx) {
  if (ctx !== undefined) await page.fill('#context', ctx);
  await page.fill('#question', question);
  await page.click('#submit');
  await page.waitForFunction(() => ['answered', 'error'].includes(document.body.dataset.state));
}

let choice;
test('picks relaxed SIMD only where its dot product is faster than simd128\'s', async () => {
  await page.goto(`${server.url}models/index.json`);
  choice = await page.evaluate(async () => (await import('/simd.js')).chooseSimd());
  console.log(`SIMD choice in Chromium: ${JSON.stringify(choice)}`);
  assert.ok(choice.relaxedMs > 0 && choice.simd128Ms > 0);
  assert.equal(choice.level, choice.relaxedMs < 0.9 * choice.simd128Ms ? 'relaxed' : 'simd128');
});

test('loads the INT8 model in a worker with relaxed SIMD and highlights the answer', { timeout: 120_000 }, async () => {
  // Forced: the default choice depends on the CPU (see above); this checks the relaxed build.
  await page.goto(`${server.url}?simd=relaxed`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 90_000 });
  assert.match(await page.textContent('#model-status'), /int8-static/);
  assert.match(await page.textContent('#kernel'), /relaxed-simd/);
  await page.click('#submit');
  await page.waitForFunction(() => document.body.dataset.state === 'answered');
  const answer = await page.textContent('#answer');
  assert.match(answer, /^Amazonia/);
  assert.equal(await page.textContent('#highlight mark'), answer);
  assert.match(await page.textContent('#latency'), /ms$/);
  await page.screenshot({ path: join(shots, 'page.png'), fullPage: true });
});

test('an over-long context is answered; an empty question shows an error and the page recovers', async () => {
  const long = `${'The weather was mild that year in the valley. '.repeat(150)}${AMAZON}`;
  await ask('Which name is also used to describe the Amazon rainforest in English?', long);
  assert.match(await page.textContent('#highlight mark'), /^Amazonia/);
  await ask('', AMAZON);
  assert.equal(await page.isVisible('#error'), true);
  assert.match(await page.textContent('#error'), /question/i);
  // Keyboard: Enter in the question field submits.
  await page.fill('#question', 'What kind of forest is the Amazon rainforest?');
  await page.press('#question', 'Enter');
  await page.waitForFunction(() => document.body.dataset.state === 'answered');
  assert.equal(await page.isVisible('#error'), false);
  assert.match(await page.textContent('#answer'), /broadleaf/);
});

test('a reload answers from the cached model', async () => {
  // The page as a user opens it (the SIMD build this CPU gets), then reloaded.
  await page.goto(server.url);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 90_000 });
  const t0 = Date.now();
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  await page.click('#submit');
  await page.waitForFunction(() => document.body.dataset.state === 'answered');
  const ms = Date.now() - t0;
  assert.match(await page.textContent('#model-status'), /from the cache/);
  console.log(`cached reload to first answer: ${ms} ms (${await page.textContent('#kernel')})`);
  // The reload used the choice remembered from the first load (the forced ?simd=relaxed page
  // above did not overwrite it), which is the probe's.
  const saved = JSON.parse(await page.evaluate(() => localStorage.getItem('squint-simd')));
  assert.equal(saved.level, choice.level);
  assert.match(await page.textContent('#kernel'), choice.level === 'relaxed' ? /relaxed SIMD/ : /SIMD128/);
});

test('a cached model that no longer checks out is dropped and downloaded again', { timeout: 120_000 }, async () => {
  // One byte of tensor data changed in the cache behind the page's back: the file still parses.
  await page.evaluate(async () => {
    const cache = await caches.open('squint-models-v1');
    const request = (await cache.keys()).find((r) => r.url.endsWith('/model.int8.safetensors'));
    const bytes = new Uint8Array(await (await cache.match(request)).arrayBuffer());
    bytes[bytes.length - 1] ^= 0x40;
    await cache.put(request, new Response(bytes));
  });
  await page.reload();
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 90_000 });
  const status = await page.textContent('#model-status');
  assert.match(status, /^Ready/);
  assert.doesNotMatch(status, /from the cache/);
  await ask('Which name is also used to describe the Amazon rainforest in English?', AMAZON);
  assert.match(await page.textContent('#highlight mark'), /^Amazonia/);
  // The fresh copy went back into the cache.
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 90_000 });
  assert.match(await page.textContent('#model-status'), /from the cache/);
});

test('the INT8/FP32 toggle switches models', { skip: !fp32Model() && 'no FP32 model here' }, async () => {
  await page.check('input[name=precision][value=fp32]');
  await page.waitForFunction(() => document.body.dataset.state === 'ready' && /fp32/.test(document.getElementById('model-status').textContent), null, { timeout: 90_000 });
  await ask('Which name is also used to describe the Amazon rainforest in English?', AMAZON);
  assert.match(await page.textContent('#highlight mark'), /^Amazonia/);
});

test('fits a phone-width screen', async () => {
  await page.setViewportSize({ width: 375, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
  await page.screenshot({ path: join(shots, 'page-phone.png'), fullPage: true });
});

test('relaxed-SIMD kernels are exact in Chromium and INT8 logits match native bits', { timeout: 300_000 }, async (t) => {
  if (!dataDir) {
    if (required) assert.fail('no SQuAD data');
    t.skip('no SQuAD data');
    return;
  }
  const native = nativeLogits(30).map(({ id, question, context, bits }) => ({ id, question, context, bits }));
  const result = await page.evaluate(async (questions) => {
    const glue = await import('/pkg/relaxed/squint_web.js');
    await glue.default({ module_or_path: '/pkg/relaxed/squint_web_bg.wasm' });
    const checked = JSON.parse(glue.selfTest(80, 3));
    const get = async (name) => new Uint8Array(await (await fetch(`/models/int8-static/${name}`)).arrayBuffer());
    const model = new glue.Squint(await get('config.json'), await get('tokenizer.json'), 'model.int8.safetensors',
      await get('model.int8.safetensors'), await get('manifest.json'));
    const differing = [];
    for (const q of questions) {
      const logits = model.logits(q.question, q.context, '');
      const view = new DataView(logits.buffer, logits.byteOffset, logits.byteLength);
      let hex = '';
      for (let i = 0; i < logits.length; i++) hex += view.getUint32(i * 4, true).toString(16).padStart(8, '0');
      if (hex !== q.bits) differing.push(q.id);
    }
    return { kernel: glue.kernel(), checked, differing };
  }, native);
  assert.equal(result.kernel, 'relaxed-simd');
  assert.deepEqual(result.checked, ['scalar', 'simd128', 'relaxed-simd']);
  assert.deepEqual(result.differing, []);
  console.log(`parity: ${native.length}/${native.length} questions bit-identical (relaxed-simd wasm in Chromium vs native)`);
});
