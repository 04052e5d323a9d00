//! `multipathd -C`: the configuration check. The real binary reads
//! /etc/multipath.conf and /etc/multipath/conf.d, so each case runs it in a private
//! mount namespace with an empty tmpfs over /etc holding only the files of the case.
//! The expected lines are what upstream 0.14.3's `multipath -t` logs for the same files.

use std::path::Path;
use std::process::Command;

fn skip(why: &str) {
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!!! SKIPPED: {why}");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
}

fn can_unshare() -> bool {
    nix::unistd::getuid().is_root()
        && Command::new("unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

/// Runs `multipathd ARGS` with `main` as /etc/multipath.conf (if any) and `conf_d`
/// files in /etc/multipath/conf.d; returns (exit code, stdout, stderr).
fn run(main: Option<&str>, conf_d: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path();
    if let Some(text) = main {
        std::fs::write(files.join("multipath.conf"), text).unwrap();
    }
    std::fs::create_dir(files.join("conf.d")).unwrap();
    for (name, text) in conf_d {
        std::fs::write(files.join("conf.d").join(name), text).unwrap();
    }
    let script = "set -e; mount -t tmpfs none /etc; \
                  if [ -e \"$1/multipath.conf\" ]; then cp \"$1/multipath.conf\" /etc/; fi; \
                  mkdir /etc/multipath; cp -r \"$1/conf.d\" /etc/multipath/; shift; exec \"$@\"";
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(files)
        .arg(Path::new(env!("CARGO_BIN_EXE_multipathd")))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn errors_are_reported_with_file_and_line_and_fail_the_check() {
    if !can_unshare() {
        skip("needs root and unshare(1) with a mount namespace");
        return;
    }
    let bad = "defaults {\n polling_interval abc\n bogus_kw 1\n}\nblacklist {\n  wwid \"foo\n}\ndevices {\n device {\n  vendor X\n }\n";
    let (code, stdout, stderr) = run(Some(bad), &[], &["-C"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "/etc/multipath.conf line 2, invalid value for polling_interval: \"abc\"\n\
         /etc/multipath.conf line 3, invalid keyword in the defaults section: bogus_kw\n\
         missing closing quotes on line 6 of /etc/multipath.conf\n\
         missing '}' at end of /etc/multipath.conf\n\
         device config in /etc/multipath.conf missing vendor or product parameter\n"
    );
    // -t still prints the configuration (what was usable of it) and succeeds.
    let (code, stdout, _) = run(Some(bad), &[], &["-t"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("defaults {\n"), "{stdout}");
}

#[test]
fn a_conf_d_file_is_checked_too() {
    if !can_unshare() {
        skip("needs root and unshare(1) with a mount namespace");
        return;
    }
    let (code, _, stderr) = run(
        Some("defaults {\n user_friendly_names yes\n}\n"),
        &[("10-site.conf", "defaults {\n no_path_retry sometimes\n}\n")],
        &["-C"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr,
        "/etc/multipath/conf.d/10-site.conf line 2, invalid value for no_path_retry: \"sometimes\"\n"
    );
}

#[test]
fn a_clean_configuration_passes_silently() {
    if !can_unshare() {
        skip("needs root and unshare(1) with a mount namespace");
        return;
    }
    let good = "defaults {\n user_friendly_names yes\n find_multipaths strict\n}\nblacklist {\n devnode \"^sda$\"\n}\n";
    assert_eq!(run(Some(good), &[], &["-C"]), (0, String::new(), String::new()));
    // No multipath.conf at all: the built-in defaults are a valid configuration.
    assert_eq!(run(None, &[], &["-C"]), (0, String::new(), String::new()));
}

/// A regex that does not compile fails the check, which also says why (upstream's log has
/// only the "parsing failed" line; `-t` keeps to that).
#[test]
fn a_bad_regex_fails_the_check_with_the_reason() {
    if !can_unshare() {
        skip("needs root and unshare(1) with a mount namespace");
        return;
    }
    let conf = "blacklist {\n\twwid \"[bad\"\n}\n";
    let (code, _, stderr) = run(Some(conf), &[], &["-C"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            "/etc/multipath.conf line 2, parsing failed: \twwid \"[bad\"",
            "/etc/multipath.conf line 2, invalid regular expression \"[bad\": Unmatched [, [^, [:, [., or [=",
            "error parsing config file",
        ]
    );
    let (code, _, stderr) = run(Some(conf), &[], &["-t"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("Unmatched"), "{stderr}");
}
