//! Fuzz target: the multipath.conf parser (`config::parse_str`).
//!
//! Inputs: random bytes (read as lossy UTF-8, as `config::load` does), token soups of
//! real keywords, values, braces, quotes and comments, and mutated seed files from
//! `tests/corpus/config/`. Properties: no panic; every diagnostic names the file and a
//! line within the input (0 = the whole file); whatever `parse_str_bare` accepts dumps
//! to a text that re-reads to the same dump, but for a value upstream's dump leaves out
//! (`max_fds 0`), which re-reads as unset. See `tests/fuzz_support` for the knobs.

mod fuzz_support;

use multipathd::config::keywords::{self, KEYWORDS, PGPOLICIES, PROTOCOLS, SELECTORS, Section};
use multipathd::config::{self, ConfigError, Diagnostic, Level, Refusal, dump, value};
use proptest::prelude::*;

const FILE: &str = "fuzz.conf";

fn seeds() -> Vec<Vec<u8>> {
    fuzz_support::corpus("config").into_iter().map(|(_, b)| b).collect()
}

fn words() -> Vec<String> {
    let mut w: Vec<String> = KEYWORDS.iter().map(|k| k.name.to_string()).collect();
    w.extend(
        PGPOLICIES
            .iter()
            .chain(SELECTORS)
            .chain(PROTOCOLS)
            .map(|s| s.to_string()),
    );
    for s in [
        "{",
        "}",
        "{",
        "}",
        "\"",
        "\"\"",
        "#",
        "!",
        "\n",
        "yes",
        "no",
        "0",
        "1",
        "-1",
        "5",
        "2147483648",
        "99999999999999999999",
        "queue",
        "fail",
        "infinity",
        "max",
        "off",
        "on",
        "smart",
        "greedy",
        "strict",
        "immediate",
        "manual",
        "followover",
        "\"2 queue_if_no_path pg_init_retries 50\"",
        "\"1 alua\"",
        "\"service-time 0\"",
        "\"^sd[a-z]\"",
        "\"[unclosed\"",
        "\"(a|b\"",
        "\".*\"",
        "0x1234abcd:aptpl",
        "0xzz",
        "file",
        "/UNSET/",
        "0644",
        "0999",
        "root",
        "disk",
        "\"sd:ID_SERIAL\"",
        "tur",
        "directio",
        "alua",
        "const",
        "é",
        "\u{fffd}",
        "\0",
        "3600a098038303053453f463045727a41",
    ] {
        w.push(s.to_string());
    }
    w
}

fn dict() -> Vec<Vec<u8>> {
    let mut d: Vec<Vec<u8>> = words().into_iter().map(String::into_bytes).collect();
    for s in [
        "\n}\n",
        "{\n",
        " \"",
        "\" ",
        "\n# c\n",
        "\ndevice {\n",
        "\nmultipath {\n",
    ] {
        d.push(s.as_bytes().to_vec());
    }
    d
}

fn input() -> impl Strategy<Value = String> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..512).prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    let soup = fuzz_support::soup(words(), &[" ", " ", "\n", "\t", "", " \"", "\" ", "\n}\n"], 120);
    let mutated = fuzz_support::mutated(seeds(), dict(), 12).prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    prop_oneof![1 => bytes, 3 => soup, 4 => mutated]
}

fn check_diags(text: &str, diags: &[Diagnostic]) {
    let lines = text.split('\n').count();
    for d in diags {
        assert_eq!(d.file, FILE, "diagnostic for another file: {d:?}");
        assert!(
            d.line <= lines + 1,
            "diagnostic line {} beyond the {lines} lines of the input: {}",
            d.line,
            d.message
        );
        assert!(!d.message.is_empty(), "empty diagnostic: {d:?}");
    }
}

fn property(text: &str) {
    match config::parse_str(FILE, text) {
        Ok(l) => check_diags(text, &l.diagnostics),
        Err(ConfigError::Parse { diagnostics, .. }) => {
            check_diags(text, &diagnostics);
            assert!(
                diagnostics.iter().any(|d| d.level == Level::Error),
                "parse failed without an error-level diagnostic: {diagnostics:?}"
            );
        }
        // C strings end at NUL: a text holding one is refused whole, naming the line.
        Err(ConfigError::Refused {
            reason: Refusal::Nul { line },
            ..
        }) => assert_eq!(
            Some(line),
            text.split('\n').position(|l| l.contains('\0')).map(|i| i + 1)
        ),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
    // Without the built-in table the dump is short enough to round-trip every case.
    if let Ok(l) = config::parse_str_bare(FILE, text) {
        let first = dump::show_config(&l.config);
        let again = config::parse_str_bare("dump", &first)
            .unwrap_or_else(|e| panic!("dump does not re-read: {e}\ndump:\n{first}"));
        let second = dump::show_config(&again.config);
        // A hidden value prints nothing, as upstream's does, so the re-read has it unset.
        let mut shown = l.config.clone();
        shown
            .defaults
            .retain(|name, v| !keywords::lookup(Section::Defaults, name).is_some_and(|k| value::hidden(k.ty, v)));
        assert_eq!(dump::show_config(&shown), second, "dump is not stable across a re-read");
    }
}

#[test]
fn fuzz_config() {
    fuzz_support::run("fuzz_config", input(), |t: &String| property(t));
}

/// The seeds are real configurations: the examples parse without errors.
#[test]
fn corpus_examples_parse() {
    for (path, bytes) in fuzz_support::corpus("config") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = String::from_utf8(bytes).unwrap();
        let r = config::parse_str(FILE, &text);
        if name == "bad.conf" {
            assert!(r.is_err(), "{name} should fail");
        } else {
            let l = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            let errors: Vec<_> = l.diagnostics.iter().filter(|d| d.level == Level::Error).collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
    }
}
