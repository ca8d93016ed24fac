// `cargo xtask bench`: the closed form (n = 10,000, dim = 784, m = 64), training steps and the
// cosine-alignment measurement of the MNIST figures, on our WebGPU and CPU paths against
// TensorFlow.js 4.22 on its backends, in one Chromium, in one run. Prints medians and ratios and writes bench-results.json. Not a test: timings on
// shared machines are noisy, so only ratios measured side by side mean anything.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { serve, launch, scrollLongTasks, medianOfWorst, describeLongTasks, mainThreadTasks } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// BENCH_DIST=<dir> benchmarks another build (an earlier commit's dist/, for before and after).
const dist = process.env.BENCH_DIST ? path.resolve(process.env.BENCH_DIST) : path.resolve(here, '../../dist');
const tfjs = path.join(here, 'node_modules/@tensorflow');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
// BENCH_ONLY=closed-form|training|unet-training|alignment|scroll|digits-sampling|traces runs one part.
const only = process.env.BENCH_ONLY;
// BENCH_LABELS=<regex> keeps only the rows whose label matches (e.g. 'webgpu').
const labels = process.env.BENCH_LABELS ? new RegExp(process.env.BENCH_LABELS) : null;
const part = (name, cases) => (!only || only === name ? cases.filter(([label]) => !labels || labels.test(label)) : []);
const [N, DIM, M, T] = [10000, 784, 64, 0.5];

// A page that loads our module (no figures) and TensorFlow.js from node_modules.
const benchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-'));
fs.writeFileSync(path.join(benchDir, 'bench.html'), `<!doctype html><meta charset="utf-8">
<script src="/tfjs/tfjs/dist/tf.min.js"></script>
<script src="/tfjs/tfjs-backend-wasm/dist/tf-backend-wasm.min.js"></script>
<script src="/tfjs/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js"></script>
<script type="module">
  import init, * as fm from '/fm-explainer.js';
  import initLab, * as lab from '/fm-digits.js';
  await init();
  await initLab();
  window.fm = fm;
  window.lab = lab;
  tf.wasm.setWasmPaths('/tfjs/tfjs-backend-wasm/dist/');
  window.ready = true;
</script>`);

