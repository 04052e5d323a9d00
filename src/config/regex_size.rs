//! How large glibc's compiled form of a POSIX extended regex would get, worked out
//! before `regcomp` sees the pattern.
//!
//! glibc compiles a bounded repetition `x{m,n}` by copying `x` n times, and nested
//! repetitions multiply: `(((a{1,100}){1,100}){1,100})` becomes a million copies,
//! which takes regcomp a minute or more and, under an address-space limit, ends in a
//! heap-corruption abort. A pattern is therefore measured first: every atom counts
//! once per copy glibc would make of it, and a pattern over [`MAX_COPIES`] is refused.
//! The count errs on the high side (a parse this cheap cannot follow every corner of
//! glibc's grammar, and where it is unsure it counts more, never less); a pattern it
//! cannot make sense of is left to regcomp, which refuses it quickly.

/// Longest pattern accepted. upstream reads configuration lines into a 1024-byte
/// buffer, so no working configuration has a longer one; a longer literal or a deep
/// nest of groups is where glibc's compile time and stack use grow without bound.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Most atom copies a compiled pattern may hold: what one repetition bound of 255
/// (POSIX's smallest RE_DUP_MAX, the largest a portable pattern uses) on one atom
/// makes. Real patterns hold a few dozen. glibc's time and memory grow with the
/// square of this (about 0.6 MB and under a millisecond here; 33 MB at 2000).
pub const MAX_COPIES: u64 = 256;

/// What compiling a pattern of `copies` costs in memory, estimated on the high side
/// from glibc's behaviour (a fixed part, and a part growing with the square of the
/// copies for chains of optional atoms).
pub fn memory(copies: u64) -> u64 {
    copies.saturating_mul(copies).saturating_mul(16).saturating_add(1024)
}

/// glibc's RE_DUP_MAX: a larger bound is refused by regcomp itself.
const DUP_MAX: u64 = 0x7fff;

/// The number of atom copies glibc's compiled form of `pattern` holds, at most (an
/// overestimate; saturates instead of overflowing).
pub fn copies(pattern: &str) -> u64 {
    let mut c = Cursor {
        b: pattern.as_bytes(),
        i: 0,
    };
    let mut total = 0u64;
    while c.i < c.b.len() {
        total = total.saturating_add(alternation(&mut c, 0));
        // Only an unmatched `)` stops a top-level alternation: glibc's ERE takes
        // it as a literal.
        if c.peek() == Some(b')') {
            c.i += 1;
            total = total.saturating_add(repeats(&mut c, 1));
        }
    }
    total
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn at(&self, s: &[u8]) -> bool {
        self.b[self.i..].starts_with(s)
    }
}

fn alternation(c: &mut Cursor, depth: usize) -> u64 {
    let mut total = concatenation(c, depth);
    while c.peek() == Some(b'|') {
        c.i += 1;
        total = total.saturating_add(1).saturating_add(concatenation(c, depth));
    }
    total
}

fn concatenation(c: &mut Cursor, depth: usize) -> u64 {
    let mut total = 0u64;
    while let Some(ch) = c.peek() {
        if ch == b'|' || ch == b')' {
            break;
        }
        let size = atom(c, depth);
        total = total.saturating_add(repeats(c, size));
    }
    total
}

fn atom(c: &mut Cursor, depth: usize) -> u64 {
    let ch = c.b[c.i];
    c.i += 1;
    match ch {
        b'(' => {
            let inner = alternation(c, depth + 1);
            if c.peek() == Some(b')') {
                c.i += 1;
            }
            inner.saturating_add(1)
        }
        b'[' => {
            bracket(c);
            1
        }
        b'\\' => {
            c.i = (c.i + 1).min(c.b.len());
            1
        }
        _ => 1,
    }
}

/// Skips a bracket expression, its opening `[` already taken. A `]` first (after
/// an optional `^`) is a member; `[:…:]`, `[.….]` and `[=…=]` hold their own `]`.
fn bracket(c: &mut Cursor) {
    if c.peek() == Some(b'^') {
        c.i += 1;
    }
    if c.peek() == Some(b']') {
        c.i += 1;
    }
    while let Some(ch) = c.peek() {
        let class = [(&b"[:"[..], &b":]"[..]), (b"[.", b".]"), (b"[=", b"=]")]
            .into_iter()
            .find(|(open, _)| c.at(open));
        if let Some((_, close)) = class {
            c.i += 2;
            while c.i < c.b.len() && !c.at(close) {
                c.i += 1;
            }
            c.i = (c.i + 2).min(c.b.len());
            continue;
        }
        c.i += 1;
        if ch == b']' {
            return;
        }
    }
}

/// Applies the repetition operators after an atom of `size` copies.
fn repeats(c: &mut Cursor, mut size: u64) -> u64 {
    loop {
        match c.peek() {
            Some(b'*') | Some(b'?') => {
                c.i += 1;
                size = size.saturating_add(1);
            }
            // glibc turns x+ into xx*.
            Some(b'+') => {
                c.i += 1;
                size = size.saturating_mul(2).saturating_add(1);
            }
            Some(b'{') => match interval(c) {
                Some(times) => size = size.saturating_mul(times.max(1)).saturating_add(1),
                // Not an interval glibc accepts: regcomp will say so.
                None => return size,
            },
            _ => return size,
        }
    }
}

/// Parses `{m}`, `{m,}`, `{m,n}` or `{,n}` at the cursor; returns the number of
/// copies glibc makes (n, or m + 1 for an open bound) and moves past it.
fn interval(c: &mut Cursor) -> Option<u64> {
    let start = c.i;
    c.i += 1;
    let min = number(c);
    let max = if c.peek() == Some(b',') {
        c.i += 1;
        number(c)
    } else {
        Some(min?)
    };
    if c.peek() != Some(b'}') {
        c.i = start;
        return None;
    }
    c.i += 1;
    Some(match max {
        Some(n) => n,
        None => min.unwrap_or(0).saturating_add(1),
    })
}

fn number(c: &mut Cursor) -> Option<u64> {
    let start = c.i;
    let mut n = 0u64;
    while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
        n = (n * 10 + u64::from(d - b'0')).min(DUP_MAX + 1);
        c.i += 1;
    }
    (c.i > start).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_copies() {
        assert_eq!(copies("abc"), 3);
        assert_eq!(copies("^(sd|hd)[a-z]"), 1 + (2 + 1 + 2 + 1) + 1);
        assert_eq!(copies("a{1,100}"), 101);
        assert!(copies("(((a{1,100}){1,100}){1,100})") > 1_000_000);
        assert_eq!(copies("a{,3}"), 4);
        assert_eq!(copies("a{3,}"), 5);
        assert_eq!(copies("a+"), 3);
        // Braces inside brackets, escaped or malformed are no repetition.
        assert_eq!(copies("[{]{2}"), 3);
        assert_eq!(copies("[]{]{2}"), 3);
        assert_eq!(copies("[[:digit:]]{9}"), 10);
        assert_eq!(copies("\\{1000}"), 6);
        assert_eq!(copies("a{1"), 3);
        // An unmatched ')' is a literal that can be repeated.
        assert_eq!(copies("a){50}"), 52);
        assert_eq!(copies("a{99999}"), DUP_MAX + 2);
    }
}
