// `node tests/e2e/budgets.mjs` (after a release build): the largest call each budget of
// flow::budget accepts, run once on the CPU path (its time, and the module's memory afterwards),
// and the call one unit larger, which must be refused before any work. Not a test: the times
// depend on the machine.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launch, open } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.BENCH_DIST ? path.resolve(process.env.BENCH_DIST) : path.resolve(here, '../../dist');
const { server, origin } = await serve({ '/': dist });
const browser = await launch({ webgpu: false });
const { page, errors } = await open(browser, `${origin}/index.html?backend=cpu`);
page.setDefaultTimeout(0);
await page.evaluate(() => document.querySelectorAll('[data-figure]').forEach((e) => { e.style.display = 'none'; }));

// Each case: the call as a function of one size k, and the largest k its budget allows, worked
// out from the formulas of the README ("What one call may cost"): 2^38 multiply-adds, 2^27 floats.
const WORK = 2 ** 38, FLOATS = 2 ** 27, N = 10000, D = 784;
// The 784-D MLP 256 x 3 (time features 8): its parameters, for the training budget.
const P = (D + 8) * 256 + 256 + 2 * (256 * 256 + 256) + 256 * D + D;
const CASES = [
  ['closedFormVelocity: m queries over 10,000 x 784', 'b.closedFormVelocity(data, 784, rows(k), 0.5)', Math.floor(WORK / (2 * N * D))],
  ['sampleClosedForm: 64 queries, k steps', 'b.sampleClosedForm(data, 784, rows(64), k)', Math.floor(WORK / (2 * N * D * 64))],
  ['cosineAlignment: two times, k pairs', 'b.cosineAlignment(data, 784, new Float32Array([0.3, 0.7]), k, 1)', Math.floor(WORK / (2 * N * D * 2))],
  ['posteriorWeights: k training points of dim 784', 'b.posteriorWeights(big(k), 784, rows(1), 0.5)', Math.floor(FLOATS / (D + 1))],
  ['trainer.train: 784-D MLP 256 x 3, batch 256, k steps', 'trainer().then(async (t) => { try { await t.train(k); } finally { await t.free(); } })', Math.floor(WORK / (3 * P * 256))],
  ['createTrainer: 784-D MLP 1024 x 6, batch k', 'b.createTrainer({ data, dim: 784, hidden: 1024, depth: 6, batch: k }).then((t) => t.free())', null],
];

await page.evaluate(async () => {
  const b = window.wasmBindings;
  const digits = await b.loadDigits();
  window.b = b;
  window.data = digits.data;
  window.rows = (m) => window.big(m);
  // Training points beyond the 10,000 digits: the digits repeated (only the size matters).
  let bigCache = null;
  window.big = (n) => {
    if (!bigCache || bigCache.length < n * 784) {
      bigCache = new Float32Array(n * 784);
      for (let i = 0; i < bigCache.length; i += digits.data.length) bigCache.set(digits.data.subarray(0, Math.min(digits.data.length, bigCache.length - i)), i);
    }
    return bigCache.subarray(0, n * 784);
  };
  window.trainer = () => b.createTrainer({ data: digits.data, dim: 784, hidden: 256, depth: 3, batch: 256 });
});

// Runs the call of size k: its time, its outcome, the module's memory afterwards.
async function run(call, k) {
  return page.evaluate(async ([call, k]) => {
    const f = new Function('k', `return ${call};`);
    const start = performance.now();
    let outcome = 'ok';
    try { await f(k); } catch (e) { outcome = e.message; }
    return { ms: performance.now() - start, outcome, memory: window.b.wasmMemoryBytesForTesting() };
  }, [call, k]);
}

console.log('| call | largest accepted k | k + 1 | time of k | wasm memory after |');
console.log('| --- | --- | --- | --- | --- |');
for (const [label, call, largest] of CASES) {
  let k = largest;
  if (k === null) {
    // No closed formula at hand: bisect on the refusals (an accepted trainer is quick to make).
    let [lo, hi] = [1, 8192];
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (/over its budget/.test((await run(call, mid)).outcome)) hi = mid; else lo = mid;
    }
    k = lo;
  }
  const over = await run(call, k + 1);
  const r = await run(call, k);
  const refusedNext = /over its budget/.test(over.outcome);
  console.log(`| ${label} | ${k} | ${refusedNext ? `refused in ${over.ms.toFixed(0)} ms` : `NOT refused: ${over.outcome}`} | ${(r.ms / 1000).toFixed(1)} s${r.outcome === 'ok' ? '' : ` (${r.outcome})`} | ${(r.memory / 2 ** 20).toFixed(0)} MiB |`);
}
console.log(errors.length ? `page errors: ${errors.join('\n')}` : 'no page errors');
await browser.close();
server.close();
