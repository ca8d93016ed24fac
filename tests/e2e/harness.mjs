// Shared by the browser tests and the benchmark: a static server for dist/ (and, for the
// benchmark, TensorFlow.js from node_modules) and Debian's Chromium driven by playwright-core.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json', '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/// Serves `routes` ({ urlPrefix: directory }) on an ephemeral port of 127.0.0.1, with `headers`
/// on every file served (a Content-Security-Policy, say); `rewrite(html)` edits the HTML pages
/// served (the other engines' tests add their error recorder). `gzip: true` compresses every
/// response for a client that accepts it, as a host in front of the static files would.
export async function serve(routes, headers = {}, rewrite = null, { gzip = false } = {}) {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    for (const [prefix, dir] of Object.entries(routes)) {
      if (!url.startsWith(prefix)) continue;
      let file = path.join(dir, url.slice(prefix.length));
      if (!file.startsWith(path.resolve(dir))) break;
      if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
      if (!fs.existsSync(file)) break;
      const zip = gzip && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', ...(zip ? { 'content-encoding': 'gzip', vary: 'accept-encoding' } : {}), ...headers });
      if (rewrite && file.endsWith('.html')) {
        const html = rewrite(fs.readFileSync(file, 'utf8'));
        res.end(zip ? zlib.gzipSync(html) : html);
      } else if (zip) {
        fs.createReadStream(file).pipe(zlib.createGzip()).pipe(res);
      } else {
        fs.createReadStream(file).pipe(res);
      }
      return;
    }
    res.writeHead(404).end('not found');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/// Chromium with (`webgpu: true`: SwiftShader WebGPU) or without an adapter.
export async function launch({ webgpu }) {
  const args = [
    '--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
  ];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args, headless: true });
}

