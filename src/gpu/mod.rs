//! The same closed form on WebGPU through wgpu: device acquisition, one cache of compiled kernels
//! per device (`kernels`), a readback helper, and `GpuBackend` (a device and its pipelines). Which
//! of the GPU, the compute workers or the page's thread runs a computation is `web::compute`'s to say.

pub mod backend;
pub mod canary;
pub mod closed_form;
pub mod context;
pub mod digit_trainer;
pub mod kernel_report;
pub mod kernels;
pub mod network_path;
pub mod readback;
pub mod shaders;
pub mod trainer;
pub mod unet;

pub use backend::Backend;
pub use closed_form::{ClosedFormPipeline, TrainingSet};
pub use context::{Gpu, GpuError};

/// Tests of the structs that Rust writes and WGSL reads: `wgsl_layout!(RustType, source,
/// "WgslStruct", [field: kind, ...])` holds the Rust struct to the WGSL struct's size and to each
/// named member's offset and scalar type, as naga lays them out (members whose names start with
/// `_` are padding and are held by the size alone). Each listed field's Rust type is checked at
/// compile time against its kind, so a `u32` written where WGSL reads an `f32` fails to build or
/// fails the test.
#[cfg(test)]
pub(crate) mod wgsl_layout {
    /// (name, offset, kind) of every non-padding member of struct `name` in `source`, and its size.
    pub fn wgsl_struct(source: &str, name: &str) -> (Vec<(String, u32, &'static str)>, u32) {
        let module = naga::front::wgsl::parse_str(source).expect("the kernel parses");
        let ty = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no struct {name} in the kernel"))
            .1;
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{name} is not a struct");
        };
        let named = members
            .iter()
            .filter(|m| !m.name.as_deref().unwrap_or("_").starts_with('_'))
            .map(|m| {
                let kind = match module.types[m.ty].inner {
                    naga::TypeInner::Scalar(naga::Scalar { kind, width: 4 }) => match kind {
                        naga::ScalarKind::Uint => "u32",
                        naga::ScalarKind::Sint => "i32",
                        naga::ScalarKind::Float => "f32",
                        _ => "other",
                    },
                    _ => "other",
                };
                (m.name.clone().unwrap_or_default(), m.offset, kind)
            })
            .collect();
        (named, *span)
    }

    macro_rules! wgsl_layout {
        ($ty:ty, $source:expr, $wgsl:literal, [$($field:ident: $kind:ident),* $(,)?]) => {{
            $(let _: fn(&$ty) -> $kind = |s| s.$field;)*
            let rust: Vec<(String, u32, &'static str)> = vec![$((
                stringify!($field).to_string(),
                std::mem::offset_of!($ty, $field) as u32,
                stringify!($kind),
            )),*];
            let (wgsl, span) = $crate::gpu::wgsl_layout::wgsl_struct($source, $wgsl);
            assert_eq!(wgsl, rust, "{} against WGSL's {}", stringify!($ty), $wgsl);
            assert_eq!(span as usize, std::mem::size_of::<$ty>(), "{}'s size", stringify!($ty));
        }};
    }
    pub(crate) use wgsl_layout;
}
