//! man/multipathd.8 documents exactly the command table, every option, and is clean roff.

use multipathd::cli::parse::{HANDLERS, help_line};

const PAGE: &str = include_str!("../man/multipathd.8");

/// Lines between `.SH <name>` and the next `.SH`.
fn section(name: &str) -> Vec<&'static str> {
    PAGE.lines()
        .skip_while(|l| *l != format!(".SH {name}"))
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .collect()
}

/// Entry heads: the line after each `.TP`.
fn entries(lines: &[&'static str]) -> Vec<&'static str> {
    lines.windows(2).filter(|w| w[0] == ".TP").map(|w| w[1]).collect()
}

#[test]
fn every_command_is_documented_and_nothing_else() {
    let mut documented: Vec<String> = entries(&section("COMMANDS"))
        .into_iter()
        .map(|l| {
            l.strip_prefix(".B ")
                .unwrap_or_else(|| panic!("command entry not in .B form: {l:?}"))
                .to_string()
        })
        .collect();
    let mut table: Vec<String> = HANDLERS
        .iter()
        .map(|(fp, _)| help_line(fp).trim_start().to_string())
        .collect();
    documented.sort();
    table.sort();
    assert_eq!(documented, table);
}

#[test]
fn every_option_is_documented() {
    let heads = entries(&section("OPTIONS"));
    for opt in [
        ".B \\-d",
        ".B \\-s",
        ".BI \\-v \" level\"",
        ".B \\-B",
        ".B \\-w",
        ".B \\-n",
        ".B \\-t",
        ".B \\-C",
        ".BI \\-k [command]",
        ".I command",
    ] {
        assert!(heads.contains(&opt), "option entry {opt:?} missing");
    }
    assert_eq!(heads.len(), 10, "unexpected option entries: {heads:?}");
}

#[test]
fn groff_reports_no_warnings() {
    let out = std::process::Command::new("groff")
        .args([
            "-ww",
            "-z",
            "-man",
            concat!(env!("CARGO_MANIFEST_DIR"), "/man/multipathd.8"),
        ])
        .output()
        .expect("groff must be installed to check the man page");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// `show marginal`'s entry names (in italics) exactly the accounting states the code has.
#[test]
fn show_marginal_lists_exactly_the_accounting_states() {
    use multipathd::marginal::TestState;
    let entry: Vec<&str> = section("COMMANDS")
        .into_iter()
        .skip_while(|l| *l != ".B list|show marginal")
        .skip(1)
        .take_while(|l| *l != ".TP")
        .collect();
    assert!(!entry.is_empty(), "no show marginal entry");
    let mut documented: Vec<&str> = entry
        .iter()
        .filter_map(|l| l.strip_prefix(".I ").or_else(|| l.strip_prefix(".IR ")))
        .map(|w| w.split_whitespace().next().unwrap_or(""))
        .collect();
    let mut states: Vec<&str> = TestState::ALL.iter().map(|s| s.as_str()).collect();
    documented.sort();
    states.sort();
    assert_eq!(documented, states);
}
