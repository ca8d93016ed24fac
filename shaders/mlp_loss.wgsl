// The CFM loss of a batch, mean_b ||u_b - target_b||^2, into losses[step - base], and its
// gradient with respect to the network output, 2 (u - target) / batch. Two entry points:
// `partial`, one workgroup per 1,024 values (the gradient, and the group's sum of squares), then
// `finish`, one workgroup adding the groups' sums: the reduction runs in parallel, where one
// workgroup used to walk the whole batch.
//
// What it relies on (WGSL memory model): `partials` is written by `partial` and read by `finish`,
// a later dispatch; `sums` is shared only across workgroupBarrier(), reached in uniform control
// flow (the tree's bounds are constants); each delta and each partial has one writer.

struct Loss {
    count: u32,   // batch * dim
    batch: u32,
    groups: u32,  // workgroups of `partial`
    _pad: u32,
}

struct Counter {
    step: u32,
    base: u32,
}

const PER_GROUP: u32 = 1024u;

@group(0) @binding(0) var<uniform> cfg: Loss;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> goal: array<f32>;
@group(0) @binding(3) var<storage, read_write> delta: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read> counter: Counter;
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;

var<workgroup> sums: array<f32, 256>;

// Leaves the workgroup's total in sums[0].
fn reduce(lid: u32, value: f32) {
    sums[lid] = value;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            sums[lid] += sums[lid + stride];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn partial(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let scale = 1.0 / f32(cfg.batch);
    var sum = 0.0;
    for (var s = 0u; s < PER_GROUP / 256u; s++) {
        let i = wid.x * PER_GROUP + s * 256u + lid;
        if (i < cfg.count) {
            let d = u[i] - goal[i];
            delta[i] = 2.0 * d * scale;
            sum += d * d;
        }
    }
    reduce(lid, sum);
    if (lid == 0u) {
        partials[wid.x] = sums[0];
    }
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
    var sum = 0.0;
    for (var i = lid; i < cfg.groups; i += 256u) {
        sum += partials[i];
    }
    reduce(lid, sum);
    if (lid == 0u) {
        losses[counter.step - counter.base] = sums[0] / f32(cfg.batch);
    }
}
