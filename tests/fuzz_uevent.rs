//! Fuzz target: uevent wire formats (`uevent::parse_kernel`, `parse_udev`, `parse`).
//!
//! Inputs: random bytes, real messages from `tests/corpus/uevent/` (`*.kernel`: the
//! `ACTION@DEVPATH` header line then one property a line; `*.udev`: properties behind
//! a libudev header) mutated byte-wise, and libudev headers with arbitrary size/offset/
//! length fields. Properties: no panic, `parse` picks the right format, accepted events
//! keep ACTION/DEVPATH in `env`, the accessors and `merge_batch` cope, and an accepted
//! event written back in either format parses to the same event.

mod fuzz_support;

use multipathd::uevent::{self, Uevent, merge_batch};
use proptest::prelude::*;

const UDEV_PREFIX: &[u8] = b"libudev\0";
const UDEV_MAGIC: u32 = 0xfeed_cafe;
const UDEV_HEADER: u32 = 40;

/// A libudev message: prefix, magic, header size, properties offset/length, hashes, bloom.
fn udev_message(props: &[u8], header_size: u32, off: u32, len: u32) -> Vec<u8> {
    let mut m = UDEV_PREFIX.to_vec();
    m.extend_from_slice(&UDEV_MAGIC.to_be_bytes());
    for v in [header_size, off, len] {
        m.extend_from_slice(&v.to_ne_bytes());
    }
    m.extend_from_slice(&[0u8; 16]);
    m.extend_from_slice(props);
    m
}

fn nul_joined<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(f);
        out.push(0);
    }
    out
}

/// Wire bytes of the seed messages.
fn seeds() -> Vec<Vec<u8>> {
    fuzz_support::corpus("uevent")
        .into_iter()
        .map(|(path, text)| {
            let body = nul_joined(text.split(|&b| b == b'\n').filter(|l| !l.is_empty()));
            match path.extension().and_then(|e| e.to_str()) {
                Some("kernel") => body,
                Some("udev") => udev_message(&body, UDEV_HEADER, UDEV_HEADER, body.len() as u32),
                other => panic!("{}: unknown seed kind {other:?}", path.display()),
            }
        })
        .collect()
}

fn dict() -> Vec<Vec<u8>> {
    let words: &[&[u8]] = &[
        b"\0",
        b"\0\0",
        b"=",
        b"@",
        b"/",
        b"ACTION=",
        b"DEVPATH=",
        b"SEQNUM=",
        b"SEQNUM=18446744073709551616",
        b"MAJOR=",
        b"MAJOR=-1",
        b"MAJOR=4294967296",
        b"DM_ACTION=PATH_FAILED",
        b"DM_ACTION=PATH_REINSTATED",
        b"DM_PATH=",
        b"DM_NR_VALID_PATHS=x",
        b"DM_SEQNUM=",
        b"DM_UUID=mpath-",
        b"DEVNAME=/dev/",
        b"DEVNAME=",
        b"libudev\0",
        b"\xfe\xed\xca\xfe",
        b"\xff",
        b"\xc3",
        b"add@/",
        b"remove@",
        "\u{e9}".as_bytes(),
    ];
    words.iter().map(|w| w.to_vec()).collect()
}

/// Header fields near the right values, or anything.
fn header_field() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..200, Just(u32::MAX), Just(u32::MAX - 20), any::<u32>()]
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..300);
    let udev_random = (
        header_field(),
        header_field(),
        header_field(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(h, o, l, body)| udev_message(&body, h, o, l));
    let mutated = fuzz_support::mutated(seeds(), dict(), 8);
    // A real udev message whose header fields are replaced.
    let rehead = (
        fuzz_support::mutated(seeds(), dict(), 2),
        header_field(),
        header_field(),
        header_field(),
    )
        .prop_map(|(mut m, h, o, l)| {
            if m.starts_with(UDEV_PREFIX) && m.len() >= 24 {
                m[12..16].copy_from_slice(&h.to_ne_bytes());
                m[16..20].copy_from_slice(&o.to_ne_bytes());
                m[20..24].copy_from_slice(&l.to_ne_bytes());
            }
            m
        });
    prop_oneof![2 => bytes, 1 => udev_random, 5 => mutated, 1 => rehead]
}

fn input() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(message(), 1..4)
}

fn env_fields(ev: &Uevent) -> Vec<u8> {
    nul_joined(
        ev.env
            .iter()
            .map(|(k, v)| format!("{k}={v}").into_bytes())
            .collect::<Vec<_>>()
            .iter()
            .map(Vec::as_slice),
    )
}

fn check_event(msg: &[u8], ev: &Uevent) {
    assert_eq!(ev.env.get("ACTION"), Some(&ev.action), "{ev:?}");
    assert_eq!(ev.env.get("DEVPATH"), Some(&ev.devpath), "{ev:?}");
    let _ = (ev.kernel_name(), ev.is_dm_multipath(), ev.dm_action());
    if let Some(m) = ev.major() {
        assert_eq!(ev.get("MAJOR").and_then(|v| v.parse::<u32>().ok()), Some(m));
    }
    if !msg.starts_with(UDEV_PREFIX) {
        assert!(!ev.action.is_empty() && ev.devpath.starts_with('/'), "{ev:?}");
    }
    // Written back as udevd would send it, the event reads the same.
    let body = env_fields(ev);
    let again = udev_message(&body, UDEV_HEADER, UDEV_HEADER, body.len() as u32);
    assert_eq!(uevent::parse_udev(&again).as_ref(), Ok(ev), "udev re-encoding");
    // And as the kernel would, where the header can carry ACTION and DEVPATH.
    if !ev.action.is_empty() && !ev.action.contains('@') && ev.devpath.starts_with('/') {
        let mut k = format!("{}@{}", ev.action, ev.devpath).into_bytes();
        k.push(0);
        k.extend_from_slice(&body);
        assert_eq!(uevent::parse_kernel(&k).as_ref(), Ok(ev), "kernel re-encoding");
    }
}

fn property(msgs: &Vec<Vec<u8>>) {
    let mut batch = Vec::new();
    for m in msgs {
        let k = uevent::parse_kernel(m);
        let u = uevent::parse_udev(m);
        let both = uevent::parse(m);
        let expected = if m.starts_with(UDEV_PREFIX) { &u } else { &k };
        assert_eq!(&both, expected, "parse chose the wrong format");
        for r in [&k, &u] {
            match r {
                Ok(ev) => check_event(m, ev),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        if let Ok(ev) = both {
            batch.push(ev);
        }
    }
    let n = batch.len();
    let merged = merge_batch(batch, &|name| name.starts_with("sdc"), &|ev| {
        ev.get("ID_SERIAL").map(str::to_owned)
    });
    let out: usize = merged.iter().map(|m| m.all().count()).sum();
    assert!(out <= n, "merge_batch produced {out} events from {n}");
}

#[test]
fn fuzz_uevent() {
    fuzz_support::run("fuzz_uevent", input(), property);
}

/// The seeds are well-formed: each parses, and a dm seed carries its path event.
#[test]
fn corpus_messages_parse() {
    for m in seeds() {
        let ev = uevent::parse(&m).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&m)));
        check_event(&m, &ev);
        if ev.get("DM_ACTION").is_some() {
            assert!(ev.is_dm_multipath(), "{ev:?}");
            assert!(ev.dm_action().is_some(), "{ev:?}");
        }
    }
}
