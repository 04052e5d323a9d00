//! man/multipath.conf.5 documents exactly the keywords of the keyword table
//! and formats without groff warnings.

use std::collections::BTreeSet;
use std::process::Command;

use multipathd::config::keywords::KEYWORDS;

const PAGE: &str = include_str!("../man/multipath.conf.5");

/// Names introduced by a `.TP` paragraph whose tag line is `.B name`.
fn documented() -> BTreeSet<String> {
    let lines: Vec<&str> = PAGE.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .filter_map(|w| w[1].strip_prefix(".B "))
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn every_table_keyword_is_documented_and_nothing_else() {
    let table: BTreeSet<String> = KEYWORDS.iter().map(|k| k.name.to_string()).collect();
    let doc = documented();
    let missing: Vec<_> = table.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&table).collect();
    assert!(missing.is_empty(), "not in the man page: {missing:?}");
    assert!(extra.is_empty(), "documented but not in the keyword table: {extra:?}");
}

#[test]
fn groff_reports_no_warnings() {
    let out = match Command::new("groff")
        .args(["-ww", "-z", "-man", "man/multipath.conf.5"])
        .output()
    {
        Ok(o) => o,
        // groff is not installed here; CI installs it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("running groff: {e}"),
    };
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
