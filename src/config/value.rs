//! Parsing and printing of keyword values, driven by the keyword table's
//! value types.

use super::keywords::{PGPOLICIES, PROTOCOLS, ValueType};

/// A stored setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// Encodings of the special words inside `Value::Int`.
pub mod enc {
    /// `no_path_retry fail` (also `0`).
    pub const NPR_FAIL: i64 = -1;
    /// `no_path_retry queue`.
    pub const NPR_QUEUE: i64 = -2;
    pub const FAILBACK_MANUAL: i64 = -1;
    pub const FAILBACK_IMMEDIATE: i64 = -2;
    pub const FAILBACK_FOLLOWOVER: i64 = -3;
    /// `no` / `0` of a no|N field, `off` of an off|0|N field, `max` of max_fds.
    pub const OFF: i64 = -1;
    /// `dev_loss_tmo infinity`.
    pub const INFINITY: i64 = u32::MAX as i64;
}

/// Why a value was rejected; the parser turns this into upstream's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// `invalid value for K: "V"`.
    Invalid,
    /// `missing argument count for K`.
    MissingCount,
    /// `invalid argument count for K:, got 'given' expected 'found'`: upstream's words, where
    /// "got" is the count the value gives and "expected" the number of arguments after it.
    BadCount { given: i64, found: usize },
    /// `support for "V" is not compiled in for K`.
    NotCompiledIn,
    /// `V cannot contain a slash. Ignoring` (the earlier value stays).
    Slash,
    /// The handler itself failed: the line is a parse failure.
    Fatal,
}

/// Result of a successful parse: the value plus an optional adjustment note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    None,
    /// Capped to this bound; `true` = the value was too large.
    Capped(i64, bool),
    /// A deprecated spelling of flush_on_last_del (`yes`/`1`, `no`/`0`): the word it stands for.
    FlushDeprecated(&'static str),
    /// `uid_attrs` records without a `:`, dropped.
    BadRecords(Vec<String>),
    /// `invalid value for K: "V"`, and yet a value is kept (`polling_interval`).
    InvalidKept,
}

const UINT_MAX_I64: i64 = u32::MAX as i64;

/// The polling interval upstream keeps for a value it cannot read.
pub const POLLING_UNREADABLE: i64 = UINT_MAX_I64 - 1;

/// A character that stays inside a bare (unquoted) word when the file is read again.
fn bare_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '{' | '}' | '"' | '#' | '!')
}

/// Whether a parsed value is upstream's "not set" for its type, so that setting it clears
/// the keyword (later levels and built-in defaults apply): 0 of a `ZeroUnset` keyword, of
/// `failback` (also a negative one, capped to 0) and of `dev_loss_tmo`. (`max_fds 0` is a
/// value: leave the limit as it is; see [`hidden`].)
pub fn means_unset(ty: ValueType, v: &Value) -> bool {
    if let (ValueType::UidAttrs, Value::Str(s)) = (ty, v) {
        // no record: upstream's list is empty, and not printed
        return s.is_empty();
    }
    matches!(
        (ty, v),
        (
            ValueType::ZeroUnset { .. } | ValueType::Failback | ValueType::DevLoss,
            Value::Int(0)
        )
    )
}

/// Whether upstream's dump leaves out a keyword set to this value: `max_fds 0` (the open
/// file limit left as the daemon found it) prints nothing, as upstream's printer does.
pub fn hidden(ty: ValueType, v: &Value) -> bool {
    matches!((ty, v), (ValueType::MaxFds, Value::Int(0)))
}

const C_BLANKS: [char; 6] = [' ', '\t', '\n', '\r', '\x0b', '\x0c'];

/// The whole text as C's `strtol` base 10 reads it in upstream's `do_set_int`: blanks
/// before and after, an optional sign, at least one digit; out-of-range values saturate as
/// `strtol` does (to the 64-bit `long` bounds).
fn strtol(s: &str) -> Option<i64> {
    let t = s.trim_start_matches(C_BLANKS).trim_end_matches(C_BLANKS);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b - b'0');
        v = if neg {
            v.saturating_mul(10).saturating_sub(d)
        } else {
            v.saturating_mul(10).saturating_add(d)
        };
    }
    Some(v)
}

/// Upstream's `set_uint`: blanks around, digits only (no sign), at most `u32::MAX`.
fn uint(s: &str) -> Option<i64> {
    let t = s.trim_start_matches(C_BLANKS).trim_end_matches(C_BLANKS);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = t
        .bytes()
        .fold(0i64, |v, b| v.saturating_mul(10).saturating_add(i64::from(b - b'0')));
    (v <= i64::from(u32::MAX)).then_some(v)
}

