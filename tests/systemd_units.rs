//! The systemd units in `systemd/`, as `make install` lays them out: what is
//! installed where, the unit settings the daemon relies on, and systemd's own
//! `systemd-analyze verify` with no warning at all.

use std::path::Path;
use std::process::Command;

fn skip(why: &str) {
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!!! SKIPPED: {why}");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
}

/// `make install-files` (the install step without the release build) into `root`.
fn install(root: &Path, sbindir: &str) {
    let out = Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-s", "install-files"])
        .arg(format!("DESTDIR={}", root.display()))
        .arg(format!("BIN={}", env!("CARGO_BIN_EXE_multipathd")))
        .arg(format!("SBINDIR={sbindir}"))
        .output()
        .expect("make runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(format!("/{}", p.strip_prefix(root).unwrap().display()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn make_install_lays_out_binary_units_and_man_pages() {
    let root = tempfile::tempdir().unwrap();
    install(root.path(), "/usr/sbin");
    assert_eq!(
        files(root.path()),
        [
            "/lib/systemd/system/multipathd.service",
            "/lib/systemd/system/multipathd.socket",
            "/usr/sbin/multipathd",
            "/usr/share/man/man5/multipath.conf.5",
            "/usr/share/man/man8/multipathd.8",
        ]
    );
    let unit = std::fs::read_to_string(root.path().join("lib/systemd/system/multipathd.service")).unwrap();
    let service: Vec<&str> = unit
        .lines()
        .skip_while(|l| *l != "[Service]")
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .take_while(|l| *l == "[Service]" || !l.starts_with('['))
        .collect();
    // The daemon notifies readiness itself and is the only process allowed to.
    for want in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=/usr/sbin/multipathd -d -s",
        "ExecReload=/usr/sbin/multipathd reconfigure",
        "Restart=on-failure",
        "LimitRTPRIO=10",
    ] {
        assert!(service.contains(&want), "{want} missing from {service:?}");
    }
    let socket = std::fs::read_to_string(root.path().join("lib/systemd/system/multipathd.socket")).unwrap();
    let listen: Vec<&str> = socket.lines().filter(|l| l.starts_with("ListenStream=")).collect();
    assert_eq!(
        listen,
        [
            "ListenStream=@/org/kernel/linux/storage/multipathd",
            "ListenStream=/run/multipathd.socket"
        ]
    );
}

/// systemd's parser accepts both units without a single complaint (an unknown key
/// or a bad value is only a warning for systemd, so stderr must be empty too).
#[test]
fn units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        skip("systemd-analyze is not installed (Debian package systemd; .ci/run installs it)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    install(root.path(), "/sbin");
    let units = root.path().join("lib/systemd/system");
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg(format!("--root={}", root.path().display()));
    // Documentation=man:… is checked with man(1) against the pages just installed.
    if Command::new("man").arg("--version").output().is_ok() {
        cmd.env("MANPATH", root.path().join("usr/share/man"));
    } else {
        skip("man(1) is missing: Documentation= links not checked (package man-db)");
        cmd.arg("--man=no");
    }
    let out = cmd
        .arg(units.join("multipathd.service"))
        .arg(units.join("multipathd.socket"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "", "systemd-analyze verify warns");
}
