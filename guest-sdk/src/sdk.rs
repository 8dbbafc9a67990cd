//! The SDKs for plugins in other languages, as source text: a small module
//! per language over the `weir:rule` WIT world, with ABI v1's field table
//! filled in from [`crate::abi::FIELD_NAMES`], so that the table has one
//! owner. `weir plugin new` writes them into new projects; the example
//! plugins in `plugins/js` and `plugins/python` hold the same text (a test
//! compares them).

use crate::abi::FIELD_NAMES;

/// The WIT contract (`wit/weir-rule.wit`), which component toolchains
/// build against.
pub const WIT: &str = include_str!("../wit/weir-rule.wit");

/// `weir.js`, the JavaScript SDK (for componentize-js).
pub fn javascript() -> String {
    include_str!("../sdk/weir.js").replace("/*FIELD_NAMES*/", &field_list())
}

/// `weir.py`, the Python SDK (for componentize-py).
pub fn python() -> String {
    include_str!("../sdk/weir.py").replace("@FIELD_NAMES@", &field_list())
}

/// The field names as a list literal both languages read.
fn field_list() -> String {
    FIELD_NAMES
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn example(path: &str) -> String {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    }

    #[test]
    fn the_example_plugins_carry_the_sdk_weir_plugin_new_writes() {
        assert_eq!(example("plugins/js/message/src/weir.js"), javascript());
        assert_eq!(example("plugins/python/message/weir.py"), python());
    }

    #[test]
    fn the_field_table_is_abi_v1s() {
        let js = javascript();
        assert!(
            js.contains("[\"\", \"id\", \"clientid\", \"username\", \"topic\""),
            "{js}"
        );
        assert!(!js.contains("/*FIELD_NAMES*/"));
        assert!(!python().contains("@FIELD_NAMES@"));
    }
}
