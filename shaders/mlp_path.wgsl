// One Euler step of the network's samples (flow::sampler::HybridPath's step_with), and the next
// step's inputs: x += dt u for every row (when `apply`), the positions kept as a frame (when
// `frame` is not NO_FRAME), then the network input [x, time features] and the closed form's
// per-query time for the next step. The time features are computed on the host (the CPU's own
// f32 sin and cos), so the network's input is bit for bit the CPU twin's. One invocation per row;
// with `apply` off it only writes the inputs of the first step (and frame 0, x0).
//
// What it relies on (WGSL memory model): invocation r reads and writes only row r of `x`,
// `input`, `times` and `frames`; `velocity` and `features` were written by earlier dispatches or
// the host and are not written here. No workgroup memory, no barriers.

const NO_FRAME: u32 = 0xffffffffu;
const GROUP: u32 = 64u;

struct Step {
    rows: u32,
    dim: u32,
    time_features: u32,
    apply: u32,
    dt: f32,
    t_next: f32,
    frame: u32,        // offset of the frame to write, in floats, or NO_FRAME
    feature_row: u32,  // the row of `features` for the next step's time
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> velocity: array<f32>;
@group(0) @binding(2) var<storage, read> features: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> input: array<f32>;
@group(0) @binding(5) var<storage, read_write> times: array<f32>;
@group(0) @binding(6) var<storage, read_write> frames: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let r = gid.x + gid.y * groups.x * GROUP;
    if (r >= step.rows) {
        return;
    }
    let dim = step.dim;
    let width = dim + step.time_features;
    for (var k = 0u; k < dim; k++) {
        var v = x[r * dim + k];
        if (step.apply != 0u) {
            v = v + step.dt * velocity[r * dim + k];
            x[r * dim + k] = v;
        }
        if (step.frame != NO_FRAME) {
            frames[step.frame + r * dim + k] = v;
        }
        input[r * width + k] = v;
    }
    for (var j = 0u; j < step.time_features; j++) {
        input[r * width + dim + j] = features[step.feature_row * step.time_features + j];
    }
    times[r] = step.t_next;
}
