// The CFM loss of a batch, mean_b ||u_b - target_b||^2, into losses[step - base], and its
// gradient with respect to the network output, 2 (u - target) / batch. One workgroup.

struct Loss {
    count: u32,   // batch * dim
    batch: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Counter {
    step: u32,
    base: u32,
}

@group(0) @binding(0) var<uniform> cfg: Loss;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> goal: array<f32>;
@group(0) @binding(3) var<storage, read_write> delta: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read> counter: Counter;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    let scale = 1.0 / f32(cfg.batch);
    var sum = 0.0;
    for (var i = lid; i < cfg.count; i += 256u) {
        let d = u[i] - goal[i];
        delta[i] = 2.0 * d * scale;
        sum += d * d;
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        losses[counter.step - counter.base] = partial[0] * scale;
    }
}
