//! user_friendly_names and the wwids file: multipath-tools' alias vectors
//! (tests/alias.c) and round trips through real files.

use std::fs;

use multipathd::discovery::bindings::{AliasOrigin, Bindings, BindingsFile, format_alias_id, scan_alias_id};
use multipathd::discovery::wwids::{Wwids, WwidsFile};

fn foo(id: i32) -> Option<String> {
    format_alias_id(id).map(|s| format!("FOO{s}"))
}

#[test]
fn format_vectors() {
    assert_eq!(foo(1).as_deref(), Some("FOOa"));
    assert_eq!(foo(26).as_deref(), Some("FOOz"));
    assert_eq!(foo(27).as_deref(), Some("FOOaa"));
    assert_eq!(foo(26 * 26 + 26).as_deref(), Some("FOOzz"));
    assert_eq!(foo(26 * 26 + 27).as_deref(), Some("FOOaaa"));
    assert_eq!(foo(26 * 26 * 26 + 26 * 26 + 26).as_deref(), Some("FOOzzz"));
    assert_eq!(foo(26 * 26 * 26 + 26 * 26 + 27).as_deref(), Some("FOOaaaa"));
    assert_eq!(
        foo(26 * 26 * 26 * 26 + 26 * 26 * 26 + 26 * 26 + 26).as_deref(),
        Some("FOOzzzz")
    );
    assert_eq!(format_alias_id(i32::MAX).as_deref(), Some("fxshrxw"));
    assert_eq!(format_alias_id(i32::MIN), None);
    assert_eq!(format_alias_id(0), None);
}

#[test]
fn scan_vectors() {
    assert_eq!(scan_alias_id("MPATHa", "MPATH"), Some(1));
    assert_eq!(scan_alias_id("MPATHa  00", "MPATH"), Some(1));
    assert_eq!(scan_alias_id("MPATHa\t00", "MPATH"), Some(1));
    assert_eq!(scan_alias_id("MPATHa       ", "MPATH"), None);
    assert_eq!(scan_alias_id("MPATHabcdefgh", "MPATH"), None);
    assert_eq!(scan_alias_id("MPATHa", "mpath"), None);
    assert_eq!(scan_alias_id("MPATH", "MPATH"), None);
    assert_eq!(scan_alias_id("MPATH0", "MPATH"), None);
    assert_eq!(scan_alias_id("MPATHa0c", "MPATH"), None);
    assert_eq!(scan_alias_id("MPATHfxshrxw", "MPATH"), Some(i32::MAX));
    assert_eq!(scan_alias_id("MPATHfxshrxx", "MPATH"), None);
    for i in 1..5000 {
        let name = format!("MPATH{}", format_alias_id(i).unwrap());
        assert!((6..=8).contains(&name.len()));
        assert_eq!(scan_alias_id(&name, "MPATH"), Some(i));
    }
}

fn bindings(aliases: &[&str]) -> Bindings {
    let mut text = String::from("# header\n");
    for (i, a) in aliases.iter().enumerate() {
        text.push_str(&format!("{a} WWID{i}\n"));
    }
    Bindings::parse(&text)
}

#[test]
fn lowest_free_id() {
    let free = |b: &Bindings| b.free_id("MPATH", &|_| false);
    assert_eq!(free(&bindings(&[])), Some(1));
    assert_eq!(free(&bindings(&["MPATHa"])), Some(2));
    assert_eq!(free(&bindings(&["MPATHa", "MPATHz", "MPATHb"])), Some(3));
    assert_eq!(free(&bindings(&["MPATHb"])), Some(1));
    let a_to_aa: Vec<String> = (1..=27)
        .map(|i| format!("MPATH{}", format_alias_id(i).unwrap()))
        .collect();
    let refs: Vec<&str> = a_to_aa.iter().map(String::as_str).collect();
    assert_eq!(free(&bindings(&refs)), Some(28));
    // Foreign prefixes and junk do not occupy ids.
    assert_eq!(free(&bindings(&["mpatha", "MPATH0", "MPATHa"])), Some(2));
    // Names held by other device-mapper maps are skipped.
    let b = bindings(&["MPATHa"]);
    assert_eq!(b.free_id("MPATH", &|n| n == "MPATHb" || n == "MPATHc"), Some(4));
}

#[test]
fn parse_reports_bad_lines() {
    let b = Bindings::parse(
        "# Multipath bindings, Version : 1.0\n\nMPATHa WWID0 # comment\nMPATHb\nMPATHc WWID2 extra junk\nMPATHa WWID9\nMPATHd WWID0\n  \t\nMPATHe\tWWID4\r\n",
    );
    let pairs: Vec<(&str, &str)> = b.entries.iter().map(|e| (e.alias.as_str(), e.wwid.as_str())).collect();
    assert_eq!(
        pairs,
        vec![("MPATHa", "WWID0"), ("MPATHc", "WWID2"), ("MPATHe", "WWID4")]
    );
    assert_eq!(
        b.issues,
        vec![
            "invalid line 4 in bindings file, missing WWID",
            "invalid line 5 in bindings file, extra args \"extra junk\"",
            "invalid line 6 in bindings file, alias MPATHa already bound to wwid WWID0",
            "invalid line 7 in bindings file, wwid WWID0 already bound to alias MPATHa",
        ]
    );
}

