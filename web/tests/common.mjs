// Shared by the Node tests and benchmarks: paths, the wasm module, model files, native logits.
import { readFileSync, existsSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const web = join(dirname(fileURLToPath(import.meta.url)), '..');
export const repo = join(web, '..');
export const bundled = join(repo, 'models', 'minilm-l6-squad-int8');
export const dataDir = process.env.SQUINT_DATA_DIR
  ?? [join(repo, '..', 'shared', 'data'), '/work/shared/data'].find((d) => existsSync(d));
export const required = process.env.SQUINT_REQUIRE_ASSETS === '1';

/** The wasm-bindgen module of one build ('simd128' or 'relaxed'), initialised from bytes. */
export async function wasmModule(level) {
  const dir = join(web, 'www', 'pkg', level);
  if (!existsSync(join(dir, 'squint_web.js'))) {
    throw new Error(`${dir} is missing: run web/build.sh first`);
  }
  const glue = await import(join(dir, 'squint_web.js'));
  glue.initSync({ module: readFileSync(join(dir, 'squint_web_bg.wasm')) });
  return glue;
}

/** A model directory's files as the page would fetch them. */
export function modelFiles(dir) {
  const read = (name) => (existsSync(join(dir, name)) ? readFileSync(join(dir, name)) : undefined);
  const weights = existsSync(join(dir, 'model.int8.safetensors')) ? 'model.int8.safetensors' : 'model.safetensors';
  return {
    config: read('config.json'), tokenizer: read('tokenizer.json'), weights,
    bytes: read(weights), manifest: read('manifest.json'),
  };
}

export function load(glue, dir) {
  const f = modelFiles(dir);
  return new glue.Squint(f.config, f.tokenizer, f.weights, f.bytes, f.manifest);
}

/** Native `squint logits` of every 10th public-dev question (JSON Lines, float bits as hex). */
export function nativeLogits(limit, model = bundled) {
  const out = join(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'), 'web-tests');
  mkdirSync(out, { recursive: true });
  const file = join(out, `native-logits-${limit}.jsonl`);
  execFileSync('cargo', ['run', '--release', '--locked', '-q', '-p', 'squint-cli', '--', 'logits',
    '--model', model, '--data', join(dataDir, 'squad-dev-v1.1-public.json'),
    '--limit', String(limit), '--every', '10', '--out', file], { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] });
  return readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
}

/** Float32 logits as the same hex bit strings `squint logits` writes. */
export function bitsOf(logits) {
  const view = new DataView(new Float32Array(logits).buffer);
  let hex = '';
  for (let i = 0; i < logits.length; i++) hex += view.getUint32(i * 4, true).toString(16).padStart(8, '0');
  return hex;
}

export const AMAZON = 'The Amazon rainforest (Portuguese: Floresta Amazônica or Amazônia; Spanish: Selva Amazónica, Amazonía or usually Amazonia; French: Forêt amazonienne; Dutch: Amazoneregenwoud), also known in English as Amazonia or the Amazon Jungle, is a moist broadleaf forest that covers most of the Amazon basin of South America.';
export const AMAZON_Q = 'Which name is also used to describe the Amazon rainforest in English?';
