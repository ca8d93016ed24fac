// A seeded fuzzer of the JS API, injected into the article's page: every exported function, every
// Trainer method and the figure handles of mountFigure, called with arguments of random types and
// values, in random interleavings (several calls at once, free during train, calls after free).
// Every call must settle within its time limit, resolving with finite values or rejecting with an
// Error that is not a wasm trap; afterwards the module must still answer correctly.
window.fmFuzz = (() => {
  function rng(seed) {
    let s = (seed >>> 0) || 1;
    return () => {
      // mulberry32
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const SPECIALS = [NaN, Infinity, -Infinity, -0, 0, 1, 2, 3, 0.5, 0.999, 0.9999999, 1e38, -1e38,
    -1, 1.5, 784, 3072, 3073, 10000, 10001, 65536, 65537, 2 ** 32, 2 ** 53, 1e-45];
  // Over every call's budget, allocated once (JS memory, not the module's).
  let huge;

  function generators(r) {
    const pick = (xs) => xs[Math.floor(r() * xs.length)];
    const int = (lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
    const floats = (len, wild) => {
      const a = new Float32Array(len);
      for (let i = 0; i < len; i++) a[i] = wild && r() < 0.05 ? pick(SPECIALS) : (r() * 4 - 2);
      return a;
    };
    const dims = [1, 2, 3, 5, 64, 784];
    // A value of any kind: what a careless or hostile caller might pass.
    const anything = () => {
      switch (int(0, 20)) {
        case 0: return undefined;
        case 1: return null;
        case 2: return pick(SPECIALS);
        case 3: return String(pick(SPECIALS));
        case 4: return 'abc';
        case 5: return {};
        case 6: return [1, 2, 3];
        case 7: return 10n;
        case 8: return true;
        case 9: return floats(0);
        case 10: return floats(int(1, 12), true);
        case 11: return new Float64Array([1, 2]);
        case 12: return new Int32Array(4);
        case 13: return floats(int(0, 3000), true).subarray(int(0, 2));
        case 14: return (huge ??= new Float32Array(70_000_000));
        case 15: return { length: 1e9 };
        case 16: return () => 1;
        // Look-alikes that pass `instanceof Float32Array` but on which its getters throw.
        case 17: return new Proxy(floats(int(1, 12)), {});
        case 18: return Object.create(Float32Array.prototype);
        case 19: return Object.setPrototypeOf(new DataView(new ArrayBuffer(8)), Float32Array.prototype);
        default: return Symbol('s');
      }
    };
    // Mostly plausible, sometimes wild: keeps most calls deep inside the module.
    const maybe = (plausible) => (r() < 0.8 ? plausible() : anything());
    const set = () => {
      const dim = pick(dims);
      const n = pick([1, 2, 3, 10, 40]);
      return { dim, n, data: floats(n * dim, r() < 0.1) };
    };
    const time = () => (r() < 0.85 ? r() * 0.999 : pick(SPECIALS));
    return { pick, int, floats, anything, maybe, set, time };
  }

  // One call: its name and a thunk; state (live trainers, figure handles) is shared by the run.
  function chooseCall(g, b, state) {
    const { pick, int, floats, anything, maybe, set, time } = g;
    const r0 = g.rand;
    const s = set();
    const rows = (m) => floats(m * s.dim, r0() < 0.05);
    const m = () => pick([1, 2, 7, 33]);
    // 1,000 steps only in low dimension: at dim 784 they take minutes on a software adapter.
    // (Each step is a round trip to the workers or the GPU: 10,000 of them cost 10 s or more and
    // reach no code that 1,000 do not.)
    const steps = () => pick([1, 2, 10, 50, s.dim <= 5 ? 1000 : 20, 0, 1.5, -3, NaN]);
    const trainer = () => (state.trainers.length ? pick(state.trainers) : null);
    const calls = [
      ['backendName', () => b.backendName()],
      ['backendNote', () => b.backendNote()],
      ['gpuCheck', () => b.gpuCheck()],
      ['loadDigits', () => (r0() < 0.1 ? b.loadDigits().then((d) => d.n) : b.backendName())],
      ['setAssetBase', () => b.setAssetBase(maybe(() => pick(['', './', 'javascript:alert(1)//', 'data:text/html,x'])))],
      ['closedFormVelocity', () => b.closedFormVelocity(maybe(() => s.data), maybe(() => s.dim), maybe(() => rows(m())), maybe(time))],
      ['posteriorWeights', () => b.posteriorWeights(maybe(() => s.data), maybe(() => s.dim), maybe(() => rows(1)), maybe(time))],
      ['sampleClosedForm', () => b.sampleClosedForm(maybe(() => s.data), maybe(() => s.dim), maybe(() => rows(m())), maybe(steps), maybe(() => (r0() < 0.8 ? time() : undefined)))],
      ['cosineAlignment', () => b.cosineAlignment(maybe(() => s.data), maybe(() => s.dim), maybe(() => floats(int(1, 5)).map((v) => Math.abs(v) / 2.1)), maybe(() => pick([1, 3, 16, 0, 65537])), maybe(() => int(0, 9)))],
      ['createTrainer', () => {
        const options = r0() < 0.1 ? anything() : {
          data: maybe(() => s.data), dim: maybe(() => s.dim), hidden: maybe(() => pick([8, 16, 32, 4, 2000])),
          depth: maybe(() => pick([1, 2, 3, 0, 7])), batch: maybe(() => pick([1, 16, 64, 0, 9000])),
          lr: maybe(() => pick([1e-3, 0.01, 0, 2])), seed: maybe(() => int(0, 5)),
          target: maybe(() => pick(['cfm', 'efm', 'EFM', ''])), efmSamples: maybe(() => pick([0, 8, 9000])),
          __proto__: r0() < 0.05 ? { dim: 2 } : Object.prototype,
        };
        return b.createTrainer(options).then((tr) => { state.trainers.push(tr); state.dims.set(tr, options.dim); return tr; });
      }],
      ['trainer.train', () => { const tr = trainer(); return tr ? tr.train(maybe(() => pick([1, 5, 20, 0, 100001]))) : b.backendName(); }],
      ['trainer.velocity', () => { const tr = trainer(); const d = tr ? state.dims.get(tr) : 1; return tr ? tr.velocity(maybe(() => floats(pick([1, 3]) * (Number(d) || 1))), maybe(time)) : b.backendName(); }],
      ['trainer.sample', () => { const tr = trainer(); const d = tr ? state.dims.get(tr) : 1; return tr ? tr.sample(maybe(() => floats(pick([1, 3]) * (Number(d) || 1))), maybe(() => pick([1, 5, 20, 0])), maybe(time)) : b.backendName(); }],
      ['trainer.free', () => { const tr = trainer(); return tr ? tr.free() : b.backendName(); }],
      ['trainer.settings', () => { const tr = trainer(); return tr ? tr.settings : b.backendName(); }],
      ['mountFigure', () => {
        const el = document.createElement('div');
        state.host.append(el);
        const name = maybe(() => pick(state.figureNames));
        const handle = b.mountFigure(r0() < 0.05 ? anything() : el, name);
        state.handles.push([handle, el]);
        return handle;
      }],
      ['handle.set', () => {
        if (!state.handles.length) return b.backendName();
        const [h] = pick(state.handles);
        return h.set(maybe(() => pick(['t', 'n', 'dataset', 'tau', 'log2width', 'source', 'target', 'theme', '__proto__'])),
          maybe(() => pick(['0.5', '1', '-1', '1e9', 'NaN', 'spirals', 'moons', '<img src=x onerror=alert(1)>', ''])));
      }],
      ['handle.get', () => (state.handles.length ? pick(state.handles)[0].get(maybe(() => pick(['t', 'n', 'x']))) : null)],
      ['handle.describe', () => (state.handles.length ? pick(state.handles)[0].describe() : [])],
      ['handle.remove', () => {
        if (!state.handles.length) return null;
        const i = int(0, state.handles.length - 1);
        const [h, el] = state.handles[i];
        state.handles.splice(i, 1);
        h.remove();
        el.remove();
        return null;
      }],
    ];
    return pick(calls);
  }

  // Everything a resolved value may hold must be finite.
  function finite(v, depth = 0) {
    if (typeof v === 'number') return Number.isFinite(v);
    if (v instanceof Float32Array) return v.every(Number.isFinite);
    if (Array.isArray(v)) return v.every((x) => finite(x, depth + 1));
    if (v && typeof v === 'object' && depth < 2 && Object.getPrototypeOf(v) === Object.prototype)
      return Object.values(v).every((x) => finite(x, depth + 1));
    return true;
  }

  const TRAP = /unreachable|RuntimeError|memory access out of bounds|recursive use of an object|already (mutably )?borrowed|null pointer passed to rust|panicked/i;

  return async function fuzz(seed, count, { limitMs = 60000 } = {}) {
    const b = window.wasmBindings;
    const r = rng(seed);
    const g = generators(r);
    g.rand = r;
    const host = document.createElement('div');
    host.style.cssText = 'position:absolute;left:-10000px;width:600px';
    document.body.append(host);
    const state = {
      trainers: [], dims: new Map(), handles: [], host,
      figureNames: ['velocity-field', 'memorization', 'stochastic-target', 'conditional-paths', 'hybrid-tau', 'nope', ''],
    };
    const stats = { calls: 0, resolved: 0, rejected: 0, messages: new Map(), failures: [], byName: {} };
    // The page's thread must not freeze: a call's time limit cannot fire while it is held, so
    // the longest task is watched too.
    let longestTask = 0;
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) longestTask = Math.max(longestTask, e.duration);
    });
    observer.observe({ type: 'longtask' });
    const record = (name, outcome, detail) => {
      stats.byName[name] = (stats.byName[name] ?? 0) + 1;
      if (outcome === 'failure') stats.failures.push(`${name}: ${detail}`);
    };
    while (stats.calls < count && stats.failures.length < 5) {
      // A wave of 1 to 6 calls started together, then all awaited.
      const wave = [];
      for (let k = g.int(1, 6); k > 0 && stats.calls < count; k--) {
        const [name, thunk] = chooseCall(g, b, state);
        stats.calls++;
        let promise;
        try {
          promise = Promise.resolve(thunk());
        } catch (e) {
          promise = Promise.reject(e);
        }
        let timer;
        const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve('pending'), limitMs); });
        wave.push(Promise.race([
          promise.then((v) => ({ v }), (e) => ({ e })),
          timeout,
        ]).then((o) => {
          clearTimeout(timer);
          if (o === 'pending') return record(name, 'failure', `still pending after ${limitMs} ms`);
          if ('e' in o) {
            const e = o.e;
            stats.rejected++;
            if (!(e instanceof Error)) return record(name, 'failure', `rejected with a non-Error: ${String(e)}`);
            if (e instanceof WebAssembly.RuntimeError || TRAP.test(e.message)) return record(name, 'failure', `wasm trap: ${e.message}`);
            const key = e.message.replace(/-?\d[\d,.e+-]*/g, '#').slice(0, 160);
            stats.messages.set(key, (stats.messages.get(key) ?? 0) + 1);
            return record(name, 'ok');
          }
          stats.resolved++;
          if (!finite(o.v)) return record(name, 'failure', `resolved with non-finite values`);
          return record(name, 'ok');
        }));
      }
      await Promise.all(wave);
      // Keep the live state small: old trainers freed, old figures removed.
      while (state.trainers.length > 4) {
        const tr = state.trainers.shift();
        await tr.free().catch(() => {});
      }
      while (state.handles.length > 3) {
        const [h, el] = state.handles.shift();
        try { h.remove(); } catch {}
        el.remove();
      }
    }
    for (const tr of state.trainers) await tr.free().catch(() => {});
    for (const [h, el] of state.handles) { try { h.remove(); } catch {} el.remove(); }
    host.remove();
    b.setAssetBase('');
    // The module still answers, and correctly: one point, u*(0, 0.5) = (x1 - 0) / 0.5.
    const after = await b.closedFormVelocity(new Float32Array([1, 2]), 2, new Float32Array([0, 0]), 0.5);
    await new Promise((r) => setTimeout(r, 0));
    observer.disconnect();
    const healthy = after.length === 2 && Math.abs(after[0] - 2) < 1e-6 && Math.abs(after[1] - 4) < 1e-6;
    return {
      calls: stats.calls, resolved: stats.resolved, rejected: stats.rejected,
      failures: stats.failures, healthy, after: [...after],
      messages: [...stats.messages.entries()].sort((a, b) => b[1] - a[1]),
      byName: stats.byName, longestTask,
    };
  };
})();