#[test]
fn resolve_existing_adopted_created() {
    let mut b = bindings(&["mpatha"]);
    let none = |_: &str| false;
    assert_eq!(
        b.resolve("WWID0", "mpath", None, &none),
        Some(("mpatha".into(), AliasOrigin::Existing))
    );
    assert_eq!(
        b.resolve("NEW1", "mpath", Some("mpathq"), &none),
        Some(("mpathq".into(), AliasOrigin::AdoptedCurrentName))
    );
    // The current name is bound to someone else: a fresh id is allocated.
    assert_eq!(
        b.resolve("NEW2", "mpath", Some("mpatha"), &none),
        Some(("mpathb".into(), AliasOrigin::Created))
    );
    assert_eq!(
        b.resolve("NEW3", "mpath", Some("data_vol"), &none),
        Some(("mpathc".into(), AliasOrigin::Created))
    );
    assert_eq!(b.alias_for_wwid("NEW3"), Some("mpathc"));
}

#[test]
fn bindings_file_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let f = BindingsFile::new(d.path().join("etc/multipath/bindings"));
    let none = |_: &str| false;
    let (r, issues) = f.alias_for("3600a0980", "mpath", None, &none).unwrap();
    assert_eq!(r, Some(("mpatha".into(), AliasOrigin::Created)));
    assert!(issues.is_empty());
    let (r, _) = f.alias_for("3600a0981", "mpath", None, &none).unwrap();
    assert_eq!(r, Some(("mpathb".into(), AliasOrigin::Created)));
    let (r, _) = f.alias_for("3600a0980", "mpath", None, &none).unwrap();
    assert_eq!(r, Some(("mpatha".into(), AliasOrigin::Existing)));
    let text = fs::read_to_string(f.path()).unwrap();
    assert!(text.starts_with("# Multipath bindings, Version : 1.0\n"));
    assert!(text.ends_with("#\nmpatha 3600a0980\nmpathb 3600a0981\n"), "{text}");
    assert!(f.alias_for("bad wwid", "mpath", None, &none).is_err());
}

#[test]
fn wwids_file_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let f = WwidsFile::new(d.path().join("etc/multipath/wwids"));
    assert!(!f.contains("360000").unwrap());
    assert!(f.add("360000").unwrap());
    assert!(!f.add("360000").unwrap());
    assert!(f.add("333333330000007d0").unwrap());
    assert!(f.contains("360000").unwrap());
    let text = fs::read_to_string(f.path()).unwrap();
    assert!(text.starts_with("# Multipath wwids, Version : 1.0\n"));
    assert!(
        text.ends_with("# Valid WWIDs:\n/360000/\n/333333330000007d0/\n"),
        "{text}"
    );
    assert!(f.remove("360000").unwrap());
    assert!(!f.remove("360000").unwrap());
    assert_eq!(f.load().unwrap().wwids, vec!["333333330000007d0"]);
    f.replace(["a", "b", "a"]).unwrap();
    assert_eq!(f.load().unwrap().wwids, vec!["a", "b"]);
    assert!(f.add("x/y").is_err());
    assert!(f.add("").is_err());
}

#[test]
fn wwids_parse_is_lenient_and_reports() {
    let w = Wwids::parse("# c\n  /abc/  \n/def/ trailing\nnoslash\n//\n/abc/\n");
    assert_eq!(w.wwids, vec!["abc", "def"]);
    assert_eq!(
        w.invalid,
        vec![
            "invalid line 4 in wwids file: \"noslash\"",
            "invalid line 5 in wwids file: \"//\""
        ]
    );
}

#[test]
fn failed_wwids_marks() {
    use multipathd::discovery::wwids::FailedWwids;
    let d = tempfile::tempdir().unwrap();
    let f = FailedWwids::new(d.path().join("multipath/failed_wwids"));
    assert!(!f.is_failed("360000").unwrap());
    assert!(f.mark("360000").unwrap());
    assert!(!f.mark("360000").unwrap());
    assert!(f.is_failed("360000").unwrap());
    assert!(d.path().join("multipath/failed_wwids/360000").exists());
    assert!(f.unmark("360000").unwrap());
    assert!(!f.unmark("360000").unwrap());
    assert!(!f.is_failed("360000").unwrap());
    assert!(f.mark("../etc").is_err());
    assert!(f.is_failed("..").is_err());
}

/// `multipathd -B`: the bindings file is read, never written.
#[test]
fn bound_reads_the_binding_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let f = BindingsFile::new(d.path().join("bindings"));
    let none = |_: &str| false;
    assert_eq!(f.bound("3600a0980").unwrap(), (None, vec![]));
    assert!(!f.path().exists(), "a missing file is not created");
    f.alias_for("3600a0980", "mpath", None, &none).unwrap();
    let before = fs::read_to_string(f.path()).unwrap();
    let (r, _) = f.bound("3600a0980").unwrap();
    assert_eq!(r, Some(("mpatha".into(), AliasOrigin::Existing)));
    assert_eq!(f.bound("3600a0981").unwrap().0, None);
    assert_eq!(fs::read_to_string(f.path()).unwrap(), before);
}
