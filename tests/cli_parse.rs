//! Command-language vectors: upstream's cli tests and every command real clients send.

use multipathd::cli::parse::{Command, ParseError, help_text, parse};

fn p(line: &str) -> Command {
    parse(line).unwrap_or_else(|e| panic!("{line:?}: {e:?}"))
}

fn s(x: &str) -> String {
    x.to_string()
}

// ---- upstream tests/cli.c vectors ----

#[test]
fn ambiguous_prefix_is_not_found() {
    assert_eq!(parse("sh"), Err(ParseError::NotFound));
}

#[test]
fn wrong_order_last_word_unknown_is_not_found() {
    assert_eq!(parse("disable queueing"), Err(ParseError::NotFound));
}

#[test]
fn unknown_middle_word() {
    assert_eq!(parse("queueing disable"), Err(ParseError::UnknownWord));
}

#[test]
fn missing_parameter() {
    assert_eq!(parse("show map"), Err(ParseError::MissingArgument));
}

#[test]
fn quoted_parameter_keeps_spaces() {
    assert_eq!(p("show path \"x y\""), Command::ShowPath { path: s("x y") });
}

#[test]
fn doubled_quote_is_one_quote() {
    assert_eq!(p("show path \"2\"\"\""), Command::ShowPath { path: s("2\"") });
}

#[test]
fn five_keywords_have_no_handler() {
    assert_eq!(parse("show maps raw format x json"), Err(ParseError::NoHandler));
}

#[test]
fn plain_show_map_has_no_handler() {
    assert_eq!(parse("show map mpatha"), Err(ParseError::NoHandler));
}

#[test]
fn prefixes_work() {
    assert_eq!(p("sho topo"), Command::ShowMapsTopology);
    assert_eq!(p("disable maps"), Command::DisableQueueing { map: None });
}

#[test]
fn error_replies() {
    let help = help_text();
    assert_eq!(ParseError::NotFound.reply("sh"), format!("fail\nsh: not found\n{help}"));
    assert_eq!(
        ParseError::MissingArgument.reply("show map \n"),
        format!("fail\nshow map \n: Missing argument\n{help}")
    );
    assert_eq!(ParseError::UnknownWord.reply("x y"), "fail\n");
    assert_eq!(parse(" # nothing"), Err(ParseError::Empty));
    assert_eq!(
        ParseError::Empty.reply(""),
        format!("fail\n: Not enough memory\n{help}")
    );
}

#[test]
fn non_root_may_only_show() {
    assert!(p("show paths").is_show());
    assert!(p("list maps json").is_show());
    assert!(!p("reconfigure").is_show());
    assert!(!p("add path sda").is_show());
}

// ---- what real clients send (reference/clients.md) ----

#[test]
fn os_brick() {
    assert_eq!(p("show status \n"), Command::ShowStatus);
    assert_eq!(
        p("show paths raw format %d \n"),
        Command::ShowPathsFormat {
            fmt: s("%d"),
            raw: true
        }
    );
    assert_eq!(p("add path /dev/sdb \n"), Command::AddPath { path: s("sdb") });
    assert_eq!(p("del path /dev/sdb \n"), Command::DelPath { path: s("sdb") });
    assert_eq!(p("del map 3600a098 \n"), Command::DelMap { map: s("3600a098") });
    assert_eq!(p("reconfigure \n"), Command::Reconfigure { all: false });
    assert_eq!(p("resize map /dev/dm-3 \n"), Command::Resize { map: s("dm-3") });
}

#[test]
fn gobrick_and_hpe() {
    assert_eq!(p("show maps \n"), Command::ShowMaps);
    assert_eq!(
        p("show paths raw format \"%d %w %m\" \n"),
        Command::ShowPathsFormat {
            fmt: s("%d %w %m"),
            raw: true
        }
    );
    assert_eq!(
        p("show paths format \"%w %d %t %i %o %T %z %s %m\" \n"),
        Command::ShowPathsFormat {
            fmt: s("%w %d %t %i %o %T %z %s %m"),
            raw: false
        }
    );
    assert_eq!(
        p("show maps format \"%w %d %n %s\" \n"),
        Command::ShowMapsFormat {
            fmt: s("%w %d %n %s"),
            raw: false
        }
    );
    assert_eq!(p("resize map mpathb \n"), Command::Resize { map: s("mpathb") });
}

