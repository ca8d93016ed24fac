// The article in the two other browser engines readers use: Firefox (Debian's firefox-esr, over
// WebDriver BiDi with puppeteer-core) and WebKit, Safari's engine (Debian's WebKitWebDriver with
// its MiniBrowser, under Xvfb, over classic WebDriver). Nothing here downloads a browser.
// Each runs: the article (every figure drawn, no error), the JS API on the CPU path against the
// float64 reference, the embed example, and screenshots of three formulas (beside Chromium's) in
// out/maths-<engine>-<k>.png (and the window on the digits' figure, once measured, in
// out/new-digits-<engine>.png). Whether the engine offers WebGPU is reported; where it does, the
// API's float64 checks run again with ?backend=webgpu.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { serve, launch, suite, assert, figuresInked } from './harness.mjs';
import { RECORD_TEXT, MEASURE } from './phone.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.DIST ?? path.resolve(here, '../../dist');
const out = path.join(here, 'out');
fs.mkdirSync(out, { recursive: true });
const reference = fs.readFileSync(path.join(here, 'reference.js'), 'utf8');

// Records what the page reports as errors (uncaught, unhandled rejections, console.error), read
// back by the checks: classic WebDriver has no console events.
const RECORDER = `<script>window.__errors = [];
addEventListener('error', (e) => __errors.push(String(e.message || e)));
addEventListener('unhandledrejection', (e) => __errors.push('unhandled: ' + String(e.reason && e.reason.message || e.reason)));
{ const ce = console.error; console.error = (...a) => { __errors.push(a.map(String).join(' ')); ce.apply(console, a); }; }
(${RECORD_TEXT})();
window.__inked = ${figuresInked};</script>`;
// Right after the charset declaration, before any other script: a minified page has no <head> tag.
const { server, origin } = await serve({ '/': dist }, {}, (html) => {
  const recorded = html.replace(/<meta charset=[^>]*>/i, (meta) => `${meta}${RECORDER}`);
  if (recorded === html) throw new Error('engines: no <meta charset> to put the error recorder after');
  return recorded;
});

/// The formulas photographed in every engine: a displayed system, the closed form, running text.
const FORMULAS = [
  ['#generative-modelling math[display="block"]', 'the ODE and T(x0) := x(1)'],
  ['#closed-form math[display="block"]', 'the closed form and its softmax'],
  ['#paths > p:last-of-type', 'running text: L_CFM − L_FM = E‖x1 − x0 − u*(x_t, t)‖²'],
];

// ---- engines: { name, goto(url), run(fn, ...args) -> value, shot(selector, file), view(file),
// close() }: `shot` photographs an element, `view` the window (WebKit's driver crops an element
// taller than the window to a wrong part of it). Chromium, whose full checks are run.mjs's, only
// photographs the formulas here. ----

async function firefox() {
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX ?? '/usr/bin/firefox-esr',
    headless: true,
    // Firefox's WebGPU (wgpu on Vulkan: lavapipe here) stays off on a blocklisted driver unless asked.
    extraPrefsFirefox: { 'dom.webgpu.enabled': true, 'gfx.webgpu.ignore-blocklist': true },
    // No viewport at the page's creation: Puppeteer's sets the screen's orientation too, a
    // WebDriver BiDi command that Firefox ESR 140 does not know (it fails the launch there).
    defaultViewport: null,
    args: ['--width=1280', '--height=900'],
  });
  const page = await browser.newPage();
  // The viewport is set before the orientation, so only that part's refusal is let pass.
  await page.setViewport({ width: 1280, height: 900 }).catch((e) => {
    if (!/unknown command emulation\.setScreenOrientationOverride/.test(e.message)) throw e;
  });
  return {
    name: 'firefox',
    version: await browser.version(),
    goto: (url) => page.goto(url, { waitUntil: 'load', timeout: 120000 }),
    run: (fn, ...args) => page.evaluate(fn, ...args),
    shot: async (selector, file) => (await page.$(selector)).screenshot({ path: file }),
    view: (file) => page.screenshot({ path: file }),
    resize: (width, height, ratio) => page.setViewport({ width, height, deviceScaleFactor: ratio }).catch((e) => {
      if (!/unknown command emulation\.setScreenOrientationOverride/.test(e.message)) throw e;
    }),
    close: () => browser.close(),
  };
}

