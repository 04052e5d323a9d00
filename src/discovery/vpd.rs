//! SCSI VPD page parsers: page 0x83 (device identification) to a WWID, page 0x80
//! (unit serial number) to a serial string.
//!
//! The WWID format follows multipath-tools so existing bindings/wwids files keep
//! matching: the designator type digit followed by the identifier (hex for NAA and
//! EUI-64, text for SCSI name strings and T10 vendor ids).

use std::fmt;

/// Longest WWID multipath-tools stores (its WWID_SIZE buffer minus the NUL).
pub const WWID_MAX_LEN: usize = 127;
const WWID_SIZE: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpdError {
    /// Fewer than 4 bytes: not even a page header.
    TooShort(usize),
    /// The page code byte is not the page we asked for.
    WrongPage { expected: u8, found: u8 },
    /// A designator claims to extend past the end of the page.
    DescriptorOverflow { offset: usize, end: usize, page_len: usize },
    /// A designator has a length that does not fit its type (and nothing usable was found).
    InvalidDesignator { offset: usize, header: [u8; 4] },
    /// No designator usable as a WWID (or an empty serial).
    NoData,
}

impl fmt::Display for VpdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VpdError::TooShort(n) => write!(f, "VPD page too short: {n} bytes"),
            VpdError::WrongPage { expected, found } => {
                write!(f, "expected VPD page {expected:02x}, found page {found:02x}")
            }
            VpdError::DescriptorOverflow { offset, end, page_len } => write!(
                f,
                "designator at offset {offset} ends at {end}, beyond the page length {page_len}"
            ),
            VpdError::InvalidDesignator { offset, header } => write!(
                f,
                "invalid designator at offset {offset}: {:02x}{:02x}{:02x}{:02x}",
                header[0], header[1], header[2], header[3]
            ),
            VpdError::NoData => write!(f, "no usable identifier in VPD page"),
        }
    }
}

impl std::error::Error for VpdError {}

/// Length of the page as the header declares it, capped by the bytes we actually have.
fn page_len(page: &[u8], code: u8) -> Result<usize, VpdError> {
    if page.len() < 4 {
        return Err(VpdError::TooShort(page.len()));
    }
    if page[1] != code {
        return Err(VpdError::WrongPage {
            expected: code,
            found: page[1],
        });
    }
    let declared = u16::from_be_bytes([page[2], page[3]]) as usize + 4;
    Ok(declared.min(page.len()))
}

/// Ranking of a designator as a WWID source; higher wins, `None` = not a candidate.
/// Order (multipath-tools, matching udev's 55-scsi-sg3_id.rules): NAA IEEE
/// Registered Extended > NAA IEEE Registered > NAA IEEE Extended > EUI-64 >
/// SCSI name string > T10 vendor id > NAA locally assigned.
/// Returns (rank, invalid).
fn rank(d: &[u8], first_id_byte: u8) -> (Option<u8>, bool) {
    let len = d[3] as usize;
    match d[1] & 0x0f {
        0x3 => {
            let (prio, good_len) = match first_id_byte >> 4 {
                6 => (Some(8), 16),
                5 => (Some(7), 8),
                2 => (Some(6), 8),
                3 => (Some(1), 8),
                _ => (None, usize::MAX),
            };
            (prio, good_len != len)
        }
        0x2 => (Some(4), !matches!(len, 8 | 12 | 16)),
        0x8 => {
            let prefix_ok = d.len() >= 8 && matches!(&d[4..8], b"eui." | b"naa." | b"iqn.");
            (Some(3), len < 4 || !prefix_ok)
        }
        0x1 => (Some(2), len < 8),
        0x6 => (None, len != 4),
        0x7 => (None, len != 16),
        0x0 | 0xa => (None, false),
        _ => (None, true),
    }
}