const { server, origin } = await serve({ '/tfjs/': tfjs, '/bench.html': path.join(benchDir, 'bench.html'), '/': dist });
// The article scrolled on a fresh page, on each path: its main thread's long tasks (wall time,
// what a reader waits; thread time beside it), against the page's goal of none over 50 ms (the
// browser test asserts looser bounds, 100 ms of thread time (120 with WebGPU) and 400 ms of wall
// time, which a shared machine's noise cannot reach in the median of three).
const GOAL = 50;
const scrollRows = [];
// First, while nothing else is open (a browser of its own for each path; its first scroll is the
// one that compiles the GPU kernels).
for (const [label, query, webgpu] of part('scroll', [
  ['article, CPU path (workers)', '', false],
  ['article, webgpu (SwiftShader)', '?backend=webgpu', true],
])) {
  const own = await launch({ webgpu });
  const runs = [];
  for (let r = 0; r < Math.min(RUNS, 3); r++) runs.push(await scrollLongTasks(own, `${origin}/index.html${query}`, { webgpu }));
  await own.close();
  const median = medianOfWorst(runs);
  scrollRows.push({ label, median, runs });
  console.log(`scroll ${label.padEnd(32)} longest task ${median.toFixed(0).padStart(4)} ms of wall time, ${medianOfWorst(runs, 'thread').toFixed(0)} ms of thread time (medians of ${runs.length}; goal ${GOAL} ms: ${median <= GOAL ? 'met' : 'NOT met'}); ${describeLongTasks(runs)}`);
}
// Where the page's work runs while a reader drags the velocity field's t slider (60 frames, two
// values a frame, then until the last value is drawn) and while cfm-vs-efm trains (5 s): the page's
// main thread's tasks from a trace (their thread time; the goal: none over 50 ms), and the thread
// time of the page's workers beside it, on each path.
const traceRows = [];
for (const [label, query, webgpu] of part('traces', [
  ['CPU path (workers)', '', false],
  ['webgpu (SwiftShader)', '?backend=webgpu', true],
])) {
  const own = await launch({ webgpu });
  const page = await own.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${origin}/index.html${query}`);
  await page.waitForFunction(() => window.wasmBindings, null, { timeout: 60000 });
  await page.evaluate(() => window.wasmBindings.backendName());
  const traced = async (name, action) => {
    await own.startTracing(page, { categories: ['toplevel', 'blink.user_timing'] });
    await page.evaluate((name) => performance.mark(name), name);
    await action();
    const events = JSON.parse(await own.stopTracing()).traceEvents;
    const main = mainThreadTasks(events, name);
    const marked = events.find((e) => e.name === name);
    const names = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.pid === marked.pid).map((e) => [e.tid, e.args.name]));
    const workers = events.filter((e) => e.ph === 'X' && e.name === 'ThreadControllerImpl::RunTask' && e.pid === marked.pid && /Worker/.test(names.get(e.tid) ?? ''));
    const row = {
      label: `${label}: ${name}`,
      longest: Math.max(0, ...main),
      over50: main.filter((d) => d > 50).length,
      mainMs: main.reduce((a, d) => a + d, 0),
      workersMs: workers.reduce((a, e) => a + (e.tdur ?? e.dur) / 1000, 0),
    };
    traceRows.push(row);
    console.log(`trace ${row.label.padEnd(40)} the page's thread: longest task ${row.longest.toFixed(0)} ms, ${row.over50} over 50 ms, ${row.mainMs.toFixed(0)} ms in all; its workers: ${row.workersMs.toFixed(0)} ms`);
  };
  await page.locator('[data-figure="velocity-field"] canvas').scrollIntoViewIfNeeded();
  await page.waitForTimeout(1500);
  await traced('drag', () => page.evaluate(async () => {
    const slider = document.querySelector('#vf-t');
    const canvas = document.querySelector('[data-figure="velocity-field"] canvas');
    const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
    const value = (k) => (0.05 + 0.9 * k / 119).toFixed(3);
    for (let f = 0; f < 60; f++) {
      await frame();
      for (const k of [2 * f, 2 * f + 1]) {
        slider.value = value(k);
        slider.dispatchEvent(new Event('input', { bubbles: true }));
      }
    }
    const start = performance.now();
    while (Math.abs(Number(canvas.dataset.fieldT) - Number(value(119))) > 1e-6 && performance.now() - start < 60000) await frame();
  }));
  // A slider's round trip: one value given, the frame that draws its arrows (ten values apart
  // in time, each waited for).
  const trips = await page.evaluate(async () => {
    const slider = document.querySelector('#vf-t');
    const canvas = document.querySelector('[data-figure="velocity-field"] canvas');
    const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
    const out = [];
    for (let k = 0; k < 10; k++) {
      const value = (0.1 + 0.08 * k).toFixed(3);
      await frame();
      const start = performance.now();
      slider.value = value;
      slider.dispatchEvent(new Event('input', { bubbles: true }));
      while (Math.abs(Number(canvas.dataset.fieldT) - Number(value)) > 1e-6 && performance.now() - start < 60000) await frame();
      out.push(performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return out;
  });
  const trip = [...trips].sort((a, b) => a - b)[Math.floor(trips.length / 2)];
  traceRows.push({ label: `${label}: slider round trip`, medianMs: trip, runs: trips });
  console.log(`trace ${`${label}: slider round trip`.padEnd(40)} input to drawn frame ${trip.toFixed(0)} ms (median of 10: ${trips.map((t) => t.toFixed(0)).join(', ')})`);
  await page.locator('[data-figure="cfm-vs-efm"]').scrollIntoViewIfNeeded();
  await page.waitForTimeout(1000);
  await traced('training', () => page.waitForTimeout(5000));
  await own.close();
}
const browser = await launch({ webgpu: true });

async function benchPage(query) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${origin}/bench.html${query}`);
  await page.waitForFunction(() => window.ready, null, { timeout: 60000 });
  page.setDefaultTimeout(600000);
  await page.evaluate(([N, DIM, M]) => {
    let s = 12345;
    const u = () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296; };
    window.data = new Float32Array(N * DIM).map(() => 2 * u() - 1);
    window.points = new Float32Array(M * DIM).map(() => 2 * u() - 1);
  }, [N, DIM, M]);
  return page;
}

// Median of RUNS timed calls after one warm-up; returns ms and the result's checksum.
async function time(page, body, args) {
  return page.evaluate(async ([body, args, runs]) => {
    const f = new Function('args', `return (async () => { ${body} })()`);
    await f(args);
    const times = [];
    let out;
    for (let r = 0; r < runs; r++) {
      const start = performance.now();
      out = await f(args);
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    return { ms: times[Math.floor(times.length / 2)], all: times, checksum: out };
  }, [body, args, RUNS]);
}

const ours = `const u = await window.fm.closedFormVelocity(window.data, ${DIM}, window.points, ${T});
  return u.reduce((a, b) => a + Math.abs(b), 0);`;
const tfBody = (backend) => `
  await tf.setBackend('${backend}'); await tf.ready();
  const X = window.tfX ??= {}; const key = '${backend}';
  if (!X[key]) X[key] = { d: tf.tensor2d(window.data, [${N}, ${DIM}]), p: tf.tensor2d(window.points, [${M}, ${DIM}]) };
  const { d, p } = X[key];
  const t = ${T};
  const u = tf.tidy(() => {
    const scale = 1 / (2 * (1 - t) * (1 - t));
    const xx = p.square().sum(1, true);                 // m x 1
    const dd = d.square().sum(1).reshape([1, ${N}]);    // 1 x n
    const xd = tf.matMul(p, d, false, true);            // m x n
    const scores = xx.sub(xd.mul(2 * t)).add(dd.mul(t * t)).mul(-scale);
    const w = tf.softmax(scores);                       // m x n
    return tf.matMul(w, d).sub(p).div(1 - t);           // m x dim
  });
  const values = await u.data();
  u.dispose();
  return values.reduce((a, b) => a + Math.abs(b), 0);`;

const rows = [];
const gpuPage = await benchPage('?backend=webgpu');
const cpuPage = await benchPage('?backend=cpu');
// The CPU path on the page's thread (no workers), on one worker, and on two.
const cpuPages = Object.fromEntries(await Promise.all([0, 1, 2].map(async (k) => [k, await benchPage(`?backend=cpu&workers=${k}`)])));
const backendOf = (page) => page.evaluate(() => window.fm.backendName());
console.log(`pages: ${await backendOf(gpuPage)} and ${await backendOf(cpuPage)}; n=${N} dim=${DIM} m=${M} t=${T}; median of ${RUNS}`);
for (const [label, page, body] of part('closed-form', [
  ['fm-explainer webgpu (SwiftShader)', gpuPage, ours],
  ['fm-explainer cpu (wasm simd128)', cpuPage, ours],
  ['fm-explainer cpu, no worker', cpuPages[0], ours],
  ['fm-explainer cpu, 1 worker', cpuPages[1], ours],
  ['fm-explainer cpu, 2 workers', cpuPages[2], ours],
  ['tf.js 4.22 wasm', gpuPage, tfBody('wasm')],
  ['tf.js 4.22 webgl', gpuPage, tfBody('webgl')],
  ['tf.js 4.22 webgpu', gpuPage, tfBody('webgpu')],
  ['numpy (float32, native)', null, null],
])) {
  try {
    const r = page ? await time(page, body, []) : await numpy(cpuPage);
    rows.push({ label, ms: r.ms, runs: r.all, checksum: r.checksum });
    console.log(`${label.padEnd(36)} ${r.ms.toFixed(1).padStart(9)} ms  (runs ${r.all.map((x) => x.toFixed(0)).join(', ')})`);
  } catch (e) {
    rows.push({ label, error: String(e) });
    console.log(`${label.padEnd(36)} failed: ${e}`);
  }
}
// The digit figures' call: 4 queries over a prepared set of 10,000 of dim 784, where a call's
// fixed costs (buffers, bind groups, a submission, a readback) show. The API uploads its data on
// every call, so this is timed as the kernel report times it (a set uploaded once; one call with
// readback after the call that compiled), the median over report runs.
for (const [label] of part('closed-form', [['fm-explainer webgpu, prepared set, m = 4 (kernel report)']])) {
  try {
    const runs = [];
    for (let r = 0; r < Math.min(RUNS, 5); r++) {
      const report = await gpuPage.evaluate(() => window.lab.gpuKernelReport());
      const row = report.rows.find((x) => x.kernel === 'closed form, tiled kernel' && x.sizes.startsWith('n 10000, dim 784, m 4,'));
      if (!row || !row.passed) throw new Error(`no passing row: ${JSON.stringify(row)}`);
      runs.push(row.gpuMs);
    }
    const sorted = [...runs].sort((a, b) => a - b);
    const ms = sorted[Math.floor(sorted.length / 2)];
    rows.push({ label, ms, runs });
    console.log(`${label.padEnd(36)} ${ms.toFixed(1).padStart(9)} ms  (runs ${runs.map((x) => x.toFixed(1)).join(', ')})`);
  } catch (e) {
    rows.push({ label, error: String(e) });
    console.log(`${label.padEnd(36)} failed: ${e}`);
  }
}
// The same computation in numpy on this machine (native, float32, its BLAS), from the very data
// of the pages (written out as raw float32).
async function numpy(page) {
  const [data, points] = await page.evaluate(() => [Array.from(window.data), Array.from(window.points)]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fm-bench-np-'));
  fs.writeFileSync(path.join(dir, 'data.f32'), Buffer.from(new Float32Array(data).buffer));
  fs.writeFileSync(path.join(dir, 'points.f32'), Buffer.from(new Float32Array(points).buffer));
  const python = process.env.BENCH_PYTHON ?? 'python3';
  const out = execFileSync(python, [path.join(here, 'bench_numpy.py'), path.join(dir, 'data.f32'), path.join(dir, 'points.f32'),
    String(N), String(DIM), String(M), String(T), String(RUNS)], { encoding: 'utf8' });
  const r = JSON.parse(out.trim().split('\n').pop());
  console.log(`numpy ${r.numpy}, BLAS ${r.blas}`);
  return { ms: r.ms, all: r.runs, checksum: r.checksum };
}
// Training throughput: MLP on [x, embed(t)] (2-D data), 3 hidden layers of 256, SiLU,
// batch 1024, Adam, CFM loss; steps per second over STEPS steps after a warm-up step.
const STEPS = Number(process.env.BENCH_STEPS ?? 5);
const TRAIN_RUNS = Number(process.env.BENCH_TRAIN_RUNS ?? 3);
const oursTrain = `
  const data = window.data.subarray(0, 2 * 2000);
  const tr = await window.fm.createTrainer({ data, dim: 2, hidden: 256, depth: 3, batch: 1024, seed: 1 });
  await tr.train(1);
  const start = performance.now();
  const losses = await tr.train(${STEPS});
  const ms = performance.now() - start;
  await tr.free();
  return [ms, losses[losses.length - 1]];`;
const tfTrain = (backend) => `
  await tf.setBackend('${backend}'); await tf.ready();
  const data = tf.tensor2d(window.data.subarray(0, 2 * 2000), [2000, 2]);
  const layers = [[2 + 8, 256], [256, 256], [256, 256], [256, 2]].map(([i, o]) =>
    [tf.variable(tf.randomUniform([i, o], -1 / Math.sqrt(i), 1 / Math.sqrt(i))), tf.variable(tf.zeros([o]))]);
  const opt = tf.train.adam(1e-3);
  const freqs = tf.tensor1d([1, 2, 4, 8]);
  const step = () => opt.minimize(() => {
    const x1 = tf.gather(data, tf.randomUniform([1024], 0, 2000, 'int32'));
    const x0 = tf.randomNormal([1024, 2]);
    const t = tf.randomUniform([1024, 1]);
    const xt = x0.mul(tf.sub(1, t)).add(x1.mul(t));
    const wt = t.mul(freqs.reshape([1, 4]));
    let h = tf.concat([xt, tf.sin(wt), tf.cos(wt)], 1);
    layers.forEach(([w, b], l) => {
      h = tf.matMul(h, w).add(b);
      if (l < layers.length - 1) h = h.mul(tf.sigmoid(h));
    });
    return h.sub(x1.sub(x0)).square().sum(1).mean();
  }, true);
  (await step()).data();
  const start = performance.now();
  let loss;
  for (let k = 0; k < ${STEPS}; k++) { if (loss) loss.dispose(); loss = step(); }
  const last = (await loss.data())[0];
  const ms = performance.now() - start;
  loss.dispose(); layers.flat().forEach((v) => v.dispose()); data.dispose(); freqs.dispose();
  return [ms, last];`;
const trainRows = [];
for (const [label, page, body] of part('training', [
  ['fm-explainer webgpu (SwiftShader)', gpuPage, oursTrain],
  ['fm-explainer cpu (wasm simd128)', cpuPage, oursTrain],
  ['tf.js 4.22 wasm', gpuPage, tfTrain('wasm')],
  ['tf.js 4.22 webgl', gpuPage, tfTrain('webgl')],
  ['tf.js 4.22 webgpu', gpuPage, tfTrain('webgpu')],
])) {
  try {
    // Each run builds a fresh model; the median of TRAIN_RUNS runs is reported.
    const rates = [];
    let loss;
    for (let run = 0; run < TRAIN_RUNS; run++) {
      const [ms, last] = await page.evaluate((b) => new Function(`return (async () => { ${b} })()`)(), body);
      rates.push((1000 * STEPS) / ms);
      loss = last;
    }
    const rate = [...rates].sort((x, y) => x - y)[Math.floor(rates.length / 2)];
    trainRows.push({ label, stepsPerSecond: rate, runs: rates, lastLoss: loss });
    console.log(`train ${label.padEnd(36)} ${rate.toFixed(2).padStart(8)} steps/s  (runs ${rates.map((r) => r.toFixed(2)).join(', ')}; last loss ${loss.toFixed(3)})`);
  } catch (e) {
    trainRows.push({ label, error: String(e) });
    console.log(`train ${label.padEnd(36)} failed: ${e}`);
  }
}
// The digits' U-Net's training step (364,545 parameters, 28 x 28, channels 32/64/64, GroupNorm,
// SiLU, the time embedding in every block): ours (shaders/unet_backward.wgsl and
// unet_update.wgsl, through the lab's module) against TF.js's WebGPU backend running the same
// network composed from its ops (conv2d, moments, avgPool, resizeNearestNeighbor, concat, matMul;
// its gradient by tf.grad, Adam), same batch, same adapter, same page. Ours also clips the
// gradient and keeps the weights' average; both read the steps' losses once, at the end (as the
// page's training does a chunk at a time).
const UNET_BATCH = Number(process.env.BENCH_UNET_BATCH ?? 4);
const UNET_STEPS = Number(process.env.BENCH_UNET_STEPS ?? 2);
const oursUnet = `
  const [ms, loss] = await window.lab.unetTrainingBench(window.data.subarray(0, 784 * 1000), ${UNET_BATCH}, ${UNET_STEPS});
  return [ms, loss, 364545];`;
// The digits' U-Net composed from TF.js's ops, for `batch` images (its variables in `vars`, its
// parameter count in `count`, the network as `net(x, timeFeatures)`, the time frequencies in
// `freqs`): the training bench's and the sampling bench's.
const tfUnetModel = (batch) => `
  const [C, E, TF, G, B] = [32, 128, 32, 8, ${batch}];
  const vars = [];
  const keep = (t) => { const v = tf.variable(t); vars.push(v); return v; };
  const uniform = (shape, fanIn) => keep(tf.randomUniform(shape, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn)));
  const conv = (cin, cout, k) => ({ w: uniform([k, k, cin, cout], cin * k * k), b: keep(tf.zeros([cout])) });
  const norm = (c) => ({ g: keep(tf.ones([c])), b: keep(tf.zeros([c])) });
  const lin = (i, o) => ({ w: uniform([i, o], i), b: keep(tf.zeros([o])) });
  const block = (cin, cout) => ({ cout, n1: norm(cin), c1: conv(cin, cout, 3), t: lin(E, cout), n2: norm(cout), c2: conv(cout, cout, 3), skip: cin === cout ? null : conv(cin, cout, 1) });
  const P = { t1: lin(TF, E), t2: lin(E, E), first: conv(1, C, 3), d1: block(C, C), d2: block(C, 2 * C), mid: block(2 * C, 2 * C),
    u2: block(4 * C, 2 * C), u1: block(3 * C, C), outNorm: norm(C), last: conv(C, 1, 3) };
  const count = vars.reduce((a, v) => a + v.size, 0);
  const silu = (x) => x.mul(tf.sigmoid(x));
  const cv = (p, x) => tf.conv2d(x, p.w, 1, 'same').add(p.b);
  const gn = (p, x) => {
    const [b, h, w, c] = x.shape;
    const r = x.reshape([b, h, w, G, c / G]);
    const { mean, variance } = tf.moments(r, [1, 2, 4], true);
    return r.sub(mean).div(variance.add(1e-5).sqrt()).reshape([b, h, w, c]).mul(p.g).add(p.b);
  };
  const blk = (p, x, temb) => {
    let h = cv(p.c1, silu(gn(p.n1, x)));
    h = h.add(tf.matMul(temb, p.t.w).add(p.t.b).reshape([B, 1, 1, p.cout]));
    h = cv(p.c2, silu(gn(p.n2, h)));
    return h.add(p.skip ? cv(p.skip, x) : x);
  };
  const net = (x, feats) => {
    const temb = silu(tf.matMul(silu(tf.matMul(feats, P.t1.w).add(P.t1.b)), P.t2.w).add(P.t2.b));
    const d1 = blk(P.d1, cv(P.first, x), temb);
    const d2 = blk(P.d2, tf.avgPool(d1, 2, 2, 'valid'), temb);
    const mid = blk(P.mid, tf.avgPool(d2, 2, 2, 'valid'), temb);
    const u2 = blk(P.u2, tf.concat([tf.image.resizeNearestNeighbor(mid, [14, 14]), d2], 3), temb);
    const u1 = blk(P.u1, tf.concat([tf.image.resizeNearestNeighbor(u2, [28, 28]), d1], 3), temb);
    return cv(P.last, silu(gn(P.outNorm, u1)));
  };
  const freqs = tf.tensor1d(Array.from({ length: TF / 2 }, (_, k) => 1000 ** (k / (TF / 2 - 1))));`;
const tfUnet = `
  await tf.setBackend('webgpu'); await tf.ready();
