// Independent float64 reference and seeded data, injected into test pages. Shares no code with
// the Rust crate: it is the formula written out again, in plain JavaScript.
window.fmRef = (() => {
  function rng(seed) {
    let s = (seed >>> 0) || 1;
    return () => {
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      return s / 4294967296;
    };
  }
  function normals(count, seed) {
    const u = rng(seed);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      const a = 1 - u(), b = u();
      out[i] = Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * b);
    }
    return out;
  }
  function moons(n, seed) {
    const u = rng(seed), g = normals(2 * n, seed + 1);
    const out = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      const th = Math.PI * u();
      const [x, y] = i % 2 ? [1 - Math.cos(th), 0.5 - Math.sin(th)] : [Math.cos(th), Math.sin(th)];
      out[2 * i] = 1.6 * (x - 0.5) + 0.08 * g[2 * i];
      out[2 * i + 1] = 1.6 * (y - 0.25) + 0.08 * g[2 * i + 1];
    }
    return out;
  }
  // lambda_i(x, t) in float64: the softmax over i of -||x - t x_i||^2 / (2 (1 - t)^2).
  function posteriorWeights(data, dim, point, t) {
    const n = data.length / dim;
    const scores = new Float64Array(n);
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      let d2 = 0;
      for (let k = 0; k < dim; k++) { const d = point[k] - t * data[i * dim + k]; d2 += d * d; }
      scores[i] = -d2 / (2 * (1 - t) * (1 - t));
      if (scores[i] > max) max = scores[i];
    }
    let sum = 0;
    for (let i = 0; i < n; i++) { scores[i] = Math.exp(scores[i] - max); sum += scores[i]; }
    return scores.map((w) => w / sum);
  }
  // u*(x, t) in float64 with direct differences and a max-subtracted softmax.
  function closedForm(data, dim, points, t) {
    const n = data.length / dim, m = points.length / dim;
    const out = new Float64Array(points.length);
    const scores = new Float64Array(n);
    const inv = 1 / (2 * (1 - t) * (1 - t));
    for (let q = 0; q < m; q++) {
      const x = q * dim;
      let max = -Infinity;
      for (let i = 0; i < n; i++) {
        let d2 = 0;
        const b = i * dim;
        for (let k = 0; k < dim; k++) { const d = points[x + k] - t * data[b + k]; d2 += d * d; }
        scores[i] = -d2 * inv;
        if (scores[i] > max) max = scores[i];
      }
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const w = Math.exp(scores[i] - max);
        if (w === 0) continue;
        sum += w;
        const b = i * dim;
        for (let k = 0; k < dim; k++) out[x + k] += w * data[b + k];
      }
      for (let k = 0; k < dim; k++) out[x + k] = (out[x + k] / sum - points[x + k]) / (1 - t);
    }
    return out;
  }
  // Worst row of ||got - ref|| / max(||ref||, rms row norm of ref): rows where u* nearly
  // vanishes are measured against the batch's typical size (as in flow::closed_form).
  function maxRelativeError(got, ref, dim) {
    const rows = ref.length / dim;
    let total = 0;
    for (let k = 0; k < ref.length; k++) total += ref[k] ** 2;
    const rms = Math.sqrt(total / rows);
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      let diff = 0, norm = 0;
      for (let k = r * dim; k < (r + 1) * dim; k++) { diff += (got[k] - ref[k]) ** 2; norm += ref[k] ** 2; }
      worst = Math.max(worst, Math.sqrt(diff) / Math.max(Math.sqrt(norm), rms, 1e-12));
    }
    return worst;
  }
  function nearestFraction(data, dim, points, within) {
    let mean = new Float64Array(dim), n = data.length / dim;
    for (let i = 0; i < n; i++) for (let k = 0; k < dim; k++) mean[k] += data[i * dim + k] / n;
    let ss = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < dim; k++) ss += (data[i * dim + k] - mean[k]) ** 2;
    const scale = Math.sqrt(ss / n);
    let close = 0;
    for (let q = 0; q < points.length / dim; q++) {
      let best = Infinity;
      for (let i = 0; i < n; i++) {
        let d2 = 0;
        for (let k = 0; k < dim; k++) d2 += (points[q * dim + k] - data[i * dim + k]) ** 2;
        best = Math.min(best, d2);
      }
      if (Math.sqrt(best) < within * scale) close++;
    }
    return close / (points.length / dim);
  }
  // The pairs of cosineAlignment, from its documented stream: a lowbias32 hash keyed by
  // (seed, step 0, pair, k); k = 0 picks x1, k = 2 + 2j and 3 + 2j give x0_j by Box-Muller.
  function hash32(x) {
    let v = x >>> 0;
    v ^= v >>> 16; v = Math.imul(v, 0x7feb352d) >>> 0;
    v ^= v >>> 15; v = Math.imul(v, 0x846ca68b) >>> 0;
    v ^= v >>> 16;
    return v >>> 0;
  }
  const counter = (seed, step, row, k) => hash32((seed ^ hash32((step ^ hash32((row ^ hash32(k)) >>> 0)) >>> 0)) >>> 0);
  const uniform = (seed, row, k) => (counter(seed, 0, row, k) >>> 8) / 16777216;
  // times.length x pairs cosines of u*(x_t, t) (float64) with x1 - x0, time-major.
  function cosineAlignment(data, dim, times, pairs, seed) {
    const n = data.length / dim;
    const out = [];
    const x0 = [], x1 = [];
    for (let p = 0; p < pairs; p++) {
      const i = counter(seed, 0, p, 0) % n;
      const z = new Float64Array(dim);
      for (let j = 0; j < dim; j++) {
        const a = 1 - uniform(seed, p, 2 + 2 * j), b = uniform(seed, p, 3 + 2 * j);
        z[j] = Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * b);
      }
      x0.push(z); x1.push(data.subarray(i * dim, (i + 1) * dim));
    }
    for (const t of times) {
      const xt = new Float64Array(pairs * dim);
      for (let p = 0; p < pairs; p++) for (let j = 0; j < dim; j++) xt[p * dim + j] = (1 - t) * x0[p][j] + t * x1[p][j];
      const u = closedForm(data, dim, xt, t);
      for (let p = 0; p < pairs; p++) {
        let dot = 0, nu = 0, nv = 0;
        for (let j = 0; j < dim; j++) {
          const v = x1[p][j] - x0[p][j];
          dot += u[p * dim + j] * v; nu += u[p * dim + j] ** 2; nv += v * v;
        }
        out.push(dot / Math.sqrt(nu * nv));
      }
    }
    return out;
  }
  return { rng, normals, moons, posteriorWeights, closedForm, maxRelativeError, nearestFraction, cosineAlignment };
})();
