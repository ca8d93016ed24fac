// Adam with bias correction over the flat parameter vector (`main`), and the step counter
// advance that ends every training step (`advance`, one invocation).
//
// What it relies on (WGSL memory model): invocation i reads and writes only entry i of `params`,
// `m` and `v`; `grads` was written by earlier dispatches (the weight gradients). `counter` and
// `counter_rw` are the same buffer, bound by different entry points (each pipeline's layout holds
// only the bindings its entry point uses), so no dispatch both reads and writes it; `advance`
// runs alone in its own dispatch, after Adam has read the step. No workgroup memory, no barriers.

struct Adam {
    count: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Counter {
    step: u32,
    base: u32,
}

@group(0) @binding(0) var<uniform> cfg: Adam;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> counter: Counter;
@group(0) @binding(6) var<storage, read_write> counter_rw: Counter;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= cfg.count) {
        return;
    }
    let t = f32(counter.step + 1u);
    let g = grads[i];
    let mi = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
    let vi = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let m_hat = mi / (1.0 - pow(cfg.beta1, t));
    let v_hat = vi / (1.0 - pow(cfg.beta2, t));
    params[i] -= cfg.lr * m_hat / (sqrt(v_hat) + cfg.eps);
}

@compute @workgroup_size(1)
fn advance() {
    counter_rw.step += 1u;
}