#[test]
fn trident_verbatim_k_commands() {
    assert_eq!(p("show daemon \n"), Command::ShowDaemon);
    assert_eq!(p("show config \n"), Command::ShowConfig { local: false });
    assert_eq!(p("resize map dm-4"), Command::Resize { map: s("dm-4") });
    assert_eq!(p("add path sdc"), Command::AddPath { path: s("sdc") });
    assert_eq!(p("fail path sdc"), Command::FailPath { path: s("sdc") });
}

#[test]
fn ibm_block_csi_keeps_spaces_inside_quotes() {
    assert_eq!(
        p("show maps raw format \" %d,%w \" \n"),
        Command::ShowMapsFormat {
            fmt: s(" %d,%w "),
            raw: true
        }
    );
}

#[test]
fn curtin_single_quotes_pass_through() {
    let fmt = "device='%d' serial='%z' multipath='%m' host_wwpn='%N' target_wwnn='%n' host_wwpn='%R' target_wwpn='%r' host_adapter='%a'";
    assert_eq!(
        p(&format!("show paths raw format \"{fmt}\" \n")),
        Command::ShowPathsFormat { fmt: s(fmt), raw: true }
    );
    assert_eq!(
        p("show maps raw format \"name=%n multipath='%w' sysfs='%d' paths='%N'\" \n"),
        Command::ShowMapsFormat {
            fmt: s("name=%n multipath='%w' sysfs='%d' paths='%N'"),
            raw: true
        }
    );
}

#[test]
fn vdsm_xapi_avocado_pcp_libdmmp() {
    assert_eq!(p("show config local \n"), Command::ShowConfig { local: true });
    assert_eq!(p("remove path sdd"), Command::DelPath { path: s("sdd") });
    assert_eq!(p("remove map mpathc"), Command::DelMap { map: s("mpathc") });
    assert_eq!(p("show topology"), Command::ShowMapsTopology);
    assert_eq!(
        p("show map mpatha topology"),
        Command::ShowMapTopology { map: s("mpatha") }
    );
    assert_eq!(p("list maps"), Command::ShowMaps);
    assert_eq!(p("show maps json \n"), Command::ShowMapsJson);
    assert_eq!(p("list multipath 3600a json"), Command::ShowMapJson { map: s("3600a") });
    assert_eq!(p("show maps status"), Command::ShowMapsStatus);
    assert_eq!(p("reinstate path sdb"), Command::ReinstatePath { path: s("sdb") });
    assert_eq!(p("show multipaths topology"), Command::ShowMapsTopology);
}

#[test]
fn multipath_delegation_and_systemd() {
    assert_eq!(p("reconfigure all"), Command::Reconfigure { all: true });
    assert_eq!(p("del map mapper/X"), Command::DelMap { map: s("mapper/X") });
    assert_eq!(p("del maps"), Command::DelMaps);
    assert_eq!(p("disablequeueing maps \n"), Command::DisableQueueing { map: None });
    assert_eq!(p("shutdown \n"), Command::Shutdown);
}

