//! Walks the parse tree of one multipath.conf file (`grammar.rs`): upstream's
//! checks of each line, keyword dispatch through the keyword table, value
//! validation and upstream's per-file post-processing.

use std::collections::HashSet;

use pest::iterators::{Pair, Pairs};

use super::diag::{Diagnostic, Level};
use super::grammar::{self, Rule, Slot};
use super::keywords::{self, Keyword, Section, Support, ValueType};
use super::model::{Attrs, BlacklistDevice, Config, MultipathEntry, Pattern, ProtocolEntry};
use super::value::{self, Note, ValueError};

/// Where the keywords of the section being parsed are stored.
#[derive(Clone, Copy)]
enum Target {
    Root,
    Defaults,
    /// `true` for blacklist_exceptions.
    Blacklist(bool),
    BlacklistDevice(bool),
    Devices,
    /// Index into the parser's device list of this file.
    Device(usize),
    Overrides,
    /// Index into `overrides.protocols`.
    Protocol(usize),
    Multipaths,
    /// Index into `multipaths`.
    Multipath(usize),
}

/// State shared by all files of one load.
#[derive(Default)]
pub(crate) struct LoadState {
    pub diags: Vec<Diagnostic>,
    /// Deprecated keywords already reported (upstream reports each once).
    deprecated_seen: HashSet<&'static str>,
    /// Settings this multipathd parses but does not honour (keywords, checker and
    /// prioritizer names): ours, not upstream's, so kept apart from `diags` (`multipathd
    /// -t` prints upstream's messages only; the daemon and `-C` log these too).
    pub unsupported: Vec<Diagnostic>,
}

impl LoadState {
    fn push(&mut self, level: Level, file: &str, line: usize, message: String) {
        self.diags.push(Diagnostic {
            level,
            file: file.to_string(),
            line,
            message,
        });
    }
}

struct FileParser<'a> {
    file: &'a str,
    /// Number of the line being walked (1-based; the walk meets every line in order).
    line: usize,
    /// Number of lines of the file, where a missing `}` at the end is reported.
    last_line: usize,
    cfg: &'a mut Config,
    st: &'a mut LoadState,
    /// Device entries of this file, handed to the merge after the file.
    devices: Vec<Attrs>,
    /// A handler failed (invalid blacklist regex, bad reservation key).
    failed: bool,
}

/// The section being walked.
struct Block {
    section: Section,
    /// The name upstream's messages give it.
    name: &'static str,
    target: Target,
    /// 0 for the top level of the file.
    level: usize,
    /// Keywords seen so far in this section instance, for duplicate warnings (a
    /// section holds a few dozen at most: a list is cheaper than hashing each line's).
    seen: Vec<&'static str>,
}

/// What a line did to the section it is in.
enum LineOutcome {
    /// The line set nothing (blank, refused, unknown, or a value was stored).
    Done,
    /// The line named a section keyword; its section is the enclosing tree node.
    Header,
    /// A `}` line ended the section.
    Close,
}

/// What one file gave: its device entries as read, for `merge::factorize_devices` to
/// check, merge and compile, and whether every handler succeeded (a failure makes the
/// load fail for the main file; what the file set until then is kept either way).
pub(crate) struct Parsed {
    pub devices: Vec<Attrs>,
    pub ok: bool,
}

/// Parses one file's text into `cfg`, except its device entries (see [`Parsed`]).
pub(crate) fn parse_file(file: &str, text: &str, cfg: &mut Config, st: &mut LoadState) -> Parsed {
    let last_line = text.bytes().filter(|b| *b == b'\n').count() + 1;
    let mut p = FileParser {
        file,
        line: 0,
        last_line,
        cfg,
        st,
        devices: Vec::new(),
        failed: false,
    };
    let text = grammar::upstream_lines(text);
    match grammar::parse(&text) {
        Ok(tree) => {
            let mut root = Block {
                section: Section::Root,
                name: "root",
                target: Target::Root,
                level: 0,
                seen: Vec::new(),
            };
            p.walk(tree.into_inner(), &mut root);
        }
        Err(e) => {
            // The grammar accepts every text; if it ever does not, say so
            // rather than load a half-read file.
            p.failed = true;
            p.diag(Level::Error, 0, format!("can't parse {file}: {e}"));
        }
    }
    Parsed {
        ok: !p.failed,
        devices: p.devices,
    }
}

/// Whether upstream checks a line's `{` by its first word: it does for the
/// name of every section keyword but `overrides` and `protocol`, in any section.
fn brace_checked(name: &str) -> bool {
    !matches!(name, "overrides" | "protocol") && keywords::named(name).iter().any(|k| k.subsection().is_some())
}

