//! Differential test against upstream multipath-tools 0.14.3: every configuration of
//! `tests/corpus/oracle/` (a file: the main multipath.conf; a directory: `multipath.conf` and
//! `conf.d/`) is given to upstream's `multipath -t` and to our `multipathd -t`; the dumps, the
//! diagnostics and the exit status must be equal, except for the differences listed in
//! `tests/oracle_support/mod.rs` (`INTENDED`). Needs root and `make upstream`; otherwise it
//! says loudly that it skipped.

mod oracle_support;

use std::path::{Path, PathBuf};

use oracle_support::{Case, INTENDED, Kind, Verdict};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/oracle");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn corpus_matches_upstream() {
    let entries = corpus();
    assert!(
        entries.len() >= 30,
        "the oracle corpus has only {} configurations",
        entries.len()
    );
    let upstream = match oracle_support::oracle() {
        Ok(b) => b,
        Err(why) => return oracle_support::skipped("config_oracle::corpus_matches_upstream", &why),
    };
    let mut failures = String::new();
    let mut used: Vec<&str> = Vec::new();
    let mut same = 0;
    for path in &entries {
        let name = path.file_name().unwrap().to_string_lossy();
        let case = Case::read(path).unwrap();
        match oracle_support::compare(&upstream, &case) {
            Verdict::Same(fixups) => {
                same += 1;
                used.extend(fixups);
            }
            Verdict::Excused(why) => used.push(why),
            Verdict::Differs(report) => failures.push_str(&format!("==== {name}\n{report}")),
        }
    }
    eprintln!(
        "oracle: {} configurations, {same} identical after fixups, intended differences used: {used:?}",
        entries.len()
    );
    assert!(
        failures.is_empty(),
        "differences from upstream not listed as intended:\n{failures}"
    );
    // Every intended difference is shown by a corpus case, so none outlives its reason.
    for i in INTENDED {
        assert!(
            used.contains(&i.name),
            "no corpus case shows the intended difference {}",
            i.name
        );
    }
}

#[test]
fn intended_differences_have_reasons() {
    for i in INTENDED {
        assert!(i.reason.len() > 40, "{}: say why", i.name);
        assert!(matches!(i.kind, Kind::Excuse(_) | Kind::Fixup(_)));
    }
}

#[test]
fn log_prefixes_are_removed() {
    use oracle_support::normalize;
    assert_eq!(
        normalize("  501.155340 | /etc/multipath.conf line 3, x"),
        "/etc/multipath.conf line 3, x"
    );
    assert_eq!(normalize("Dec 02 16:54:23 | msg | more"), "msg | more");
    assert_eq!(normalize("multipathd: msg"), "msg");
    assert_eq!(normalize("a | b"), "a | b");
}

#[test]
fn blacklist_fixup_closes_the_entry() {
    let case = Case::main("");
    let mut up = oracle_support::Run {
        status: oracle_support::Status::Exited(0),
        stdout: "blacklist {\n\tdevice {\n\t\tvendor \"A\"\n\tdevice {\n\t\tvendor \"B\"\n\t\tproduct \"C\"\n\t}\n}\n"
            .into(),
        diags: vec![],
    };
    let fix = INTENDED
        .iter()
        .find(|i| i.name == "blacklist_device_without_product")
        .unwrap();
    let Kind::Fixup(f) = fix.kind else { panic!() };
    assert!(f(&case, &mut up));
    assert_eq!(
        up.stdout,
        "blacklist {\n\tdevice {\n\t\tvendor \"A\"\n\t}\n\tdevice {\n\t\tvendor \"B\"\n\t\tproduct \"C\"\n\t}\n}\n"
    );
}