async function webkit() {
  const port = 4400 + Math.floor(Math.random() * 400);
  const driver = spawn('xvfb-run', ['-a', '-s', '-screen 0 1400x1000x24', 'WebKitWebDriver', `--port=${port}`], {
    stdio: 'ignore', detached: true,
  });
  const base = `http://127.0.0.1:${port}`;
  const wd = async (method, route, body) => {
    const r = await fetch(base + route, {
      method, headers: { 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined,
    });
    const j = await r.json();
    if (j.value && j.value.error) throw new Error(`WebDriver ${route}: ${j.value.error}: ${j.value.message}`);
    return j.value;
  };
  for (let i = 0; ; i++) {
    try { await fetch(`${base}/status`); break; } catch (e) {
      if (i > 100) throw new Error(`WebKitWebDriver did not start: ${e.message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const binary = process.env.MINIBROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
  const session = await wd('POST', '/session', {
    capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary, args: ['--automation'] } } },
  });
  const id = session.sessionId;
  await wd('POST', `/session/${id}/timeouts`, { script: 600000, pageLoad: 120000 });
  await wd('POST', `/session/${id}/window/rect`, { width: 1280, height: 900 });
  return {
    name: 'webkit',
    version: `${session.capabilities.browserName} ${session.capabilities.browserVersion}`,
    goto: (url) => wd('POST', `/session/${id}/url`, { url }),
    run: async (fn, ...args) => {
      const script = `const done = arguments[arguments.length - 1];
        Promise.resolve((${fn})(...arguments[0])).then((v) => done({ ok: v === undefined ? null : v }), (e) => done({ err: String(e && e.stack || e) }));`;
      const r = await wd('POST', `/session/${id}/execute/async`, { script, args: [args] });
      if (r.err) throw new Error(r.err);
      return r.ok;
    },
    shot: async (selector, file) => {
      const el = await wd('POST', `/session/${id}/element`, { using: 'css selector', value: selector });
      const key = Object.keys(el)[0];
      await wd('POST', `/session/${id}/execute/sync`, { script: 'arguments[0].scrollIntoView({ block: "center" })', args: [el] });
      fs.writeFileSync(file, Buffer.from(await wd('GET', `/session/${id}/element/${el[key]}/screenshot`), 'base64'));
    },
    view: async (file) => fs.writeFileSync(file, Buffer.from(await wd('GET', `/session/${id}/screenshot`), 'base64')),
    // The window's size (the driver sets no pixel ratio: Xvfb's screen has 1).
    resize: (width, height) => wd('POST', `/session/${id}/window/rect`, { width, height }),
    close: async () => {
      await wd('DELETE', `/session/${id}`).catch(() => {});
      try { process.kill(-driver.pid); } catch { /* gone */ }
    },
  };
}

async function chromium() {
  const browser = await launch({ webgpu: false });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  return {
    name: 'chromium',
    version: browser.version(),
    goto: (url) => page.goto(url, { timeout: 120000 }),
    run: (fn, ...args) => page.evaluate(fn, args.length > 1 ? args : args[0]),
    shot: (selector, file) => page.locator(selector).first().screenshot({ path: file }),
    close: () => browser.close(),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Polls `fn` in the page until it returns true, for up to `seconds`.
async function until(e, fn, arg, seconds, what) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    if (await e.run(fn, arg)) return;
    if (Date.now() > end) throw new Error(`${e.name}: timed out waiting for ${what}`);
    await sleep(1000);
  }
}

async function errorsOf(e) {
  return e.run(() => [...window.__errors, ...[...document.querySelectorAll('.figure-error')].map((x) => x.textContent)]);
}

// The API on this engine's backend against the float64 reference (reference.js, which shares no
// code with the crate), a hand-made memorization case and a trainer.
async function apiChecks(e) {
  await e.run(() => new Promise((resolve) => {
    const ready = () => (window.wasmBindings ? resolve() : setTimeout(ready, 100));
    ready();
  }));
  await e.run((source) => { (0, eval)(source); }, reference);
  return e.run(async () => {
    const b = window.wasmBindings, ref = window.fmRef;
    const out = { backend: await b.backendName(), worst: 0, cosWorst: 0 };
    for (const [dim, n, m] of [[2, 500, 64], [64, 600, 16]]) {
      const data = dim > 2 ? ref.normals(n * dim, 4).map(Math.tanh) : ref.moons(n, 3);
      const noise = ref.normals(m * dim, 5);
      for (const t of [0, 0.5, 0.9, 0.99]) {
        const pts = new Float32Array(m * dim);
        for (let q = 0; q < m; q++) for (let k = 0; k < dim; k++) pts[q * dim + k] = (1 - t) * noise[q * dim + k] + t * data[((q * 7) % n) * dim + k];
        const got = await b.closedFormVelocity(data, dim, pts, t);
        out.worst = Math.max(out.worst, ref.maxRelativeError(got, ref.closedForm(data, dim, pts, t), dim));
      }
      const times = new Float32Array([0.1, 0.5, 0.9]);
      const cos = await b.cosineAlignment(data, dim, times, 32, 7);
      const want = ref.cosineAlignment(data, dim, Array.from(times), 32, 7);
      for (let i = 0; i < want.length; i++) out.cosWorst = Math.max(out.cosWorst, Math.abs(cos[i] - want[i]));
    }
    const moons = ref.moons(50, 1);
    const samples = await b.sampleClosedForm(moons, 2, ref.normals(2 * 200, 9), 100);
    out.memorized = ref.nearestFraction(moons, 2, samples, 0.01);
    const trainer = await b.createTrainer({ data: ref.moons(300, 2), dim: 2, hidden: 32, depth: 2, seed: 1 });
    const losses = await trainer.train(60);
    const drawn = await trainer.sample(ref.normals(2 * 64, 3), 10);
    trainer.free();
    out.trained = losses.length === 60 && losses.every(Number.isFinite) && drawn.length === 128 && drawn.every(Number.isFinite);
    try { await b.closedFormVelocity(moons, 3, moons, 0.5); out.rejected = 'resolved'; } catch (err) { out.rejected = err instanceof Error ? err.message : `not an Error: ${err}`; }
    return out;
  });
}

const engines = (process.env.ENGINES ?? 'firefox,webkit').split(',');
let allOk = true;
for (const name of [...engines, 'chromium']) {
  const maker = { firefox, webkit, chromium }[name];
  const t = suite(`browser tests (${name})`);
  let e;
  try {
    e = await maker();
  } catch (err) {
    console.log(`  FAIL  ${name} did not start: ${err.stack ?? err}`);
    allOk = false;
    continue;
  }
  console.log(`${name}: ${e.version}`);
  try {
    if (name !== 'chromium') {
      await t.check(`${name}: the article, every figure drawn, no error`, async () => {
        await e.goto(`${origin}/index.html`);
        const count = await e.run(() => document.querySelectorAll('[data-figure]').length);
        for (let i = 0; i < count; i++) {
          await e.run((k) => document.querySelectorAll('[data-figure]')[k].scrollIntoView({ block: 'center' }), i);
          await sleep(1500);
        }
        await until(e, figuresInked, '[data-figure]', 240, 'every figure to draw');
        // The digits' figure once its samples are measured, photographed in this engine.
        await e.run(() => document.querySelector('[data-figure="new-digits"]').scrollIntoView({ block: 'start' }));
        const measured = (name) => /held-out digits: [\d.]+\./.test(document.querySelector(`[data-figure="${name}"] .figure-status`)?.textContent ?? '');
        await until(e, measured, 'new-digits', 240, 'new-digits to measure its samples');
        await e.view(path.join(out, `new-digits-${name}.png`));
        const errors = await errorsOf(e);
        assert(errors.length === 0, `errors: ${errors.join('\n').slice(0, 2000)}`);
        const note = await e.run(() => document.getElementById('backend-note').textContent);
        return `${count} figures drawn; "${note.slice(0, 70)}…"`;
      });

      await t.check(`${name}: at 375 px, three figures as a phone shows them: chart text >= 11 CSS px, <= 1.1 canvas px per device px, no sideways scroll`, async () => {
        await e.resize(375, 812, 2);
        try {
          await e.goto(`${origin}/index.html`);
          const rows = [];
          const failures = [];
          for (const figure of ['velocity-field', 'cfm-vs-efm', 'new-digits']) {
            // Scrolled to until drawn: the page may still grow above it (its maths, other figures).
            const shown = (f) => {
              const root = document.querySelector(`[data-figure="${f}"]`);
              if (Math.abs(root.getBoundingClientRect().top) > 8) root.scrollIntoView({ block: 'start' });
              return window.__inked(`[data-figure="${f}"]`);
            };
            await until(e, shown, figure, 240, `${figure} to draw`);
            await sleep(2500);
            const m = await e.run(MEASURE, figure);
            const worst = m.canvases.map((c) => c.ratio).reduce((a, b) => (Math.abs(b - 1) > Math.abs(a - 1) ? b : a), 1);
            rows.push(`${figure} ${m.small ? m.small.css.toFixed(1) : '-'} px, ${worst.toFixed(2)}`);
            if (!m.small || !(m.small.css >= 11 - 1e-6)) failures.push(`${figure}: smallest text ${JSON.stringify(m.small)}`);
            if (!(Math.abs(worst - 1) <= 0.1)) failures.push(`${figure}: ${worst.toFixed(2)} canvas px per device px`);
            await e.view(path.join(out, `phone-${figure}-${name}.png`));
          }
          const sideways = await e.run(() => document.documentElement.scrollWidth - window.innerWidth);
          const ratio = await e.run(() => `${window.innerWidth} px wide, ratio ${window.devicePixelRatio}`);
          if (sideways > 1) failures.push(`the page scrolls sideways by ${sideways} px`);
          assert(failures.length === 0, `${ratio}: ${failures.join('; ')}`);
          return `${ratio}: ${rows.join('; ')}; out/phone-<figure>-${name}.png`;
        } finally {
          await e.resize(1280, 900, 1);
        }
      });

      await t.check(`${name}: the JS API on the CPU path against float64`, async () => {
        await e.goto(`${origin}/index.html`);
        await e.run(() => document.querySelectorAll('[data-figure]').forEach((f) => { f.style.display = 'none'; }));
        const r = await apiChecks(e);
        assert(r.backend === 'cpu', `backend ${r.backend}`);
        assert(r.worst < 1e-3 && r.cosWorst < 2e-3, `worst ${r.worst}, cosines ${r.cosWorst}`);
        assert(r.memorized >= 0.95, `memorized ${r.memorized}`);
        assert(r.trained, 'the trainer did not train, sample and free');
        assert(/^data has length 100, which is not a multiple of dim = 3/.test(r.rejected), `bad call: ${r.rejected}`);
        const errors = await errorsOf(e);
        assert(errors.length === 0, `errors: ${errors.join('\n').slice(0, 2000)}`);
        return `closedFormVelocity worst ${r.worst.toExponential(1)}, cosines ${r.cosWorst.toExponential(1)}; ${(100 * r.memorized).toFixed(0)}% memorized; trainer ok; bad call rejected`;
      });

      await t.check(`${name}: WebGPU where the engine offers it`, async () => {
        await e.goto(`${origin}/index.html`);
        const adapter = await e.run(async () => {
          if (!navigator.gpu) return 'no navigator.gpu';
          const a = await navigator.gpu.requestAdapter().catch((err) => null);
          return a ? `adapter (fallback: ${a.isFallbackAdapter ?? '?'})` : 'navigator.gpu, no adapter';
        });
        if (!adapter.startsWith('adapter')) return `not offered: ${adapter}`;
        await e.goto(`${origin}/index.html?backend=webgpu`);
        await e.run(() => document.querySelectorAll('[data-figure]').forEach((f) => { f.style.display = 'none'; }));
        const r = await apiChecks(e);
        assert(r.backend === 'webgpu', `an adapter, yet the page runs on ${r.backend}`);
        assert(r.worst < 1e-3 && r.cosWorst < 2e-3 && r.memorized >= 0.95 && r.trained, JSON.stringify(r));
        // Every WGSL kernel against its CPU twin, through this engine's shader compiler.
        await e.goto(`${origin}/gpu-check.html`);
        await until(e, () => !!document.body.dataset.done, null, 600, 'the GPU check page');
        const check = await e.run(() => ({
          status: document.getElementById('status').textContent,
          rows: [...document.querySelectorAll('#report tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent)),
        }));
        const failed = check.rows.filter((row) => row[6] !== 'pass');
        assert(check.rows.length >= 10 && failed.length === 0 && /^All \d+ kernels match the CPU/.test(check.status),
          `gpu-check: ${check.status} ${JSON.stringify(failed)}`);
        return `${adapter}: the API's float64 checks pass on it (worst ${r.worst.toExponential(1)}); gpu-check.html: ${check.status}`;
      });

      await t.check(`${name}: the embed example`, async () => {
        await e.goto(`${origin}/embed-example.html`);
        await e.run(() => document.querySelectorAll('fm-figure').forEach((f) => f.scrollIntoView()));
        await until(e, figuresInked, 'fm-figure:not(#broken)', 180, 'the embedded figures to draw');
        const broken = await e.run(() => document.querySelector('#broken').textContent);
        assert(/unknown figure/.test(broken), `the bad figure says: ${broken}`);
        const errors = (await errorsOf(e)).filter((x) => !/unknown figure/.test(x));
        assert(errors.length === 0, `errors: ${errors.join('\n').slice(0, 2000)}`);
        return 'figures drawn; the bad one explained';
      });
    }

    await t.check(`${name}: three formulas photographed`, async () => {
      await e.goto(`${origin}/index.html`);
      await e.run(() => document.fonts.ready.then(() => true));
      await sleep(500);
      const sizes = [];
      for (const [k, [selector]] of FORMULAS.entries()) {
        const file = path.join(out, `maths-${name}-${k + 1}${process.env.SHOT_SUFFIX ?? ''}.png`);
        await e.shot(selector, file);
        sizes.push(fs.statSync(file).size);
      }
      const font = await e.run(() => [...document.fonts].filter((f) => f.status === 'loaded').map((f) => f.family).join(', '));
      assert(/STIX2/.test(font), `math font not loaded: ${font}`);
      return `out/maths-${name}-{1,2,3}.png (${sizes.join(', ')} B); fonts loaded: ${font}`;
    });
  } finally {
    await e.close();
  }
  allOk = t.finish() && allOk;
}
server.close();
process.exit(allOk ? 0 : 1);
