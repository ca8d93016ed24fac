// The article on a phone: at 375 CSS px with device pixel ratios 2 and 3 (and at 1280 px with 1,
// which must keep passing), every figure is scrolled to and measured as a reader would see it:
// - the smallest chart text in CSS px: every fillText/strokeText of every canvas is recorded by
//   an init script, its font size scaled by the context's transform and by how the canvas is
//   shown (clientWidth / width);
// - every canvas's canvas pixels per displayed device pixel (width / (clientWidth x ratio));
// - formulas and tables: none wider than the column unless inside a scroll container, and a
//   container that scrolls shows a cue (a shadow at the edge it scrolls to);
// - the page never scrolls sideways;
// - controls at least 44 CSS px high at the phone's width;
// - a tap on the velocity field shows the weights a hover shows.
// Screenshots of every figure at 375 px go to out/phone-<figure>-<ratio>.png.
import path from 'node:path';
import { assert, figuresInked } from './harness.mjs';

/// Records chart text as drawn: for each canvas, its smallest text in CSS px (a font size that
/// cannot be read counts as 0: it fails).
export const RECORD_TEXT = () => {
  window.__chartText = new WeakMap();
  for (const name of ['fillText', 'strokeText']) {
    const draw = CanvasRenderingContext2D.prototype[name];
    CanvasRenderingContext2D.prototype[name] = function (text, ...rest) {
      const c = this.canvas;
      if (c && c.isConnected && c.clientWidth > 0 && String(text).trim() !== '') {
        const m = /(\d+(?:\.\d+)?)px/.exec(this.font);
        const t = this.getTransform();
        const css = (m ? Number(m[1]) : 0) * Math.hypot(t.a, t.b) * (c.clientWidth / c.width);
        const was = window.__chartText.get(c);
        if (!was || css < was.css) window.__chartText.set(c, { css, text: String(text).slice(0, 30) });
      }
      return draw.call(this, text, ...rest);
    };
  }
};

/// In the page: the measures of one figure now.
export const MEASURE = (name) => {
  const root = document.querySelector(`[data-figure="${name}"]`);
  const dpr = window.devicePixelRatio;
  const canvases = [...root.querySelectorAll('canvas')].map((c, k) => ({
    k,
    ratio: c.width / (c.clientWidth * dpr),
    shown: [c.clientWidth, c.clientHeight],
  }));
  let small = null;
  [...root.querySelectorAll('canvas')].forEach((c, k) => {
    const r = window.__chartText.get(c);
    if (r && (small === null || r.css < small.css)) small = { k, ...r };
  });
  return { canvases, small };
};

/// In the page: formulas and tables wider than the column and not inside a scroll container,
/// and scroll containers that overflow without a cue.
const OVERFLOWS = () => {
  const column = document.documentElement.clientWidth;
  const scroller = (e) => {
    for (let p = e; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return p;
    }
    return null;
  };
  const bad = [];
  const cued = [];
  for (const e of document.querySelectorAll('math[display="block"], table')) {
    const box = e.getBoundingClientRect();
    if (box.width === 0) continue;
    // The element's box, or its content where that overflows the box.
    const range = document.createRange();
    range.selectNodeContents(e);
    const content = range.getBoundingClientRect();
    const r = { left: Math.min(box.left, content.left), right: Math.max(box.right, content.right) };
    const s = scroller(e);
    const label = `${e.tagName.toLowerCase()} "${e.textContent.replace(/\s+/g, ' ').trim().slice(0, 40)}"`;
    if (!s) {
      if (r.left < -1 || r.right > column + 1) bad.push(`${label} spans ${r.left.toFixed(0)}-${r.right.toFixed(0)} px outside a scroll container`);
      continue;
    }
    const sr = s.getBoundingClientRect();
    if (sr.left < -1 || sr.right > column + 1) bad.push(`${label}: its scroll container spans ${sr.left.toFixed(0)}-${sr.right.toFixed(0)} px`);
    if (s.scrollWidth > s.clientWidth + 1) {
      const cue = getComputedStyle(s).backgroundImage;
      if (!/gradient/.test(cue)) bad.push(`${label} scrolls with no cue`);
      else cued.push(label);
    }
  }
  return { bad, cued: cued.length, sideways: document.documentElement.scrollWidth - window.innerWidth };
};

