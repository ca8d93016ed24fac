// The digits' U-Net's backward pass (flow::unet::Unet::backward's twin) over a batch, and the
// CFM loss's gradient that starts it: one entry point per kind of operation, each dispatched once
// per operation of the graph in reverse. The forward pass's tensors are read from `arena` (laid
// out as in unet.wgsl); `grad` holds every tensor's gradient at the same offsets, then a scratch
// region (from `a.scratch`) for the partial sums of parameter gradients; `grads` is the flat
// parameter vector's gradient, added to (so that several batches' gradients can be summed).
//
// What it relies on (WGSL memory model): `grad` starts zeroed; each dispatch reads gradients that
// earlier dispatches wrote and adds to other tensors' gradients (the input's, never the output's
// it reads), so no element is read and written by two invocations of one dispatch. Partial sums
// are stored in the scratch region by one dispatch and summed by the next (`sum_rows`). In the
// tiled products, `loss` and `norm_back`, workgroup memory is written, then read after a
// workgroupBarrier; every barrier is reached by all invocations of the workgroup: loop bounds
// around them come from the uniform `a` and workgroup ids alone, and no invocation returns
// before them (out-of-range invocations load zeros and skip their stores).

const GROUP: u32 = 64u;

struct Args {
    rows: u32,         // images in the batch
    input: u32,        // the operation's input tensor (image 0): in `arena` and `grad`
    input_size: u32,
    second: u32,       // loss: the target (in `arena`); add_slice: the offset inside the source
    second_size: u32,
    output: u32,       // the operation's output tensor, whose gradient is read from `grad`
    output_size: u32,
    w: u32,            // parameter offsets (sum_rows: where in `grads` the sums go)
    b: u32,
    cin: u32,
    cout: u32,         // output channels (add_slice, sum_rows: values per row)
    k: u32,
    side: u32,
    groups: u32,
    feature_row: u32,  // conv_dw: pixels of the batch per split
    dt: f32,           // loss: the scale (1 / the batch's size)
    scratch: u32,      // the scratch region's offset in `grad`
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> a: Args;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> arena: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;

fn element(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * GROUP;
}

// Invocations of the reducing workgroups (`loss`, `norm_back`).
const WIDTH: u32 = 64u;
var<workgroup> partial: array<vec4<f32>, 64>;

// The workgroup's sums of `value`'s four lanes, in uniform control flow: every invocation adds
// the 64 partial values in the same order, behind two barriers (as unet.wgsl's `reduce`; a tree
// takes seven, and barriers are what SwiftShader pays most for).
fn reduce4(lid: u32, value: vec4<f32>) -> vec4<f32> {
    partial[lid] = value;
    workgroupBarrier();
    var total = vec4<f32>(0.0);
    for (var i = 0u; i < WIDTH; i++) {
        total += partial[i];
    }
    workgroupBarrier();
    return total;
}

fn reduce(lid: u32, value: f32) -> f32 {
    return reduce4(lid, vec4<f32>(value, 0.0, 0.0, 0.0)).x;
}

// ---- The loss: one workgroup per image. d u = 2 (u - target) scale; the image's
// scale |u - target|^2 stored at scratch[b].

@compute @workgroup_size(64)
fn loss(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let b = wid.x;
    let live = b < a.rows;
    var sum = 0.0;
    for (var i = lid; i < a.output_size; i += WIDTH) {
        if (live) {
            let at = a.output + b * a.output_size + i;
            let diff = arena[at] - arena[a.second + b * a.output_size + i];
            grad[at] = 2.0 * diff * a.dt;
            sum += diff * diff;
        }
    }
    let total = reduce(lid, sum);
    if (live && lid == 0u) {
        grad[a.scratch + b] = total * a.dt;
    }
}

// ---- Convolutions' gradients as implicit matrix products (unet_tiles.wgsl's tiles).
//
// conv_dx: d in (cin x rows area) += W' (cin x cout k k) times dy's patches (cout k k x rows
//   area), W'[c][(o, r)] = W[o][c][k k - 1 - r] (the kernel turned half a turn): the input's
//   gradient is the output's gradient convolved with the flipped kernel.
// conv_dw: for split s, dW_s (cout x cin k k) = dy (cout x P_s) times the input's patches
//   (P_s x cin k k) over the split's P_s pixels of the batch, stored in the scratch region.

// A column of the right operand: conv_dx's pixel (its image's offset in dy, its position less
// the padding), or conv_dw's patch row (its channel c and offsets (i, j) less the padding).
struct Column {
    ok: bool,
    at: u32,
    c: u32,
    i: i32,
    j: i32,
}

fn column_of(dx: bool, n: u32) -> Column {
    let side = a.side;
    let area = side * side;
    let kernel = a.k * a.k;
    let pad = i32(a.k / 2u);
    if (dx) {
        return Column(n < a.rows * area, a.output + (n / area) * a.output_size, 0u,
                      i32((n % area) / side) - pad, i32(n % side) - pad);
    }
    return Column(n < a.cin * kernel, 0u, n / kernel,
                  i32((n % kernel) / a.k) - pad, i32((n % kernel) % a.k) - pad);
}

// conv_dx's right value: dy at channel o, offset (di, dj) from the column's pixel.
fn dy_patch(col: Column, o: u32, di: i32, dj: i32) -> f32 {
    let side = a.side;
    let i = col.i + di;
    let j = col.j + dj;
    if (col.ok && o < a.cout && i >= 0 && j >= 0 && i < i32(side) && j < i32(side)) {
        return grad[col.at + o * side * side + u32(i) * side + u32(j)];
    }
    return 0.0;
}

// conv_dw's right value: the input of image b at the column's channel, offset from (pi, pj).
fn x_patch(col: Column, live: bool, b: u32, pi: u32, pj: u32) -> f32 {
    let side = a.side;
    let i = i32(pi) + col.i;
    let j = i32(pj) + col.j;
    if (col.ok && live && i >= 0 && j >= 0 && i < i32(side) && j < i32(side)) {
        return arena[a.input + b * a.input_size + col.c * side * side + u32(i) * side + u32(j)];
    }
    return 0.0;
}

// The 32 x 128 tile at (m0, n0) of the product over kk in [first, last). The right operand's
// tile: each invocation loads columns lid and lid + 64 and walks their 16 rows with counters
// rather than divisions. conv_dx: the columns are pixels (fixed), the rows dy's (o, di, dj).
// conv_dw: the columns are patch rows (c, di, dj) (fixed), the rows the batch's pixels.
fn product(dx: bool, lid: u32, m0: u32, n0: u32, first: u32, last: u32) -> array<vec4<f32>, 16> {
    let side = a.side;
    let area = side * side;
    let kernel = a.k * a.k;
    let col_a = column_of(dx, n0 + lid);
    let col_b = column_of(dx, n0 + lid + 64u);
    // conv_dw's pixel counters, from the range's first pixel (the same in every invocation).
    var b = first / area;
    var pixel_i = (first % area) / side;
    var pixel_j = first % side;
    var sums = Sums();
    // The left tile: this invocation loads row m = m0 + lid % TM at kk = k0 + lid / TM + 2 q,
    // walked with counters: conv_dx's (o, r) of the flipped kernel, conv_dw's (image, pixel).
    let m = m0 + lid % TM;
    let half = lid / TM;
    for (var k0 = first; k0 < last; k0 += TK) {
        let start = k0 + half;
        var major = start / kernel;
        var minor = start % kernel;
        if (!dx) {
            major = start / area;
            minor = start % area;
        }
        for (var q = 0u; q < TK * TM / GROUP; q++) {
            let kk = start + 2u * q;
            var v = 0.0;
            if (dx) {
                if (kk < last && major < a.cout && m < a.cin) {
                    v = params[a.w + (major * a.cin + m) * kernel + kernel - 1u - minor];
                }
                minor += 2u;
                while (minor >= kernel) {
                    minor -= kernel;
                    major += 1u;
                }
            } else {
                if (kk < last && m < a.cout) {
                    v = grad[a.output + major * a.output_size + m * area + minor];
                }
                minor += 2u;
                while (minor >= area) {
                    minor -= area;
                    major += 1u;
                }
            }
            l_tile[(half + 2u * q) * TM + lid % TM] = v;
        }
        if (dx) {
            var o = k0 / kernel;
            var di = i32((k0 % kernel) / a.k);
            var dj = i32((k0 % kernel) % a.k);
            for (var q = 0u; q < TK; q++) {
                r_tile[q * TN + lid] = dy_patch(col_a, o, di, dj);
                r_tile[q * TN + lid + 64u] = dy_patch(col_b, o, di, dj);
                dj += 1;
                if (dj == i32(a.k)) {
                    dj = 0;
                    di += 1;
                    if (di == i32(a.k)) {
                        di = 0;
                        o += 1u;
                    }
                }
            }
        } else {
            for (var q = 0u; q < TK; q++) {
                let live = k0 + q < last;
                r_tile[q * TN + lid] = x_patch(col_a, live, b, pixel_i, pixel_j);
                r_tile[q * TN + lid + 64u] = x_patch(col_b, live, b, pixel_i, pixel_j);
                pixel_j += 1u;
                if (pixel_j == side) {
                    pixel_j = 0u;
                    pixel_i += 1u;
                    if (pixel_i == side) {
                        pixel_i = 0u;
                        b += 1u;
                    }
                }
            }
        }
        workgroupBarrier();
        sums = accumulate(lid, sums);
        workgroupBarrier();
    }
    return values(sums);
}

@compute @workgroup_size(64)
fn conv_dx(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let m0 = wid.y * TM;
    let n0 = wid.x * TN;
    let acc = product(true, lid, m0, n0, 0u, a.cout * a.k * a.k);
    let area = a.side * a.side;
    for (var r = 0u; r < 16u; r++) {
        let m = m0 + tile_row(lid, r);
        for (var c = 0u; c < 4u; c++) {
            let n = n0 + tile_column(lid, r, c);
            if (m < a.cin && n < a.rows * area) {
                let at = a.input + (n / area) * a.input_size + m * area + n % area;
                grad[at] += acc[r][c];
            }
        }
    }
}

// Workgroups: x over the cin k k columns, y over the cout rows' tiles then the splits.
@compute @workgroup_size(64)
fn conv_dw(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let tiles = (a.cout + TM - 1u) / TM;
    let split = wid.y / tiles;
    let m0 = (wid.y % tiles) * TM;
    let n0 = wid.x * TN;
    let pixels = a.rows * a.side * a.side;
    let first = min(split * a.feature_row, pixels);
    let last = min(first + a.feature_row, pixels);
    let acc = product(false, lid, m0, n0, first, last);
    let depth = a.cin * a.k * a.k;
    for (var r = 0u; r < 16u; r++) {
        let m = m0 + tile_row(lid, r);
        for (var c = 0u; c < 4u; c++) {
            let n = n0 + tile_column(lid, r, c);
            if (m < a.cout && n < depth) {
                grad[a.scratch + split * a.cout * depth + m * depth + n] = acc[r][c];
            }
        }
    }
}

// ---- Per-channel sums of the output's gradient over each image's pixels (a convolution's
// bias, AddChannels' per-channel term): one invocation per (image, channel), adding its plane in
// order (no barrier), stored at scratch[b cout + c].

@compute @workgroup_size(64)
fn channel_sums(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.cout) {
        return;
    }
    let b = e / a.cout;
    let c = e % a.cout;
    let area = a.side * a.side;
    let first = a.output + b * a.output_size + c * area;
    var sum = 0.0;
    for (var i = 0u; i < area; i++) {
        sum += grad[first + i];
    }
    grad[a.scratch + e] = sum;
}