/// C's `sscanf("%u")`: blanks, an optional sign, digits, anything after ignored; the result
/// wraps modulo 2^32 as the unsigned conversion does (so `-1` is `u32::MAX`).
fn scan_u32(s: &str) -> Option<i64> {
    scan_unsigned(s, 10)
}

/// `sscanf` of an unsigned conversion (`%u`, `%o`) into a 32-bit unsigned: `strtoul`'s reading
/// of the longest prefix (blanks, a sign, at least one digit of `radix`; a value past
/// ULONG_MAX is ULONG_MAX whatever the sign, a negative one wraps), truncated to 32 bits.
fn scan_unsigned(s: &str, radix: u32) -> Option<i64> {
    let t = s.trim_start_matches(C_BLANKS);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: Vec<u64> = rest.chars().map_while(|c| c.to_digit(radix)).map(u64::from).collect();
    if digits.is_empty() {
        return None;
    }
    let v = digits.iter().try_fold(0u64, |v, d| {
        v.checked_mul(u64::from(radix)).and_then(|v| v.checked_add(*d))
    });
    let v = match v {
        None => u64::MAX,
        Some(v) if neg => v.wrapping_neg(),
        Some(v) => v,
    };
    Some(i64::from(v as u32))
}

fn cap(v: i64, min: i64, max: i64) -> (Value, Note) {
    if v > max {
        (Value::Int(max), Note::Capped(max, true))
    } else if v < min {
        (Value::Int(min), Note::Capped(min, false))
    } else {
        (Value::Int(v), Note::None)
    }
}

/// `do_set_int` from `min` to `i32::MAX`.
fn int_from(text: &str, min: i64) -> Result<(Value, Note), ValueError> {
    strtol(text)
        .map(|v| cap(v, min, i32::MAX.into()))
        .ok_or(ValueError::Invalid)
}

/// The open-file ceiling `max_fds max` stands for (`/proc/sys/fs/nr_open`).
fn sys_max_fds() -> i64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

fn check_count(words: &[&str], count_at: usize) -> Result<(), ValueError> {
    // strtol over the whole word; out of range (ERANGE) is a missing count, as upstream
    let Some(n) = words.get(count_at).and_then(|w| w.parse::<i64>().ok()) else {
        return Err(ValueError::MissingCount);
    };
    // upstream: a negative count is a missing one
    if n < 0 {
        return Err(ValueError::MissingCount);
    }
    let found = words.len() - count_at - 1;
    if n as usize != found {
        return Err(ValueError::BadCount { given: n, found });
    }
    Ok(())
}

