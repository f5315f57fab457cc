//! The README's list of drop reasons is the code's: every reason once, the security ones
//! starred; and its drop tables are what the stages declare (each stage's
//! `StageInfo::DROPS`, gathered per pipeline in `DROPS`).

use pipeline::{check_doc_table, DropReason};

#[test]
fn readme_lists_every_drop_reason() {
    let readme = include_str!("../README.md");
    let start = readme.find("### Drop reasons").expect("a Drop reasons section");
    let section = &readme[start..];
    let end = section.find("(* raises a security").expect("the list ends with its legend");
    let list = &section[..end];
    let mut listed: Vec<(String, bool)> = Vec::new();
    for part in list.split('`').skip(1).step_by(2).zip(list.split('`').skip(2).step_by(2)) {
        let (name, after) = part;
        listed.push((name.to_owned(), after.starts_with('*')));
    }
    let want: Vec<(String, bool)> = DropReason::ALL.iter().map(|r| (r.name().to_owned(), r.is_security())).collect();
    assert_eq!(listed, want, "README.md's drop reasons, in DropReason::ALL order");
}

#[test]
fn the_readme_drop_tables_are_the_stages_declarations() {
    let readme = include_str!("../README.md");
    for (after, table) in [
        ("(`nitro::FromInstance`)", nitro::FromInstance::DROPS),
        ("(`nitro::FromUnderlay`)", nitro::FromUnderlay::DROPS),
        ("(`blackfoot::FromUnderlay`)", blackfoot::FromUnderlay::DROPS),
        ("(`blackfoot::FromOutside`;", blackfoot::FromOutside::DROPS),
    ] {
        assert_eq!(check_doc_table(readme, after, table), Ok(()));
    }
}
