//! Whitespace tokenizer shared by the table and status parsers.
//!
//! Kernel table/status text is a flat list of words whose meaning depends on
//! counts earlier in the line, so parsers walk it with a cursor and report the
//! word index and byte offset of whatever did not fit.

use std::fmt;

/// Where and why a table or status text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Index of the offending word (0-based); equals the word count at end of input.
    pub word: usize,
    /// Byte offset of the offending word in the input (input length at end of input).
    pub offset: usize,
    /// What was expected or wrong.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "word {} (byte {}): {}", self.word, self.offset, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Cursor over the whitespace-separated words of a line.
pub(crate) struct Tokens<'a> {
    words: Vec<(usize, &'a str)>,
    pos: usize,
    len: usize,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut words = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            if c.is_whitespace() {
                if let Some(s) = start.take() {
                    words.push((s, &text[s..i]));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            words.push((s, &text[s..]));
        }
        Tokens {
            words,
            pos: 0,
            len: text.len(),
        }
    }

    /// Error located at the current word.
    pub(crate) fn error(&self, reason: impl Into<String>) -> ParseError {
        self.error_at(self.pos, reason)
    }

    /// Error located at the word just consumed.
    pub(crate) fn error_last(&self, reason: impl Into<String>) -> ParseError {
        self.error_at(self.pos.saturating_sub(1), reason)
    }

    fn error_at(&self, word: usize, reason: impl Into<String>) -> ParseError {
        let offset = self.words.get(word).map_or(self.len, |w| w.0);
        ParseError {
            word,
            offset,
            reason: reason.into(),
        }
    }

    /// Next word; `what` names it for the error at end of input.
    pub(crate) fn word(&mut self, what: &str) -> Result<&'a str, ParseError> {
        match self.words.get(self.pos) {
            Some(&(_, w)) => {
                self.pos += 1;
                Ok(w)
            }
            None => Err(self.error(format!("missing {what}"))),
        }
    }

    /// Next word as an unsigned number.
    pub(crate) fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, ParseError> {
        let at = self.pos;
        let w = self.word(what)?;
        // FromStr for unsigned ints accepts a leading '+'; the kernel never prints one.
        if !w.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error_at(at, format!("{what}: expected a number, found {w:?}")));
        }
        w.parse()
            .map_err(|_| self.error_at(at, format!("{what}: number out of range: {w:?}")))
    }

    /// A count followed by that many words, e.g. `2 queue_if_no_path retain_attached_hw_handler`.
    pub(crate) fn counted(&mut self, what: &str) -> Result<Vec<String>, ParseError> {
        let n: usize = self.number(&format!("{what} count"))?;
        if n > self.remaining() {
            return Err(self.error_at(
                self.pos - 1,
                format!("{what} count {n} exceeds the {} words left", self.remaining()),
            ));
        }
        (0..n).map(|_| self.word(what).map(str::to_owned)).collect()
    }

    /// The unconsumed text from the next word on, trailing whitespace removed.
    pub(crate) fn rest(&self, text: &'a str) -> &'a str {
        self.words.get(self.pos).map_or("", |w| text[w.0..].trim_end())
    }

    pub(crate) fn remaining(&self) -> usize {
        self.words.len() - self.pos
    }

    /// Fails unless every word was consumed.
    pub(crate) fn finish(&self) -> Result<(), ParseError> {
        match self.words.get(self.pos) {
            None => Ok(()),
            Some(&(_, w)) => Err(self.error(format!("unexpected trailing word {w:?}"))),
        }
    }
}