// ---- GroupNorm: one workgroup of 64 per (group, image). With xhat = (x - mean) rstd and the
// channel's scale gamma: per channel, gs = sum dy xhat and bs = sum dy (gamma's and beta's
// gradients, stored at scratch[b cin + ch] and scratch[(rows + b) cin + ch]), two channels a
// reduction; then dx += rstd (dy gamma - mean(dy gamma) - xhat mean(dy gamma xhat)), the means
// over the group.

@compute @workgroup_size(64)
fn norm_back(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let g = wid.x;
    let b = wid.y;
    let area = a.side * a.side;
    let per_group = a.cin / a.groups;
    let count = per_group * area;
    let first = a.input + b * a.input_size + g * count;
    let dfirst = a.output + b * a.output_size + g * count;
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
    var mean_dy = 0.0;
    var mean_dot = 0.0;
    for (var q = 0u; q < per_group; q += 2u) {
        // Channels q and q + 1 (when the group has it): (gs, bs, gs', bs').
        let pair = q + 1u < per_group;
        var sums = vec4<f32>(0.0);
        for (var i = lid; i < area; i += WIDTH) {
            if (live) {
                let dy = grad[dfirst + q * area + i];
                sums.x += dy * (arena[first + q * area + i] - mean) * rstd;
                sums.y += dy;
                if (pair) {
                    let dy2 = grad[dfirst + (q + 1u) * area + i];
                    sums.z += dy2 * (arena[first + (q + 1u) * area + i] - mean) * rstd;
                    sums.w += dy2;
                }
            }
        }
        let total = reduce4(lid, sums);
        for (var h = 0u; h < select(1u, 2u, pair); h++) {
            let ch = g * per_group + q + h;
            let gsum = total[2u * h];
            let bsum = total[2u * h + 1u];
            if (live && lid == 0u) {
                grad[a.scratch + b * a.cin + ch] = gsum;
                grad[a.scratch + (a.rows + b) * a.cin + ch] = bsum;
            }
            mean_dy += bsum * params[a.w + ch];
            mean_dot += gsum * params[a.w + ch];
        }
    }
    mean_dy /= f32(count);
    mean_dot /= f32(count);
    if (!live) {
        return;
    }
    for (var i = lid; i < count; i += WIDTH) {
        let scale = params[a.w + g * per_group + i / area];
        let xhat = (arena[first + i] - mean) * rstd;
        grad[a.input + b * a.input_size + g * count + i] +=
            rstd * (grad[dfirst + i] * scale - mean_dy - xhat * mean_dot);
    }
}

