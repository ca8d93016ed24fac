// Browser checks of hostile and careless use: crafted links and attributes stay data, a strict
// Content-Security-Policy, and no leaks over many mount/remove and train/free cycles.
import path from 'node:path';
import { serve, assert, figuresInked } from './harness.mjs';

// Classic payloads: each would call window.__xss() if it ever became markup or script.
export const PAYLOADS = [
  '<img src=x onerror=__xss()>',
  '"><svg onload=__xss()>',
  "'><script>__xss()</script>",
  'javascript:__xss()',
  '</p><iframe srcdoc="<script>parent.__xss()</script>"></iframe>',
  '<a href="javascript:__xss()">x</a>',
  '%3Cimg%20src%3Dx%20onerror%3D__xss()%3E',
  '%E0%A4%A', '%FF%FE%', '%',
  '__proto__', 'constructor', 'prototype', 'toString',
  '${__xss()}', '{{constructor.constructor("__xss()")()}}',
  '\u202e\u0000\ufffd',
];

// Counts what a payload would do: calls of __xss and alert, dialogs, new script-ish elements.
const TRAP = () => {
  window.__xssCount = 0;
  window.__xss = () => { window.__xssCount++; };
  window.alert = window.__xss;
};

async function hostilePage(browser, url, waitForBindings = true) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  let dialogs = 0;
  page.on('dialog', (d) => { dialogs++; d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.addInitScript(TRAP);
  await page.goto(url);
  if (waitForBindings) await page.waitForFunction(() => window.wasmBindings && window.wasmBindings.backendName, null, { timeout: 60000 });
  return { page, errors, dialogs: () => dialogs };
}

// Elements that only injected markup would have put inside the figures.
const INJECTED = () => [...document.querySelectorAll('[data-figure], fm-figure')]
  .flatMap((f) => [...f.querySelectorAll('script, iframe, img, a[href^="javascript"], [onerror], [onload]')]).length;

export async function xssChecks({ t, browser, origin, query }) {
  await t.check('crafted links and <fm-figure> attributes stay data: payloads inert, the page keeps working', async () => {
    const raw = (p) => p;
    const fragment = [
      ...PAYLOADS.map((p) => `velocity-field.t=${raw(p)}&dataset=${raw(p)}&${raw(p)}=1`),
      ...PAYLOADS.map((p) => `${raw(p)}.t=0.5`),
      '__proto__.polluted=1', 'constructor.prototype=1',
    ].join('|');
    const long = 'velocity-field.t=0.5|'.repeat(20000) + 'a'.repeat(100000);
    let tried = 0;
    const notes = [];
    // The article, with every payload in its address at once, then with a huge fragment.
    for (const [label, hash] of [['payloads', fragment], ['a 520 kB fragment', long]]) {
      const { page, errors, dialogs } = await hostilePage(browser, `${origin}/index.html${query}#${hash}`);
      tried += label === 'payloads' ? PAYLOADS.length * 4 + 2 : 1;
      await page.locator('[data-figure="velocity-field"]').scrollIntoViewIfNeeded();
      await page.waitForFunction(figuresInked, '[data-figure="velocity-field"]', { timeout: 120000 });
      // A setting the reader changes still reaches the address.
      await page.locator('[data-figure="velocity-field"] input[data-setting=t]').fill('0.3');
      await page.waitForTimeout(300);
      const state = await page.evaluate((inj) => ({
        xss: window.__xssCount, injected: (0, eval)(`(${inj})`)(), polluted: ({}).polluted,
        hash: location.hash.length, t: document.querySelector('[data-figure="velocity-field"] input[data-setting=t]').value,
      }), INJECTED.toString());
      assert(state.xss === 0 && dialogs() === 0, `${label}: a payload ran (${state.xss} calls, ${dialogs()} dialogs)`);
      assert(state.injected === 0, `${label}: ${state.injected} injected elements`);
      assert(state.polluted === undefined, `${label}: Object.prototype polluted`);
      assert(state.t === '0.3', `${label}: the slider stopped working`);
      assert(errors.length === 0, `${label}: page errors: ${errors.join('\n').slice(0, 2000)}`);
      notes.push(`${label}: inert`);
      await page.close();
    }
    // The embed example, with payloads as names, ids, attributes and properties.
    const { page, errors, dialogs } = await hostilePage(browser, `${origin}/embed-example.html${query}#${fragment}`, false);
    await page.waitForFunction(figuresInked, '#field', { timeout: 120000 });
    const shown = await page.evaluate(async (payloads) => {
      const made = [];
      for (const p of payloads) {
        const a = document.createElement('fm-figure');
        a.setAttribute('name', p);
        const b = document.createElement('fm-figure');
        b.setAttribute('name', 'velocity-field');
        b.id = p;
        b.setAttribute('n', '50');
        for (const key of ['t', 'dataset', 'theme', 'n']) b.setAttribute(key, p);
        document.querySelector('main').append(a, b);
        made.push(a, b);
      }
      await new Promise((r) => setTimeout(r, 3000));
      for (const [i, b] of made.entries()) if (i % 2) { b.t = payloads[(i - 1) / 2]; b.dataset = payloads[0]; }
      await new Promise((r) => setTimeout(r, 1000));
      // Every payload given as a name comes back as text in its error box.
      const names = made.filter((_, i) => i % 2 === 0);
      const asText = names.filter((el, i) => el.textContent.includes(payloads[i])).length;
      const boxes = document.querySelectorAll('fm-figure .figure-error').length;
      for (const el of made) el.remove();
      return { asText, boxes, count: names.length };
    }, PAYLOADS);
    tried += PAYLOADS.length * 7;
    const state = await page.evaluate((inj) => ({ xss: window.__xssCount, injected: (0, eval)(`(${inj})`)() }), INJECTED.toString());
    assert(state.xss === 0 && dialogs() === 0, `embed: a payload ran (${state.xss} calls, ${dialogs()} dialogs)`);
    assert(state.injected === 0, `embed: ${state.injected} injected elements`);
    assert(shown.asText === shown.count, `only ${shown.asText} of ${shown.count} bad names shown as text`);
    // The page's own figure still answers its controls.
    await page.evaluate(() => { document.querySelector('#field').t = 0.25; });
    await page.waitForTimeout(500);
    assert(await page.inputValue('#field input[data-setting=t]') === '0.25', 'the embedded figure stopped working');
    assert(errors.length === 0, `embed: page errors: ${errors.join('\n').slice(0, 2000)}`);
    await page.close();
    return `${tried} payload placements tried, 0 executed, 0 injected elements; ${shown.boxes} error boxes; ${notes.join('; ')}`;
  });
}

// The policy a strict blog sends (README, "Embed a figure").
export const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
  + "img-src 'self' data: blob:; connect-src 'self'";

export async function cspChecks({ t, browser, dist, query, mode, out }) {
  await t.check('under a strict Content-Security-Policy the article and the embed example draw every figure, 0 violations', async () => {
    const { server, origin } = await serve({ '/': dist }, { 'content-security-policy': CSP });
    const notes = [];
    try {
      for (const [file, selector] of [['index.html', '[data-figure]'], ['embed-example.html', 'fm-figure:not(#broken)']]) {
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const errors = [];
        page.on('pageerror', (e) => errors.push(String(e)));
        page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
        await page.addInitScript(() => {
          window.__violations = [];
          document.addEventListener('securitypolicyviolation', (e) => {
            window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber} ${e.sample}`);
          });
        });
        await page.goto(`${origin}/${file}${query}`);
        const roots = await page.locator(selector).count();
        assert(roots > 0, `${file}: no figures`);
        // Scroll through, so every figure becomes visible and draws.
        for (let i = 0; i < roots; i++) {
          await page.locator(selector).nth(i).scrollIntoViewIfNeeded();
          await page.waitForTimeout(1500);
        }
        await page.waitForFunction(figuresInked, selector, { timeout: 180000 }).catch(async (e) => {
          const blank = await page.$$eval(selector, (els) => els.map((el) => el.getAttribute('data-figure') ?? el.id));
          throw new Error(`${file}: not every figure drew (${blank.join(', ')}): ${e.message}`);
        });
        const violations = await page.evaluate(() => window.__violations);
        await page.screenshot({ path: path.join(out, `csp-${file.replace('.html', '')}-${mode}.png`) });
        assert(violations.length === 0, `${file}: ${violations.length} violations: ${[...new Set(violations)].slice(0, 10).join('\n')}`);
        assert(errors.length === 0, `${file}: page errors: ${errors.join('\n').slice(0, 2000)}`);
        notes.push(`${file}: ${roots} figures drawn, 0 violations`);
        await page.close();
      }
    } finally {
      server.close();
    }
    return notes.join('; ');
  });
}
