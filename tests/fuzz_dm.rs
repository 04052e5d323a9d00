//! Fuzz target: device-mapper `multipath` status and table text
//! (`dm::MultipathStatus::parse`, `dm::MultipathTable::parse`, plus `TargetLine::parse`,
//! `parse_counted` and the feature-string editors).
//!
//! Inputs: token sequences of numbers (small, boundary and overflowing), letters,
//! `A|F|E|D`, device numbers and selector names with ASCII and Unicode whitespace;
//! mutated real strings from `tests/corpus/dm_status/` and `tests/corpus/dm_table/`;
//! and generated valid tables and statuses. Properties: no panic; errors point inside
//! the input; accepted text formats back to text that parses to the same value; for
//! generated values `parse(format(v)) == v`.

mod fuzz_support;

use multipathd::dm::table::{add_feature, parse_counted, remove_feature};
use multipathd::dm::{
    GroupState, GroupStatus, MultipathStatus, MultipathTable, ParseError, PathGroup, PathStatus, TablePath, TargetLine,
};
use proptest::prelude::*;

fn lines(target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (_, bytes) in fuzz_support::corpus(target) {
        let text = String::from_utf8(bytes).unwrap();
        out.extend(text.lines().map(|l| l.as_bytes().to_vec()));
    }
    out
}

const TOKENS: &[&str] = &[
    "0",
    "0",
    "1",
    "1",
    "2",
    "3",
    "4",
    "5",
    "10",
    "1000",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "+1",
    "-1",
    "01",
    "A",
    "F",
    "E",
    "D",
    "X",
    "a",
    "8:0",
    "8:16",
    "253:1",
    "round-robin",
    "service-time",
    "queue-length",
    "historical-service-time",
    "queue_if_no_path",
    "pg_init_retries",
    "queue_mode",
    "bio",
    "alua",
    "emc",
    "é",
    "\u{fffd}",
];
const SEPS: &[&str] = &[" ", " ", " ", "  ", "\t", "\n", "\u{a0}", "\u{2003}", ""];

#[derive(Debug, Clone)]
enum Case {
    /// Text fed to every parser.
    Text(String),
    Table(MultipathTable),
    Status(MultipathStatus),
    /// A feature string and a feature to add and remove.
    Features(String, String),
}

fn text() -> impl Strategy<Value = String> {
    let words: Vec<String> = TOKENS.iter().map(|s| s.to_string()).collect();
    let soup = fuzz_support::soup(words, SEPS, 40);
    let dict: Vec<Vec<u8>> = TOKENS.iter().chain(SEPS).map(|s| s.as_bytes().to_vec()).collect();
    let mut seeds = lines("dm_status");
    seeds.extend(lines("dm_table"));
    let mutated = fuzz_support::mutated(seeds, dict, 6).prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    prop_oneof![1 => ".{0,60}", 3 => soup, 4 => mutated]
}

/// One table/status word: no whitespace, never empty.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[!-~]{1,8}", 1 => "\\S{1,3}"]
}

fn dev() -> impl Strategy<Value = String> {
    prop_oneof![(0u32..300, 0u32..1024).prop_map(|(a, b)| format!("{a}:{b}")), word()]
}

fn table() -> impl Strategy<Value = MultipathTable> {
    let group = (word(), proptest::collection::vec(word(), 0..3), 0usize..3, 1usize..5).prop_flat_map(
        |(name, sel_args, nargs, npaths)| {
            let selector = std::iter::once(name)
                .chain(std::iter::once(sel_args.len().to_string()))
                .chain(sel_args)
                .collect::<Vec<_>>()
                .join(" ");
            proptest::collection::vec(
                (dev(), proptest::collection::vec(word(), nargs..=nargs))
                    .prop_map(|(dev, args)| TablePath { dev, args }),
                npaths..=npaths,
            )
            .prop_map(move |paths| PathGroup {
                selector: selector.clone(),
                paths,
            })
        },
    );
    (
        proptest::collection::vec(word(), 0..4),
        proptest::collection::vec(word(), 0..3),
        proptest::collection::vec(group, 0..4),
    )
        .prop_flat_map(|(features, hwhandler, groups)| {
            let n = groups.len() as u32;
            (0..=n).prop_map(move |initial_group| MultipathTable {
                features: features.clone(),
                hwhandler: hwhandler.clone(),
                groups: groups.clone(),
                initial_group,
            })
        })
}

fn status() -> impl Strategy<Value = MultipathStatus> {
    let state = prop_oneof![
        Just(GroupState::Active),
        Just(GroupState::Enabled),
        Just(GroupState::Disabled)
    ];
    let group = (state, proptest::collection::vec(word(), 0..3), 0usize..3, 0usize..5).prop_flat_map(
        |(state, selector_status, nargs, npaths)| {
            proptest::collection::vec(
                (
                    dev(),
                    any::<bool>(),
                    any::<u32>(),
                    proptest::collection::vec(word(), nargs..=nargs),
                )
                    .prop_map(|(dev, active, fail_count, selector_args)| PathStatus {
                        dev,
                        active,
                        fail_count,
                        selector_args,
                    }),
                npaths..=npaths,
            )
            .prop_map(move |paths| GroupStatus {
                state,
                selector_status: selector_status.clone(),
                paths,
            })
        },
    );
    (
        any::<u32>(),
        any::<u32>(),
        proptest::collection::vec(word(), 0..3),
        proptest::collection::vec(group, 0..4),
    )
        .prop_flat_map(|(queue_io, pg_init_count, hwhandler, groups)| {
            let n = groups.len() as u32;
            (0..=n).prop_map(move |next_group| MultipathStatus {
                queue_io,
                pg_init_count,
                hwhandler: hwhandler.clone(),
                next_group,
                groups: groups.clone(),
            })
        })
}