// ---- Element-wise gradients, one invocation per value of the input.

@compute @workgroup_size(64)
fn silu_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.input_size) {
        return;
    }
    let x = arena[a.input + e];
    let s = 1.0 / (1.0 + exp(-x));
    grad[a.input + e] += grad[a.output + e] * s * (1.0 + x * (1.0 - s));
}

// d in[b][i] += sum_o dy[b][o] W[o][i].
@compute @workgroup_size(64)
fn linear_dx(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.cin) {
        return;
    }
    let b = e / a.cin;
    let i = e % a.cin;
    var acc = 0.0;
    for (var o = 0u; o < a.cout; o++) {
        acc = fma(grad[a.output + b * a.output_size + o], params[a.w + o * a.cin + i], acc);
    }
    grad[a.input + b * a.input_size + i] += acc;
}

// grads W[o][i] += sum_b dy[b][o] in[b][i], then the biases: grads b[o] += sum_b dy[b][o].
@compute @workgroup_size(64)
fn linear_dw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    let weights = a.cout * a.cin;
    if (e >= weights + a.cout) {
        return;
    }
    if (e < weights) {
        let o = e / a.cin;
        let i = e % a.cin;
        var acc = 0.0;
        for (var b = 0u; b < a.rows; b++) {
            acc = fma(grad[a.output + b * a.output_size + o], arena[a.input + b * a.input_size + i], acc);
        }
        grads[a.w + e] += acc;
    } else {
        let o = e - weights;
        var acc = 0.0;
        for (var b = 0u; b < a.rows; b++) {
            acc += grad[a.output + b * a.output_size + o];
        }
        grads[a.b + o] += acc;
    }
}

