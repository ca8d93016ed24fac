//! The closed form on WebGPU.
