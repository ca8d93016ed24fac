// The three matrix products of an MLP training step, one register-blocked kernel, with bias and
// activation fused:
//   FORWARD      Z = A W^T + b, H = SiLU(Z) (or Z for the output layer)   [batch x out]
//   BACK_INPUT   dA = (D W) * SiLU'(Z_prev)                                [batch x in]
//   WEIGHT_GRAD  dW = D^T A, db = D^T 1 (as an extra column of ones)      [out x (in + 1)]
// W and b are read from (or, for gradients, written to) the flat parameter layout of
// flow::mlp at w_off and b_off.
//
// A workgroup of 8 x 8 invocations computes a 64 x 64 output tile; invocation (tx, ty) owns the
// 8 x 8 outputs at rows ty + 8 i and at the column groups tx and tx + 8 (four columns each, one
// vec4), in registers. The summed dimension goes by in steps of KT = 16 through two workgroup
// tiles (L: 64 rows x 16, R: 16 x 64 columns as vec4), each loaded cooperatively so that
// neighbouring invocations read neighbouring addresses of whichever operand layout the mode has;
// per k every invocation does 64 multiply-adds (16 vec4) for 8 scalar and 2 vec4 reads of
// workgroup memory (one output per invocation did one multiply-add for two reads). With the
// strided ownership, invocations that differ in tx (or ty) read consecutive words: no bank
// conflicts.
//
// What it relies on (WGSL memory model): the tiles are shared only across workgroupBarrier(),
// reached in uniform control flow (the loop bound is a uniform); storage read here (params,
// operands) was written by earlier dispatches; each output element is written by exactly one
// invocation and not read in this dispatch.

const FORWARD: u32 = 0u;
const BACK_INPUT: u32 = 1u;
const WEIGHT_GRAD: u32 = 2u;
const TILE: u32 = 64u;
const KT: u32 = 16u;
const BLOCK: u32 = 8u;

struct Gemm {
    mode: u32,
    rows: u32,     // R of the output
    cols: u32,     // C of the output
    inner: u32,    // K, the summed dimension
    w_off: u32,
    b_off: u32,
    fan_in: u32,   // the layer's inputs
    silu: u32,     // FORWARD: apply SiLU; BACK_INPUT: multiply by SiLU'
}

@group(0) @binding(0) var<uniform> g: Gemm;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> out2: array<f32>;

// l_tile[k * TILE + r] = L(r0 + r, k0 + k); r_tile[k * 16 + c / 4][c % 4] = R(k0 + k, c0 + c).
var<workgroup> l_tile: array<f32, 1024>;
var<workgroup> r_tile: array<vec4<f32>, 256>;

// Left operand L(r, k).
fn left(r: u32, k: u32) -> f32 {
    if (r >= g.rows || k >= g.inner) {
        return 0.0;
    }
    if (g.mode == WEIGHT_GRAD) {
        return x[k * g.rows + r];          // D^T: D is batch x out
    }
    return x[r * g.inner + k];             // A (batch x in) or D (batch x out)
}

// Right operand R(k, c).
fn right(k: u32, c: u32) -> f32 {
    if (k >= g.inner || c >= g.cols) {
        return 0.0;
    }
    if (g.mode == FORWARD) {
        return params[g.w_off + c * g.inner + k];    // W^T: W is out x in
    }
    if (g.mode == BACK_INPUT) {
        return params[g.w_off + k * g.cols + c];     // W
    }
    if (c == g.fan_in) {
        return 1.0;                                  // the column of ones gives db
    }
    return y[k * g.fan_in + c];                      // A: batch x in
}

