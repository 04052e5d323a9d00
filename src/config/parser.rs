//! Structure of multipath.conf: sections, keyword dispatch through the keyword
//! table, value validation and upstream's per-file post-processing.

use std::collections::HashSet;

use super::diag::{Diagnostic, Level};
use super::keywords::{self, Keyword, Section, ValueType};
use super::lexer::{self, Token};
use super::model::{Attrs, BlacklistDevice, Config, DeviceEntry, MultipathEntry, Pattern, ProtocolEntry};
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
    lines: Vec<&'a str>,
    pos: usize,
    cfg: &'a mut Config,
    st: &'a mut LoadState,
    /// Device entries of this file, merged into the config after the file.
    devices: Vec<Attrs>,
    /// A handler failed (invalid blacklist regex, bad reservation key).
    failed: bool,
    eof_reported: bool,
}

/// Parses one file's text into `cfg`. Returns false if a handler failed, which
/// makes the load fail for the main file.
pub(crate) fn parse_file(file: &str, text: &str, cfg: &mut Config, st: &mut LoadState) -> bool {
    let mut p = FileParser {
        file,
        lines: text.split('\n').collect(),
        pos: 0,
        cfg,
        st,
        devices: Vec::new(),
        failed: false,
        eof_reported: false,
    };
    p.block(Section::Root, "root", Target::Root, 0);
    p.finish();
    !p.failed
}