/// Opens `url`, collecting console errors and page errors, and waits for the wasm bindings
/// (the article's; `wait: false` for pages that load the module themselves).
export async function open(browser, url, { width = 1280, height = 900, wait = true } = {}) {
  const page = await browser.newPage({ viewport: { width, height } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  if (wait) await page.waitForFunction(() => window.wasmBindings && window.wasmBindings.backendName, null, { timeout: 60000 });
  return { page, errors };
}

/// A tiny test runner: named checks, a summary, and the exit code. `E2E_ONLY=<regex>` runs only
/// the checks whose label matches (while working on one; CI runs them all).
export function suite(name) {
  const results = [];
  const only = process.env.E2E_ONLY ? new RegExp(process.env.E2E_ONLY) : null;
  return {
    name,
    async check(label, fn) {
      if (only && !only.test(label)) return;
      const start = Date.now();
      try {
        const detail = await fn();
        results.push({ label, ok: true, ms: Date.now() - start });
        console.log(`  ok    ${label}${detail ? `: ${detail}` : ''} [${seconds(Date.now() - start)}]`);
      } catch (e) {
        results.push({ label, ok: false, ms: Date.now() - start });
        console.log(`  FAIL  ${label}: ${e?.stack ?? e} [${seconds(Date.now() - start)}]`);
      }
    },
    /// The checks with their times (ms), for the suite's list of its slowest checks.
    results,
    finish() {
      const failed = results.filter((r) => !r.ok);
      const total = results.reduce((s, r) => s + r.ms, 0);
      console.log(`${name}: ${results.length - failed.length} passed, ${failed.length} failed, in ${(total / 1000).toFixed(0)} s`);
      // For `cargo xtask test`'s list of the slowest checks of all suites (tests/e2e/slowest.mjs).
      fs.mkdirSync(TIMES, { recursive: true });
      fs.writeFileSync(path.join(TIMES, `${name.replace(/[^a-z0-9]+/gi, '-')}.json`), JSON.stringify({ name, results }));
      return failed.length === 0;
    },
  };
}

/// Waits until the work a page has already submitted is done: a closed-form call queued behind it
/// on the page's device (or, on the CPU path, its compute) answers only after that work. `module`
/// names the page's global that holds the module's exports. On a software WebGPU adapter one GPU
/// process runs every page's kernels, so a page's queued work (seconds of it on SwiftShader) would
/// otherwise be measured as the next page's, or mistaken for a leak.
export async function fence(page, module = 'wasmBindings') {
  await page.evaluate((module) => window[module].closedFormVelocity(new Float32Array([0, 0]), 2, new Float32Array([0, 0]), 0.5), module);
}

/// One reader's scroll through the page at `url`, freshly opened in `browser`, 400 px every 500 ms:
/// the main thread's tasks meanwhile, `{ wall, threadLongest, threadOver50 }`. `wall`: the tasks
/// over 50 ms as the Long Tasks API reports them (ms), the time a reader waits, whatever the thread
/// did meanwhile (worked, waited on another process, or was not scheduled). `threadLongest` and
/// `threadOver50`: the longest task by its own CPU time on the page's main thread, and the tasks
/// over 50 ms of it, from a trace of the scroll (`ThreadControllerImpl::RunTask` in Chromium's
/// `toplevel` category: its `tdur`, µs). On this two-core machine the two differ: with SwiftShader
/// the "GPU" is these same cores, and while the figures' kernels run the page's thread gets about
/// 40 % of a core, so a task of 56 ms of work takes 144 ms of wall time. `block` injects a busy loop
/// of that many ms of wall time into the page's first scroll event (a control: what a page that
/// blocks looks like to both measures); `steps` cuts the scroll short.
///
/// Before the page closes it is fenced (`fence`): on a software WebGPU adapter one GPU process runs
/// every page's kernels and composites them, and the kernels a closed page had queued (tens of
/// seconds of them) would hold back the next page's frames.
export async function scrollLongTasks(browser, url, { webgpu = false, block = 0, steps = Infinity } = {}) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  let tracing = false;
  try {
    await page.addInitScript((block) => {
      window.longTasks = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.longTasks.push([e.startTime, e.duration]);
      }).observe({ type: 'longtask', buffered: true });
      if (block > 0) {
        addEventListener('scroll', () => {
          const end = performance.now() + block;
          while (performance.now() < end);
        }, { once: true });
      }
    }, block);
    await page.goto(url);
    await page.waitForFunction(() => window.wasmBindings, null, { timeout: 60000, polling: 100 });
    // With WebGPU the figures start on the CPU path and move to the GPU when the start-up check
    // passes: on SwiftShader that check runs on the same two cores as the figures' workers (on a
    // hardware GPU it does not), so the scroll is measured once the page has settled on the GPU.
    if (webgpu) await page.evaluate(() => window.wasmBindings.backendName());
    await page.waitForTimeout(1500);
    // Marked as recording before the call: a failed start still leaves Playwright recording.
    tracing = true;
    await browser.startTracing(page, { categories: ['toplevel', 'blink.user_timing'] });
    // The trace holds every renderer's threads: this mark names the measured page's.
    const start = await page.evaluate(() => { performance.mark('fm-scroll-trace'); return performance.now(); });
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    for (let y = 400, k = 0; y < height && k < steps; y += 400, k++) {
      await page.evaluate((y) => window.scrollTo(0, y), y);
      await page.waitForTimeout(500);
    }
    const wall = await page.evaluate((start) => window.longTasks.filter(([t]) => t >= start).map(([, d]) => d), start);
    tracing = false;
    const thread = mainThreadTasks(JSON.parse(await browser.stopTracing()).traceEvents, 'fm-scroll-trace');
    await fence(page);
    return { wall, threadLongest: thread.reduce((m, d) => Math.max(m, d), 0), threadOver50: thread.filter((d) => d > 50).length };
  } finally {
    if (tracing) await browser.stopTracing().catch(() => {});
    await page.close();
  }
}

/// The CPU time (ms) of every task on the main thread of the page that set the performance mark
/// `mark` while traced (with the `blink.user_timing` category): other pages' renderers, and the
/// browser's own threads, are in the same trace.
export function mainThreadTasks(events, mark) {
  const marked = events.find((e) => e.name === mark);
  if (!marked) throw new Error(`the trace holds no mark "${mark}" (category blink.user_timing)`);
  const main = `${marked.pid}/${marked.tid}`;
  const tasks = events.filter((e) => e.ph === 'X' && e.name === 'ThreadControllerImpl::RunTask' && `${e.pid}/${e.tid}` === main);
  if (tasks.length === 0) throw new Error('the trace holds no task of the page\'s main thread');
  // A few tasks (about 4 % here) come without a thread time: their wall time stands in, which is
  // never less. None at all would mean the trace measures nothing of what is asserted.
  if (!tasks.some((e) => typeof e.tdur === 'number')) throw new Error('the trace has no thread times (tdur)');
  return tasks.map((e) => (e.tdur ?? e.dur) / 1000);
}

/// Over several scrolls (`scrollLongTasks`' answers), the median of each scroll's longest task by
/// `measure`: 'wall' (Long Tasks API) or 'thread' (its CPU time on the page's thread).
export function medianOfWorst(runs, measure = 'wall') {
  const worst = (r) => (measure === 'thread' ? r.threadLongest : r.wall.reduce((m, d) => Math.max(m, d), 0));
  return runs.map(worst).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
}