// grad[input][b][i] += grad[output][b][second + i] for i < cout: Add's terms, Concat's parts,
// AddChannels' per-channel term (from the scratch region).
@compute @workgroup_size(64)
fn add_slice(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.cout) {
        return;
    }
    let b = e / a.cout;
    let i = e % a.cout;
    grad[a.input + b * a.input_size + i] += grad[a.output + b * a.output_size + a.second + i];
}

// 2 x 2 average (side -> side / 2): each input value gets a quarter of its output's gradient.
@compute @workgroup_size(64)
fn pool_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.input_size) {
        return;
    }
    let side = a.side;
    let half = side / 2u;
    let b = e / a.input_size;
    let rest = e % a.input_size;
    let c = rest / (side * side);
    let i = (rest % (side * side)) / side;
    let j = rest % side;
    grad[a.input + e] +=
        grad[a.output + b * a.output_size + c * half * half + (i / 2u) * half + j / 2u] * 0.25;
}

// Nearest neighbour (side -> 2 side): each input value gets its four outputs' gradients.
@compute @workgroup_size(64)
fn up_back(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.rows * a.input_size) {
        return;
    }
    let side = a.side;
    let twice = 2u * side;
    let b = e / a.input_size;
    let rest = e % a.input_size;
    let c = rest / (side * side);
    let i = (rest % (side * side)) / side;
    let j = rest % side;
    let at = a.output + b * a.output_size + c * twice * twice + 2u * i * twice + 2u * j;
    grad[a.input + e] += grad[at] + grad[at + 1u] + grad[at + twice] + grad[at + twice + 1u];
}

// grads[w + i] += sum over r < rows of scratch[r cout + i], i < cout: the partial sums of a
// parameter gradient (over images or splits) added in a fixed order.
@compute @workgroup_size(64)
fn sum_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = element(gid, groups);
    if (e >= a.cout) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < a.rows; r++) {
        acc += grad[a.scratch + r * a.cout + e];
    }
    grads[a.w + e] += acc;
}
