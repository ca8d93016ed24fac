//! Files generated from the crate's own descriptions, kept in the repository so that readers of
//! the README and authors copying www/embed.js see them: each test rebuilds a block and fails
//! when the committed one differs (after writing the new one, so a review and a commit are all
//! that is left).

use fm_explainer::catalog;
use std::path::Path;

/// Replaces the lines between the lines holding "generated:start" and "generated:end" in `file`
/// with `block`; fails if they were different.
fn ensure_block(file: &str, block: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let start = text
        .find("generated:start")
        .and_then(|i| text[i..].find('\n').map(|j| i + j + 1))
        .unwrap_or_else(|| panic!("{file} has no generated:start line"));
    let end = text[start..]
        .find("generated:end")
        .map(|i| start + text[start..i + start].rfind('\n').map_or(0, |j| j + 1))
        .unwrap_or_else(|| panic!("{file} has no generated:end line after its start"));
    if &text[start..end] == block {
        return;
    }
    let updated = format!("{}{block}{}", &text[..start], &text[end..]);
    std::fs::write(&path, updated).unwrap_or_else(|e| panic!("{file}: {e}"));
    panic!(
        "{file} was out of date with src/catalog.rs and has been rewritten: review and commit it"
    );
}

#[test]
fn the_readme_table_of_figures_is_the_catalog() {
    ensure_block("README.md", &catalog::readme_table());
}

#[test]
fn embed_js_observes_the_catalog_settings() {
    ensure_block("www/embed.js", &catalog::embed_list());
}

#[test]
fn the_typescript_figure_names_are_the_catalog() {
    ensure_block("src/web/api.rs", &catalog::typescript_names());
}