/// In the page: controls of the figures (buttons, selects, sliders, summaries) less than 44 CSS
/// px high, as shown.
const SMALL_TARGETS = () => {
  const small = [];
  for (const e of document.querySelectorAll('.figure-root button, .figure-root select, .figure-root input, .figure-root summary')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (r.height < 43.5) small.push(`${e.closest('[data-figure]')?.dataset.figure}: ${e.tagName.toLowerCase()} "${(e.textContent || e.id || e.getAttribute('data-setting') || '').trim().slice(0, 24)}" ${r.height.toFixed(0)} px`);
  }
  return small;
};

/// `query`: the page's query ("?backend=webgpu": the figures are built again on the GPU once its
/// check passes, and must stay fitted); `configs`: which of the three sizes.
export async function phoneChecks({ t, browser, origin, out, query = '', only = null }) {
  const configs = [
    { width: 375, height: 812, dpr: 2, phone: true },
    { width: 375, height: 812, dpr: 3, phone: true },
    { width: 1280, height: 900, dpr: 1, phone: false },
  ].filter((c, k) => only === null || only.includes(k));
  const mode = query ? ` (${query})` : '';
  for (const { width, height, dpr, phone } of configs) {
    await t.check(`${phone ? 'phone' : 'laptop'}${mode} at ${width} px, device pixel ratio ${dpr}: every figure's chart text >= 11 CSS px, <= 1.1 canvas px per device px, formulas and tables fit or scroll with a cue, no sideways scroll${phone ? ', controls >= 44 px, a tap shows what a hover does' : ', a hover shows the weights'}`, async () => {
      const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: dpr, isMobile: phone, hasTouch: phone });
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      try {
        await page.addInitScript(RECORD_TEXT);
        await page.goto(`${origin}/index.html${query}`);
        await page.waitForFunction(() => window.wasmBindings && window.wasmBindings.backendName, null, { timeout: 60000 });
        if (query) {
          // The GPU check settles the backend; the figures are then rebuilt on it.
          const backend = await page.evaluate(() => window.wasmBindings.backendName());
          assert(backend === 'webgpu', `the page runs on ${backend}`);
        }
        const names = await page.$$eval('[data-figure]', (es) => es.map((e) => e.getAttribute('data-figure')));
        const failures = [];
        const rows = [];
        for (const name of names) {
          const fig = page.locator(`[data-figure="${name}"]`);
          await fig.scrollIntoViewIfNeeded();
          await page.waitForFunction(figuresInked, `[data-figure="${name}"]`, { timeout: 120000, polling: 250 });
          await page.waitForTimeout(600);
          const m = await page.evaluate(MEASURE, name);
          const worst = m.canvases.map((c) => c.ratio).reduce((a, b) => (Math.abs(b - 1) > Math.abs(a - 1) ? b : a), 1);
          rows.push(`${name} ${m.small ? m.small.css.toFixed(1) : '-'} px ${worst.toFixed(2)}`);
          if (!m.small) failures.push(`${name}: no chart text recorded`);
          else if (!(m.small.css >= 11 - 1e-6)) failures.push(`${name}: text "${m.small.text}" on canvas ${m.small.k} at ${m.small.css.toFixed(2)} CSS px`);
          for (const c of m.canvases) {
            // Over 1.1: drawn for a wider column and scaled down (text shrinks); under 0.9: drawn
            // for fewer pixels than shown (blurred).
            if (!(Math.abs(c.ratio - 1) <= 0.1)) failures.push(`${name}: canvas ${c.k} draws ${c.ratio.toFixed(2)} canvas px per device px (shown ${c.shown.join(' x ')})`);
          }
          if (phone) {
            await fig.screenshot({ path: path.join(out, `phone-${name}-${dpr}.png`) });
            // The controls stay in sight while the last of the figure's canvases is read.
            const sight = await page.evaluate((name) => {
              const root = document.querySelector(`[data-figure="${name}"]`);
              const panel = root.querySelector('.figure-controls');
              const last = [...root.querySelectorAll('canvas')].pop();
              if (!panel || panel.children.length === 0 || !last) return null;
              last.scrollIntoView({ block: 'end' });
              const r = panel.getBoundingClientRect();
              return r.top >= -1 && r.bottom <= window.innerHeight + 1 ? null : `${name}: its controls at ${r.top.toFixed(0)}-${r.bottom.toFixed(0)} px while its last canvas ends the screen`;
            }, name);
            if (sight) failures.push(sight);
            // Downloads: one small control, the buttons folded behind it.
            const tools = await page.evaluate((name) => {
              const root = document.querySelector(`[data-figure="${name}"]`);
              const shown = [...root.querySelectorAll('button')].filter((b) => /^Download/.test(b.textContent) && b.checkVisibility());
              return [root.querySelectorAll('details.figure-tools > summary').length, shown.length];
            }, name);
            if (tools[0] !== 1 || tools[1] !== 0) failures.push(`${name}: ${tools[0]} download controls, ${tools[1]} download buttons shown`);
          }
        }
        const o = await page.evaluate(OVERFLOWS);
        failures.push(...o.bad);
        if (o.sideways > 1) failures.push(`the page scrolls sideways by ${o.sideways} px`);
        if (phone) failures.push(...(await page.evaluate(SMALL_TARGETS)));
        // A tap on the velocity field (a pointer with no hover) shows the weights at that point,
        // as a mouse's hover does at 1280 px: the probe drawn is where the finger or the mouse is.
        const field = page.locator('[data-figure="velocity-field"]');
        await field.scrollIntoViewIfNeeded();
        const canvas = field.locator('canvas').first();
        const box = await canvas.boundingBox();
        const [fx, fy] = [0.7, 0.3];
        if (phone) await canvas.tap({ position: { x: box.width * fx, y: box.height * fy } });
        else await page.mouse.move(box.x + box.width * fx, box.y + box.height * fy);
        await page.waitForTimeout(800);
        const probe = await canvas.getAttribute('data-probe');
        // Plane::DEFAULT: [-3.2, 3.2] inside an 8 px margin.
        const expect = [-3.2 + 6.4 * (box.width * fx - 8) / (box.width - 16), 3.2 - 6.4 * (box.height * fy - 8) / (box.height - 16)];
        const got = (probe ?? '').split(',').map(Number);
        if (!probe || Math.hypot(got[0] - expect[0], got[1] - expect[1]) > 0.05) failures.push(`velocity-field after a ${phone ? 'tap' : 'hover'} at (${expect.map((v) => v.toFixed(2))}): probe ${probe}`);
        const status = await field.locator('.figure-status').textContent();
        if (/Hover/.test(status)) failures.push(`velocity-field's status asks for a hover: "${status}"`);
        // With "Your points", a tap (or a click) adds a training point where it lands. On the CPU
        // path only: on SwiftShader's WebGPU the figures' shared queue still holds the digits'
        // closed-form paths (40 steps over 10,000 digits, tens of seconds on this machine's CPU)
        // submitted while the page was scrolled, and the field waits behind them.
        if (!query) await addsAPoint({ page, field, canvas, box, phone, failures });
        if (errors.length) failures.push(`page errors: ${errors.join('; ')}`);
        assert(failures.length === 0, `${failures.length} failures:\n  ${failures.join('\n  ')}\n(figure, smallest text, worst canvas ratio: ${rows.join('; ')})`);
        return `${rows.join('; ')}; ${o.cued} formulas or tables scroll with a cue`;
      } finally {
        await context.close();
      }
    });
  }
}