${tfUnetModel(UNET_BATCH)}
  const data = tf.tensor2d(window.data.subarray(0, 784 * 1000), [1000, 784]);
  const opt = tf.train.adam(1e-3);
  const step = () => opt.minimize(() => {
    const x1 = tf.gather(data, tf.randomUniform([B], 0, 1000, 'int32')).reshape([B, 28, 28, 1]);
    const x0 = tf.randomNormal([B, 28, 28, 1]);
    const t = tf.randomUniform([B, 1]);
    const xt = x0.mul(tf.sub(1, t.reshape([B, 1, 1, 1]))).add(x1.mul(t.reshape([B, 1, 1, 1])));
    const wt = t.mul(freqs.reshape([1, TF / 2]));
    const u = net(xt, tf.concat([tf.sin(wt), tf.cos(wt)], 1));
    return u.sub(x1.sub(x0)).square().mean();
  }, true);
  (await step().data());
  const start = performance.now();
  let loss;
  for (let k = 0; k < ${UNET_STEPS}; k++) { if (loss) loss.dispose(); loss = step(); }
  const last = (await loss.data())[0];
  const ms = performance.now() - start;
  loss.dispose(); vars.forEach((v) => v.dispose()); data.dispose(); freqs.dispose();
  return [ms, last, count];`;
const unetRows = [];
for (const [label, page, body] of part('unet-training', [
  ['fm-explainer webgpu (SwiftShader)', gpuPage, oursUnet],
  ['tf.js 4.22 webgpu', gpuPage, tfUnet],
])) {
  try {
    const rates = [];
    let loss, parameters;
    for (let run = 0; run < TRAIN_RUNS; run++) {
      const [ms, last, count] = await page.evaluate((b) => new Function(`return (async () => { ${b} })()`)(), body);
      rates.push((1000 * UNET_STEPS) / ms);
      [loss, parameters] = [last, count];
    }
    if (parameters !== 364545) throw new Error(`${parameters} parameters, not the digits' network's 364,545`);
    const rate = [...rates].sort((x, y) => x - y)[Math.floor(rates.length / 2)];
    unetRows.push({ label, stepsPerSecond: rate, runs: rates, lastLoss: loss });
    console.log(`U-Net train ${label.padEnd(32)} ${rate.toFixed(3).padStart(8)} steps/s of ${UNET_BATCH} digits (runs ${rates.map((r) => r.toFixed(3)).join(', ')}; last loss ${loss.toFixed(3)})`);
  } catch (e) {
    unetRows.push({ label, error: String(e) });
    console.log(`U-Net train ${label.padEnd(32)} failed: ${e}`);
  }
}
// Sampling 16 digits in 20 Euler steps with the U-Net on this adapter (the lab's CPU path does
// it in its worker: new-digits' status gives that time).
for (const [label] of part('unet-training', [['fm-explainer webgpu (SwiftShader) sampling']])) {
  try {
    const ms = await gpuPage.evaluate(() => window.lab.unetSamplingBench(16, 20));
    unetRows.push({ label, samplingMs: ms });
    console.log(`U-Net ${label}: 16 digits, 20 Euler steps in ${(ms / 1000).toFixed(1)} s`);
  } catch (e) {
    unetRows.push({ label, error: String(e) });
    console.log(`U-Net ${label} failed: ${e}`);
  }
}
if (unetRows.length >= 2 && unetRows.slice(0, 2).every((r) => r.stepsPerSecond)) {
  console.log(`U-Net training, webgpu against tf.js webgpu on the same adapter: ${(unetRows[0].stepsPerSecond / unetRows[1].stepsPerSecond).toFixed(2)}x`);
}
// TF.js's U-Net sampling: 16 digits from noise in 20 Euler steps (after one warm-up sampling).
const tfUnetSampling = `
  await tf.setBackend('wasm'); await tf.ready();