impl FileParser<'_> {
    fn diag(&mut self, level: Level, line: usize, message: String) {
        self.st.push(level, self.file, line, message);
    }

    /// Walks the lines and sections of one section body in file order.
    /// Returns true if a `}` line closed it, false if the file ended first.
    fn walk(&mut self, items: Pairs<'_, Rule>, block: &mut Block) -> bool {
        let mut slots = Vec::new();
        for item in items {
            match item.as_rule() {
                Rule::line => {
                    if let LineOutcome::Close = self.line(item, block, &mut slots) {
                        return true;
                    }
                }
                Rule::EOI => {}
                rule => self.section(item, rule, block, &mut slots),
            }
        }
        false
    }

    /// A section node: its header line, then its body in a block of its own.
    fn section<'t>(&mut self, node: Pair<'t, Rule>, rule: Rule, parent: &mut Block, slots: &mut Vec<Slot<'t>>) {
        let mut items = node.into_inner();
        let (Some((section, name)), Some(head)) = (grammar::section(rule), items.next()) else {
            return;
        };
        self.line(head, parent, slots);
        let target = self.open(parent.target, section, rule == Rule::blacklist_exceptions);
        let mut block = Block {
            section,
            name,
            target,
            level: parent.level + 1,
            seen: Vec::new(),
        };
        if !self.walk(items, &mut block) && block.level == 1 {
            // Reported once, by the outermost open section, as upstream.
            let (n, file) = (self.last_line, self.file);
            self.diag(Level::Warning, n, format!("missing '}}' at end of {file}"));
        }
    }

    /// Upstream's checks of one line and, for a keyword line, its value.
    fn line<'t>(&mut self, pair: Pair<'t, Rule>, block: &mut Block, slots: &mut Vec<Slot<'t>>) -> LineOutcome {
        self.line += 1;
        let n = self.line;
        // The line as upstream's messages print it: with the blanks the grammar took before it.
        let raw = {
            let (input, span) = (pair.get_input(), pair.as_span());
            &input[input[..span.start()].rfind('\n').map_or(0, |i| i + 1)..span.end()]
        };
        slots.clear();
        grammar::slots(pair, slots);
        if slots.is_empty() || !self.validate(slots, n) {
            return LineOutcome::Done;
        }
        let file = self.file;
        let first = slots[0].shown();
        if first == "}" {
            if block.level > 0 {
                return LineOutcome::Close;
            }
            self.diag(Level::Error, n, format!("unmatched '}}' at line {n} of {file}"));
        }
        let Some(kw) = keywords::lookup(block.section, first) else {
            let msg = if block.level == 0 {
                format!("{file} line {n}, invalid keyword: {first}")
            } else {
                format!(
                    "{file} line {n}, invalid keyword in the {} section: {first}",
                    block.name
                )
            };
            self.diag(Level::Warning, n, msg);
            return LineOutcome::Done;
        };
        if !kw.repeatable() && block.seen.contains(&kw.name) {
            self.diag(
                Level::Warning,
                n,
                format!("{file} line {n}, duplicate keyword: {}", kw.name),
            );
        } else if !kw.repeatable() {
            block.seen.push(kw.name);
        }
        if kw.subsection().is_some() {
            return LineOutcome::Header;
        }
        // Upstream's set_value: the word after the keyword, or the text between quotes.
        let text = match (&slots[1], slots.get(2)) {
            (Slot::Quote, Some(v)) => v.shown(),
            (v, _) => v.shown(),
        };
        self.set(block.target, kw, text, n, raw);
        LineOutcome::Done
    }

    /// Upstream's validation of a line's token vector, with its messages.
    /// Returns false when the line is dropped.
    fn validate(&mut self, s: &[Slot], n: usize) -> bool {
        let file = self.file;
        let extra = |i: usize| {
            s.get(i).map(|t| {
                format!(
                    "ignoring extra data starting with '{}' on line {n} of {file}",
                    t.shown()
                )
            })
        };
        let first = s[0].shown();
        let (ok, msg) = if first == "}" {
            (true, extra(1))
        } else if first == "{" {
            (false, Some(format!("invalid keyword '{{' on line {n} of {file}")))
        } else if brace_checked(first) {
            // Any section name, wherever it is: upstream checks its brace by name.
            match s.get(1).map(Slot::shown) {
                None => (true, Some(format!("missing '{{' on line {n} of {file}"))),
                Some("{") => (true, extra(2)),
                Some(t) => (true, Some(format!("expecting '{{' on line {n} of {file}. found '{t}'"))),
            }
        } else {
            match (s.get(1), s.get(2)) {
                (None, _) => (
                    false,
                    Some(format!("missing value for option '{first}' on line {n} of {file}")),
                ),
                (Some(Slot::Word(_)), _) => (true, extra(2)),
                (Some(Slot::Quote), None) => (true, Some(format!("missing closing quotes on line {n} of {file}"))),
                (Some(Slot::Quote), Some(Slot::Quote)) => (true, extra(3)),
                (Some(Slot::Quote), Some(Slot::Word(_))) => match s.get(3) {
                    None => (true, Some(format!("missing closing quotes on line {n} of {file}"))),
                    // The tokenizer ends a quoted text only at a quote.
                    Some(_) => (true, extra(4)),
                },
            }
        };
        if let Some(m) = msg {
            self.diag(Level::Error, n, m);
        }
        ok
    }

    /// Creates the storage for a subsection `section` opened inside `target`.
    fn open(&mut self, target: Target, section: Section, exceptions: bool) -> Target {
        match (target, section) {
            (_, Section::Defaults) => Target::Defaults,
            (_, Section::Blacklist) => Target::Blacklist(exceptions),
            (Target::Blacklist(exc), Section::BlacklistDevice) => {
                self.bl_lists(exc).device.push(BlacklistDevice::default());
                Target::BlacklistDevice(exc)
            }
            (_, Section::Devices) => Target::Devices,
            (_, Section::Device) => {
                self.devices.push(Attrs::new());
                Target::Device(self.devices.len() - 1)
            }
            (_, Section::Overrides) => Target::Overrides,
            (_, Section::Protocol) => {
                self.cfg.overrides.protocols.push(ProtocolEntry::default());
                Target::Protocol(self.cfg.overrides.protocols.len() - 1)
            }
            (_, Section::Multipaths) => Target::Multipaths,
            (_, Section::Multipath) => {
                self.cfg.multipaths.push(MultipathEntry::default());
                Target::Multipath(self.cfg.multipaths.len() - 1)
            }
            _ => Target::Root,
        }
    }

    fn bl_lists(&mut self, exc: bool) -> &mut super::model::BlacklistLists {
        if exc {
            &mut self.cfg.exceptions
        } else {
            &mut self.cfg.blacklist
        }
    }

    fn attrs(&mut self, target: Target) -> Option<&mut Attrs> {
        match target {
            Target::Defaults => Some(&mut self.cfg.defaults),
            Target::Device(i) => self.devices.get_mut(i),
            Target::Overrides => Some(&mut self.cfg.overrides.attrs),
            Target::Protocol(i) => self.cfg.overrides.protocols.get_mut(i).map(|p| &mut p.attrs),
            Target::Multipath(i) => self.cfg.multipaths.get_mut(i).map(|m| &mut m.attrs),
            Target::Root | Target::Blacklist(_) | Target::BlacklistDevice(_) | Target::Devices | Target::Multipaths => {
                None
            }
        }
    }

    fn fail(&mut self, n: usize, raw: &str) {
        self.failed = true;
        self.diag(
            Level::Error,
            n,
            format!("{} line {n}, parsing failed: {raw}", self.file),
        );
    }

    /// upstream's "parsing failed" line, then regcomp's reason: upstream does not print it,
    /// so it is a level-3 message, shown from `-v3` on.
    fn fail_regex(&mut self, n: usize, raw: &str, text: &str, e: &super::regex::RegexError) {
        self.fail(n, raw);
        let file = self.file;
        self.diag(
            Level::Info,
            n,
            format!("{file} line {n}, invalid regular expression \"{text}\": {e}"),
        );
    }

    fn set(&mut self, target: Target, kw: &'static Keyword, text: &str, n: usize, raw: &str) {
        let file = self.file;
        match target {
            Target::Blacklist(exc) => {
                match Pattern::new(text) {
                    Ok(p) => {
                        if let Some(list) = self.bl_lists(exc).list_mut(kw.name) {
                            list.push(p);
                        }
                    }
                    Err(e) => self.fail_regex(n, raw, text, &e),
                }
                return;
            }
            Target::BlacklistDevice(exc) => {
                match Pattern::new(text) {
                    Ok(p) => {
                        if let Some(d) = self.bl_lists(exc).device.last_mut() {
                            if kw.name == "vendor" {
                                d.vendor = Some(p);
                            } else {
                                d.product = Some(p);
                            }
                        }
                    }
                    Err(e) => self.fail_regex(n, raw, text, &e),
                }
                return;
            }
            // A device regex that does not compile is kept, as upstream keeps it: the entry
            // matches no device (`DeviceEntry`). Upstream says nothing; the reason is a
            // level-3 line, shown from `-v3` on.
            Target::Device(_) if kw.ty == ValueType::Regex => {
                if let Err(e) = Pattern::new(text) {
                    self.diag(
                        Level::Info,
                        n,
                        format!(
                            "{file} line {n}, invalid regular expression \"{text}\" for {}: {e}",
                            kw.name
                        ),
                    );
                }
            }
            _ => {}
        }
        if kw.ty == ValueType::Deprecated {
            if self.st.deprecated_seen.insert(kw.name) {
                // Upstream words a deprecated keyword without a built-in value "(not set)".
                let msg = format!(
                    "{file} line {n}: ignoring deprecated option \"{}\", using built-in value: \"{}\"",
                    kw.name,
                    kw.default.unwrap_or("(not set)")
                );
                self.diag(Level::Warning, n, msg);
            }
            return;
        }
        let key = keywords::lookup(Section::Defaults, keywords::canonical(kw.name)).map_or(kw.name, |k| k.name);
        let (v, note) = match value::parse(kw.ty, text) {
            Ok(r) => r,
            Err(ValueError::Invalid) => {
                self.diag(
                    Level::Warning,
                    n,
                    format!("{file} line {n}, invalid value for {}: \"{text}\"", kw.name),
                );
                return;
            }
            Err(ValueError::MissingCount) => {
                self.diag(
                    Level::Warning,
                    n,
                    format!("{file} line {n}, missing argument count for {}", kw.name),
                );
                return;
            }
            Err(ValueError::BadCount { given, found }) => {
                self.diag(
                    Level::Warning,
                    n,
                    format!(
                        "{file} line {n}, invalid argument count for {}:, got '{given}' expected '{found}'",
                        kw.name
                    ),
                );
                return;
            }
            Err(ValueError::NotCompiledIn) => {
                self.diag(
                    Level::Warning,
                    n,
                    format!(
                        "{file} line {n}, support for \"{text}\" is not compiled in for {}",
                        kw.name
                    ),
                );
                return;
            }
            Err(ValueError::Slash) => {
                self.diag(
                    Level::Warning,
                    n,
                    format!("{file} line {n}, {text} cannot contain a slash. Ignoring"),
                );
                return;
            }
            Err(ValueError::Fatal) => {
                self.fail(n, raw);
                return;
            }
        };
        let unset = value::means_unset(kw.ty, &v);
        match note {
            Note::None => {}
            Note::Capped(x, large) => {
                let what = if large { "large" } else { "small" };
                self.diag(
                    Level::Warning,
                    n,
                    format!("{file} line {n}, value for {} too {what}, capping at {x}", kw.name),
                );
            }
            Note::InvalidKept => self.diag(
                Level::Warning,
                n,
                format!("{file} line {n}, invalid value for {}: \"{text}\"", kw.name),
            ),
            Note::BadRecords(bad) => {
                for r in bad {
                    self.diag(Level::Notice, n, format!("invalid record in uid_attrs: {r}"));
                }
                self.diag(
                    Level::Warning,
                    n,
                    format!("{file} line {n},error parsing uid_attrs: \"{text}\""),
                );
            }
            Note::FlushDeprecated(word) => self.diag(
                Level::Notice,
                n,
                format!(
                    "{file} line {n}, \"{text}\" is a deprecated value for flush_on_last_del and is treated as \"{word}\""
                ),
            ),
        }
        if !unset && self.attrs(target).is_some() {
            self.refuse_unsupported(kw, key, &v, text, n);
        }
        if let Some(attrs) = self.attrs(target) {
            if unset {
                attrs.remove(key);
            } else {
                attrs.insert(key, v);
            }
        }
    }

    /// A setting this multipathd does not honour is stored as upstream would (`show
    /// config` prints it), and said so: a keyword marked refused in the table (unless the
    /// value asks for what the daemon does anyway), a checker or prioritizer name that is
    /// not implemented here (the fallback is named).
    fn refuse_unsupported(&mut self, kw: &'static Keyword, key: &str, v: &value::Value, text: &str, n: usize) {
        let refusal = match kw.support {
            Support::Refused { instead, except } => {
                let asked_for_ours = except.is_some_and(|e| value::parse(kw.ty, e).is_ok_and(|(ev, _)| ev == *v));
                (!asked_for_ours).then(|| (kw.name.to_string(), instead.to_string()))
            }
            Support::Works => match key {
                "path_checker" => crate::checkers::checker_by_name(text)
                    .err()
                    .map(|e| (format!("{} \"{text}\"", kw.name), e.instead())),
                "prio" => crate::discovery::prio::Prio::from_name(text).is_none().then(|| {
                    (
                        format!("prio \"{text}\""),
                        crate::discovery::prio::unsupported_instead(),
                    )
                }),
                _ => None,
            },
        };
        if let Some((what, instead)) = refusal {
            let message = keywords::not_supported(self.file, n, &what, &instead);
            self.st.unsupported.push(Diagnostic {
                level: Level::Warning,
                file: self.file.to_string(),
                line: n,
                message,
            });
        }
    }
}
