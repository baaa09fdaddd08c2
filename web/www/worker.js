// The model lives here, off the main thread: downloads (with progress, cached with the Cache
// API), loads into WebAssembly, answers. Messages: {type:'load', model, level?} and
// {type:'ask', id, question, context, params}.
import { simdLevel, supports } from './simd.js';

const CACHE = 'squint-models-v1';
let wasm = null;
let model = null;

const post = (msg) => self.postMessage(msg);

async function loadWasm(level) {
  if (wasm) return wasm;
  const glue = await import(`./pkg/${level}/squint_web.js`);
  await glue.default({ module_or_path: new URL(`./pkg/${level}/squint_web_bg.wasm`, import.meta.url) });
  wasm = glue;
  return wasm;
}

// Fetches `url` with progress; `onBytes(n)` is called as bytes arrive.
async function download(url, onBytes) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const reader = response.body.getReader();
  const parts = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    onBytes(value.length);
  }
  return new Blob(parts);
}

// Every file of `names` under `base` from the cache, read in parallel; null if one is missing.
async function readCached(cache, base, names) {
  const hits = await Promise.all(names.map((name) => cache.match(new URL(name, base).href)));
  if (hits.some((hit) => !hit)) return null;
  const bytes = await Promise.all(hits.map(async (hit) => new Uint8Array(await hit.arrayBuffer())));
  return Object.fromEntries(names.map((name, i) => [name, bytes[i]]));
}

// A model's files: from the cache when its manifest is unchanged, else from the network.
async function modelFiles(entry) {
  const base = new URL(`./models/${entry.id}/`, self.location.href);
  const cache = await caches.open(CACHE);
  const manifestUrl = new URL('manifest.json', base).href;
  const versioned = entry.files.includes('manifest.json');
  // The cached copy is read while the current manifest is fetched, and used only if they agree.
  const [fresh, stored] = await Promise.all([
    versioned ? fetch(manifestUrl, { cache: 'no-store' }).then(async (r) => {
      if (!r.ok) throw new Error(`${manifestUrl}: HTTP ${r.status}`);
      return r.text();
    }) : null,
    versioned ? readCached(cache, base, entry.files) : null,
  ]);
  const cached = stored !== null && new TextDecoder().decode(stored['manifest.json']) === fresh;
  const files = cached ? stored : {};
  if (!cached) {
    const sizes = await Promise.all(entry.files.map(async (name) => {
      const head = await fetch(new URL(name, base), { method: 'HEAD' });
      return Number(head.headers.get('content-length') || 0);
    }));
    const total = sizes.reduce((a, b) => a + b, 0);
    let loaded = 0;
    for (const name of entry.files) {
      const url = new URL(name, base).href;
      const blob = await download(url, (n) => { loaded += n; post({ type: 'progress', loaded, total }); });
      // The manifest goes in last, so a half-filled cache is never taken as complete.
      if (name !== 'manifest.json') await cache.put(url, new Response(blob));
      files[name] = new Uint8Array(await blob.arrayBuffer());
    }
    if (fresh !== null) await cache.put(manifestUrl, new Response(fresh));
  }
  return { files, cached };
}

// Drops a model's cached files (its manifest first: without it the rest is never used).
async function forget(entry) {
  const base = new URL(`./models/${entry.id}/`, self.location.href);
  const cache = await caches.open(CACHE);
  for (const name of ['manifest.json', ...entry.files.filter((n) => n !== 'manifest.json')]) {
    await cache.delete(new URL(name, base).href);
  }
}

// sha256 (hex) of each file the manifest lists, by WebCrypto (~4x faster than hashing in
// WebAssembly); the module compares them with the manifest. Without a manifest: none.
async function digests(files) {
  if (!files['manifest.json']) return undefined;
  const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
  const names = Object.keys(files).filter((name) => name !== 'manifest.json');
  const sums = await Promise.all(names.map((name) => crypto.subtle.digest('SHA-256', files[name])));
  return JSON.stringify(Object.fromEntries(names.map((name, i) => [name, hex(sums[i])])));
}

// Warm-up after loading (see warmUp()): passes, and tokens per pass.
const WARM_UP_PASSES = 4;
const WARM_UP_TOKENS = 16;
let asked = false;

// The model from `files`: built while WebCrypto hashes the files on another thread, handed
// out only once the digests match the manifest.
async function build(glue, entry, files, mark) {
  const sums = digests(files).then(mark('digests'));
  sums.catch(() => {}); // awaited below, unless building fails first
  const unchecked = new glue.UncheckedSquint(files['config.json'], files['tokenizer.json'], entry.weights,
    files[entry.weights], files['manifest.json'] ?? undefined);
  mark('build')();
  try {
    return unchecked.verify(await sums);
  } finally {
    unchecked.free(); // emptied by verify either way
  }
}

async function load({ model: entry, level }) {
  const t0 = performance.now();
  // When each phase ended (ms from t0), for web/bench-reload.mjs.
  const phases = {};
  const mark = (name) => (value) => { phases[name] = performance.now() - t0; return value; };
  // A level from the page (forced, or chosen on an earlier visit) is used if it validates here.
  const chosen = level && supports(level) ? level : simdLevel();
  mark('simd')();
  if (!chosen) throw new Error('this browser has no WebAssembly SIMD (Chrome 91+, Firefox 89+, Safari 16.4+)');
  // The module compiles while the files are read.
  const [glue, got] = await Promise.all([loadWasm(chosen).then(mark('wasm')), modelFiles(entry).then(mark('files'))]);
  let { files, cached } = got;
  if (model) { model.free(); model = null; }
  try {
    model = await build(glue, entry, files, mark);
  } catch (e) {
    if (!cached) throw e;
    // A cached copy that does not check out (changed or damaged on disk) is dropped and the
    // model downloaded again.
    console.warn(`squint: the cached ${entry.id} failed its check (${e.message ?? e}); downloading it again`);
    await forget(entry);
    ({ files, cached } = await modelFiles(entry));
    model = await build(glue, entry, files, mark);
  }
  mark('verify')();
  post({ type: 'ready', info: JSON.parse(model.info()), level: chosen, cached, ms: performance.now() - t0,
    phases, startedAt: performance.timeOrigin + t0 });
  asked = false;
  setTimeout(() => warmUp(model, WARM_UP_PASSES), 0);
}

// V8 first runs new code in its baseline tier and optimizes functions once they are hot, so
// the first answer after a load is slower (~65 ms at 250 tokens in Chromium). Short passes
// while the user is still reading or typing make it hot; one per task, so that a question
// waits for at most one of them, and none once a question came.
function warmUp(loaded, passes) {
  if (passes === 0 || asked || model !== loaded) return;
  try {
    loaded.forward(WARM_UP_TOKENS);
  } catch (e) {
    console.warn(`squint: warm-up pass failed (${e.message ?? e}); answers are unaffected`);
    return;
  }
  setTimeout(() => warmUp(loaded, passes - 1), 0);
}

function ask({ id, question, context, params }) {
  if (!model) throw new Error('the model is not loaded yet');
  asked = true;
  const t0 = performance.now();
  const answers = JSON.parse(model.answer(question, context, params ? JSON.stringify(params) : ''));
  post({ type: 'answer', id, answers, ms: performance.now() - t0 });
}

self.onmessage = async ({ data }) => {
  try {
    if (data.type === 'load') await load(data);
    else if (data.type === 'ask') ask(data);
  } catch (e) {
    post({ type: 'error', id: data.id, during: data.type, message: e instanceof Error ? e.message : String(e) });
  }
};
