//! Blocks the documentation gives, extracted so that tests run them as written.

use std::path::Path;

/// The first ```` ```conf ```` block after `marker` (an HTML comment naming the test that
/// runs it) in `docs/FILE`.
pub fn conf_block_after(file: &str, marker: &str) -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(file),
    )
    .unwrap();
    let after = &doc[doc
        .find(marker)
        .unwrap_or_else(|| panic!("the marker {marker} in docs/{file}"))
        + marker.len()..];
    let block = &after[after
        .find("```conf\n")
        .expect("a conf block after the marker")
        + 8..];
    block[..block.find("\n```").expect("the block's end") + 1].to_owned()
}
