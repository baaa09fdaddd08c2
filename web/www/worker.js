// The model lives here, off the main thread: downloads (with progress, cached with the Cache
// API), loads into WebAssembly, answers. Messages: {type:'load', model, level?} and
// {type:'ask', id, question, context, params}.
import { simdLevel } from './simd.js';

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

// A model's files: from the cache when its manifest is unchanged, else from the network.
async function modelFiles(entry) {
  const base = new URL(`./models/${entry.id}/`, self.location.href);
  const cache = await caches.open(CACHE);
  const manifestUrl = new URL('manifest.json', base).href;
  const fresh = entry.files.includes('manifest.json')
    ? await (await fetch(manifestUrl, { cache: 'no-store' })).text() : null;
  const cachedManifest = fresh === null ? null : await cache.match(manifestUrl);
  const reuse = cachedManifest && (await cachedManifest.text()) === fresh;
  const files = {};
  let cached = reuse;
  if (reuse) {
    for (const name of entry.files) {
      const hit = await cache.match(new URL(name, base).href);
      if (!hit) { cached = false; break; }
      files[name] = new Uint8Array(await hit.arrayBuffer());
    }
  }
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

async function load({ model: entry, level }) {
  const t0 = performance.now();
  const chosen = level || simdLevel();
  if (!chosen) throw new Error('this browser has no WebAssembly SIMD (Chrome 91+, Firefox 89+, Safari 16.4+)');
  const glue = await loadWasm(chosen);
  const { files, cached } = await modelFiles(entry);
  if (model) { model.free(); model = null; }
  model = new glue.Squint(files['config.json'], files['tokenizer.json'], entry.weights,
    files[entry.weights], files['manifest.json'] ?? undefined);
  post({ type: 'ready', info: JSON.parse(model.info()), level: chosen, cached, ms: performance.now() - t0 });
}

function ask({ id, question, context, params }) {
  if (!model) throw new Error('the model is not loaded yet');
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
