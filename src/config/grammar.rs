//! The structure of a multipath.conf file (`grammar/multipath.pest`) and the
//! tokens of one line in the form upstream's tokenizer yields them.

use std::borrow::Cow;

use pest::Parser;
use pest::iterators::Pair;
use pest_derive::Parser;

use super::keywords::Section;

#[derive(Parser)]
#[grammar = "../grammar/multipath.pest"]
struct ConfGrammar;

/// The grammar refused the input (boxed: pest's error is large). The grammar
/// accepts every string, so this is a grammar bug, reported rather than hidden.
pub type GrammarError = Box<pest::error::Error<Rule>>;

/// The text as upstream's line reader hands it to its tokenizer: each line is
/// cut at the first carriage return after its leading ones (fgets, then strtok
/// on "\r\n") and at a NUL byte (C strings), and the text ends with a newline,
/// as the grammar wants. Borrowed when there is nothing to change.
pub fn upstream_lines(text: &str) -> Cow<'_, str> {
    let cut = text.bytes().any(|b| b == b'\r' || b == 0);
    if !cut && (text.is_empty() || text.ends_with('\n')) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 1);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break;
        }
        let start = line.len() - line.trim_start_matches('\r').len();
        let end = line[start..].find(['\r', '\0']).map_or(line.len(), |i| start + i);
        out.push_str(&line[..end]);
        out.push('\n');
    }
    Cow::Owned(out)
}

/// Parses a whole text prepared by [`upstream_lines`] into its `file` pair,
/// whose children are the top-level lines and sections in file order.
pub fn parse(text: &str) -> Result<Pair<'_, Rule>, GrammarError> {
    let mut pairs = ConfGrammar::parse(Rule::file, text).map_err(Box::new)?;
    // `file` always matches once (it is SOI ... EOI).
    pairs.next().ok_or_else(|| {
        Box::new(pest::error::Error::new_from_pos(
            pest::error::ErrorVariant::CustomError {
                message: "empty parse".to_string(),
            },
            pest::Position::from_start(text),
        ))
    })
}

/// The section a section rule of the grammar opens, with the keyword name
/// upstream's messages give it; `None` for a line.
pub fn section(rule: Rule) -> Option<(Section, &'static str)> {
    Some(match rule {
        Rule::defaults => (Section::Defaults, "defaults"),
        Rule::blacklist => (Section::Blacklist, "blacklist"),
        Rule::blacklist_exceptions => (Section::Blacklist, "blacklist_exceptions"),
        Rule::bl_device => (Section::BlacklistDevice, "device"),
        Rule::devices => (Section::Devices, "devices"),
        Rule::device => (Section::Device, "device"),
        Rule::overrides => (Section::Overrides, "overrides"),
        Rule::protocol => (Section::Protocol, "protocol"),
        Rule::multipaths => (Section::Multipaths, "multipaths"),
        Rule::multipath => (Section::Multipath, "multipath"),
        _ => return None,
    })
}

/// One entry of upstream's token vector for a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot<'a> {
    /// The marker upstream stores for an opening or closing double quote.
    Quote,
    /// A word, a brace, or the text between quotes (`""` already turned into `"`).
    Word(Cow<'a, str>),
}

impl Slot<'_> {
    /// The slot as upstream's messages print it: its quote marker is an empty C string.
    pub fn shown(&self) -> &str {
        match self {
            Slot::Quote => "",
            Slot::Word(w) => w,
        }
    }
}