/// Parses `text` as a value of type `ty`.
pub fn parse(ty: ValueType, text: &str) -> Result<(Value, Note), ValueError> {
    use ValueType as T;
    let ok = |v: Value| Ok((v, Note::None));
    match ty {
        T::Section(_) | T::Deprecated => Err(ValueError::Invalid),
        T::Str | T::Regex => ok(Value::Str(text.to_string())),
        // Upstream refuses every value with a slash, its own `/UNSET/` included (which
        // then crashes it when no earlier value is set: tests/oracle_support, intended).
        T::PartitionDelimiter if text.contains('/') => Err(ValueError::Slash),
        T::PartitionDelimiter => ok(Value::Str(text.to_string())),
        T::UidAttrs => {
            // Records are separated by spaces only (a tab stays inside a record), as
            // upstream's get_word reads them; trailing blanks of a record are cut.
            let (good, bad): (Vec<&str>, Vec<&str>) = text
                .split(' ')
                .map(|r| r.trim_end_matches(C_BLANKS))
                .filter(|r| !r.is_empty())
                .partition(|r| r.contains(':'));
            let note = if bad.is_empty() {
                Note::None
            } else {
                Note::BadRecords(bad.into_iter().map(str::to_string).collect())
            };
            Ok((Value::Str(good.join(" ")), note))
        }
        T::Int { min, max } => strtol(text).map(|v| cap(v, min, max)).ok_or(ValueError::Invalid),
        T::ZeroUnset { min } => int_from(text, min),
        // Upstream's handler keeps a polling interval it could not read as its largest
        // number but one (UINT_MAX - 1), which the maximum then bounds (model.rs).
        T::PollingInterval => match uint(text) {
            Some(v) if v <= UINT_MAX_I64 => Ok(cap(v, 1, UINT_MAX_I64)),
            _ => Ok((Value::Int(POLLING_UNREADABLE), Note::InvalidKept)),
        },
        T::Uint { min, max } => match uint(text) {
            Some(v) if v <= max => Ok(cap(v, min, max)),
            _ => Err(ValueError::Invalid),
        },
        T::YesNo => match text {
            "yes" | "1" => ok(Value::Bool(true)),
            "no" | "0" => ok(Value::Bool(false)),
            _ => Err(ValueError::Invalid),
        },
        T::Choice(words) => words
            .iter()
            .find(|w| **w == text)
            .map(|w| (Value::Str(w.to_string()), Note::None))
            .ok_or(ValueError::Invalid),
        T::PgPolicy => PGPOLICIES
            .iter()
            .find(|p| text.starts_with(**p))
            .map(|p| (Value::Str(p.to_string()), Note::None))
            .ok_or(ValueError::Invalid),
        T::Failback => match text {
            "manual" => ok(Value::Int(enc::FAILBACK_MANUAL)),
            "immediate" => ok(Value::Int(enc::FAILBACK_IMMEDIATE)),
            "followover" => ok(Value::Int(enc::FAILBACK_FOLLOWOVER)),
            _ => int_from(text, 0),
        },
        T::NoPathRetry => match text {
            "fail" | "0" => ok(Value::Int(enc::NPR_FAIL)),
            "queue" => ok(Value::Int(enc::NPR_QUEUE)),
            _ => int_from(text, 1),
        },
        // Only the exact words mean off: "00" is a number, capped to 1 as upstream does.
        T::NoOrN => match text {
            "no" | "0" => ok(Value::Int(enc::OFF)),
            _ => int_from(text, 1),
        },
        T::OffZeroN => match text {
            "off" => ok(Value::Int(enc::OFF)),
            "0" => ok(Value::Int(0)),
            _ => int_from(text, 1),
        },
        T::DevLoss => match text {
            "infinity" => ok(Value::Int(enc::INFINITY)),
            _ => scan_u32(text)
                .map(|n| (Value::Int(n), Note::None))
                .ok_or(ValueError::Invalid),
        },
        T::MaxFds => {
            let ceiling = sys_max_fds();
            match text {
                "max" => ok(Value::Int(enc::OFF)),
                _ => match strtol(text).map(|v| cap(v, 0, ceiling)) {
                    Some((Value::Int(n), note)) if n >= ceiling => Ok((Value::Int(enc::OFF), note)),
                    Some(r) => Ok(r),
                    None => Err(ValueError::Invalid),
                },
            }
        }
        T::MaxRetries => match text {
            "off" => ok(Value::Int(enc::OFF)),
            "0" => ok(Value::Int(0)),
            _ => strtol(text).map(|v| cap(v, 1, 5)).ok_or(ValueError::Invalid),
        },
        T::FindMultipaths => match text {
            "no" | "0" | "off" => ok(Value::Str("off".into())),
            "yes" | "1" | "on" => ok(Value::Str("on".into())),
            "strict" | "greedy" | "smart" => ok(Value::Str(text.into())),
            _ => Err(ValueError::Invalid),
        },
        T::FlushOnLastDel => match text {
            "never" | "always" | "unused" => ok(Value::Str(text.into())),
            "yes" | "1" => Ok((Value::Str("always".into()), Note::FlushDeprecated("always"))),
            "no" | "0" => Ok((Value::Str("unused".into()), Note::FlushDeprecated("unused"))),
            _ => Err(ValueError::Invalid),
        },
        T::MarginalPathgroups => match text {
            "off" | "no" | "0" => ok(Value::Str("off".into())),
            "on" | "yes" | "1" => ok(Value::Str("on".into())),
            // FPIN needs the FC transport's netlink events, which this build does not
            // listen to: refused as upstream refuses it when built without FPIN support.
            "fpin" => Err(ValueError::NotCompiledIn),
            _ => Err(ValueError::Invalid),
        },
        T::Counted => {
            let words: Vec<&str> = text.split_ascii_whitespace().collect();
            check_count(&words, 0)?;
            ok(Value::Str(text.to_string()))
        }
        T::Selector => {
            let words: Vec<&str> = text.split_ascii_whitespace().collect();
            check_count(&words, 1)?;
            ok(Value::Str(text.to_string()))
        }
        // sscanf("%o"), then at most 0777: `0999` is 0, `-1` is too large.
        T::Mode => scan_unsigned(text, 8)
            .filter(|m| *m <= 0o777)
            .map(|m| (Value::Int(m), Note::None))
            .ok_or(ValueError::Invalid),
        // As upstream: a user name first (getpwnam), then sscanf("%u").
        T::Uid => match nix::unistd::User::from_name(text) {
            Ok(Some(u)) => ok(Value::Int(i64::from(u.uid.as_raw()))),
            _ => scan_u32(text)
                .map(|n| (Value::Int(n), Note::None))
                .ok_or(ValueError::Invalid),
        },
        // Upstream looks the name up as a user too (getpwnam), taking that user's group.
        T::Gid => match nix::unistd::User::from_name(text) {
            Ok(Some(u)) => ok(Value::Int(i64::from(u.gid.as_raw()))),
            _ => scan_u32(text)
                .map(|n| (Value::Int(n), Note::None))
                .ok_or(ValueError::Invalid),
        },
        T::ReservationKey => {
            if text == "file" {
                return ok(Value::Str(text.into()));
            }
            // As upstream reads it: the key ends at the first `:`, whose rest sets APTPL when
            // it is exactly `aptpl` and is ignored otherwise; one leading `0`, then one `x`
            // or `X`, are skipped before the hex digits.
            let (key, aptpl) = match text.split_once(':') {
                Some((k, flags)) => (k, flags == "aptpl"),
                None => (text, false),
            };
            let hex = key.strip_prefix('0').unwrap_or(key);
            let hex = hex.strip_prefix(['x', 'X']).unwrap_or(hex);
            if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ValueError::Fatal);
            }
            let v = u64::from_str_radix(hex, 16).map_err(|_| ValueError::Fatal)?;
            ok(Value::Str(format!("0x{v:x}{}", if aptpl { ":aptpl" } else { "" })))
        }
        T::ProtocolType => PROTOCOLS
            .iter()
            .find(|p| **p == text)
            .map(|p| (Value::Str(p.to_string()), Note::None))
            .ok_or(ValueError::Invalid),
    }
}

