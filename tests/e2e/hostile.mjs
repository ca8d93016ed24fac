// Browser checks of hostile and careless use: crafted links and attributes stay data, a strict
// Content-Security-Policy, and no leaks over many mount/remove and train/free cycles.
import path from 'node:path';
import { serve, launch, assert, figuresInked, fence } from './harness.mjs';

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
        // A browser of its own for each page: on a software WebGPU adapter one GPU process runs
        // every page's kernels and composites them, and the work an earlier page queued (the
        // digits figures: seconds of it) would otherwise hold this page's first frames back.
        const own = mode === 'webgpu' ? await launch({ webgpu: true }) : browser;
        try {
          const page = await own.newPage({ viewport: { width: 1280, height: 900 } });
          const errors = [];
          page.on('pageerror', (e) => errors.push(String(e)));
          page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
          await page.addInitScript(() => {
            window.__violations = [];
            document.addEventListener('securitypolicyviolation', (e) => {
              window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber} ${e.sample}`);
            });
          });
          // Neither the load event nor a scroll waits for rendered frames: on a software WebGPU
          // adapter the GPU process that composites the page also runs the figures' kernels, and
          // a previous test's queued work can hold frames back for tens of seconds. What this
          // test checks (every figure draws, no violation) is waited for below.
          await page.goto(`${origin}/${file}${query}`, { waitUntil: 'domcontentloaded', timeout: 60000 });
          const roots = await page.locator(selector).count();
          assert(roots > 0, `${file}: no figures`);
          // Scroll through, so every figure becomes visible and draws.
          for (let i = 0; i < roots; i++) {
            await page.locator(selector).nth(i).evaluate((el) => el.scrollIntoView({ block: 'center' }));
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
        } finally {
          if (own !== browser) await own.close();
        }
      }
    } finally {
      server.close();
    }
    return notes.join('; ');
  });
}

// Counts live GPU buffers: created and neither destroyed nor collected (a debug counter of the
// page's WebGPU objects, installed before the module loads).
const COUNT_GPU_BUFFERS = () => {
  window.__liveGpuBuffers = () => 0;
  if (!window.GPUDevice) return;
  const live = new Set();
  const create = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (descriptor) {
    const buffer = create.call(this, descriptor);
    live.add(new WeakRef(buffer));
    return buffer;
  };
  const destroy = GPUBuffer.prototype.destroy;
  GPUBuffer.prototype.destroy = function () {
    this.__destroyed = true;
    return destroy.call(this);
  };
  window.__liveGpuBuffers = () => {
    let n = 0;
    for (const r of live) {
      const b = r.deref();
      if (!b || b.__destroyed) live.delete(r);
      else n++;
    }
    return n;
  };
};


export async function soakChecks({ t, browser, origin, query, mode }) {
  await t.check('no leaks: 100 cycles (40 on WebGPU) of every <fm-figure> and of createTrainer/train(50)/free stay flat (< 5% from cycle 10 to the last)', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.addInitScript(COUNT_GPU_BUFFERS);
    // An element removed while the module is still loading must never mount.
    await page.addInitScript(() => {
      document.addEventListener('DOMContentLoaded', () => {
        const ghost = document.createElement('fm-figure');
        ghost.setAttribute('name', 'velocity-field');
        document.body.append(ghost);
        window.__ghost = ghost;
        // Defined, so its connectedCallback has started loading the module: remove it now.
        customElements.whenDefined('fm-figure').then(() => {
          window.__ghostWasLoading = ghost.mounting === true;
          ghost.remove();
        });
      });
    });
    await page.goto(`${origin}/embed-example.html${query}`);
    await page.waitForFunction(figuresInked, '#field', { timeout: 120000 });
    await page.waitForTimeout(1000);
    const ghost = await page.evaluate(() => ({
      loading: window.__ghostWasLoading, children: window.__ghost.childElementCount, handle: !!window.__ghost.handle,
    }));
    assert(ghost.loading === true, `the removed element was not loading the module when removed: ${JSON.stringify(ghost)}`);
    assert(ghost.children === 0 && !ghost.handle, `an element removed while the module loaded was mounted: ${JSON.stringify(ghost)}`);
    const cdp = await page.context().newCDPSession(page);
    await page.evaluate(async () => {
      window.__m = await import('/fm-explainer.js');
      const moons = new Float32Array(400);
      for (let i = 0; i < 200; i++) {
        const a = Math.PI * (i / 199);
        moons[2 * i] = i % 2 ? 1 - Math.cos(a) : Math.cos(a);
        moons[2 * i + 1] = i % 2 ? 0.5 - Math.sin(a) : Math.sin(a);
      }
      window.__moons = moons;
    });
    const measure = async () => {
      // The counters first (the GPU buffer count drops its records of collected buffers), then
      // the heap after a forced collection.
      await cdp.send('HeapProfiler.collectGarbage');
      await page.waitForTimeout(200);
      const inPage = await page.evaluate(() => ({
        wasm: window.__m.wasmMemoryBytesForTesting(),
        live: window.__m.wasmHeapBytesForTesting(),
        held: window.__m.heldFloatsForTesting(),
        gpu: window.__liveGpuBuffers(),
      }));
      // Slices of training sets and networks kept in the compute workers: asked twice, the first
      // answer a fence after which the work that was in flight has let go of what it held.
      inPage.workers = await page.evaluate(async () => {
        await window.__m.workersHoldingForTesting();
        await new Promise((r) => setTimeout(r, 50));
        return window.__m.workersHoldingForTesting();
      });
      await cdp.send('HeapProfiler.collectGarbage');
      const heap = await cdp.send('Runtime.getHeapUsage');
      const dom = await cdp.send('Memory.getDOMCounters');
      return { ...inPage, heap: heap.usedSize, listeners: dom.jsEventListeners, nodes: dom.nodes };
    };
    const figureCycle = async (names) => {
      await page.evaluate(async (names) => {
        const main = document.querySelector('main');
        const els = names.map((name) => {
          const el = document.createElement('fm-figure');
          el.setAttribute('name', name);
          el.setAttribute('share', 'off');
          main.prepend(el);
          return el;
        });
        // Two frames of life (visible ones start their work), then gone.
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        await new Promise((r) => setTimeout(r, 100));
        for (const el of els) el.remove();
      }, names);
      // Work already submitted finishes (a removed figure starts no more), so that a slow adapter
      // cannot pile up cycles that are still running, which would be mistaken for a leak.
      await fence(page, '__m');
      // The same for the compute workers (the training worker included): each answers after
      // the messages before, training chunks among them.
      await page.evaluate(async () => {
        await window.__m.workersHoldingForTesting();
        await new Promise((r) => setTimeout(r, 50));
      });
    };
    const trainerCycle = () => page.evaluate(async () => {
      const tr = await window.__m.createTrainer({ data: window.__moons, dim: 2, hidden: 32, depth: 2, batch: 64 });
      const losses = await tr.train(50);
      await tr.free();
      if (!losses.every(Number.isFinite)) throw new Error('non-finite losses');
    });
    // Every figure the module knows (its catalogue), not a list kept here.
    const names = await page.evaluate(() => window.__m.figures().map((f) => f.name));
    assert(names.length >= 12, `figures(): ${names}`);
    // 100 cycles on the CPU path; 40 on WebGPU, where one cycle waits seconds for SwiftShader to
    // finish the work the removed figures had submitted (8 s a figures cycle, 3 s a trainers
    // cycle). What only the GPU path can leak is counted in live GPU buffers, whose bound is 5%
    // plus one: 30 cycles between the two measures show a leak of one buffer a cycle. The JS and
    // wasm heaps, the listeners and the nodes get their 90 cycles on the CPU path.
    const cycles = mode === 'webgpu' ? 40 : 100;
    const rows = [];
    for (const [label, cycle] of [['figures', () => figureCycle(names)], ['trainers', trainerCycle]]) {
      const at = {};
      const start = Date.now();
      for (let c = 1; c <= cycles; c++) {
        await cycle();
        if (c === 10 || c === cycles) at[c] = await measure();
      }
      at[cycles].seconds = (Date.now() - start) / 1000;
      rows.push([label, at[10], at[cycles]]);
    }
    const report = rows.map(([label, a, b]) => `${label}: wasm memory ${(a.wasm / 2 ** 20).toFixed(2)} -> ${(b.wasm / 2 ** 20).toFixed(2)} MiB `
      + `(live heap ${(a.live / 2 ** 10).toFixed(0)} -> ${(b.live / 2 ** 10).toFixed(0)} KiB), `
      + `JS heap ${(a.heap / 2 ** 20).toFixed(2)} -> ${(b.heap / 2 ** 20).toFixed(2)} MiB, listeners ${a.listeners} -> ${b.listeners}, `
      + `nodes ${a.nodes} -> ${b.nodes}, GPU buffers ${a.gpu} -> ${b.gpu}, held floats ${a.held} -> ${b.held}, `
      + `kept in workers ${a.workers} -> ${b.workers} (${cycles} cycles in ${b.seconds.toFixed(0)} s)`).join('; ');
    const grew = (a, b, slack = 0) => b > a * 1.05 + slack;
    for (const [label, a, b] of rows) {
      // Live bytes must not grow; the linear memory (which never shrinks) may gain a few
      // 64 KiB pages to fragmentation when calls overlap differently.
      assert(!grew(a.live, b.live), `${label}: the wasm heap grew: ${report}`);
      assert(!grew(a.wasm, b.wasm, 4 * 65536), `${label}: wasm memory grew: ${report}`);
      // The JS heap is noisy by a few hundred kB (compiled code, caches): 5% plus 256 kB.
      assert(!grew(a.heap, b.heap, 256 * 1024), `${label}: JS heap grew: ${report}`);
      assert(!grew(a.listeners, b.listeners, 1), `${label}: event listeners grew: ${report}`);
      assert(!grew(a.nodes, b.nodes, 20), `${label}: DOM nodes grew: ${report}`);
      assert(!grew(a.gpu, b.gpu, 1), `${label}: live GPU buffers grew: ${report}`);
      assert(b.held === 0, `${label}: ${b.held} floats still held after every call ended: ${report}`);
      assert(Number.isFinite(b.workers) && b.workers <= a.workers, `${label}: the compute workers hold more: ${report}`);
    }
    assert(errors.length === 0, `page errors: ${errors.join('\n').slice(0, 2000)}`);
    await page.close();
    return `${mode}: ${report}`;
  });
}