/// Appends the token vector of a `line` pair to `out`: a quoted string is an
/// opening marker, its text when not empty, and a closing marker when closed.
pub fn slots<'a>(line: Pair<'a, Rule>, out: &mut Vec<Slot<'a>>) {
    for tok in line.into_inner() {
        let s = tok.as_str();
        match tok.as_rule() {
            Rule::quoted => {
                // After the opening quote: the text, its `""` pairs, and the closing
                // quote if there is one, which makes the run of quotes at the end odd.
                let inner = &s[1..];
                let trailing = inner.len() - inner.trim_end_matches('"').len();
                let closed = trailing % 2 == 1;
                let body = &inner[..inner.len() - usize::from(closed)];
                out.push(Slot::Quote);
                if !body.is_empty() {
                    out.push(Slot::Word(if body.contains("\"\"") {
                        Cow::Owned(body.replace("\"\"", "\""))
                    } else {
                        Cow::Borrowed(body)
                    }));
                }
                if closed {
                    out.push(Slot::Quote);
                }
            }
            Rule::comment => {}
            _ => out.push(Slot::Word(Cow::Borrowed(s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keywords::{self, ALL_SECTIONS, KEYWORDS};

    fn line_slots(text: &str) -> Vec<Slot<'static>> {
        let text: &'static str = Box::leak(upstream_lines(text).into_owned().into_boxed_str());
        let mut line = parse(text).unwrap().into_inner().next().unwrap();
        // A section's first line is its header.
        while line.as_rule() != Rule::line {
            line = line.into_inner().next().unwrap();
        }
        let mut v = Vec::new();
        slots(line, &mut v);
        v
    }

    /// What upstream's `set_value` takes as the value of a keyword line.
    fn value(s: &[Slot]) -> String {
        match (s.get(1), s.get(2)) {
            (Some(Slot::Quote), Some(v)) => v.shown().to_string(),
            (Some(v), _) => v.shown().to_string(),
            (None, _) => String::new(),
        }
    }

    // Upstream tests/parser.c vectors: (line, upstream token count, value).
    #[test]
    fn upstream_vectors() {
        let cases: &[(&str, usize, &str)] = &[
            ("keyword value", 2, "value"),
            ("keyword \"value\"", 4, "value"),
            ("keyword \t value \t ! comment", 2, "value"),
            ("keyword value more", 3, "value"),
            ("keyword \t \"  value   more  \"", 4, "  value   more  "),
            ("keyword\"value comment\"", 4, "value comment"),
            ("key\"word\"", 4, "word"),
            ("keyword value \"quoted\"", 5, "value"),
            ("keyword \"value \"  comment\"\"", 7, "value "),
            ("keyword \"2.5\"\" SSD\"", 4, "2.5\" SSD"),
            ("keyword \"\"\"\"\" is empty\"", 4, "\"\" is empty"),
            ("keyword \"\"\"\"", 4, "\""),
            ("key \"!value\"", 4, "!value"),
            ("key \"#value\"", 4, "#value"),
        ];
        for (line, n, v) in cases {
            let s = line_slots(line);
            assert_eq!((s.len(), value(&s)), (*n, v.to_string()), "line {line:?}");
        }
    }

    #[test]
    fn braces_comments_non_ascii_and_line_ends() {
        let w = |s: &'static str| Slot::Word(Cow::Borrowed(s));
        assert_eq!(
            line_slots("devices{device}"),
            [w("devices"), w("{"), w("device"), w("}")]
        );
        assert_eq!(line_slots("v#x"), [w("v")]);
        assert_eq!(line_slots("a\u{e9}b"), [w("a"), w("b")]);
        assert_eq!(line_slots("k \"a\u{e9}\"")[2], w("a\u{e9}"));
        assert_eq!(line_slots("k \"open"), [w("k"), Slot::Quote, w("open")]);
        assert!(line_slots("   # only a comment").is_empty());
        // A carriage return ends the content unless it leads the line; so does a NUL.
        assert_eq!(line_slots("\r\rk v\rx y"), [w("k"), w("v")]);
        assert!(line_slots(" \rk v").is_empty());
        assert_eq!(line_slots("k \"v\0x\" y"), [w("k"), Slot::Quote, w("v")]);
        assert_eq!(upstream_lines("\r\tk v\r x\nk\0v"), "\r\tk v\nk\n");
        assert_eq!(upstream_lines("a\n\n"), "a\n\n");
        assert_eq!(upstream_lines("a\nb"), "a\nb\n");
        assert_eq!(upstream_lines(""), "");
    }

    /// The rules of the pairs at each depth of the tree, in order.
    fn shape(text: &str) -> Vec<(usize, Rule)> {
        fn walk(p: Pair<Rule>, depth: usize, out: &mut Vec<(usize, Rule)>) {
            for c in p.into_inner() {
                if c.as_rule() == Rule::line {
                    out.push((depth, Rule::line));
                } else if c.as_rule() != Rule::EOI {
                    out.push((depth, c.as_rule()));
                    walk(c, depth + 1, out);
                }
            }
        }
        let mut out = Vec::new();
        let text = if text.ends_with('\n') {
            text.to_string()
        } else {
            format!("{text}\n")
        };
        walk(parse(&text).unwrap(), 0, &mut out);
        out
    }

    #[test]
    fn structure_tolerates_what_upstream_tolerates() {
        use Rule::*;
        // A section name opens its section whatever follows it; the body runs to the first
        // `}` line; a missing `}` at the end leaves the section open.
        assert_eq!(
            shape("defaults junk\n\tverbosity 2\n} trailing\n}\n\ndevices\n\tdevice {\n"),
            [
                (0, defaults),
                (1, line),
                (1, line),
                (1, line),
                (0, line),
                (0, line),
                (0, devices),
                (1, line),
                (1, device),
                (2, line)
            ]
        );
        // An unknown block opens nothing: its `}` closes the enclosing section.
        assert_eq!(
            shape("defaults {\n\tnew {\n\t}\n\tverbosity 3\n}\n"),
            [(0, defaults), (1, line), (1, line), (1, line), (0, line), (0, line)]
        );
        // `overrides` and `protocol` alone are keywords without a value.
        assert_eq!(shape("overrides\n}\n"), [(0, line), (0, line)]);
        assert_eq!(shape("overrides x\n protocol\n}\n")[..2], [(0, overrides), (1, line)]);
        assert_eq!(
            shape("overrides{\nprotocol{\n}\n}")[..3],
            [(0, overrides), (1, line), (1, protocol)]
        );
        // A name is a whole first token.
        assert_eq!(shape("defaultsx {\n\"devices\" {\n")[..2], [(0, line), (0, line)]);
    }

    /// Text that puts the next line inside `s` (as far as the grammar goes).
    fn enter(s: Section) -> &'static str {
        match s {
            Section::Root => "",
            Section::Defaults => "defaults {\n",
            Section::Blacklist => "blacklist {\n",
            Section::BlacklistDevice => "blacklist {\ndevice {\n",
            Section::Devices => "devices {\n",
            Section::Device => "devices {\ndevice {\n",
            Section::Overrides => "overrides {\n",
            Section::Protocol => "overrides {\nprotocol {\n",
            Section::Multipaths => "multipaths {\n",
            Section::Multipath => "multipaths {\nmultipath {\n",
        }
    }

    /// The grammar opens exactly the sections of the keyword table: a table
    /// section keyword opens its section where the table allows it, and no other
    /// keyword opens anything anywhere.
    #[test]
    fn grammar_sections_are_the_keyword_tables() {
        for s in ALL_SECTIONS {
            let prefix = enter(s);
            let depth = prefix.lines().count();
            for kw in KEYWORDS {
                let text = format!("{prefix}{} {{\n", kw.name);
                let opened = shape(&text)
                    .into_iter()
                    .rev()
                    .find(|(d, _)| *d == depth)
                    .map(|(_, r)| r);
                let expected = keywords::lookup(s, kw.name).and_then(|k| k.subsection().map(|sub| (sub, k.name)));
                assert_eq!(opened.and_then(section), expected, "{} in {s:?}: {:?}", kw.name, opened);
            }
        }
    }
}
