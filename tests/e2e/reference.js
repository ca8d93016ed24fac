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
  return { rng, normals, moons, closedForm, maxRelativeError, nearestFraction };
})();