/// Each scroll's long tasks, both measures.
export function describeLongTasks(runs) {
  return runs.map((r) => `${r.threadOver50} over 50 ms of thread time, longest ${r.threadLongest.toFixed(0)} ms (wall: ${r.wall.length}, longest ${medianOfWorst([r]).toFixed(0)} ms)`).join('; ');
}

/// Where each suite leaves its checks' times.
export const TIMES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'out', 'times');

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/// Prints the `count` slowest checks of the given suites, slowest first, with their times.
export function slowest(suites, count = 10) {
  const all = suites.flatMap((s) => s.results.map((r) => ({ ...r, suite: s.name })));
  all.sort((a, b) => b.ms - a.ms);
  console.log(`the ${Math.min(count, all.length)} slowest checks:`);
  for (const r of all.slice(0, count)) console.log(`  ${seconds(r.ms).padStart(8)}  ${r.suite}: ${r.label}`);
}

/// Waits until the status line of the figure `name` on `page` matches `pattern`. A hang detector,
/// not a speed test: it fails when the status has not changed for `stallMs` (no measurement, no
/// step: the figure stopped), or after `capMs` in all. A fixed deadline for the whole would be a
/// timing check in disguise, since the same work takes 2 minutes on a quiet software GPU and 4
/// on a busy one. Returns the seconds it took.
export async function waitForStatus(page, name, pattern, { stallMs = 120000, capMs = 900000 } = {}) {
  const start = Date.now();
  let last = null;
  let changed = start;
  for (;;) {
    const text = await page.evaluate((name) => document.querySelector(`[data-figure="${name}"] .figure-status`)?.textContent ?? '', name);
    if (pattern.test(text)) return (Date.now() - start) / 1000;
    const now = Date.now();
    if (text !== last) [last, changed] = [text, now];
    if (now - changed > stallMs) throw new Error(`${name}: its status stayed "${text}" for ${stallMs / 1000} s, waiting for ${pattern}`);
    if (now - start > capMs) throw new Error(`${name}: not ${pattern} after ${capMs / 1000} s; its status: "${text}"`);
    await page.waitForTimeout(250);
  }
}

/// Hides every figure of `page` but `name` (hidden figures start no work), so that a check
/// waiting on one figure's computation does not share the device with the others'. Returns the
/// function that shows them again.
export async function focusOn(page, name) {
  await page.evaluate((name) => document.querySelectorAll('[data-figure]').forEach((e) => {
    if (e.dataset.figure !== name && e.style.display !== 'none') { e.style.display = 'none'; e.dataset.focusHidden = ''; }
  }), name);
  return () => page.evaluate(() => document.querySelectorAll('[data-focus-hidden]').forEach((e) => {
    e.style.display = '';
    delete e.dataset.focusHidden;
  }));
}

/// Clicks the download button `label` of the figure `fig` (a locator): the downloads fold
/// behind one "Download" disclosure, opened first if closed.
export async function clickDownload(fig, label) {
  const tools = fig.locator('details.figure-tools');
  if (!(await tools.evaluate((d) => d.open))) await tools.locator('summary').click();
  await fig.getByRole('button', { name: label }).click();
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/// Runs in the page: whether every element matching `selector` has canvases and each has ink
/// (more than 1 in 200 sampled pixels painted and away from white), i.e. the figure drew
/// something: a canvas never drawn is transparent, and transparent is not ink. A figure draws
/// only while shown, so the first one still blank is scrolled into view (as a reader would), in
/// case the page grew above it since it was last scrolled to; polled, this shows each in turn.
export function figuresInked(selector) {
  const roots = [...document.querySelectorAll(selector)];
  const inked = (r) => {
    const canvases = [...r.querySelectorAll('canvas')];
    return canvases.length > 0 && canvases.every((c) => {
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      for (let i = 0; i < px.length; i += 16) if (px[i + 3] > 0 && (px[i] < 200 || px[i + 1] < 200 || px[i + 2] < 200)) ink++;
      return ink > px.length / 16 / 200;
    });
  };
  const blank = roots.find((r) => !inked(r));
  if (blank && blank.getClientRects().length > 0) {
    const box = blank.getBoundingClientRect();
    if (box.bottom < 0 || box.top > window.innerHeight) blank.scrollIntoView({ block: 'center' });
  }
  return roots.length > 0 && !blank;
}

/// Runs in the page: whether any canvas matching `selector` has ink (a painted dark pixel among
/// every 16th), i.e. some figure has drawn, whatever the others are doing.
export function anyCanvasInked(selector) {
  return [...document.querySelectorAll(selector)].some((c) => {
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < px.length; i += 64) if (px[i + 3] > 0 && px[i] < 200) return true;
    return false;
  });
}
