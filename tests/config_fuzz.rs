//! Property tests: arbitrary input never panics the parser and every
//! diagnostic names where it comes from.

use multipathd::config::keywords::KEYWORDS;
use multipathd::config::{self, ConfigError, Diagnostic, Refusal};
use proptest::prelude::*;

const WHOLE_FILE: &[&str] = &[
    "device config in ",
    "protocol section in ",
    "factorize_hwtable: duplicate device section for ",
];

/// Upstream's messages about merged entries name the entry, not the file; its notice about a
/// uid_attrs record names neither (ours keeps the line for sorting).
fn names_no_file(m: &str) -> bool {
    m == "multipaths config section missing wwid"
        || m.starts_with("merge_mptable: duplicate multipath config section for ")
        || m.starts_with("invalid record in uid_attrs: ")
        || m.contains(": option 'features \"1 ")
        || m.contains(": ignoring feature '")
        || m.contains(": product_blacklist not usable, invalid regular expression ")
}

fn check(text: &str, diags: &[Diagnostic]) {
    let lines = text.split('\n').count();
    for d in diags {
        assert_eq!(d.file, "fuzz.conf");
        if d.line == 0 {
            assert!(
                WHOLE_FILE.iter().any(|p| d.message.starts_with(p)) || names_no_file(&d.message),
                "no line: {}",
                d.message
            );
        } else {
            assert!(d.line <= lines, "line {} beyond {lines}: {}", d.line, d.message);
            let n = d.line.to_string();
            assert!(
                d.message.contains(&format!("line {n}"))
                    || d.message.contains("end of fuzz.conf")
                    || names_no_file(&d.message),
                "message does not name line {n}: {}",
                d.message
            );
        }
        assert!(
            d.message.contains("fuzz.conf") || names_no_file(&d.message),
            "no file: {}",
            d.message
        );
    }
}

fn run(text: &str) {
    match config::parse_str_bare("fuzz.conf", text) {
        Ok(l) => {
            check(text, &l.diagnostics);
            // Whatever was accepted dumps and re-reads.
            let dump = config::dump::show_config(&l.config);
            assert!(config::parse_str_bare("dump", &dump).is_ok());
        }
        Err(ConfigError::Parse { diagnostics, .. }) => {
            check(text, &diagnostics);
            assert!(diagnostics.iter().any(|d| d.message.contains("parsing failed")));
        }
        // C strings end at NUL: a text holding one is refused whole, naming the line.
        Err(ConfigError::Refused {
            reason: Refusal::Nul { line },
            ..
        }) => assert_eq!(
            Some(line),
            text.split('\n').position(|l| l.contains('\0')).map(|i| i + 1)
        ),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn soup() -> impl Strategy<Value = String> {
    let mut words: Vec<String> = KEYWORDS.iter().map(|k| k.name.to_string()).collect();
    for w in [
        "{",
        "}",
        "\"",
        "\"\"",
        "#",
        "!",
        "\n",
        "\n",
        "\n",
        " ",
        "\t",
        "\r",
        "é",
        "\u{fffd}",
        "0",
        "yes",
        "no",
        "(",
        "[a-",
        "queue",
        "120",
        "-5",
        "9999999999999999999999",
        "0x12",
    ] {
        words.push(w.to_string());
    }
    prop::collection::vec(prop::sample::select(words), 0..200).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        run(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn token_soup_never_panics(text in soup()) {
        run(&text);
    }
}
