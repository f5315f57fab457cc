//! The README's drop tables and its list of drop reasons say what the code declares: each
//! stage's `StageInfo::DROPS` (gathered per pipeline in `DROPS`) and `DropReason::ALL`
//! with `is_security`. No DPDK, no binary: text against constants.

use pipeline::{check_doc_table, DropReason};

const README: &str = include_str!("../README.md");

#[test]
fn the_readme_tables_are_the_stages_declarations() {
    for (after, table) in [
        ("(`nitro::FromInstance`)", nitro::FromInstance::DROPS),
        ("(`nitro::FromUnderlay`)", nitro::FromUnderlay::DROPS),
        ("(`blackfoot::FromUnderlay`)", blackfoot::FromUnderlay::DROPS),
        ("(`blackfoot::FromOutside`;", blackfoot::FromOutside::DROPS),
    ] {
        assert_eq!(check_doc_table(README, after, table), Ok(()));
    }
}

/// `### Drop reasons`: every reason in order, `*` exactly on the security ones.
#[test]
fn the_readme_lists_every_drop_reason_and_marks_the_security_ones() {
    let start = README.find("### Drop reasons").expect("a Drop reasons section");
    let text = &README[start..];
    let list = &text[..text.find("(* raises a security").expect("the list ends with the legend")];
    let mut got = Vec::new();
    let parts: Vec<&str> = list.split('`').collect();
    for k in (1..parts.len()).step_by(2) {
        let starred = parts.get(k + 1).is_some_and(|after| after.starts_with('*'));
        got.push((parts[k].to_owned(), starred));
    }
    let want: Vec<(String, bool)> = DropReason::ALL.iter().map(|r| (r.name().to_owned(), r.is_security())).collect();
    assert_eq!(got, want);
}