${tfUnetModel(16)}
  const x0 = tf.randomNormal([16, 28, 28, 1]);
  const sample = () => tf.tidy(() => {
    let x = x0;
    for (let k = 0; k < 20; k++) {
      const wt = tf.fill([16, 1], k / 20).mul(freqs.reshape([1, TF / 2]));
      x = x.add(net(x, tf.concat([tf.sin(wt), tf.cos(wt)], 1)).mul(1 / 20));
    }
    return x;
  });
  await sample().data();
  const start = performance.now();
  const out = sample();
  await out.data();
  const ms = performance.now() - start;
  out.dispose(); x0.dispose(); vars.forEach((v) => v.dispose()); freqs.dispose();
  return [ms, count];`;
// The digits' network's 16 samples in 20 Euler steps on the CPU path, as new-digits asks them and
// times them (its status line): in one lab (?labs=1) against split by rows over a lab a core (the
// default: 2 here), pages alternating, 3 of each. The first sampling waits for the labs to load;
// the one after "New noise" is the sampling alone (the lab busy with nothing else: the figure's
// other work waits behind the new noise's). Beside it, TF.js 4.22's wasm backend runs the same
// U-Net (random weights: the time, not the digits) for the same 16 samples in 20 Euler steps in
// the same browser: one thread (its threads need a cross-origin isolated page; ours need none).
const digitsRows = [];
if (!only || only === 'digits-sampling') {
  const own = await launch({ webgpu: false });
  const HYBRID = /Euler steps on (.+?), ([\d.]+) s\)/;
  const runs = { 1: [], 0: [] };
  for (let r = 0; r < 3; r++) {
    for (const labs of [1, 0]) {
      const page = await own.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${origin}/index.html${labs ? `?labs=${labs}` : ''}#new-digits`);
      const fig = page.locator('[data-figure="new-digits"]');
      await fig.waitFor({ timeout: 60000 });
      await fig.scrollIntoViewIfNeeded();
      const status = () => fig.locator('.figure-status').textContent();
      const hybrid = async () => {
        await page.waitForFunction((re) => new RegExp(re).test(document.querySelector('[data-figure="new-digits"] .figure-status').textContent), HYBRID.source, { timeout: 300000, polling: 50 });
        const [, device, seconds] = HYBRID.exec(await status());
        return [device, Number(seconds)];
      };
      const [device, first] = await hybrid();
      await fig.getByRole('button', { name: 'New noise' }).click();
      await page.waitForFunction((re) => !new RegExp(re).test(document.querySelector('[data-figure="new-digits"] .figure-status').textContent), HYBRID.source, { timeout: 60000, polling: 20 });
      const [, again] = await hybrid();
      runs[labs].push({ device, first, again });
      await page.close();
    }
  }
  const tfPage = await own.newPage();
  await tfPage.goto(`${origin}/bench.html`);
  await tfPage.waitForFunction(() => window.ready, null, { timeout: 60000 });
  const tfRuns = [];
  for (let r = 0; r < 3; r++) tfRuns.push(await tfPage.evaluate((b) => new Function(`return (async () => { ${b} })()`)(), tfUnetSampling));
  await own.close();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  if (tfRuns.some(([, count]) => count !== 364545)) throw new Error(`TF.js's U-Net has ${tfRuns[0][1]} parameters, not 364,545`);
  const tfMs = median(tfRuns.map(([ms]) => ms));
  for (const [labs, label] of [[1, 'one lab'], [0, 'a lab a core']]) {
    const row = { label, first: median(runs[labs].map((r) => r.first)), again: median(runs[labs].map((r) => r.again)), runs: runs[labs] };
    digitsRows.push(row);
    console.log(`digits sampling ${label.padEnd(14)} first ${row.first.toFixed(1)} s (with the labs' load), after New noise ${row.again.toFixed(1)} s (medians of 3: ${runs[labs].map((r) => `${r.first}/${r.again}`).join(', ')}) on ${runs[labs][0].device}`);
  }
  digitsRows.push({ label: 'tf.js 4.22 wasm, 1 thread', again: tfMs / 1000, runs: tfRuns.map(([ms]) => ms) });
  console.log(`digits sampling tf.js 4.22 wasm (1 thread): ${(tfMs / 1000).toFixed(1)} s (median of 3: ${tfRuns.map(([ms]) => (ms / 1000).toFixed(1)).join(', ')})`);
  console.log(`digits sampling, a lab a core against one lab: ${(digitsRows[1].again / digitsRows[0].again).toFixed(2)}x after New noise, ${(digitsRows[1].first / digitsRows[0].first).toFixed(2)}x first; one lab against tf.js wasm: ${(digitsRows[0].again / digitsRows[2].again).toFixed(2)}x, a lab a core against it: ${(digitsRows[1].again / digitsRows[2].again).toFixed(2)}x`);
}
// The "intuitions" figure's whole computation: 5 resolutions x 10 times x 256 pairs over the
// 10,000 MNIST digits (cosine of u* with x1 - x0). Ours through cosineAlignment; TF.js with the
// same formula (matmul, softmax, matmul) on pairs of its own. One timed run each (they are long).
const ALIGN_RUNS = Number(process.env.BENCH_ALIGN_RUNS ?? 1);
const alignSetup = `
  if (!window.pooled) {
    const d = await window.fm.loadDigits();
    window.pooled = [14, 7, 4, 2, 1].map((f) => {
      const side = 28 / f, out = new Float32Array(d.n * side * side);
      for (let i = 0; i < d.n; i++) for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++)
        out[i * side * side + Math.floor(y / f) * side + Math.floor(x / f)] += d.data[i * 784 + y * 28 + x] / (f * f);
      return { data: out, dim: side * side, n: d.n };
    });
  }
  const times = new Float32Array([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);`;