fn sigmoid(z: f32) -> f32 {
    return 1.0 / (1.0 + exp(-z));
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let tx = lid % BLOCK;
    let ty = lid / BLOCK;
    let r0 = wid.y * TILE;
    let c0 = wid.x * TILE;
    // L is contiguous along k except for WEIGHT_GRAD (along r); R along c except for FORWARD.
    let l_along_k = g.mode != WEIGHT_GRAD;
    let r_along_k = g.mode == FORWARD;
    // acc(2 i + h): row ty + 8 i, columns 4 (tx + 8 h) .. 4 (tx + 8 h) + 3. Written out as
    // sixteen variables and an unrolled loop: an array indexed in a loop lives in memory on
    // compilers that do not unroll (SwiftShader), which made every multiply-add a load and a store.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < g.inner; k0 += KT) {
        for (var s = 0u; s < TILE * KT / 64u; s++) {
            let e = lid + 64u * s;
            var r = e % TILE;
            var k = e / TILE;
            if (l_along_k) {
                r = e / KT;
                k = e % KT;
            }
            l_tile[k * TILE + r] = left(r0 + r, k0 + k);
            var c = e % TILE;
            var kr = e / TILE;
            if (r_along_k) {
                c = e / KT;
                kr = e % KT;
            }
            r_tile[kr * 16u + c / 4u][c % 4u] = right(k0 + kr, c0 + c);
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            let b0 = r_tile[k * 16u + tx];
            let b1 = r_tile[k * 16u + tx + 8u];
            let a0 = l_tile[k * TILE + ty + 0u];
            acc0 += a0 * b0;
            acc1 += a0 * b1;
            let a1 = l_tile[k * TILE + ty + 8u];
            acc2 += a1 * b0;
            acc3 += a1 * b1;
            let a2 = l_tile[k * TILE + ty + 16u];
            acc4 += a2 * b0;
            acc5 += a2 * b1;
            let a3 = l_tile[k * TILE + ty + 24u];
            acc6 += a3 * b0;
            acc7 += a3 * b1;
            let a4 = l_tile[k * TILE + ty + 32u];
            acc8 += a4 * b0;
            acc9 += a4 * b1;
            let a5 = l_tile[k * TILE + ty + 40u];
            acc10 += a5 * b0;
            acc11 += a5 * b1;
            let a6 = l_tile[k * TILE + ty + 48u];
            acc12 += a6 * b0;
            acc13 += a6 * b1;
            let a7 = l_tile[k * TILE + ty + 56u];
            acc14 += a7 * b0;
            acc15 += a7 * b1;
        }
        workgroupBarrier();
    }
    store_row(r0 + ty + 0u, c0, tx, acc0, acc1);
    store_row(r0 + ty + 8u, c0, tx, acc2, acc3);
    store_row(r0 + ty + 16u, c0, tx, acc4, acc5);
    store_row(r0 + ty + 24u, c0, tx, acc6, acc7);
    store_row(r0 + ty + 32u, c0, tx, acc8, acc9);
    store_row(r0 + ty + 40u, c0, tx, acc10, acc11);
    store_row(r0 + ty + 48u, c0, tx, acc12, acc13);
    store_row(r0 + ty + 56u, c0, tx, acc14, acc15);
}

// Row r's two column groups of one invocation: columns 4 (tx + 8 h) + j of the tile at c0.
fn store_row(r: u32, c0: u32, tx: u32, v0: vec4<f32>, v1: vec4<f32>) {
    if (r >= g.rows) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let c = c0 + 4u * tx + j;
        if (c < g.cols) {
            store(r, c, v0[j]);
        }
        let c1 = c + 32u;
        if (c1 < g.cols) {
            store(r, c1, v1[j]);
        }
    }
}

fn store(r: u32, c: u32, acc: f32) {
    if (g.mode == FORWARD) {
        let z = acc + params[g.b_off + c];
        out[r * g.cols + c] = z;
        if (g.silu != 0u) {
            out2[r * g.cols + c] = z * sigmoid(z);
        } else {
            out2[r * g.cols + c] = z;
        }
    } else if (g.mode == BACK_INPUT) {
        var d = acc;
        if (g.silu != 0u) {
            let z = y[r * g.cols + c];
            let s = sigmoid(z);
            d *= s * (1.0 + z * (1.0 - s));
        }
        out[r * g.cols + c] = d;
    } else if (c == g.fan_in) {
        out[g.b_off + r] = acc;
    } else {
        out[g.w_off + r * g.fan_in + c] = acc;
    }
}
