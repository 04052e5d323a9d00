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

/// `doc/keywords-status.md` against the keyword table's `support` column, the checker and
/// prioritizer lists: one row per keyword, `refused` exactly for the refused rows with the
/// table's "instead" text, and every test it names exists.
#[test]
fn keyword_status_doc_matches_the_table() {
    use multipathd::config::keywords::{KEYWORDS, Support};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("doc/keywords-status.md")).unwrap();
    let rows = |heading: &str| -> Vec<Vec<String>> {
        let part = doc.split(heading).nth(1).unwrap_or_else(|| panic!("{heading}"));
        let part = part.split("\n## ").next().unwrap();
        part.lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                l.trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().trim_matches('`').to_string())
                    .collect()
            })
            .collect()
    };
    let test_exists = |cell: &str| {
        if cell == "-" {
            return;
        }
        let (file, name) = cell.split_once("::").unwrap_or_else(|| panic!("{cell}: file::test"));
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(&format!("fn {name}()")), "{cell}: no such test");
    };
    let keywords = rows("## Keywords");
    let mut names: Vec<&str> = KEYWORDS.iter().map(|k| k.name).collect();
    names.sort_unstable();
    names.dedup();
    let mut listed: Vec<&str> = keywords.iter().map(|r| r[0].as_str()).collect();
    listed.sort_unstable();
    assert_eq!(listed, names, "one row per keyword of the table");
    for r in &keywords {
        let refused: Vec<&str> = KEYWORDS
            .iter()
            .filter(|k| k.name == r[0])
            .filter_map(|k| match k.support {
                Support::Refused { instead, .. } => Some(instead),
                Support::Works => None,
            })
            .collect();
        match r[1].as_str() {
            "works" => {
                assert!(refused.is_empty(), "{}: refused in the table", r[0]);
                test_exists(&r[2]);
            }
            "refused" => assert_eq!(refused, [r[2].as_str()], "{}", r[0]),
            s => panic!("{}: status {s}", r[0]),
        }
    }
    let names_of = |rows: &[Vec<String>], status: &str| -> Vec<String> {
        rows.iter().filter(|r| r[1] == status).map(|r| r[0].clone()).collect()
    };
    let checkers = rows("## Checkers");
    for r in &checkers {
        let ok = multipathd::checkers::checker_by_name(&r[0]);
        match r[1].as_str() {
            "works" => {
                assert!(ok.is_ok(), "{}", r[0]);
                test_exists(&r[2]);
            }
            _ => assert_eq!(ok.unwrap_err().instead(), r[2], "{}", r[0]),
        }
    }
    assert_eq!(names_of(&checkers, "refused"), multipathd::checkers::UPSTREAM_NOT_BUILT);
    let prios = rows("## Prioritizers");
    for r in &prios {
        let p = multipathd::discovery::prio::Prio::from_name(&r[0]);
        match r[1].as_str() {
            "works" => {
                assert!(p.is_some(), "{}", r[0]);
                test_exists(&r[2]);
            }
            _ => {
                assert!(p.is_none(), "{}", r[0]);
                assert_eq!(r[2], multipathd::discovery::prio::unsupported_instead());
            }
        }
    }
    assert_eq!(
        names_of(&prios, "refused"),
        multipathd::discovery::prio::UPSTREAM_NOT_BUILT
    );
}
