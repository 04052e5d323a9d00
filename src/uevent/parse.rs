//! Wire formats of uevent netlink messages.

use std::collections::BTreeMap;
use std::fmt;

use super::Uevent;

/// Why a uevent message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UeventError {
    Empty,
    /// Kernel format: the first field is not `ACTION@DEVPATH`.
    BadHeader(String),
    /// libudev format: header too short, wrong magic or properties outside the message.
    BadUdevHeader(String),
    /// Property number `index` (0-based) is not `KEY=VALUE` or not UTF-8.
    BadProperty {
        index: usize,
        text: String,
    },
    /// A required property is absent.
    Missing(&'static str),
    BadSeqnum(String),
    /// The kernel-format header disagrees with the ACTION/DEVPATH properties.
    Inconsistent {
        field: &'static str,
        header: String,
        property: String,
    },
}

impl fmt::Display for UeventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UeventError::Empty => write!(f, "empty uevent message"),
            UeventError::BadHeader(h) => {
                write!(f, "uevent header {h:?} is not ACTION@DEVPATH")
            }
            UeventError::BadUdevHeader(why) => write!(f, "libudev message header: {why}"),
            UeventError::BadProperty { index, text } => {
                write!(f, "uevent property {index} {text:?} is not KEY=VALUE text")
            }
            UeventError::Missing(key) => write!(f, "uevent has no {key} property"),
            UeventError::BadSeqnum(s) => write!(f, "uevent SEQNUM {s:?} is not a number"),
            UeventError::Inconsistent {
                field,
                header,
                property,
            } => write!(
                f,
                "uevent header says {field} {header:?} but the property says {property:?}"
            ),
        }
    }
}

impl std::error::Error for UeventError {}

/// Magic udevd writes after the `libudev\0` prefix (network byte order on the wire).
const UDEV_MAGIC: u32 = 0xfeed_cafe;
const UDEV_PREFIX: &[u8] = b"libudev\0";
/// prefix[8] + magic, header_size, properties_off, properties_len, 2 hashes, 2 bloom words.
const UDEV_HEADER_MIN: usize = 8 + 8 * 4;

/// Parses `KEY=VAL\0…` properties; empty fields (trailing NULs) are skipped.
fn properties(data: &[u8], first_index: usize) -> Result<BTreeMap<String, String>, UeventError> {
    let mut env = BTreeMap::new();
    for (i, field) in data.split(|&b| b == 0).filter(|f| !f.is_empty()).enumerate() {
        let bad = || UeventError::BadProperty {
            index: first_index + i,
            text: String::from_utf8_lossy(field).into_owned(),
        };
        let text = std::str::from_utf8(field).map_err(|_| bad())?;
        match text.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                env.insert(k.to_owned(), v.to_owned());
            }
            _ => return Err(bad()),
        }
    }
    Ok(env)
}

/// Parses a kernel-format message (`ACTION@DEVPATH\0KEY=VAL\0…`, netlink group 1).
pub fn parse_kernel(msg: &[u8]) -> Result<Uevent, UeventError> {
    if msg.is_empty() {
        return Err(UeventError::Empty);
    }
    let head_len = msg.iter().position(|&b| b == 0).unwrap_or(msg.len());
    let head = String::from_utf8_lossy(&msg[..head_len]).into_owned();
    let (action, devpath) = match head.split_once('@') {
        Some((a, d)) if !a.is_empty() && d.starts_with('/') => (a.to_owned(), d.to_owned()),
        _ => return Err(UeventError::BadHeader(head)),
    };
    let rest = msg.get(head_len + 1..).unwrap_or(&[]);
    let mut env = properties(rest, 0)?;
    for (field, key, value) in [("action", "ACTION", &action), ("devpath", "DEVPATH", &devpath)] {
        match env.get(key) {
            Some(p) if p != value => {
                return Err(UeventError::Inconsistent {
                    field,
                    header: value.clone(),
                    property: p.clone(),
                });
            }
            Some(_) => {}
            None => {
                env.insert(key.to_owned(), value.clone());
            }
        }
    }
    Uevent::from_env(env)
}

fn be_u32(msg: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]])
}

fn ne_u32(msg: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]])
}

/// Parses a udevd message (libudev header + properties, netlink group 2).
pub fn parse_udev(msg: &[u8]) -> Result<Uevent, UeventError> {
    let bad = |why: String| Err(UeventError::BadUdevHeader(why));
    if msg.len() < UDEV_HEADER_MIN {
        return bad(format!("{} bytes, need at least {UDEV_HEADER_MIN}", msg.len()));
    }
    if &msg[..8] != UDEV_PREFIX {
        return bad("does not start with \"libudev\\0\"".to_owned());
    }
    let magic = be_u32(msg, 8);
    if magic != UDEV_MAGIC {
        return bad(format!("magic {magic:#010x}, expected {UDEV_MAGIC:#010x}"));
    }
    // header_size, properties_off and properties_len are in host byte order.
    let header_size = ne_u32(msg, 12) as usize;
    let off = ne_u32(msg, 16) as usize;
    let len = ne_u32(msg, 20) as usize;
    if header_size < UDEV_HEADER_MIN || off < header_size {
        return bad(format!("header size {header_size} / properties offset {off} invalid"));
    }
    let Some(props) = off.checked_add(len).and_then(|end| msg.get(off..end)) else {
        return bad(format!(
            "properties at {off}+{len} run past the {}-byte message",
            msg.len()
        ));
    };
    Uevent::from_env(properties(props, 0)?)
}

/// Parses either format, telling them apart by the `libudev\0` prefix.
pub fn parse(msg: &[u8]) -> Result<Uevent, UeventError> {
    if msg.starts_with(UDEV_PREFIX) {
        parse_udev(msg)
    } else {
        parse_kernel(msg)
    }
}

