//! The drop tables of the crate docs say what the stages declare (one source of truth:
//! each stage's `StageInfo::DROPS`).

use nitro::{FromInstance, FromUnderlay};
use pipeline::check_doc_table;

const DOCS: &str = include_str!("../src/lib.rs");

#[test]
fn the_crate_docs_tables_are_the_stages_declarations() {
    assert_eq!(check_doc_table(DOCS, "**From the instance**", FromInstance::DROPS), Ok(()));
    assert_eq!(check_doc_table(DOCS, "**From the underlay**", FromUnderlay::DROPS), Ok(()));
}
