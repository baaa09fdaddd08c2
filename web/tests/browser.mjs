// Shared by the Chromium test and benchmark: start `squint web` on loopback, launch Debian's
// Chromium (no download) with a fresh profile.
import { spawn } from 'node:child_process';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repo, dataDir } from './common.mjs';

export const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps dialling Google on this closed network.
export const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ...(process.env.CHROMIUM_EXTRA_ARGS ?? '').split(' ').filter(Boolean)];

/** The FP32 fine-tuned model, when the shared data is here (the page then offers the toggle). */
export function fp32Model() {
  const dir = dataDir && join(dataDir, 'models', 'minilm-l6-squad');
  return dir && existsSync(join(dir, 'model.safetensors')) ? dir : null;
}

/** Runs `squint web` on a free loopback port, serving the page in `root` (this checkout's
 * by default); resolves to { url, stop }. */
export function startServer(models, root = join(repo, 'web', 'www')) {
  // --root: the binary's default page directory is the checkout it was built in, which a shared
  // CARGO_TARGET_DIR may have built from another clone.
  const args = ['run', '--release', '--locked', '-q', '-p', 'squint-cli', '--', 'web', '--bind', '127.0.0.1:0',
    '--root', root];
  for (const m of models) args.push('--model', m);
  const child = spawn('cargo', args, { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/squint web: (http:\/\/\S+)/);
      if (m) resolve({ url: m[1], stop: () => child.kill('SIGINT') });
    });
    child.on('exit', (code) => reject(new Error(`squint web exited (${code}) before listening:\n${out}`)));
  });
}

export async function launch() {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'squint-chromium-'));
  return chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath, headless: true, args: chromiumArgs,
    viewport: { width: 1100, height: 1000 },
  });
}