const oursAlign = `${alignSetup}
  const start = performance.now();
  let aligned = 0;
  for (const { data, dim } of window.pooled) {
    const c = await window.fm.cosineAlignment(data, dim, times, 256, 2);
    aligned += c.filter((v) => v > 0.9).length;
  }
  return [performance.now() - start, aligned / (5 * 10 * 256)];`;
const tfAlign = (backend) => `${alignSetup}
  await tf.setBackend('${backend}'); await tf.ready();
  const start = performance.now();
  let aligned = 0;
  for (const { data, dim, n } of window.pooled) {
    const X = tf.tensor2d(data, [n, dim]);
    const dd = X.square().sum(1).reshape([1, n]);
    for (const t of times) {
      const c = tf.tidy(() => {
        const x1 = tf.gather(X, tf.randomUniform([256], 0, n, 'int32'));
        const x0 = tf.randomNormal([256, dim]);
        const xt = x0.mul(1 - t).add(x1.mul(t));
        const scale = 1 / (2 * (1 - t) * (1 - t));
        const scores = xt.square().sum(1, true).sub(tf.matMul(xt, X, false, true).mul(2 * t)).add(dd.mul(t * t)).mul(-scale);
        const u = tf.matMul(tf.softmax(scores), X).sub(xt).div(1 - t);
        const v = x1.sub(x0);
        return u.mul(v).sum(1).div(u.norm('euclidean', 1).mul(v.norm('euclidean', 1)));
      });
      const values = await c.data();
      c.dispose();
      aligned += values.filter((v) => v > 0.9).length;
    }
    X.dispose(); dd.dispose();
  }
  return [performance.now() - start, aligned / (5 * 10 * 256)];`;
