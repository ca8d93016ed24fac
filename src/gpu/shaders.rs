//! Every WGSL kernel, loaded in one place.

/// The flags, parameters and bindings the closed-form kernels share, put in front of each.
pub const CLOSED_FORM_BINDINGS: &str =
    include_str!(concat!(env!("OUT_DIR"), "/closed_form_bindings.wgsl"));

/// Fused closed-form velocity (online softmax over training-set chunks, split over the points).
pub const CLOSED_FORM: &str = concat!(
    include_str!(concat!(env!("OUT_DIR"), "/closed_form_bindings.wgsl")),
    include_str!(concat!(env!("OUT_DIR"), "/closed_form.wgsl"))
);

/// The same for dim <= 4: one invocation per query, no workgroup memory.
pub const CLOSED_FORM_SMALL: &str = concat!(
    include_str!(concat!(env!("OUT_DIR"), "/closed_form_bindings.wgsl")),
    include_str!(concat!(env!("OUT_DIR"), "/closed_form_small.wgsl"))
);

/// The merge of the first passes' slots (log-sum-exp weights) into velocities or Euler steps.
pub const CLOSED_FORM_MERGE: &str = concat!(
    include_str!(concat!(env!("OUT_DIR"), "/closed_form_bindings.wgsl")),
    include_str!(concat!(env!("OUT_DIR"), "/closed_form_merge.wgsl"))
);

/// MLP training: batch drawing, the fused matrix products, the loss, and Adam.
pub const MLP_BATCH: &str = include_str!(concat!(env!("OUT_DIR"), "/mlp_batch.wgsl"));
pub const MLP_GEMM: &str = include_str!(concat!(env!("OUT_DIR"), "/mlp_gemm.wgsl"));
pub const MLP_LOSS: &str = include_str!(concat!(env!("OUT_DIR"), "/mlp_loss.wgsl"));
pub const MLP_ADAM: &str = include_str!(concat!(env!("OUT_DIR"), "/mlp_adam.wgsl"));
/// The network's samples: an Euler step and the next step's inputs.
pub const MLP_PATH: &str = include_str!(concat!(env!("OUT_DIR"), "/mlp_path.wgsl"));

/// The U-Net's tiled matrix products (the convolutions' and their gradients'), put in front of
/// both of its modules.
pub const UNET_TILES: &str = include_str!(concat!(env!("OUT_DIR"), "/unet_tiles.wgsl"));

/// The digits' U-Net: one entry point per kind of operation of flow::unet's graph.
pub const UNET: &str = concat!(
    include_str!(concat!(env!("OUT_DIR"), "/unet_tiles.wgsl")),
    include_str!(concat!(env!("OUT_DIR"), "/unet.wgsl"))
);
/// Its backward pass and the CFM loss's gradient, one entry point per kind of operation.
pub const UNET_BACKWARD: &str = concat!(
    include_str!(concat!(env!("OUT_DIR"), "/unet_tiles.wgsl")),
    include_str!(concat!(env!("OUT_DIR"), "/unet_backward.wgsl"))
);
/// A training step's update from its gradient: clipping, Adam, the weights' average.
pub const UNET_UPDATE: &str = include_str!(concat!(env!("OUT_DIR"), "/unet_update.wgsl"));

/// (file name, source) of every kernel, for validation in tests.
pub const ALL: &[(&str, &str)] = &[
    ("closed_form_bindings.wgsl", CLOSED_FORM_BINDINGS),
    ("closed_form.wgsl", CLOSED_FORM),
    ("closed_form_small.wgsl", CLOSED_FORM_SMALL),
    ("closed_form_merge.wgsl", CLOSED_FORM_MERGE),
    ("mlp_batch.wgsl", MLP_BATCH),
    ("mlp_gemm.wgsl", MLP_GEMM),
    ("mlp_loss.wgsl", MLP_LOSS),
    ("mlp_adam.wgsl", MLP_ADAM),
    ("mlp_path.wgsl", MLP_PATH),
    ("unet_tiles.wgsl", UNET_TILES),
    ("unet.wgsl", UNET),
    ("unet_backward.wgsl", UNET_BACKWARD),
    ("unet_update.wgsl", UNET_UPDATE),
];
