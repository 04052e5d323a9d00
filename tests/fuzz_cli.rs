//! Fuzz target: the client command parser (`cli::parse::parse`).
//!
//! Inputs: random strings, soups of command keywords (whole words and prefixes),
//! parameters, quotes and comment characters, and mutated client commands from
//! `tests/corpus/cli/`. Properties: no panic (the error reply included), and every
//! accepted command re-parses to itself from the canonical text written here (the
//! parser module has no formatter of its own).

mod fuzz_support;

use multipathd::cli::parse::{Command, KEYWORDS, parse};
use proptest::prelude::*;

fn commands() -> Vec<String> {
    let mut out = Vec::new();
    for (_, bytes) in fuzz_support::corpus("cli") {
        let text = String::from_utf8(bytes).unwrap();
        out.extend(text.lines().map(str::to_string));
    }
    out
}

fn words() -> Vec<String> {
    let mut w = Vec::new();
    for k in KEYWORDS {
        for end in 1..=k.word.len() {
            w.push(k.word[..end].to_string());
        }
        w.push(k.word.to_string());
        w.push(k.word.to_uppercase());
    }
    for s in [
        "\"",
        "\"\"",
        "#",
        "!",
        "{",
        "}",
        "sdb",
        "/dev/sdb",
        "/dev/",
        "/dev//dev/x",
        "8:16",
        "mpatha",
        "dm-0",
        "2",
        "0x1a2b:aptpl",
        "\"%n %w\"",
        "\"a\"\"b\"",
        "é",
        "\t",
        "\n",
    ] {
        w.push(s.to_string());
    }
    w
}

fn input() -> impl Strategy<Value = String> {
    let random = ".{0,80}";
    let ascii = proptest::collection::vec(0u8..128, 0..80).prop_map(|b| String::from_utf8(b).unwrap());
    let soup = fuzz_support::soup(words(), &[" ", " ", " ", "", "\t", "\""], 8);
    let seeds: Vec<Vec<u8>> = commands().into_iter().map(String::into_bytes).collect();
    let dict: Vec<Vec<u8>> = words().into_iter().map(String::into_bytes).collect();
    let mutated = fuzz_support::mutated(seeds, dict, 4).prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    prop_oneof![1 => random, 1 => ascii, 3 => soup, 4 => mutated]
}

/// A parameter as one word: bare when it is plain ASCII, else quoted with `""` for `"`.
fn q(p: &str) -> String {
    let plain = !p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic() && !b"\"!#{}".contains(&b));
    if plain {
        p.to_string()
    } else {
        format!("\"{}\"", p.replace('"', "\"\""))
    }
}

/// Path and map parameters lose one leading `/dev/` when parsed; put it back.
fn dev(p: &str) -> String {
    if p.starts_with("/dev/") {
        q(&format!("/dev/{p}"))
    } else {
        q(p)
    }
}