/// Parse VPD page 0x83 (including its 4-byte header) into a multipath WWID.
pub fn parse_pg83(page: &[u8]) -> Result<String, VpdError> {
    let in_len = page_len(page, 0x83)?;
    let mut best: Option<(u8, usize)> = None; // (rank, offset)
    let mut err = VpdError::NoData;
    let mut off = 4;
    while off + 4 <= in_len {
        let d = &page[off..in_len];
        let assoc = d[1] & 0x30;
        // Only designators associated with the logical unit identify the LUN;
        // association 3 is reserved and thus malformed.
        let (prio, invalid) = if assoc == 0x30 {
            (None, true)
        } else if assoc != 0 {
            (None, false)
        } else {
            rank(d, d.get(4).copied().unwrap_or(0))
        };
        let end = off + 4 + d[3] as usize;
        if end > in_len {
            err = VpdError::DescriptorOverflow {
                offset: off,
                end,
                page_len: in_len,
            };
            break;
        }
        if invalid {
            err = VpdError::InvalidDesignator {
                offset: off,
                header: [d[0], d[1], d[2], d[3]],
            };
        } else if let Some(p) = prio.filter(|&p| best.is_none_or(|(bp, _)| p > bp)) {
            best = Some((p, off));
        }
        off = end;
    }
    let Some((_, off)) = best else { return Err(err) };
    let d = &page[off..];
    let kind = d[1] & 0x0f;
    let id_len = (d[3] as usize).min(WWID_SIZE);
    let id = &d[4..4 + id_len];
    let mut out: Vec<u8> = Vec::with_capacity(2 * id_len + 1);
    match kind {
        0x2 | 0x3 => {
            out.push(b'0' + kind);
            for b in id {
                out.extend_from_slice(format!("{b:02x}").as_bytes());
            }
        }
        0x8 => {
            let lower = match &id[..4] {
                b"eui." => Some(b'2'),
                b"naa." => Some(b'3'),
                _ => None,
            };
            out.push(lower.unwrap_or(b'8'));
            let name = &id[4..];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if lower.is_some() {
                out.extend(name.iter().map(u8::to_ascii_lowercase));
            } else {
                out.extend_from_slice(name);
            }
        }
        _ => {
            // T10 vendor id: words separated by single underscores, runs of
            // spaces collapsed, trailing spaces dropped.
            out.push(b'1');
            let mut rest = id;
            while let Some(sp) = rest.iter().position(|&b| b == b' ') {
                out.extend_from_slice(&rest[..sp]);
                rest = &rest[sp..];
                let skip = rest.iter().take_while(|&&b| b == b' ').count();
                rest = &rest[skip..];
                if !rest.is_empty() {
                    out.push(b'_');
                }
            }
            out.extend_from_slice(rest);
        }
    }
    if let Some(nul) = out.iter().position(|&b| b == 0) {
        out.truncate(nul);
    }
    out.truncate(WWID_MAX_LEN);
    // Non-UTF-8 bytes become U+FFFD (3 bytes each), so re-apply the length cap
    // on a character boundary.
    let mut w = String::from_utf8_lossy(&out).into_owned();
    while w.len() > WWID_MAX_LEN {
        w.pop();
    }
    Ok(w)
}

