// The appendix's speed figures, measured on the reader's own device when the appendix comes into
// view: a short run of the public API (the same calls as the figures make), on the backend the
// page chose. About a second on a laptop; nothing runs unless the reader scrolls there.
export function measureWhenSeen(bindings) {
  const out = document.getElementById('speed');
  if (!out || !('IntersectionObserver' in window)) return;
  const seen = new IntersectionObserver((entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    seen.disconnect();
    measure(bindings, out).catch((e) => {
      out.textContent = `The measurement failed: ${e.message ?? e}.`;
    });
  });
  seen.observe(out);
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  return v[v.length >> 1];
}

// `count` numbers in [-1, 1) from a seeded LCG, filled 65,536 at a time with a turn for
// the page in between (31 MB of them would otherwise block the main thread).
async function uniforms(count, seed) {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let start = 0; start < count; start += 1 << 16) {
    const end = Math.min(count, start + (1 << 16));
    for (let i = start; i < end; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = s / 2147483648 - 1;
    }
    await turn();
  }
  return out;
}

// A turn for the page: a message to itself (a nested timer would wait 4 ms each time).
function turn() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

async function measure(b, out) {
  out.textContent = 'Measuring on this device…';
  // 10,000 points of dimension 784 (the size of the digits), 64 queries: the benchmark call.
  const n = 10000, dim = 784, m = 64;
  const data = await uniforms(n * dim, 1);
  const queries = await uniforms(m * dim, 2);
  await b.closedFormVelocity(data, dim, queries, 0.5); // warm-up: uploads, compiles
  const velocity = [];
  for (let k = 0; k < 3; k++) {
    const start = performance.now();
    await b.closedFormVelocity(data, dim, queries, 0.5);
    velocity.push(performance.now() - start);
  }
  // A 3 x 256 network on 2,000 two-dimensional points, batch 256.
  const points = await uniforms(4000, 3);
  const trainer = await b.createTrainer({ data: points, dim: 2, hidden: 256, depth: 3, batch: 256, seed: 1 });
  let rate;
  try {
    await trainer.train(10);
    const runs = [];
    for (let k = 0; k < 3; k++) {
      const start = performance.now();
      await trainer.train(40);
      runs.push(40 / ((performance.now() - start) / 1000));
    }
    rate = median(runs);
  } finally {
    trainer.free();
  }
  const where = (await b.backendName()) === 'webgpu' ? 'your GPU, through WebGPU' : 'your CPU, in WebAssembly';
  out.textContent = `Measured just now on ${where}: 64 closed-form velocities over 10,000 points of dimension 784 `
    + `in ${median(velocity).toFixed(velocity[0] < 10 ? 1 : 0)} ms (median of 3), and training steps of a `
    + `3 × 256 network with batches of 256 at ${rate.toFixed(0)} per second.`;
}
