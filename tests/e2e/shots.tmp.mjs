import { serve, launch, figuresInked } from './harness.mjs';
const { server, origin } = await serve({ '/': '/work/main/dist' });
const browser = await launch({ webgpu: false });
const context = await browser.newContext({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
const page = await context.newPage();
await page.goto(`${origin}/index.html`);
await page.waitForFunction(() => window.wasmBindings && window.wasmBindings.backendName);
for (const name of (process.env.FIGS ?? 'new-digits').split(',')) {
  await page.waitForFunction(figuresInked, `[data-figure="${name}"]`, { timeout: 120000, polling: 500 });
  const wait = Number(process.env.WAIT ?? 3000);
  if (name === 'new-digits') await page.waitForFunction(() => /held-out digits: [\d.]+\./.test(document.querySelector('[data-figure="new-digits"] .figure-status')?.textContent ?? ''), null, { timeout: 300000 });
  else await page.waitForTimeout(wait);
  await page.locator(`[data-figure="${name}"]`).screenshot({ path: `/tmp/shot-${name}.png` });
}
if (process.env.TOP) { await page.evaluate(() => document.querySelector('#closed-form').scrollIntoView()); await page.waitForTimeout(500); await page.screenshot({ path: '/tmp/shot-closed-form.png' }); }
await browser.close(); server.close();
