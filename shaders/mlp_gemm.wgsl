// The three matrix products of an MLP training step, one tiled kernel (16 x 16 output tiles,
// operands staged through workgroup memory), with bias and activation fused:
//   FORWARD      Z = A W^T + b, H = SiLU(Z) (or Z for the output layer)   [batch x out]
//   BACK_INPUT   dA = (D W) * SiLU'(Z_prev)                                [batch x in]
//   WEIGHT_GRAD  dW = D^T A, db = D^T 1 (as an extra column of ones)      [out x (in + 1)]
// W and b are read from (or, for gradients, written to) the flat parameter layout of
// flow::mlp at w_off and b_off.

const FORWARD: u32 = 0u;
const BACK_INPUT: u32 = 1u;
const WEIGHT_GRAD: u32 = 2u;
const TILE: u32 = 16u;

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

var<workgroup> l_tile: array<f32, 256>;
var<workgroup> r_tile: array<f32, 256>;

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

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r = wid.y * TILE + lid.y;
    let c = wid.x * TILE + lid.x;
    var acc = 0.0;
    for (var k0 = 0u; k0 < g.inner; k0 += TILE) {
        l_tile[lid.y * TILE + lid.x] = left(r, k0 + lid.x);
        r_tile[lid.y * TILE + lid.x] = right(k0 + lid.y, c);
        workgroupBarrier();
        for (var k = 0u; k < TILE; k++) {
            acc += l_tile[lid.y * TILE + k] * r_tile[k * TILE + lid.x];
        }
        workgroupBarrier();
    }
    if (r >= g.rows || c >= g.cols) {
        return;
    }
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
