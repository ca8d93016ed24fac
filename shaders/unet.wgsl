// The digits' U-Net (flow::unet) on a batch of images: one entry point per kind of operation of
// the CPU twin's graph, each dispatched once per operation with that operation's `Args` (a
// dynamic offset into one uniform buffer). Every tensor of the batch lives in one `arena`: tensor
// T of image b starts at arena[base_T + b * size_T], channels x height x width, row-major, as
// the twin holds one image. Parameters are the twin's flat vector.
//
// What it relies on (WGSL memory model): each dispatch reads tensors that earlier dispatches of
// the same pass wrote (storage writes are visible to later dispatches) and writes only its output
// tensor, which no other operation of the dispatch reads. Within `conv` and `norm`, workgroup
// memory is written, then read after a workgroupBarrier, and every barrier is reached by all
// invocations: the loops around them have bounds from the uniform `a` alone, and no invocation
// returns before them (out-of-range invocations load zeros and skip their stores).

const GROUP: u32 = 64u;

struct Args {
    rows: u32,         // images in the batch
    input: u32,        // arena offset of the (first) input, image 0
    input_size: u32,   // floats per image of the input
    second: u32,       // the second input: Add's other term, AddChannels' per-channel values,
    second_size: u32,  // Concat's second part, Euler's velocity
    output: u32,
    output_size: u32,
    w: u32,            // parameter offsets: weights (GroupNorm: scales) and biases (shifts)
    b: u32,
    cin: u32,          // input channels (Linear: inputs)
    cout: u32,         // output channels (Linear: outputs)
    k: u32,            // convolution kernel side (1 or 3)
    side: u32,         // the input's side
    groups: u32,       // GroupNorm's groups
    feature_row: u32,  // `time`: the row of the features region to broadcast
    dt: f32,           // `euler`: the step
    scratch: u32,      // (the backward pass's, unet_backward.wgsl)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> a: Args;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> arena: array<f32>;

// The element this invocation handles in a dispatch of (x, y) workgroups of GROUP.
fn element(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * GROUP;
}

// ---- Convolution as an implicit matrix product (unet_tiles.wgsl's tiles): out (cout x rows
// area) = W (cout x K) times the patches (K x rows area), K = cin k k, each patch value read
// from the input as the twin's im2col lays it out (row (c, di, dj), zero outside the image).

// The patch value of row (c, di, dj) for the pixel at (pi, pj) of the image at `at`.
fn patch_value(ok: bool, at: u32, c: u32, i: i32, j: i32) -> f32 {
    let side = a.side;
    if (ok && c < a.cin && i >= 0 && j >= 0 && i < i32(side) && j < i32(side)) {
        return arena[at + c * side * side + u32(i) * side + u32(j)];
    }
    return 0.0;
}

@compute @workgroup_size(64)
fn conv(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let m0 = wid.y * TM;
    let n0 = wid.x * TN;
    let kernel = a.k * a.k;
    let depth = a.cin * kernel;
    // The patches' tile: this invocation loads columns lid and lid + 64, a pixel each for the
    // whole product, and walks their rows (c, di, dj) with counters rather than divisions.
    let side = a.side;
    let area = side * side;
    let pixels = a.rows * area;
    let na = n0 + lid;
    let nb = na + 64u;
    let at_a = a.input + (na / area) * a.input_size;
    let at_b = a.input + (nb / area) * a.input_size;
    let pad = i32(a.k / 2u);
    let pia = i32((na % area) / side) - pad;
    let pja = i32(na % side) - pad;
    let pib = i32((nb % area) / side) - pad;
    let pjb = i32(nb % side) - pad;
    var sums = Sums();
    for (var k0 = 0u; k0 < depth; k0 += TK) {
        for (var e = lid; e < TK * TM; e += GROUP) {
            let kk = k0 + e / TM;
            let m = m0 + e % TM;
            var v = 0.0;
            if (kk < depth && m < a.cout) {
                v = params[a.w + m * depth + kk];
            }
            l_tile[e] = v;
        }
        var c = k0 / kernel;
        let r = k0 % kernel;
        var di = i32(r / a.k);
        var dj = i32(r % a.k);
        for (var q = 0u; q < TK; q++) {
            r_tile[q * TN + lid] = patch_value(na < pixels, at_a, c, pia + di, pja + dj);
            r_tile[q * TN + lid + 64u] = patch_value(nb < pixels, at_b, c, pib + di, pjb + dj);
            dj += 1;
            if (dj == i32(a.k)) {
                dj = 0;
                di += 1;
                if (di == i32(a.k)) {
                    di = 0;
                    c += 1u;
                }
            }
        }
        workgroupBarrier();
        sums = accumulate(lid, sums);
        workgroupBarrier();
    }
    let accs = values(sums);
    for (var r = 0u; r < 16u; r++) {
        let m = m0 + tile_row(lid, r);
        for (var c = 0u; c < 4u; c++) {
            let n = n0 + tile_column(lid, r, c);
            if (m < a.cout && n < pixels) {
                arena[a.output + (n / area) * a.output_size + m * area + n % area] =
                    accs[r][c] + params[a.b + m];
            }
        }
    }
}

// ---- GroupNorm: one workgroup of 64 per (group, image): the mean, then the variance about it
// (two passes, as the twin), then (x - mean) / sqrt(var + 1e-5) * scale + shift.

const WIDTH: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

// The workgroup's sum of `value`, in uniform control flow: every invocation adds the 64 partial
// values in the same order, behind two barriers where a tree takes seven. A barrier is what a
// GPU emulated on the CPU (SwiftShader) pays most for: with 256 invocations and a tree, the
// reductions took half a training step's time there.
fn reduce(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < WIDTH; i++) {
        total += partial[i];
    }
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn norm(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let g = wid.x;
    let b = wid.y;
    let area = a.side * a.side;
    let per_group = a.cin / a.groups;
    let count = per_group * area;
    let first = a.input + b * a.input_size + g * count;
    let live = b < a.rows;
    var sum = 0.0;
    for (var i = lid; i < count; i += WIDTH) {
        if (live) {
            sum += arena[first + i];
        }
    }
    let mean = reduce(lid, sum) / f32(count);
    var squares = 0.0;
    for (var i = lid; i < count; i += WIDTH) {
        if (live) {
            let d = arena[first + i] - mean;
            squares += d * d;
        }
    }
    let rstd = 1.0 / sqrt(reduce(lid, squares) / f32(count) + 1e-5);
    if (!live) {
        return;
    }
    let out = a.output + b * a.output_size + g * count;
    for (var i = lid; i < count; i += WIDTH) {
        let ch = g * per_group + i / area;
        arena[out + i] = (arena[first + i] - mean) * rstd * params[a.w + ch] + params[a.b + ch];
    }
}

// ---- Element-wise operations, one invocation per output value.

@compute @workgroup_size(64)
fn silu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.output_size) {
        return;
    }
    let v = arena[a.input + e];
    arena[a.output + e] = v / (1.0 + exp(-v));
}