impl FileParser<'_> {
    fn diag(&mut self, level: Level, line: usize, message: String) {
        self.st.push(level, self.file, line, message);
    }

    /// Next non-empty line: (1-based number, raw text, tokens).
    fn next_line(&mut self) -> Option<(usize, &str, Vec<Token>)> {
        while self.pos < self.lines.len() {
            let raw = self.lines[self.pos].trim_end_matches('\r');
            self.pos += 1;
            let n = self.pos;
            match lexer::tokenize(raw) {
                Ok(t) if t.is_empty() => continue,
                Ok(t) => return Some((n, raw, t)),
                Err(_) => {
                    self.diag(
                        Level::Error,
                        n,
                        format!("can't parse option on line {n} of {}", self.file),
                    );
                }
            }
        }
        None
    }

    /// Parses the body of a section until its `}` (returns true) or EOF.
    fn block(&mut self, section: Section, sec_name: &str, target: Target, level: usize) -> bool {
        let mut seen: HashSet<&'static str> = HashSet::new();
        while let Some((n, raw, tokens)) = self.next_line() {
            let raw = raw.to_string();
            let file = self.file;
            match &tokens[0] {
                Token::Brace('}') => {
                    if level > 0 {
                        if let Some(extra) = tokens.get(1) {
                            self.diag(
                                Level::Error,
                                n,
                                format!(
                                    "ignoring extra data starting with '{}' on line {n} of {file}",
                                    extra.shown()
                                ),
                            );
                        }
                        return true;
                    }
                    self.diag(Level::Error, n, format!("unmatched '}}' at line {n} of {file}"));
                    self.diag(Level::Warning, n, format!("{file} line {n}, invalid keyword: }}"));
                    continue;
                }
                Token::Brace(_) => {
                    self.diag(Level::Error, n, format!("invalid keyword '{{' on line {n} of {file}"));
                    continue;
                }
                _ => {}
            }
            let name = tokens[0].shown();
            let lookup_name = if matches!(tokens[0], Token::Quoted { .. }) {
                "\""
            } else {
                name.as_str()
            };
            let Some(kw) = keywords::lookup(section, lookup_name) else {
                let msg = if level == 0 {
                    format!("{file} line {n}, invalid keyword: {name}")
                } else {
                    format!("{file} line {n}, invalid keyword in the {sec_name} section: {name}")
                };
                self.diag(Level::Warning, n, msg);
                continue;
            };
            if !kw.repeatable() && !seen.insert(kw.name) {
                self.diag(
                    Level::Warning,
                    n,
                    format!("{file} line {n}, duplicate keyword: {}", kw.name),
                );
            }
            if let Some(sub) = kw.subsection() {
                match tokens.get(1) {
                    None => self.diag(Level::Error, n, format!("missing '{{' on line {n} of {file}")),
                    Some(Token::Brace('{')) => {}
                    Some(t) => self.diag(
                        Level::Error,
                        n,
                        format!("expecting '{{' on line {n} of {file}. found '{}'", t.shown()),
                    ),
                }
                if let Some(extra) = tokens.get(2) {
                    self.diag(
                        Level::Error,
                        n,
                        format!(
                            "ignoring extra data starting with '{}' on line {n} of {file}",
                            extra.shown()
                        ),
                    );
                }
                let child = self.open(target, kw);
                if !self.block(sub, kw.name, child, level + 1) {
                    if !self.eof_reported {
                        self.eof_reported = true;
                        let last = self.lines.len();
                        self.diag(Level::Warning, last, format!("missing '}}' at end of {file}"));
                    }
                    return false;
                }
                continue;
            }
            let Some(vtok) = tokens.get(1) else {
                self.diag(
                    Level::Error,
                    n,
                    format!("missing value for option '{}' on line {n} of {file}", kw.name),
                );
                continue;
            };
            if let Token::Quoted { closed: false, .. } = vtok {
                self.diag(Level::Error, n, format!("missing closing quotes on line {n} of {file}"));
            }
            if let Some(extra) = tokens.get(2) {
                self.diag(
                    Level::Error,
                    n,
                    format!(
                        "ignoring extra data starting with '{}' on line {n} of {file}",
                        extra.shown()
                    ),
                );
            }
            self.set(target, kw, vtok.text(), n, &raw);
        }
        level == 0
    }

    /// Creates the storage for a subsection opened by `kw` inside `target`.
    fn open(&mut self, target: Target, kw: &Keyword) -> Target {
        match (target, kw.subsection()) {
            (_, Some(Section::Defaults)) => Target::Defaults,
            (_, Some(Section::Blacklist)) => Target::Blacklist(kw.name == "blacklist_exceptions"),
            (Target::Blacklist(exc), Some(Section::BlacklistDevice)) => {
                self.bl_lists(exc).device.push(BlacklistDevice::default());
                Target::BlacklistDevice(exc)
            }
            (_, Some(Section::Devices)) => Target::Devices,
            (_, Some(Section::Device)) => {
                self.devices.push(Attrs::new());
                Target::Device(self.devices.len() - 1)
            }
            (_, Some(Section::Overrides)) => Target::Overrides,
            (_, Some(Section::Protocol)) => {
                self.cfg.overrides.protocols.push(ProtocolEntry::default());
                Target::Protocol(self.cfg.overrides.protocols.len() - 1)
            }
            (_, Some(Section::Multipaths)) => Target::Multipaths,
            (_, Some(Section::Multipath)) => {
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

    /// upstream's "parsing failed" line, then regcomp's reason (which upstream does
    /// not print).
    fn fail_regex(&mut self, n: usize, raw: &str, text: &str, e: &super::regex::RegexError) {
        self.fail(n, raw);
        let file = self.file;
        self.diag(
            Level::Error,
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
            // A device regex that does not compile could never match: say so
            // instead of keeping an entry that silently applies to nothing.
            Target::Device(_) if kw.ty == ValueType::Regex => {
                if let Err(e) = Pattern::new(text) {
                    self.diag(
                        Level::Warning,
                        n,
                        format!("{file} line {n}, invalid value for {}: \"{text}\": {e}", kw.name),
                    );
                    return;
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
            Err(ValueError::BadCount { got, expected }) => {
                self.diag(
                    Level::Warning,
                    n,
                    format!(
                        "{file} line {n}, invalid argument count for {}:, got '{got}' expected '{expected}'",
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
            Err(ValueError::Fatal) => {
                self.fail(n, raw);
                return;
            }
        };
        let unset = kw.ty == ValueType::PartitionDelimiter && text == "/UNSET/" || value::means_unset(kw.ty, &v);
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
            Note::FlushYes => self.diag(
                Level::Notice,
                n,
                format!(
                    "{file} line {n}, \"yes\" is a deprecated value for flush_on_last_del and is treated as \"always\""
                ),
            ),
        }
        if let Some(attrs) = self.attrs(target) {
            if unset {
                attrs.remove(key);
            } else {
                attrs.insert(key, v);
            }
        }
    }

    /// Hands the file's device entries to the configuration (checked and merged by
    /// `merge::factorize_devices` after the file).
    fn finish(&mut self) {
        let devices = std::mem::take(&mut self.devices);
        self.cfg.devices.extend(devices.into_iter().map(DeviceEntry::new));
    }
}