/// With the velocity field's data set "Your points", a tap (a click on a laptop) adds a point.
async function addsAPoint({ page, field, canvas, box, phone, failures }) {
  const points = async () => Number(/^(\d+) training points/.exec(await field.locator('.figure-status').textContent())?.[1]);
  const moons = await points();
  await page.selectOption('#vf-dataset', 'custom');
  // The field of the reader's own points (3 to start with) replaces the moons' (200).
  await page.waitForFunction((n) => {
    const m = /^(\d+) training points/.exec(document.querySelector('[data-figure="velocity-field"] .figure-status').textContent);
    return m && Number(m[1]) !== n;
  }, moons, { timeout: 60000 }).catch(async (e) => {
    throw new Error(`velocity-field did not switch to your points: ${moons} points before, data set now ${await page.inputValue('#vf-dataset')}, status "${await field.locator('.figure-status').textContent()}" (${e.message.split('\n')[0]})`);
  });
  const before = await points();
  if (phone) await canvas.tap({ position: { x: box.width * 0.3, y: box.height * 0.7 } });
  else await canvas.click({ position: { x: box.width * 0.3, y: box.height * 0.7 } });
  await page.waitForFunction((n) => Number(/^(\d+) training points/.exec(document.querySelector('[data-figure="velocity-field"] .figure-status').textContent)?.[1]) === n, before + 1, { timeout: 60000 }).catch(() => {});
  const after = await points();
  if (after !== before + 1) failures.push(`velocity-field with your points: ${before} points before a ${phone ? 'tap' : 'click'}, ${after} after`);
}