/// The canonical text of a command: first spelling of every keyword, in handler order.
fn canonical(c: &Command) -> String {
    use Command as C;
    let raw = |r: bool| if r { "raw " } else { "" };
    match c {
        C::ShowPaths => "show paths".into(),
        C::ShowPathsFormat { fmt, raw: r } => format!("show paths {}format {}", raw(*r), q(fmt)),
        C::ShowPath { path } => format!("show path {}", dev(path)),
        C::ShowMaps => "show maps".into(),
        C::ShowStatus => "show status".into(),
        C::ShowDaemon => "show daemon".into(),
        C::ShowMapsStatus => "show maps status".into(),
        C::ShowMapsStats => "show maps stats".into(),
        C::ShowMapsFormat { fmt, raw: r } => format!("show maps {}format {}", raw(*r), q(fmt)),
        C::ShowMapsTopology => "show maps topology".into(),
        C::ShowMapsJson => "show maps json".into(),
        C::ShowMapTopology { map } => format!("show map {} topology", dev(map)),
        C::ShowMapFormat { map, fmt } => format!("show map {} format {}", dev(map), q(fmt)),
        C::ShowMapJson { map } => format!("show map {} json", dev(map)),
        C::ShowConfig { local } => format!("show config{}", if *local { " local" } else { "" }),
        C::ShowBlacklist => "show blacklist".into(),
        C::ShowDevices => "show devices".into(),
        C::ShowWildcards => "show wildcards".into(),
        C::ResetMapsStats => "reset maps stats".into(),
        C::ResetMapStats { map } => format!("reset map {} stats", dev(map)),
        C::AddPath { path } => format!("add path {}", dev(path)),
        C::DelPath { path } => format!("del path {}", dev(path)),
        C::AddMap { map } => format!("add map {}", dev(map)),
        C::DelMap { map } => format!("del map {}", dev(map)),
        C::DelMaps => "del maps".into(),
        C::SwitchGroup { map, group } => format!("switch map {} group {}", dev(map), q(group)),
        C::Reconfigure { all } => format!("reconfigure{}", if *all { " all" } else { "" }),
        C::Suspend { map } => format!("suspend map {}", dev(map)),
        C::Resume { map } => format!("resume map {}", dev(map)),
        C::Resize { map } => format!("resize map {}", dev(map)),
        C::Reload { map } => format!("reload map {}", dev(map)),
        C::ResetMap { map } => format!("reset map {}", dev(map)),
        C::ReinstatePath { path } => format!("reinstate path {}", dev(path)),
        C::FailPath { path } => format!("fail path {}", dev(path)),
        C::DisableQueueing { map: Some(m) } => format!("disablequeueing map {}", dev(m)),
        C::DisableQueueing { map: None } => "disablequeueing maps".into(),
        C::RestoreQueueing { map: Some(m) } => format!("restorequeueing map {}", dev(m)),
        C::RestoreQueueing { map: None } => "restorequeueing maps".into(),
        C::Quit => "quit".into(),
        C::Shutdown => "shutdown".into(),
        C::GetPrStatus { map } => format!("getprstatus map {}", dev(map)),
        C::SetPrStatus { map, pathlist: None } => format!("setprstatus map {}", dev(map)),
        C::SetPrStatus { map, pathlist: Some(l) } => format!("setprstatus map {} pathlist {}", dev(map), q(l)),
        C::UnsetPrStatus { map } => format!("unsetprstatus map {}", dev(map)),
        C::ForceQueueingDaemon => "forcequeueing daemon".into(),
        C::RestoreQueueingDaemon => "restorequeueing daemon".into(),
        C::GetPrKey { map } => format!("getprkey map {}", dev(map)),
        C::SetPrKey { map, key } => format!("setprkey map {} key {}", dev(map), q(key)),
        C::UnsetPrKey { map } => format!("unsetprkey map {}", dev(map)),
        C::SetMarginal { path } => format!("setmarginal path {}", dev(path)),
        C::UnsetMarginal { path } => format!("unsetmarginal path {}", dev(path)),
        C::UnsetMarginalMap { map } => format!("unsetmarginal map {}", dev(map)),
        C::GetPrHold { map } => format!("getprhold map {}", dev(map)),
        C::SetPrHold { map } => format!("setprhold map {}", dev(map)),
        C::UnsetPrHold { map } => format!("unsetprhold map {}", dev(map)),
        C::ShowMarginal => "show marginal".to_string(),
        C::ShowMarginalJson => "show marginal json".to_string(),
    }
}

/// Whether a parameter is empty (`parse` accepts `map /dev/`), which no command line
/// can spell. In the Debug form an empty string is `""` right after `: ` or `(`; inside
/// a string a quote is escaped, so `""` there always follows a backslash.
fn has_empty_param(c: &Command) -> bool {
    let dbg = format!("{c:?}");
    dbg.contains(": \"\"") || dbg.contains("(\"\")")
}

fn property(line: &str) {
    match parse(line) {
        Ok(cmd) => {
            if has_empty_param(&cmd) {
                return;
            }
            let text = canonical(&cmd);
            assert_eq!(
                parse(&text).as_ref(),
                Ok(&cmd),
                "canonical form {text:?} of {line:?} does not re-parse to the same command"
            );
        }
        Err(e) => {
            let reply = e.reply(line);
            assert!(reply.starts_with("fail\n"), "{reply:?}");
        }
    }
}

#[test]
fn fuzz_cli() {
    fuzz_support::run("fuzz_cli", input(), |t: &String| property(t));
}

/// Every seed command but the help requests and the comment-only line is accepted.
#[test]
fn corpus_commands_parse() {
    for line in commands() {
        let r = parse(&line);
        if line == "?" || line == "help" {
            assert!(r.is_err(), "{line:?}");
        } else {
            let cmd = r.unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
            assert_eq!(parse(&canonical(&cmd)), Ok(cmd), "{line:?}");
        }
    }
}