fn features() -> impl Strategy<Value = (String, String)> {
    let words: Vec<String> = TOKENS.iter().map(|s| s.to_string()).collect();
    let feature = prop_oneof![
        fuzz_support::soup(words.clone(), &[" ", ""], 3).prop_map(|s| s.trim_end().to_string()),
        ".{0,6}",
    ];
    (fuzz_support::soup(words, SEPS, 8), feature)
}

fn input() -> impl Strategy<Value = Case> {
    prop_oneof![
        5 => text().prop_map(Case::Text),
        2 => table().prop_map(Case::Table),
        2 => status().prop_map(Case::Status),
        1 => features().prop_map(|(f, x)| Case::Features(f, x)),
    ]
}

/// An error points at a word of the input or at its end.
fn check_error(text: &str, e: &ParseError) {
    let words = text.split_whitespace().count();
    assert!(e.word <= words, "word {} of {words}: {e}", e.word);
    assert!(
        e.offset <= text.len() && text.is_char_boundary(e.offset),
        "offset {} in {} bytes: {e}",
        e.offset,
        text.len()
    );
    assert!(!e.to_string().is_empty());
}

fn check_text(text: &str) {
    match MultipathStatus::parse(text) {
        Ok(s) => {
            let again = s.format();
            assert_eq!(
                MultipathStatus::parse(&again).as_ref(),
                Ok(&s),
                "status {text:?} formats to {again:?}"
            );
            let _ = s.active_paths();
            if let Some(p) = s.groups.iter().flat_map(|g| &g.paths).next() {
                assert!(s.path(&p.dev).is_some());
            }
        }
        Err(e) => check_error(text, &e),
    }
    match MultipathTable::parse(text) {
        Ok(t) => {
            let again = t
                .format()
                .unwrap_or_else(|e| panic!("parsed table {t:?} does not format: {e}"));
            assert_eq!(
                MultipathTable::parse(&again).as_ref(),
                Ok(&t),
                "table {text:?} formats to {again:?}"
            );
        }
        Err(e) => check_error(text, &e),
    }
    if let Err(e) = parse_counted(text) {
        check_error(text, &e);
    }
    let line = format!("0 32768 multipath {text}");
    let l = TargetLine::parse(&line).unwrap();
    assert_eq!(
        (l.start, l.length, l.target.as_str(), l.params.as_str()),
        (0, 32768, "multipath", text.trim())
    );
    if let Err(e) = TargetLine::parse(text) {
        check_error(text, &e);
    }
}

fn check_features(features: &str, feature: &str) {
    let well_formed = parse_counted(features).is_ok();
    let added = add_feature(Some(features), feature);
    if let (true, Ok(added)) = (well_formed, added) {
        let words = parse_counted(&added).unwrap_or_else(|e| panic!("adding to {features:?} gave {added:?}: {e}"));
        let want: Vec<&str> = feature.split_whitespace().collect();
        assert!(
            want.is_empty() || words.windows(want.len()).any(|w| w == want.as_slice()),
            "{added:?} lacks {feature:?}"
        );
    }
    let removed = remove_feature(features, feature);
    if let (true, Ok(removed)) = (well_formed, removed) {
        parse_counted(&removed).unwrap_or_else(|e| panic!("removing from {features:?} gave {removed:?}: {e}"));
    }
    let _ = add_feature(None, feature);
}

fn property(case: &Case) {
    match case {
        Case::Text(t) => check_text(t),
        Case::Table(t) => {
            let text = t.format().unwrap_or_else(|e| panic!("{t:?}: {e}"));
            assert_eq!(MultipathTable::parse(&text).as_ref(), Ok(t), "{text:?}");
            check_text(&text);
        }
        Case::Status(s) => {
            let text = s.format();
            assert_eq!(MultipathStatus::parse(&text).as_ref(), Ok(s), "{text:?}");
            check_text(&text);
        }
        Case::Features(f, x) => check_features(f, x),
    }
}

#[test]
fn fuzz_dm() {
    fuzz_support::run("fuzz_dm", input(), property);
}

/// The seeds are real kernel output: every status and table line parses.
#[test]
fn corpus_lines_parse() {
    for l in lines("dm_status") {
        let t = String::from_utf8(l).unwrap();
        let s = MultipathStatus::parse(&t).unwrap_or_else(|e| panic!("{t:?}: {e}"));
        assert_eq!(s.format(), t);
    }
    for l in lines("dm_table") {
        let t = String::from_utf8(l).unwrap();
        let tab = MultipathTable::parse(&t).unwrap_or_else(|e| panic!("{t:?}: {e}"));
        assert_eq!(tab.format().unwrap(), t);
    }
}
