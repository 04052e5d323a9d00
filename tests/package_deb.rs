//! The .deb of `make deb` (packaging/build-deb.sh, here with the debug binary):
//! installed with dpkg into a minimal tree beside a stand-in for Debian's
//! multipath-tools (same paths), it diverts Debian's daemon, units and man pages and
//! puts ours in their place; removing it brings Debian's files back and leaves no
//! diversion. dpkg runs with `--root` and chrootless maintainer scripts (DPKG_ROOT),
//! which is how dpkg installs into a tree that has no shell or dpkg of its own.

use std::path::Path;
use std::process::Command;

const DIVERTED: [&str; 5] = [
    "/lib/systemd/system/multipathd.service",
    "/lib/systemd/system/multipathd.socket",
    "/sbin/multipathd",
    "/usr/share/man/man5/multipath.conf.5.gz",
    "/usr/share/man/man8/multipathd.8.gz",
];

fn skip(why: &str) {
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!!! SKIPPED: {why}");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A package with `files` (path, content) and nothing else.
fn fake_package(dir: &Path, name: &str, version: &str, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let tree = dir.join(name);
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!("Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: test <t@localhost>\nDescription: stand-in\n"),
    )
    .unwrap();
    for (path, content) in files {
        let p = tree.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    let deb = dir.join(format!("{name}.deb"));
    ok(Command::new("dpkg-deb")
        .arg("--root-owner-group")
        .arg("-b")
        .arg(&tree)
        .arg(&deb));
    deb
}

fn dpkg(root: &Path) -> Command {
    let mut c = Command::new("dpkg");
    c.arg(format!("--root={}", root.display()))
        .arg("--force-script-chrootless")
        .env_remove("DPKG_ROOT");
    c
}

fn diversions(root: &Path) -> Vec<String> {
    let out = ok(Command::new("dpkg-divert")
        .arg(format!("--root={}", root.display()))
        .arg("--list"));
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn installs_beside_multipath_tools_by_diversion_and_removes_cleanly() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() || !nix::unistd::getuid().is_root() {
        skip("needs root and dpkg (a Debian host)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = ok(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build-deb.sh"))
            .arg(env!("CARGO_BIN_EXE_multipathd"))
            .arg(work.path().join("out"))
            // The debug binary is large; xz (dpkg-deb's default) takes most of a minute.
            .env("DPKG_DEB_COMPRESSOR_TYPE", "gzip")
            .env("DPKG_DEB_COMPRESSOR_LEVEL", "1"),
    );
    let deb = Path::new(out.trim()).to_path_buf();
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let mut shipped: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.'))
        .collect();
    shipped.sort();
    assert_eq!(shipped, DIVERTED);

    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(root.join("var/lib/dpkg/available"), "").unwrap();
    let debian: Vec<(&str, &[u8])> = DIVERTED.iter().map(|p| (*p, b"debian\n" as &[u8])).collect();
    let mt = fake_package(work.path(), "multipath-tools", "0.9.4-3", &debian);
    let libc = fake_package(work.path(), "libc6", "2.36-9", &[]);
    ok(dpkg(&root).arg("-i").arg(&libc).arg(&mt));

    ok(dpkg(&root).arg("-i").arg(&deb));
    let want: Vec<String> = {
        let mut v: Vec<String> = DIVERTED
            .iter()
            .map(|p| format!("diversion of {p} to {p}.distrib by multipathd-rs"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(diversions(&root), want);
    let ours = std::fs::read(env!("CARGO_BIN_EXE_multipathd")).unwrap();
    assert!(
        std::fs::read(root.join("sbin/multipathd")).unwrap() == ours,
        "our daemon is not installed"
    );
    for p in DIVERTED {
        let rel = p.trim_start_matches('/');
        assert_eq!(
            std::fs::read(root.join(format!("{rel}.distrib"))).unwrap(),
            b"debian\n",
            "{p}"
        );
    }
    let status = ok(dpkg(&root).args(["-s", "multipathd-rs"]));
    assert!(status.contains("Status: install ok installed"), "{status}");

    ok(dpkg(&root).args(["-r", "multipathd-rs"]));
    assert_eq!(diversions(&root), Vec::<String>::new());
    for p in DIVERTED {
        let rel = p.trim_start_matches('/');
        assert_eq!(
            std::fs::read(root.join(rel)).unwrap(),
            b"debian\n",
            "{p} not given back"
        );
        assert!(!root.join(format!("{rel}.distrib")).exists(), "{p}.distrib left behind");
    }
    // Install again and purge: the same clean end.
    ok(dpkg(&root).arg("-i").arg(&deb));
    ok(dpkg(&root).args(["-P", "multipathd-rs"]));
    assert_eq!(diversions(&root), Vec::<String>::new());
    assert_eq!(std::fs::read(root.join("sbin/multipathd")).unwrap(), b"debian\n");
    let status = ok(dpkg(&root).args(["-l"]));
    assert!(!status.lines().any(|l| l.contains("multipathd-rs")), "{status}");
}
