//! Every WGSL kernel parses and validates with naga, so a typo fails `cargo test`, not a reader's
//! browser.

use fm_explainer::gpu::shaders;

#[test]
fn every_kernel_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".wgsl"))
        .collect();
    for file in &on_disk {
        assert!(
            shaders::ALL.iter().any(|(name, _)| name == file),
            "{file} is not listed in gpu::shaders::ALL"
        );
    }
    for (name, source) in shaders::ALL {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    }
}