#[test]
fn libmpathpersist() {
    assert_eq!(p("getprstatus map mpatha"), Command::GetPrStatus { map: s("mpatha") });
    assert_eq!(p("getprhold map mpatha"), Command::GetPrHold { map: s("mpatha") });
    assert_eq!(
        p("setprstatus map mpatha pathlist \"sdb 8:32 8:48\""),
        Command::SetPrStatus {
            map: s("mpatha"),
            pathlist: Some(s("sdb 8:32 8:48"))
        }
    );
    assert_eq!(
        p("setprstatus map mpatha"),
        Command::SetPrStatus {
            map: s("mpatha"),
            pathlist: None
        }
    );
    assert_eq!(
        p("unsetprstatus map mpatha"),
        Command::UnsetPrStatus { map: s("mpatha") }
    );
    assert_eq!(
        p("setprkey map mpatha key 0x123abc:aptpl"),
        Command::SetPrKey {
            map: s("mpatha"),
            key: s("0x123abc:aptpl")
        }
    );
    assert_eq!(p("unsetprkey map mpatha"), Command::UnsetPrKey { map: s("mpatha") });
    assert_eq!(p("getprkey map mpatha"), Command::GetPrKey { map: s("mpatha") });
    assert_eq!(p("setprhold map mpatha"), Command::SetPrHold { map: s("mpatha") });
    assert_eq!(p("unsetprhold map mpatha"), Command::UnsetPrHold { map: s("mpatha") });
    // pre-0.9.4 libraries put the map first; that order is rejected
    assert!(parse("map mpatha setprstatus").is_err());
}

#[test]
fn remaining_handlers() {
    assert_eq!(p("show wildcards"), Command::ShowWildcards);
    assert_eq!(p("show blacklist"), Command::ShowBlacklist);
    assert_eq!(p("show devices"), Command::ShowDevices);
    assert_eq!(p("show maps stats"), Command::ShowMapsStats);
    assert_eq!(p("show paths"), Command::ShowPaths);
    assert_eq!(
        p("show map mpatha raw format %n"),
        Command::ShowMapFormat {
            map: s("mpatha"),
            fmt: s("%n")
        }
    );
    assert_eq!(p("reset maps stats"), Command::ResetMapsStats);
    assert_eq!(p("reset map mpatha stats"), Command::ResetMapStats { map: s("mpatha") });
    assert_eq!(p("reset map mpatha"), Command::ResetMap { map: s("mpatha") });
    assert_eq!(p("add map mpatha"), Command::AddMap { map: s("mpatha") });
    assert_eq!(
        p("switchgroup multipath mpatha group 2"),
        Command::SwitchGroup {
            map: s("mpatha"),
            group: s("2")
        }
    );
    assert_eq!(p("suspend map mpatha"), Command::Suspend { map: s("mpatha") });
    assert_eq!(p("resume map mpatha"), Command::Resume { map: s("mpatha") });
    assert_eq!(p("reload map mpatha"), Command::Reload { map: s("mpatha") });
    assert_eq!(
        p("restorequeueing map mpatha"),
        Command::RestoreQueueing { map: Some(s("mpatha")) }
    );
    assert_eq!(p("restorequeueing maps"), Command::RestoreQueueing { map: None });
    assert_eq!(p("forcequeueing daemon"), Command::ForceQueueingDaemon);
    assert_eq!(p("restorequeueing daemon"), Command::RestoreQueueingDaemon);
    assert_eq!(p("setmarginal path sdb"), Command::SetMarginal { path: s("sdb") });
    assert_eq!(p("unsetmarginal path 8:16"), Command::UnsetMarginal { path: s("8:16") });
    assert_eq!(
        p("unsetmarginal map mpatha"),
        Command::UnsetMarginalMap { map: s("mpatha") }
    );
    assert_eq!(p("show marginal"), Command::ShowMarginal);
    assert_eq!(p("list marginal json"), Command::ShowMarginalJson);
    assert_eq!(p("quit"), Command::Quit);
    assert_eq!(p("exit"), Command::Quit);
}

#[test]
fn help_mentions_switchgroup_for_xapi() {
    assert!(help_text().contains("switchgroup"));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Socket input is arbitrary: parsing never panics, and any error has a reply
        /// starting with `fail\n`.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Err(e) = parse(&text) {
                prop_assert!(e.reply(&text).starts_with("fail\n"));
            }
        }

        /// Any parameter survives quoting with doubled quotes.
        #[test]
        fn quoted_parameters_round_trip(param in "[ -~]{1,60}") {
            let quoted = format!("show path \"{}\"", param.replace('"', "\"\""));
            let expected = param.strip_prefix("/dev/").unwrap_or(&param).to_string();
            prop_assert_eq!(parse(&quoted), Ok(Command::ShowPath { path: expected }));
        }
    }
}