#[cfg(test)]
pub(crate) fn udev_message(props: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in props {
        body.extend_from_slice(p.as_bytes());
        body.push(0);
    }
    let mut m = UDEV_PREFIX.to_vec();
    m.extend_from_slice(&UDEV_MAGIC.to_be_bytes());
    m.extend_from_slice(&(UDEV_HEADER_MIN as u32).to_ne_bytes());
    m.extend_from_slice(&(UDEV_HEADER_MIN as u32).to_ne_bytes());
    m.extend_from_slice(&(body.len() as u32).to_ne_bytes());
    m.extend_from_slice(&[0u8; 16]);
    m.extend_from_slice(&body);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL_DM: &[u8] = b"change@/devices/virtual/block/dm-0\0ACTION=change\0DEVPATH=/devices/virtual/block/dm-0\0SUBSYSTEM=block\0DM_TARGET=multipath\0DM_ACTION=PATH_FAILED\0DM_SEQNUM=1\0DM_PATH=8:16\0DM_NR_VALID_PATHS=1\0DM_NAME=mpatha\0DM_UUID=\0DEVNAME=dm-0\0DEVTYPE=disk\0DISKSEQ=3\0SEQNUM=725\0MAJOR=254\0MINOR=0\0";

    #[test]
    fn kernel_format() {
        let e = parse_kernel(KERNEL_DM).unwrap();
        assert_eq!(e.action, "change");
        assert_eq!(e.devpath, "/devices/virtual/block/dm-0");
        assert_eq!(e.subsystem.as_deref(), Some("block"));
        assert_eq!(e.devname.as_deref(), Some("dm-0"));
        assert_eq!(e.seqnum, Some(725));
        assert_eq!(e.get("DM_PATH"), Some("8:16"));
        assert_eq!(e.get("DM_UUID"), Some(""));
        assert_eq!(e.env.len(), 16);
        assert_eq!(parse(KERNEL_DM).unwrap(), e);
    }

    #[test]
    fn kernel_format_header_only_fills_action_and_devpath() {
        let e = parse_kernel(b"add@/devices/x/sdb").unwrap();
        assert_eq!(
            (e.action.as_str(), e.devpath.as_str(), e.seqnum),
            ("add", "/devices/x/sdb", None)
        );
        assert_eq!(e.kernel_name(), "sdb");
    }

    #[test]
    fn kernel_format_errors() {
        assert_eq!(parse_kernel(b""), Err(UeventError::Empty));
        assert_eq!(
            parse_kernel(b"libfoo\0A=b").unwrap_err().to_string(),
            "uevent header \"libfoo\" is not ACTION@DEVPATH"
        );
        assert_eq!(
            parse_kernel(b"add@/a\0ACTION=add\0=x\0").unwrap_err(),
            UeventError::BadProperty {
                index: 1,
                text: "=x".into()
            }
        );
        assert!(matches!(
            parse_kernel(b"add@/a\0K=\xff\0"),
            Err(UeventError::BadProperty { index: 0, .. })
        ));
        assert!(matches!(
            parse_kernel(b"add@/a\0DEVPATH=/b\0"),
            Err(UeventError::Inconsistent { field: "devpath", .. })
        ));
        assert_eq!(
            parse_kernel(b"add@/a\0SEQNUM=x\0"),
            Err(UeventError::BadSeqnum("x".into()))
        );
    }

    #[test]
    fn udev_format() {
        let m = udev_message(&[
            "ACTION=add",
            "DEVPATH=/devices/pci/host0/target0:0:0/0:0:0:0/block/sdb",
            "SUBSYSTEM=block",
            "DEVNAME=/dev/sdb",
            "SEQNUM=812",
            "ID_SERIAL=333333330000007d0",
            "MAJOR=8",
            "MINOR=16",
        ]);
        let e = parse_udev(&m).unwrap();
        assert_eq!(e.action, "add");
        assert_eq!(e.devname.as_deref(), Some("sdb"));
        assert_eq!(e.get("ID_SERIAL"), Some("333333330000007d0"));
        assert_eq!(e.seqnum, Some(812));
        assert_eq!(parse(&m).unwrap(), e);
    }

    #[test]
    fn udev_format_errors() {
        let good = udev_message(&["ACTION=add", "DEVPATH=/a"]);
        assert!(
            parse_udev(&good[..20])
                .unwrap_err()
                .to_string()
                .contains("20 bytes, need at least 40")
        );
        let mut m = good.clone();
        m[8] = 0;
        assert!(parse_udev(&m).unwrap_err().to_string().contains("magic 0x00edcafe"));
        let mut m = good.clone();
        m.truncate(m.len() - 3);
        assert!(parse_udev(&m).unwrap_err().to_string().contains("run past"));
        let mut m = good.clone();
        m[16..20].copy_from_slice(&8u32.to_ne_bytes());
        assert!(parse_udev(&m).is_err());
        let m = udev_message(&["DEVPATH=/a"]);
        assert_eq!(parse_udev(&m), Err(UeventError::Missing("ACTION")));
    }

    proptest::proptest! {
        #[test]
        fn parsers_are_total(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_kernel(&data);
            let _ = parse_udev(&data);
        }

        #[test]
        fn udev_header_fuzz(off in 0u32..200, len in 0u32..300, hs in 0u32..80, tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let mut m = udev_message(&[]);
            m[12..16].copy_from_slice(&hs.to_ne_bytes());
            m[16..20].copy_from_slice(&off.to_ne_bytes());
            m[20..24].copy_from_slice(&len.to_ne_bytes());
            m.extend_from_slice(&tail);
            let _ = parse(&m);
        }
    }
}
