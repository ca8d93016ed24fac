// The three matrix products of an MLP training step, one register-blocked kernel, with bias and
// activation fused:
//   FORWARD      Z = A W^T + b, H = SiLU(Z) (or Z for the output layer)   [batch x out]
//   BACK_INPUT   dA = (D W) * SiLU'(Z_prev)                                [batch x in]
//   WEIGHT_GRAD  dW = D^T A, db = D^T 1 (as an extra column of ones)      [out x (in + 1)]
// W and b are read from (or, for gradients, written to) the flat parameter layout of
// flow::mlp at w_off and b_off.
//
// A workgroup of 8 x 8 invocations computes a 64 x 64 output tile; invocation (tx, ty) owns the
// 8 x 8 outputs at rows ty + 8 i and columns tx + 8 j, in registers. The summed dimension goes
// by in steps of KT = 8 through two workgroup tiles (L: 64 rows x 8, R: 8 x 64 columns), each
// loaded cooperatively so that neighbouring invocations read neighbouring addresses of whichever
// operand layout the mode has; per step every invocation does 64 multiply-adds for 16 reads of
// workgroup memory (one output per invocation did one for two). With the strided ownership,
// invocations that differ in tx (or ty) read consecutive words of a tile row: no bank conflicts.
//
// What it relies on (WGSL memory model): the tiles are shared only across workgroupBarrier(),
// reached in uniform control flow (the loop bound is a uniform); storage read here (params,
// operands) was written by earlier dispatches; each output element is written by exactly one
// invocation and not read in this dispatch.

const FORWARD: u32 = 0u;
const BACK_INPUT: u32 = 1u;
const WEIGHT_GRAD: u32 = 2u;
const TILE: u32 = 64u;
const KT: u32 = 8u;
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

// l_tile[k * TILE + r] = L(r0 + r, k0 + k); r_tile[k * TILE + c] = R(k0 + k, c0 + c).
var<workgroup> l_tile: array<f32, 512>;
var<workgroup> r_tile: array<f32, 512>;

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
    var acc: array<f32, 64>;
    for (var e = 0u; e < 64u; e++) {
        acc[e] = 0.0;
    }
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
            r_tile[kr * TILE + c] = right(k0 + kr, c0 + c);
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            var a: array<f32, 8>;
            var b: array<f32, 8>;
            for (var i = 0u; i < BLOCK; i++) {
                a[i] = l_tile[k * TILE + ty + BLOCK * i];
                b[i] = r_tile[k * TILE + tx + BLOCK * i];
            }
            for (var i = 0u; i < BLOCK; i++) {
                for (var j = 0u; j < BLOCK; j++) {
                    acc[i * BLOCK + j] += a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < BLOCK; i++) {
        let r = r0 + ty + BLOCK * i;
        for (var j = 0u; j < BLOCK; j++) {
            let c = c0 + tx + BLOCK * j;
            if (r < g.rows && c < g.cols) {
                store(r, c, acc[i * BLOCK + j]);
            }
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