const alignRows = [];
for (const [label, page, body] of part('alignment', [
  ['fm-explainer webgpu (SwiftShader)', gpuPage, oursAlign],
  ['fm-explainer cpu (wasm simd128)', cpuPage, oursAlign],
  ['fm-explainer cpu, no worker', cpuPages[0], oursAlign],
  ['fm-explainer cpu, 1 worker', cpuPages[1], oursAlign],
  ['fm-explainer cpu, 2 workers', cpuPages[2], oursAlign],
  ['tf.js 4.22 wasm', gpuPage, tfAlign('wasm')],
  ['tf.js 4.22 webgl', gpuPage, tfAlign('webgl')],
])) {
  if (process.env.BENCH_SKIP_SWIFTSHADER_ALIGN && label.includes('SwiftShader')) continue;
  try {
    const runs = [];
    let share;
    for (let r = 0; r < ALIGN_RUNS; r++) {
      const [ms, aligned] = await page.evaluate((b) => new Function(`return (async () => { ${b} })()`)(), body);
      runs.push(ms);
      share = aligned;
    }
    const ms = [...runs].sort((x, y) => x - y)[Math.floor(runs.length / 2)];
    alignRows.push({ label, ms, runs, share });
    console.log(`align ${label.padEnd(36)} ${(ms / 1000).toFixed(2).padStart(8)} s  (share > 0.9 overall ${share.toFixed(3)})`);
  } catch (e) {
    alignRows.push({ label, error: String(e) });
    console.log(`align ${label.padEnd(36)} failed: ${e}`);
  }
}
const tfAlignRows = alignRows.filter((r) => r.label.startsWith('tf.js') && r.ms);
if (tfAlignRows.length) {
  const bestAlign = tfAlignRows.reduce((a, b) => (a.ms <= b.ms ? a : b));
  for (const r of alignRows.filter((r) => r.label.startsWith('fm-explainer') && r.ms)) {
    r.speedup = bestAlign.ms / r.ms;
    console.log(`  alignment ${r.label.padEnd(36)} ${r.speedup.toFixed(2)}x faster than TF.js's fastest (${bestAlign.label})`);
  }
}

