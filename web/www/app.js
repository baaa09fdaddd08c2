// The page: picks a model, hands questions to the worker, shows the answer in its context.
const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const state = (s) => { document.body.dataset.state = s; };
let models = [];
let pending = null;
let asked = 0;

function status(text) { $('model-status').textContent = text; }

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
  state('error');
}

// The SIMD build the worker chose on an earlier visit from this browser and CPU: its probe
// (~35 ms) would otherwise delay every load. `?simd=relaxed|simd128` overrides it.
const SIMD_KEY = 'squint-simd';
const agent = `${navigator.userAgent} / ${navigator.hardwareConcurrency} threads`;
const forcedSimd = new URLSearchParams(location.search).get('simd');

function rememberedSimd() {
  try {
    const saved = JSON.parse(localStorage.getItem(SIMD_KEY));
    return saved?.agent === agent && ['relaxed', 'simd128'].includes(saved.level) ? saved.level : null;
  } catch {
    return null; // storage blocked or unreadable: probe again
  }
}

function rememberSimd(level) {
  try {
    localStorage.setItem(SIMD_KEY, JSON.stringify({ agent, level }));
  } catch {
    // storage blocked: the next load probes again
  }
}

function load(entry) {
  $('submit').disabled = true;
  $('download').value = 0;
  status(`Loading ${entry.precision}…`);
  state('loading');
  worker.postMessage({ type: 'load', model: entry, level: forcedSimd ?? rememberedSimd() });
}

function renderAnswer(context, answers, ms) {
  const best = answers[0];
  const chars = Array.from(context); // start/end count characters (code points), as in Python
  const target = $('highlight');
  target.replaceChildren();
  if (!best || best.answer === '') {
    $('answer').textContent = '(no answer)';
    target.textContent = context;
  } else {
    $('answer').textContent = best.answer;
    const mark = document.createElement('mark');
    mark.textContent = chars.slice(best.start, best.end).join('');
    target.append(chars.slice(0, best.start).join(''), mark, chars.slice(best.end).join(''));
  }
  $('score').textContent = best ? best.score.toFixed(3) : '—';
  $('latency').textContent = `${ms.toFixed(1)} ms`;
  state('answered');
}

worker.onmessage = ({ data }) => {
  switch (data.type) {
    case 'progress': {
      $('download').value = data.total ? data.loaded / data.total : 0;
      const mb = (n) => (n / 1e6).toFixed(1);
      status(`Downloading the model: ${mb(data.loaded)} of ${mb(data.total)} MB`);
      break;
    }
    case 'ready':
      if (!forcedSimd) rememberSimd(data.level);
      $('download').value = 1;
      $('kernel').textContent = `${data.info.kernel} (${data.level === 'relaxed' ? 'relaxed SIMD' : 'SIMD128'})`;
      status(`Ready: ${data.info.precision}, ${data.info.layers} layers, loaded in ${Math.round(data.ms)} ms${data.cached ? ' from the cache' : ''}.`);
      $('submit').disabled = false;
      // Load phases, relative to this page's navigation, for web/bench-reload.mjs.
      document.body.dataset.phases = JSON.stringify({ start: data.startedAt - performance.timeOrigin, ...data.phases });
      state('ready');
      break;
    case 'answer':
      if (pending && data.id === pending.id) renderAnswer(pending.context, data.answers, data.ms);
      pending = null;
      $('submit').disabled = false;
      break;
    case 'error':
      pending = null;
      $('submit').disabled = data.during === 'load';
      if (data.during === 'load') status('The model could not be loaded.');
      showError(data.message);
      break;
  }
};

$('ask').addEventListener('submit', (event) => {
  event.preventDefault();
  $('error').hidden = true;
  const question = $('question').value;
  const context = $('context').value;
  pending = { id: ++asked, context };
  $('submit').disabled = true;
  state('busy');
  worker.postMessage({ type: 'ask', id: pending.id, question, context });
});

async function start() {
  try {
    const response = await fetch('models/index.json', { cache: 'no-store' });
    if (!response.ok) throw new Error(`models/index.json: HTTP ${response.status}`);
    models = await response.json();
    if (!models.length) throw new Error('the server offers no model');
  } catch (e) {
    status('No model to load.');
    showError(e.message);
    return;
  }
  const preferred = models.find((m) => m.precision.startsWith('int8')) ?? models[0];
  if (models.length > 1) {
    const box = $('precision-options');
    for (const m of models) {
      const label = document.createElement('label');
      const input = Object.assign(document.createElement('input'),
        { type: 'radio', name: 'precision', value: m.id, checked: m === preferred });
      input.addEventListener('change', () => load(m));
      label.append(input, ` ${m.precision.toUpperCase()}`);
      box.append(label);
    }
    $('precision').hidden = false;
  }
  load(preferred);
}

start();
