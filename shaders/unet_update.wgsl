// One update of the digits' network from its batch gradient (flow::digit_training::
// DigitTraining::apply's twin): the gradient's norm (`squares`, then `total`), the gradient
// scaled down to the clipping norm when above it, Adam at the step's rate with bias
// correction, then the weights' moving average (`update`).
//
// What it relies on (WGSL memory model): each dispatch reads what earlier ones wrote: `squares`
// stores one partial sum per workgroup in norm[0 ..], `total` (one workgroup) sums them into
// norm[u.partials], `update` reads that total; invocation i of `update` reads and writes only
// entry i of params, m, v and ema. `squares` and `total` write workgroup memory, then read it
// after a workgroupBarrier reached by every invocation (no returns before it; loop bounds from
// the uniform `u`).

struct Update {
    count: u32,      // parameters
    partials: u32,   // `squares`' workgroups
    lr: f32,         // Adam's step at this step (after warm-up)
    beta1: f32,
    beta2: f32,
    eps: f32,
    c1: f32,         // 1 - beta1^step, 1 - beta2^step (the bias corrections, from the host)
    c2: f32,
    clip: f32,       // the gradient's largest norm
    decay: f32,      // the moving average's decay at this step
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> u: Update;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> ema: array<f32>;
@group(0) @binding(6) var<storage, read_write> norm: array<f32>;

const WIDE: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

fn reduce(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width /= 2u) {
        if (lid < width) {
            partial[lid] += partial[lid + width];
        }
        workgroupBarrier();
    }
    return partial[0];
}

// Workgroup w sums the squares of entries [w 1024, (w + 1) 1024).
@compute @workgroup_size(256)
fn squares(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let first = wid.x * 4u * WIDE;
    var sum = 0.0;
    for (var k = 0u; k < 4u; k++) {
        let i = first + k * WIDE + lid;
        if (i < u.count) {
            sum += grads[i] * grads[i];
        }
    }
    let total = reduce(lid, sum);
    if (lid == 0u) {
        norm[wid.x] = total;
    }
}

@compute @workgroup_size(256)
fn total(@builtin(local_invocation_index) lid: u32) {
    var sum = 0.0;
    for (var i = lid; i < u.partials; i += WIDE) {
        sum += norm[i];
    }
    let all = reduce(lid, sum);
    if (lid == 0u) {
        norm[u.partials] = all;
    }
}

@compute @workgroup_size(256)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WIDE;
    if (i >= u.count) {
        return;
    }
    let length = sqrt(norm[u.partials]);
    var g = grads[i];
    if (length > u.clip) {
        g *= u.clip / length;
    }
    let mi = u.beta1 * m[i] + (1.0 - u.beta1) * g;
    let vi = u.beta2 * v[i] + (1.0 - u.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let p = params[i] - u.lr * (mi / u.c1) / (sqrt(vi / u.c2) + u.eps);
    params[i] = p;
    ema[i] = u.decay * ema[i] + (1.0 - u.decay) * p;
}