// Workers: the CPU path's scaling on this machine, and against numpy.
const row = (list, label) => list.find((r) => r.label === label && r.ms);
for (const [what, list] of [['closed form', rows], ['alignment', alignRows]]) {
  const [none, one, two] = ['no worker', '1 worker', '2 workers'].map((k) => row(list, `fm-explainer cpu, ${k}`));
  if (one && two) console.log(`${what}: 2 workers ${(one.ms / two.ms).toFixed(2)}x 1 worker${none ? `, ${(none.ms / two.ms).toFixed(2)}x the page's thread alone` : ''}`);
}
const np = row(rows, 'numpy (float32, native)');
for (const r of rows.filter((r) => r.label.startsWith('fm-explainer cpu') && r.ms && np)) {
  r.overNumpy = r.ms / np.ms;
  console.log(`  closed form ${r.label.padEnd(36)} ${r.overNumpy.toFixed(2)}x numpy's time`);
}

const tfTrainRows = trainRows.filter((r) => r.label.startsWith('tf.js') && r.stepsPerSecond);
if (tfTrainRows.length) {
  const bestTf = tfTrainRows.reduce((a, b) => (a.stepsPerSecond >= b.stepsPerSecond ? a : b));
  for (const r of trainRows.filter((r) => r.label.startsWith('fm-explainer') && r.stepsPerSecond)) {
    r.ratio = r.stepsPerSecond / bestTf.stepsPerSecond;
    console.log(`  training ${r.label.padEnd(36)} ${r.ratio.toFixed(2)}x TF.js's fastest (${bestTf.label})`);
  }
}

const tfRows = rows.filter((r) => r.label.startsWith('tf.js') && r.ms);
if (tfRows.length) {
  const fastest = tfRows.reduce((a, b) => (a.ms <= b.ms ? a : b));
  console.log(`\nratios against TF.js's fastest backend here (${fastest.label}, ${fastest.ms.toFixed(1)} ms):`);
  for (const r of rows.filter((r) => r.label.startsWith('fm-explainer') && r.ms)) {
    r.speedup = fastest.ms / r.ms;
    console.log(`  ${r.label.padEnd(36)} ${r.speedup.toFixed(2)}x faster`);
  }
  const sums = rows.filter((r) => r.checksum).map((r) => r.checksum);
  console.log(`checksums (sum |u|) agree to ${((Math.max(...sums) - Math.min(...sums)) / Math.max(...sums)).toExponential(1)}`);
}
// Like for like: our WebGPU kernels against TF.js's WebGPU backend on the same adapter.
const like = (list, label) => list.find((r) => r.label === label);
const oursCf = like(rows, 'fm-explainer webgpu (SwiftShader)'), tfCf = like(rows, 'tf.js 4.22 webgpu');
if (oursCf?.ms && tfCf?.ms) console.log(`closed form, webgpu against tf.js webgpu on the same adapter: ${(tfCf.ms / oursCf.ms).toFixed(2)}x`);
const oursTr = like(trainRows, 'fm-explainer webgpu (SwiftShader)'), tfTr = like(trainRows, 'tf.js 4.22 webgpu');
if (oursTr?.stepsPerSecond && tfTr?.stepsPerSecond) console.log(`training, webgpu against tf.js webgpu on the same adapter: ${(oursTr.stepsPerSecond / tfTr.stepsPerSecond).toFixed(2)}x`);
fs.writeFileSync(path.resolve(here, '../../bench-results.json'), JSON.stringify({ closedForm: { n: N, dim: DIM, m: M, t: T, runs: RUNS, rows }, training: { steps: STEPS, runs: TRAIN_RUNS, rows: trainRows }, unetTraining: { batch: UNET_BATCH, steps: UNET_STEPS, runs: TRAIN_RUNS, rows: unetRows }, alignment: { runs: ALIGN_RUNS, rows: alignRows }, scroll: { goalMs: GOAL, rows: scrollRows }, digitsSampling: { rows: digitsRows }, traces: { goalMs: GOAL, rows: traceRows } }, null, 2));
await browser.close();
server.close();