/// Parse VPD page 0x80 (unit serial number) with leading/trailing spaces stripped.
pub fn parse_pg80(page: &[u8]) -> Result<String, VpdError> {
    let len = page_len(page, 0x80)?;
    let raw = &page[4..len];
    let raw = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_matches(' ');
    if s.is_empty() {
        return Err(VpdError::NoData);
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(descs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = descs.concat();
        let mut p = vec![0, 0x83];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend(body);
        p
    }
    fn desc(code_set: u8, piv_assoc_type: u8, id: &[u8]) -> Vec<u8> {
        let mut d = vec![code_set, piv_assoc_type, 0, id.len() as u8];
        d.extend_from_slice(id);
        d
    }
    fn naa6() -> Vec<u8> {
        desc(
            1,
            0x03,
            &[
                0x60, 0x0a, 0x09, 0x80, 0x38, 0x30, 0x4b, 0x41, 0x2f, 0x5d, 0x4e, 0x77, 0x37, 0x58, 0x61, 0x4a,
            ],
        )
    }
    fn naa5() -> Vec<u8> {
        desc(1, 0x03, &[0x50, 0x01, 0x40, 0x51, 0x23, 0x45, 0x67, 0x89])
    }
    fn naa2() -> Vec<u8> {
        desc(1, 0x03, &[0x20, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55])
    }
    fn naa3() -> Vec<u8> {
        desc(1, 0x03, &[0x33, 0x33, 0x33, 0x30, 0x00, 0x00, 0x07, 0xd0])
    }
    fn eui64() -> Vec<u8> {
        desc(1, 0x02, &[0x00, 0x25, 0x38, 0x5a, 0x91, 0xb1, 0x23, 0x45])
    }
    fn name() -> Vec<u8> {
        desc(3, 0x08, b"iqn.2004-10.com.Example:Disk1\0\0\0")
    }
    fn t10() -> Vec<u8> {
        desc(2, 0x01, b"LIO-ORG block0          abcd  ")
    }

    #[test]
    fn each_type_formats_like_multipath() {
        assert_eq!(
            parse_pg83(&page(&[naa6()])).unwrap(),
            "3600a098038304b412f5d4e773758614a"
        );
        assert_eq!(parse_pg83(&page(&[naa5()])).unwrap(), "35001405123456789");
        assert_eq!(parse_pg83(&page(&[naa2()])).unwrap(), "32000001122334455");
        assert_eq!(parse_pg83(&page(&[naa3()])).unwrap(), "333333330000007d0");
        assert_eq!(parse_pg83(&page(&[eui64()])).unwrap(), "20025385a91b12345");
        assert_eq!(parse_pg83(&page(&[name()])).unwrap(), "82004-10.com.Example:Disk1");
        assert_eq!(parse_pg83(&page(&[t10()])).unwrap(), "1LIO-ORG_block0_abcd");
    }

    #[test]
    fn scsi_name_naa_and_eui_are_lowercased_with_their_own_digit() {
        let n = desc(3, 0x08, b"naa.600A0980ABCD\0\0\0\0");
        assert_eq!(parse_pg83(&page(&[n])).unwrap(), "3600a0980abcd");
        let e = desc(3, 0x08, b"eui.00ABCDEF");
        assert_eq!(parse_pg83(&page(&[e])).unwrap(), "200abcdef");
    }

    #[test]
    fn priority_order_is_naa6_naa5_naa2_eui_name_t10_naa3() {
        let order = [naa6(), naa5(), naa2(), eui64(), name(), t10(), naa3()];
        // Every suffix of the ranking, in reversed position, picks its head.
        for i in 0..order.len() {
            let mut set: Vec<Vec<u8>> = order[i..].to_vec();
            let want = parse_pg83(&page(&[order[i].clone()])).unwrap();
            assert_eq!(parse_pg83(&page(&set)).unwrap(), want, "head {i}");
            set.reverse();
            assert_eq!(parse_pg83(&page(&set)).unwrap(), want, "reversed head {i}");
        }
    }

    #[test]
    fn non_lun_associations_are_ignored() {
        let mut port = naa6();
        port[1] = 0x93; // PIV, target port association
        assert_eq!(parse_pg83(&page(&[port, naa3()])).unwrap(), "333333330000007d0");
    }

    #[test]
    fn wrong_length_naa_is_skipped() {
        let mut bad = naa6();
        bad[3] = 8;
        bad.truncate(12);
        assert_eq!(parse_pg83(&page(&[bad, t10()])).unwrap(), "1LIO-ORG_block0_abcd");
        let mut bad = naa6();
        bad[3] = 8;
        bad.truncate(12);
        assert!(matches!(
            parse_pg83(&page(&[bad])),
            Err(VpdError::InvalidDesignator { offset: 4, .. })
        ));
    }

    #[test]
    fn overflowing_descriptor_stops_the_walk() {
        let mut p = page(&[naa3(), naa6()]);
        let last = p.len();
        p[4 + 12 + 3] = 40; // the NAA6 now claims 40 bytes
        p.truncate(last);
        assert_eq!(parse_pg83(&p).unwrap(), "333333330000007d0");
        let mut p = page(&[naa6()]);
        p[7] = 200;
        assert_eq!(
            parse_pg83(&p),
            Err(VpdError::DescriptorOverflow {
                offset: 4,
                end: 208,
                page_len: 24
            })
        );
    }

    #[test]
    fn header_errors() {
        assert_eq!(parse_pg83(&[0, 0x83]), Err(VpdError::TooShort(2)));
        assert_eq!(
            parse_pg83(&[0, 0x80, 0, 0]),
            Err(VpdError::WrongPage {
                expected: 0x83,
                found: 0x80
            })
        );
        assert_eq!(parse_pg83(&[0, 0x83, 0, 0]), Err(VpdError::NoData));
    }

    #[test]
    fn t10_leading_and_inner_spaces() {
        let t = desc(2, 0x01, b"  ATA     ST1000  ");
        assert_eq!(parse_pg83(&page(&[t])).unwrap(), "1_ATA_ST1000");
    }

    #[test]
    fn overlong_hex_wwid_is_cut_to_127() {
        // EUI-64 with 16 bytes is valid; build a T10 id longer than 127 chars instead.
        let long = vec![b'x'; 200];
        let t = desc(2, 0x01, &long);
        let w = parse_pg83(&page(&[t])).unwrap();
        assert_eq!(w.len(), WWID_MAX_LEN);
        assert!(w.starts_with("1xxx"));
    }

    #[test]
    fn pg80_strips_spaces() {
        let mut p = vec![0, 0x80, 0, 10];
        p.extend_from_slice(b"  2000 AB ");
        assert_eq!(parse_pg80(&p).unwrap(), "2000 AB");
        assert_eq!(parse_pg80(&[0, 0x80, 0, 2, b' ', b' ']), Err(VpdError::NoData));
    }

    // Vectors built like multipath-tools' tests/vpd.c: one designator made from
    // TEST_ID, vendor "Linux" padded to 8 bytes for T10 ids.
    const TEST_ID: &str = "A123456789AbcDefB123456789AbcDefC123456789AbcDefD123456789AbcDef";

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn upstream_t10_vectors() {
        let mut input = TEST_ID.as_bytes().to_vec();
        for i in [15, 17, 18] {
            input[i] = b' ';
        }
        let t10 = |n: usize| {
            let mut id = b"Linux   ".to_vec();
            id.extend_from_slice(&input[..n - 8]);
            parse_pg83(&page(&[desc(2, 0x01, &id)])).unwrap()
        };
        assert_eq!(t10(40), "1Linux_A123456789AbcDe_B_3456789AbcDef");
        assert_eq!(t10(28), "1Linux_A123456789AbcDe_B_3");
        assert_eq!(t10(27), "1Linux_A123456789AbcDe_B");
        assert_eq!(t10(26), "1Linux_A123456789AbcDe_B");
        assert_eq!(t10(24), "1Linux_A123456789AbcDe");
        assert_eq!(t10(10), "1Linux_A1");
    }

    #[test]
    fn upstream_naa_eui_vectors() {
        let naa = |n: u8| {
            let len = if n == 6 { 15 } else { 7 };
            let mut id = vec![(n << 4) | 0xa];
            id.extend(hex_bytes(&TEST_ID[1..1 + 2 * len]));
            parse_pg83(&page(&[desc(1, 0x03, &id)])).unwrap()
        };
        assert_eq!(naa(6), "36a123456789abcdefb123456789abcde");
        assert_eq!(naa(5), "35a123456789abcde");
        assert_eq!(naa(3), "33a123456789abcde");
        assert_eq!(naa(2), "32a123456789abcde");
        let eui = |n: usize| parse_pg83(&page(&[desc(1, 0x02, &hex_bytes(&TEST_ID[..2 * n]))])).unwrap();
        assert_eq!(eui(8), "2a123456789abcdef");
        assert_eq!(eui(12), "2a123456789abcdefb1234567");
        assert_eq!(eui(16), "2a123456789abcdefb123456789abcdef");
    }

    #[test]
    fn upstream_scsi_name_vectors() {
        // maxlen bytes, the last one the NUL of snprintf, zero-padded to a
        // multiple of 4.
        let name = |prefix: &str, maxlen: usize| {
            let mut id = format!("{prefix}{TEST_ID}").into_bytes();
            id.truncate(maxlen - 1);
            id.resize(maxlen, 0);
            parse_pg83(&page(&[desc(3, 0x08, &id)])).unwrap()
        };
        assert_eq!(name("eui.", 20), "2a123456789abcde");
        assert_eq!(name("naa.", 20), "3a123456789abcde");
        assert_eq!(name("iqn.", 20), "8A123456789AbcDe");
        assert_eq!(name("iqn.", 12), "8A123456");
        assert_eq!(name("eui.", 68), format!("2{}", &TEST_ID[..63].to_lowercase()));
    }

    #[test]
    fn upstream_pg80_vectors() {
        // Right-aligned in `size` bytes: `len` characters of TEST_ID whose
        // characters from position 20 on are spaces.
        let pg80 = |size: usize, len: usize| {
            let mut input = TEST_ID.as_bytes()[..len].to_vec();
            for b in input.iter_mut().skip(20) {
                *b = b' ';
            }
            let mut p = vec![0, 0x80, 0, size as u8];
            p.extend(std::iter::repeat_n(b' ', size - len));
            p.extend(input);
            parse_pg80(&p).unwrap()
        };
        for (size, len) in [(20, 20), (24, 24), (24, 20), (30, 24)] {
            assert_eq!(pg80(size, len), &TEST_ID[..20], "{size}/{len}");
        }
        assert_eq!(pg80(20, 16), &TEST_ID[..16]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_pg83(&bytes);
            let _ = parse_pg80(&bytes);
            let mut p = bytes.clone();
            if p.len() >= 4 {
                p[1] = 0x83;
                if let Ok(w) = parse_pg83(&p) {
                    proptest::prop_assert!(w.len() <= WWID_MAX_LEN);
                }
            }
        }
    }
}
