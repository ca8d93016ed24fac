// `node tests/e2e/serve-speed.mjs <dist> [<dist> ...]`: the MNIST histograms of the
// target-alignment figure (one per t, each over 10,000 digits of dim 784) timed on the CPU path in
// each build, side by side in one Chromium: what `trunk serve` serves against the release build.
import path from 'node:path';
import { serve, launch, open } from './harness.mjs';

const dists = process.argv.slice(2).map((d) => path.resolve(d));
const browser = await launch({ webgpu: false });
for (const dist of dists) {
  const { server, origin } = await serve({ '/': dist });
  const start = Date.now();
  const { page, errors } = await open(browser, `${origin}/index.html?backend=cpu`);
  page.setDefaultTimeout(0);
  const fig = page.locator('[data-figure="target-alignment"]');
  await fig.scrollIntoViewIfNeeded();
  const seen = new Map();
  // The status names each histogram as it lands: "... (MNIST at t = 0.5: 812 ms)."
  while (seen.size < 3) {
    const text = await fig.locator('.figure-status').textContent();
    const m = /MNIST at t = ([\d.]+): (\d+) ms/.exec(text ?? '');
    if (m) seen.set(m[1], Number(m[2]));
    await page.waitForTimeout(100);
    if (Date.now() - start > 30 * 60 * 1000) break;
  }
  const ms = [...seen.values()].sort((a, b) => a - b);
  console.log(`${dist}: MNIST histogram per t: ${[...seen].map(([t, v]) => `t ${t}: ${v} ms`).join(', ')}; median ${ms[Math.floor(ms.length / 2)]} ms${errors.length ? `; errors: ${errors.join(' ')}` : ''}`);
  await page.close();
  server.close();
}
await browser.close();