// out[b][o] = bias[o] + sum_i W[o][i] in[b][i] (the time embedding's layers).
@compute @workgroup_size(64)
fn linear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.cout) {
        return;
    }
    let b = e / a.cout;
    let o = e % a.cout;
    var acc = params[a.b + o];
    for (var i = 0u; i < a.cin; i++) {
        acc = fma(params[a.w + o * a.cin + i], arena[a.input + b * a.input_size + i], acc);
    }
    arena[a.output + b * a.output_size + o] = acc;
}

@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.output_size) {
        return;
    }
    arena[a.output + e] = arena[a.input + e] + arena[a.second + e];
}

// out[b][c][p] = in[b][c][p] + second[b][c].
@compute @workgroup_size(64)
fn add_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.output_size) {
        return;
    }
    let area = a.side * a.side;
    let b = e / a.output_size;
    let c = (e % a.output_size) / area;
    arena[a.output + e] = arena[a.input + e] + arena[a.second + b * a.second_size + c];
}

// 2 x 2 average: the input's side -> side / 2.
@compute @workgroup_size(64)
fn pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.output_size) {
        return;
    }
    let small = a.side / 2u;
    let b = e / a.output_size;
    let rest = e % a.output_size;
    let c = rest / (small * small);
    let i = (rest % (small * small)) / small;
    let j = rest % small;
    let at = a.input + b * a.input_size + c * a.side * a.side + 2u * i * a.side + 2u * j;
    arena[a.output + e] =
        (arena[at] + arena[at + 1u] + arena[at + a.side] + arena[at + a.side + 1u]) * 0.25;
}

// Nearest neighbour: the input's side -> 2 side.
@compute @workgroup_size(64)
fn up(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.output_size) {
        return;
    }
    let twice = 2u * a.side;
    let b = e / a.output_size;
    let rest = e % a.output_size;
    let c = rest / (twice * twice);
    let i = (rest % (twice * twice)) / twice;
    let j = rest % twice;
    arena[a.output + e] =
        arena[a.input + b * a.input_size + c * a.side * a.side + (i / 2u) * a.side + j / 2u];
}

// The channels of the input, then those of the second.
@compute @workgroup_size(64)
fn concat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.output_size) {
        return;
    }
    let b = e / a.output_size;
    let rest = e % a.output_size;
    if (rest < a.input_size) {
        arena[a.output + e] = arena[a.input + b * a.input_size + rest];
    } else {
        arena[a.output + e] = arena[a.second + b * a.second_size + rest - a.input_size];
    }
}

// Every image's time features (tensor 1): row `feature_row` of the features region (the host
// computes them with the twin's own f32 sin and cos).
@compute @workgroup_size(64)
fn time(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.output_size) {
        return;
    }
    arena[a.output + e] = arena[a.input + a.feature_row * a.output_size + e % a.output_size];
}

// One Euler step: x (the output, tensor 0) += dt u (the second, the network's last tensor).
@compute @workgroup_size(64)
fn euler(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.output_size) {
        return;
    }
    arena[a.output + e] = arena[a.output + e] + a.dt * arena[a.second + e];
}