/// Quotes a string as `show config` does: wrapped in quotes, `"` doubled.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Prints a stored value the way `show config` shows it.
pub fn print(ty: ValueType, v: &Value) -> String {
    use ValueType as T;
    match (ty, v) {
        // A key is printed bare, `file` quoted, as upstream does.
        (T::ReservationKey, Value::Str(s)) if s != "file" => s.clone(),
        // Upstream prints the records bare; several of them (or a record holding a blank, a
        // brace, a quote, a comment sign or a non-ASCII character) then re-read as less, so
        // those are quoted (tests/oracle_support: intended).
        (T::UidAttrs, Value::Str(s)) if s.chars().all(bare_char) => s.clone(),
        (_, Value::Str(s)) => quote(s),
        (_, Value::Bool(b)) => quote(if *b { "yes" } else { "no" }),
        (T::Failback, Value::Int(n)) => match *n {
            enc::FAILBACK_MANUAL => quote("manual"),
            enc::FAILBACK_IMMEDIATE => quote("immediate"),
            enc::FAILBACK_FOLLOWOVER => quote("followover"),
            n => n.to_string(),
        },
        (T::NoPathRetry, Value::Int(n)) => match *n {
            enc::NPR_FAIL => quote("fail"),
            enc::NPR_QUEUE => quote("queue"),
            n => n.to_string(),
        },
        (T::NoOrN, Value::Int(enc::OFF)) => quote("no"),
        // Upstream prints these two words bare.
        (T::OffZeroN | T::MaxRetries, Value::Int(enc::OFF)) => "off".to_string(),
        (T::MaxFds, Value::Int(enc::OFF)) => quote("max"),
        (T::DevLoss, Value::Int(enc::INFINITY)) => quote("infinity"),
        (T::Mode, Value::Int(n)) => format!("0{n:o}"),
        (_, Value::Int(n)) => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_strbuf_vectors() {
        assert_eq!(quote("hi, man!"), "\"hi, man!\"");
        assert_eq!(quote("\""), "\"\"\"\"");
        assert_eq!(quote("\"Hi\""), "\"\"\"Hi\"\"\"");
    }

    /// Numbers as upstream's handlers read them (regressions from the oracle corpus).
    #[test]
    fn numbers_as_upstream_reads_them() {
        use ValueType as T;
        let nat = T::Int {
            min: 0,
            max: i32::MAX.into(),
        };
        assert_eq!(parse(nat, "+30"), Ok((Value::Int(30), Note::None)));
        assert_eq!(parse(nat, "-4"), Ok((Value::Int(0), Note::Capped(0, false))));
        let big = Note::Capped(i32::MAX.into(), true);
        assert_eq!(
            parse(nat, "99999999999999999999"),
            Ok((Value::Int(i32::MAX.into()), big))
        );
        let u = T::Uint {
            min: 0,
            max: u32::MAX.into(),
        };
        assert_eq!(parse(u, "+7"), Err(ValueError::Invalid));
        assert_eq!(parse(u, "4294967296"), Err(ValueError::Invalid));
        assert_eq!(
            parse(T::Uint { min: 1, max: 9 }, "0"),
            Ok((Value::Int(1), Note::Capped(1, false)))
        );
        assert_eq!(parse(T::OffZeroN, "-5"), Ok((Value::Int(1), Note::Capped(1, false))));
        assert_eq!(print(T::OffZeroN, &Value::Int(enc::OFF)), "off");
        assert_eq!(parse(T::NoOrN, "00"), Ok((Value::Int(1), Note::Capped(1, false))));
        assert_eq!(parse(T::NoPathRetry, "+5").unwrap().0, Value::Int(5));
        assert_eq!(parse(T::DevLoss, "-1").unwrap().0, Value::Int(enc::INFINITY));
        assert_eq!(parse(T::DevLoss, "4294967296").unwrap().0, Value::Int(0));
        assert!(means_unset(
            T::ZeroUnset { min: 0 },
            &parse(T::ZeroUnset { min: 0 }, "0").unwrap().0
        ));
        assert!(means_unset(T::Failback, &parse(T::Failback, "-3").unwrap().0));
        assert_eq!(parse(T::MarginalPathgroups, "fpin"), Err(ValueError::NotCompiledIn));
        assert_eq!(print(T::ReservationKey, &Value::Str("0xab".into())), "0xab");
        assert_eq!(print(T::ReservationKey, &Value::Str("file".into())), "\"file\"");
    }

    #[test]
    fn encodings() {
        use ValueType as T;
        assert_eq!(parse(T::YesNo, "1"), Ok((Value::Bool(true), Note::None)));
        assert_eq!(parse(T::YesNo, "Yes"), Err(ValueError::Invalid));
        assert_eq!(parse(T::NoOrN, "0").unwrap().0, Value::Int(enc::OFF));
        assert_eq!(parse(T::OffZeroN, "0").unwrap().0, Value::Int(0));
        assert_eq!(parse(T::OffZeroN, "off").unwrap().0, Value::Int(enc::OFF));
        assert_eq!(parse(T::NoPathRetry, "0").unwrap().0, Value::Int(enc::NPR_FAIL));
        assert_eq!(
            parse(T::PgPolicy, "multibusXYZ").unwrap().0,
            Value::Str("multibus".into())
        );
        assert_eq!(
            parse(T::Int { min: 0, max: 4 }, "9"),
            Ok((Value::Int(4), Note::Capped(4, true)))
        );
        assert_eq!(parse(T::Int { min: 0, max: 4 }, "4x"), Err(ValueError::Invalid));
        assert_eq!(parse(T::Uint { min: 0, max: 10 }, "-1"), Err(ValueError::Invalid));
        assert_eq!(
            parse(T::Counted, "2 pg_init_retries 50").unwrap().0,
            Value::Str("2 pg_init_retries 50".into())
        );
        assert_eq!(parse(T::Counted, "x"), Err(ValueError::MissingCount));
        assert_eq!(
            parse(T::Counted, "1 a b"),
            Err(ValueError::BadCount { given: 1, found: 2 })
        );
        assert_eq!(parse(T::Selector, "service-time 0").unwrap().1, Note::None);
        assert_eq!(
            parse(T::Selector, "service-time 1"),
            Err(ValueError::BadCount { given: 1, found: 0 })
        );
        assert_eq!(
            parse(T::ReservationKey, "0xABC:aptpl").unwrap().0,
            Value::Str("0xabc:aptpl".into())
        );
        assert_eq!(parse(T::ReservationKey, "zz"), Err(ValueError::Fatal));
        assert_eq!(parse(T::Mode, "0640").unwrap().0, Value::Int(0o640));
        assert_eq!(print(T::Mode, &Value::Int(0o640)), "0640");
        assert_eq!(
            print(T::DevLoss, &parse(T::DevLoss, "infinity").unwrap().0),
            "\"infinity\""
        );
    }
}
