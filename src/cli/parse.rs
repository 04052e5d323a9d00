//! The multipathd command language: tokenizer, keyword table, handler lookup.
//!
//! A command is a verb followed by up to three qualifiers (at most four keywords in
//! all). Keywords match by unique prefix, some take one parameter, and the keyword
//! sequence in order selects exactly one handler. Errors reproduce the replies
//! upstream clients depend on (`fail\n<cmd>: not found\n` + help, ...).

use std::fmt::Write as _;

/// First line of the help text. Clients take `^multipath-tools v` as the daemon's help and read
/// the version after it, so it names the upstream release whose CLI this one answers as; our own
/// version is in the parentheses, where upstream has its release date.
pub const VERSION_LINE: &str = concat!(
    "multipath-tools v0.14.3 (multipathd-rs v",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// Every keyword of the language. Verbs come first in a command, qualifiers after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kw {
    List,
    Add,
    Del,
    Reset,
    Switch,
    Reconfigure,
    Suspend,
    Resume,
    Resize,
    Reload,
    Fail,
    Reinstate,
    DisableQ,
    RestoreQ,
    ForceQ,
    GetPrStatus,
    SetPrStatus,
    UnsetPrStatus,
    GetPrKey,
    SetPrKey,
    UnsetPrKey,
    SetMarginal,
    UnsetMarginal,
    Shutdown,
    Quit,
    GetPrHold,
    SetPrHold,
    UnsetPrHold,
    Marginal,
    Path,
    Paths,
    Map,
    Maps,
    Topology,
    Config,
    Blacklist,
    Devices,
    Wildcards,
    All,
    Daemon,
    Format,
    Raw,
    Status,
    Stats,
    Json,
    Local,
    Group,
    Key,
    PathList,
}

/// One spelling of a keyword: its text, what it means, and whether it takes a parameter.
pub struct Keyword {
    pub word: &'static str,
    pub kw: Kw,
    pub has_param: bool,
}

const fn k(word: &'static str, kw: Kw, has_param: bool) -> Keyword {
    Keyword { word, kw, has_param }
}

/// The keyword table. Order matters: the first spelling of a keyword is the one the
/// help prints first, and prefix matching walks the table in this order.
pub const KEYWORDS: &[Keyword] = &[
    k("list", Kw::List, false),
    k("show", Kw::List, false),
    k("add", Kw::Add, false),
    k("remove", Kw::Del, false),
    k("del", Kw::Del, false),
    k("switch", Kw::Switch, false),
    k("switchgroup", Kw::Switch, false),
    k("suspend", Kw::Suspend, false),
    k("resume", Kw::Resume, false),
    k("reinstate", Kw::Reinstate, false),
    k("fail", Kw::Fail, false),
    k("resize", Kw::Resize, false),
    k("reset", Kw::Reset, false),
    k("reload", Kw::Reload, false),
    k("forcequeueing", Kw::ForceQ, false),
    k("disablequeueing", Kw::DisableQ, false),
    k("restorequeueing", Kw::RestoreQ, false),
    k("paths", Kw::Paths, false),
    k("maps", Kw::Maps, false),
    k("multipaths", Kw::Maps, false),
    k("path", Kw::Path, true),
    k("map", Kw::Map, true),
    k("multipath", Kw::Map, true),
    k("group", Kw::Group, true),
    k("reconfigure", Kw::Reconfigure, false),
    k("daemon", Kw::Daemon, false),
    k("status", Kw::Status, false),
    k("stats", Kw::Stats, false),
    k("topology", Kw::Topology, false),
    k("config", Kw::Config, false),
    k("blacklist", Kw::Blacklist, false),
    k("devices", Kw::Devices, false),
    k("raw", Kw::Raw, false),
    k("wildcards", Kw::Wildcards, false),
    k("quit", Kw::Quit, false),
    k("exit", Kw::Quit, false),
    k("shutdown", Kw::Shutdown, false),
    k("getprstatus", Kw::GetPrStatus, false),
    k("setprstatus", Kw::SetPrStatus, false),
    k("unsetprstatus", Kw::UnsetPrStatus, false),
    k("format", Kw::Format, true),
    k("json", Kw::Json, false),
    k("getprkey", Kw::GetPrKey, false),
    k("setprkey", Kw::SetPrKey, false),
    k("unsetprkey", Kw::UnsetPrKey, false),
    k("key", Kw::Key, true),
    k("local", Kw::Local, false),
    k("setmarginal", Kw::SetMarginal, false),
    k("unsetmarginal", Kw::UnsetMarginal, false),
    k("all", Kw::All, false),
    k("getprhold", Kw::GetPrHold, false),
    k("setprhold", Kw::SetPrHold, false),
    k("unsetprhold", Kw::UnsetPrHold, false),
    k("pathlist", Kw::PathList, true),
    // ours: `show marginal`, the IO error accounting of marginal-path detection
    k("marginal", Kw::Marginal, false),
];

/// Which handler a keyword sequence selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    ShowPaths,
    ShowPathsFormat,
    ShowPathsRawFormat,
    ShowPath,
    ShowMaps,
    ShowStatus,
    ShowDaemon,
    ShowMapsStatus,
    ShowMapsStats,
    ShowMapsFormat,
    ShowMapsRawFormat,
    ShowMapsTopology,
    ShowTopology,
    ShowMapsJson,
    ShowMapTopology,
    ShowMapFormat,
    ShowMapRawFormat,
    ShowMapJson,
    ShowConfigLocal,
    ShowConfig,
    ShowBlacklist,
    ShowDevices,
    ShowWildcards,
    ResetMapsStats,
    ResetMapStats,
    AddPath,
    DelPath,
    AddMap,
    DelMap,
    DelMaps,
    SwitchGroup,
    Reconfigure,
    ReconfigureAll,
    Suspend,
    Resume,
    Resize,
    Reload,
    ResetMap,
    Reinstate,
    Fail,
    DisableQueueingMap,
    RestoreQueueingMap,
    DisableQueueingMaps,
    RestoreQueueingMaps,
    Quit,
    Shutdown,
    GetPrStatus,
    SetPrStatus,
    SetPrStatusList,
    UnsetPrStatus,
    ForceQueueingDaemon,
    RestoreQueueingDaemon,
    GetPrKey,
    SetPrKey,
    UnsetPrKey,
    SetMarginal,
    UnsetMarginal,
    UnsetMarginalMap,
    GetPrHold,
    SetPrHold,
    UnsetPrHold,
    ShowMarginal,
    ShowMarginalJson,
}

/// The handler table in upstream's registration order (the help lists it in this order).
pub const HANDLERS: &[(&[Kw], Handler)] = {
    use Handler as H;
    use Kw::*;
    &[
        (&[List, Paths], H::ShowPaths),
        (&[List, Paths, Format], H::ShowPathsFormat),
        (&[List, Paths, Raw, Format], H::ShowPathsRawFormat),
        (&[List, Path], H::ShowPath),
        (&[List, Maps], H::ShowMaps),
        (&[List, Status], H::ShowStatus),
        (&[List, Daemon], H::ShowDaemon),
        (&[List, Maps, Status], H::ShowMapsStatus),
        (&[List, Maps, Stats], H::ShowMapsStats),
        (&[List, Maps, Format], H::ShowMapsFormat),
        (&[List, Maps, Raw, Format], H::ShowMapsRawFormat),
        (&[List, Maps, Topology], H::ShowMapsTopology),
        (&[List, Topology], H::ShowTopology),
        (&[List, Maps, Json], H::ShowMapsJson),
        (&[List, Map, Topology], H::ShowMapTopology),
        (&[List, Map, Format], H::ShowMapFormat),
        (&[List, Map, Raw, Format], H::ShowMapRawFormat),
        (&[List, Map, Json], H::ShowMapJson),
        (&[List, Config, Local], H::ShowConfigLocal),
        (&[List, Config], H::ShowConfig),
        (&[List, Blacklist], H::ShowBlacklist),
        (&[List, Devices], H::ShowDevices),
        (&[List, Wildcards], H::ShowWildcards),
        (&[Reset, Maps, Stats], H::ResetMapsStats),
        (&[Reset, Map, Stats], H::ResetMapStats),
        (&[Add, Path], H::AddPath),
        (&[Del, Path], H::DelPath),
        (&[Add, Map], H::AddMap),
        (&[Del, Map], H::DelMap),
        (&[Del, Maps], H::DelMaps),
        (&[Switch, Map, Group], H::SwitchGroup),
        (&[Reconfigure], H::Reconfigure),
        (&[Reconfigure, All], H::ReconfigureAll),
        (&[Suspend, Map], H::Suspend),
        (&[Resume, Map], H::Resume),
        (&[Resize, Map], H::Resize),
        (&[Reload, Map], H::Reload),
        (&[Reset, Map], H::ResetMap),
        (&[Reinstate, Path], H::Reinstate),
        (&[Fail, Path], H::Fail),
        (&[DisableQ, Map], H::DisableQueueingMap),
        (&[RestoreQ, Map], H::RestoreQueueingMap),
        (&[DisableQ, Maps], H::DisableQueueingMaps),
        (&[RestoreQ, Maps], H::RestoreQueueingMaps),
        (&[Quit], H::Quit),
        (&[Shutdown], H::Shutdown),
        (&[GetPrStatus, Map], H::GetPrStatus),
        (&[SetPrStatus, Map], H::SetPrStatus),
        (&[SetPrStatus, Map, PathList], H::SetPrStatusList),
        (&[UnsetPrStatus, Map], H::UnsetPrStatus),
        (&[ForceQ, Daemon], H::ForceQueueingDaemon),
        (&[RestoreQ, Daemon], H::RestoreQueueingDaemon),
        (&[GetPrKey, Map], H::GetPrKey),
        (&[SetPrKey, Map, Key], H::SetPrKey),
        (&[UnsetPrKey, Map], H::UnsetPrKey),
        (&[SetMarginal, Path], H::SetMarginal),
        (&[UnsetMarginal, Path], H::UnsetMarginal),
        (&[UnsetMarginal, Map], H::UnsetMarginalMap),
        (&[GetPrHold, Map], H::GetPrHold),
        (&[SetPrHold, Map], H::SetPrHold),
        (&[UnsetPrHold, Map], H::UnsetPrHold),
        // ours, after upstream's so the help keeps their order
        (&[List, Marginal], H::ShowMarginal),
        (&[List, Marginal, Json], H::ShowMarginalJson),
    ]
};

/// A parsed command, one variant per handler, carrying its parameters.
///
/// Path and map parameters have a leading `/dev/` removed; everything else is passed
/// through as typed (the state owner validates group numbers, keys and path lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ShowPaths,
    /// `show paths [raw] format F`.
    ShowPathsFormat {
        fmt: String,
        raw: bool,
    },
    /// `show path P`: prints the path's `%o` state.
    ShowPath {
        path: String,
    },
    ShowMaps,
    ShowStatus,
    ShowDaemon,
    ShowMapsStatus,
    ShowMapsStats,
    /// `show maps [raw] format F`.
    ShowMapsFormat {
        fmt: String,
        raw: bool,
    },
    /// `show maps topology` and `show topology`.
    ShowMapsTopology,
    ShowMapsJson,
    ShowMapTopology {
        map: String,
    },
    /// `show map M [raw] format F`: upstream pads the line in both forms, so `raw`
    /// makes no difference here.
    ShowMapFormat {
        map: String,
        fmt: String,
    },
    ShowMapJson {
        map: String,
    },
    ShowConfig {
        local: bool,
    },
    ShowBlacklist,
    ShowDevices,
    ShowWildcards,
    ResetMapsStats,
    ResetMapStats {
        map: String,
    },
    AddPath {
        path: String,
    },
    DelPath {
        path: String,
    },
    AddMap {
        map: String,
    },
    DelMap {
        map: String,
    },
    DelMaps,
    SwitchGroup {
        map: String,
        group: String,
    },
    Reconfigure {
        all: bool,
    },
    Suspend {
        map: String,
    },
    Resume {
        map: String,
    },
    Resize {
        map: String,
    },
    Reload {
        map: String,
    },
    /// `reset map M`: reassign the map's paths (upstream "reassign").
    ResetMap {
        map: String,
    },
    ReinstatePath {
        path: String,
    },
    FailPath {
        path: String,
    },
    /// `disablequeueing map M` (Some) or `disablequeueing maps` (None).
    DisableQueueing {
        map: Option<String>,
    },
    /// `restorequeueing map M` (Some) or `restorequeueing maps` (None).
    RestoreQueueing {
        map: Option<String>,
    },
    Quit,
    Shutdown,
    GetPrStatus {
        map: String,
    },
    /// `setprstatus map M [pathlist "p1 p2"]`.
    SetPrStatus {
        map: String,
        pathlist: Option<String>,
    },
    UnsetPrStatus {
        map: String,
    },
    ForceQueueingDaemon,
    RestoreQueueingDaemon,
    GetPrKey {
        map: String,
    },
    SetPrKey {
        map: String,
        key: String,
    },
    UnsetPrKey {
        map: String,
    },
    SetMarginal {
        path: String,
    },
    UnsetMarginal {
        path: String,
    },
    UnsetMarginalMap {
        map: String,
    },
    GetPrHold {
        map: String,
    },
    SetPrHold {
        map: String,
    },
    UnsetPrHold {
        map: String,
    },
    /// `show marginal`: per-path IO error accounting (our extension).
    ShowMarginal,
    /// `show marginal json`: the same, as JSON for exporters (our extension).
    ShowMarginalJson,
}

impl Command {
    /// True for `list`/`show` commands, the only ones a non-root client may run.
    pub fn is_show(&self) -> bool {
        use Command::*;
        matches!(
            self,
            ShowPaths
                | ShowPathsFormat { .. }
                | ShowPath { .. }
                | ShowMaps
                | ShowStatus
                | ShowDaemon
                | ShowMapsStatus
                | ShowMapsStats
                | ShowMapsFormat { .. }
                | ShowMapsTopology
                | ShowMapsJson
                | ShowMapTopology { .. }
                | ShowMapFormat { .. }
                | ShowMapJson { .. }
                | ShowConfig { .. }
                | ShowBlacklist
                | ShowDevices
                | ShowWildcards
                | ShowMarginal
                | ShowMarginalJson
        )
    }
}

/// Why a command line could not be turned into a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but blanks or a comment (upstream's tokenizer returns nothing, which its
    /// caller reports as an allocation failure).
    Empty,
    /// The last word is no keyword (upstream ESRCH).
    NotFound,
    /// A word before the last is no keyword (upstream ENOENT).
    UnknownWord,
    /// A keyword that needs a parameter ends the line (upstream EINVAL).
    MissingArgument,
    /// Valid keywords, but no handler takes this sequence (upstream EINVAL too).
    NoHandler,
}

impl ParseError {
    /// The complete reply upstream sends for this error on command text `cmd`.
    pub fn reply(&self, cmd: &str) -> String {
        match self {
            ParseError::Empty => format!("fail\n{cmd}: Not enough memory\n{}", help_text()),
            ParseError::NotFound => format!("fail\n{cmd}: not found\n{}", help_text()),
            ParseError::MissingArgument | ParseError::NoHandler => {
                format!("fail\n{cmd}: Missing argument\n{}", help_text())
            }
            ParseError::UnknownWord => "fail\n".to_string(),
        }
    }
}

/// A token of the command line: a word, or a double-quote marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word(String),
    Quote,
}

fn is_blank(c: u8) -> bool {
    // Non-ASCII bytes count as blanks, as in upstream's tokenizer.
    c.is_ascii_whitespace() || !c.is_ascii()
}

/// Split a command line the way multipath.conf lines are split: blanks separate words,
/// `"` opens and closes a quoted word (its markers are tokens of their own), `""` inside
/// quotes stands for one `"`, `{` and `}` are words of their own, and an unquoted `!`
/// or `#` ends the line.
pub fn tokenize(line: &str) -> Vec<Token> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    if i >= b.len() || b[i] == b'!' || b[i] == b'#' {
        return out;
    }
    let mut in_string = false;
    loop {
        let start = i;
        if i < b.len() && b[i] == b'"' && !(in_string && b.get(i + 1) == Some(&b'"')) {
            i += 1;
            in_string = !in_string;
            out.push(Token::Quote);
        } else if !in_string && i < b.len() && (b[i] == b'{' || b[i] == b'}') {
            i += 1;
            out.push(Token::Word(line[start..i].to_string()));
        } else {
            let mut doubled = false;
            loop {
                while i < b.len() && b[i] != b'"' && (in_string || !(is_blank(b[i]) || b"!#{}".contains(&b[i]))) {
                    i += 1;
                }
                if in_string && i + 1 < b.len() && b[i] == b'"' && b[i + 1] == b'"' {
                    doubled = true;
                    i += 2;
                    continue;
                }
                break;
            }
            let raw = String::from_utf8_lossy(&b[start..i]);
            let word = if doubled {
                raw.replace("\"\"", "\"")
            } else {
                raw.into_owned()
            };
            out.push(Token::Word(word));
        }
        while !in_string && i < b.len() && is_blank(b[i]) {
            i += 1;
        }
        if i >= b.len() || (!in_string && (b[i] == b'!' || b[i] == b'#')) {
            return out;
        }
    }
}

/// Find a keyword by exact spelling or unique prefix; an ambiguous prefix finds nothing.
pub fn find_keyword(word: &str) -> Option<&'static Keyword> {
    let mut found: Option<&'static Keyword> = None;
    for kw in KEYWORDS {
        if !kw.word.starts_with(word) {
            continue;
        }
        if kw.word.len() == word.len() {
            return Some(kw);
        }
        if found.is_some() {
            return None;
        }
        found = Some(kw);
    }
    found
}

/// The keywords of a command with their parameters, before handler lookup.
fn keyword_sequence(line: &str) -> Result<Vec<(Kw, Option<String>)>, ParseError> {
    let tokens = tokenize(line);
    if tokens.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut seq: Vec<(Kw, Option<String>)> = Vec::new();
    let mut want_param = false;
    let last = tokens.len() - 1;
    for (i, tok) in tokens.iter().enumerate() {
        let Token::Word(word) = tok else { continue };
        if want_param {
            want_param = false;
            if let Some(entry) = seq.last_mut() {
                entry.1 = Some(word.clone());
            }
            continue;
        }
        let Some(kw) = find_keyword(word) else {
            return Err(if i == last {
                ParseError::NotFound
            } else {
                ParseError::UnknownWord
            });
        };
        seq.push((kw.kw, None));
        want_param = kw.has_param;
    }
    if want_param {
        return Err(ParseError::MissingArgument);
    }
    Ok(seq)
}

fn strip_dev(s: String) -> String {
    match s.strip_prefix("/dev/") {
        Some(rest) => rest.to_string(),
        None => s,
    }
}

/// Parse one command line into the command its handler runs.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let seq = keyword_sequence(line)?;
    if seq.len() > 4 {
        return Err(ParseError::NoHandler);
    }
    let kws: Vec<Kw> = seq.iter().map(|(kw, _)| *kw).collect();
    let handler = HANDLERS
        .iter()
        .find(|(fp, _)| *fp == kws.as_slice())
        .map(|(_, h)| *h)
        .ok_or(ParseError::NoHandler)?;
    let param = |want: Kw| -> String {
        seq.iter()
            .find(|(kw, _)| *kw == want)
            .and_then(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    let path = || strip_dev(param(Kw::Path));
    let map = || strip_dev(param(Kw::Map));
    let fmt = || param(Kw::Format);
    use Command as C;
    use Handler as H;
    Ok(match handler {
        H::ShowPaths => C::ShowPaths,
        H::ShowPathsFormat => C::ShowPathsFormat { fmt: fmt(), raw: false },
        H::ShowPathsRawFormat => C::ShowPathsFormat { fmt: fmt(), raw: true },
        H::ShowPath => C::ShowPath { path: path() },
        H::ShowMaps => C::ShowMaps,
        H::ShowStatus => C::ShowStatus,
        H::ShowDaemon => C::ShowDaemon,
        H::ShowMapsStatus => C::ShowMapsStatus,
        H::ShowMapsStats => C::ShowMapsStats,
        H::ShowMapsFormat => C::ShowMapsFormat { fmt: fmt(), raw: false },
        H::ShowMapsRawFormat => C::ShowMapsFormat { fmt: fmt(), raw: true },
        H::ShowMapsTopology | H::ShowTopology => C::ShowMapsTopology,
        H::ShowMapsJson => C::ShowMapsJson,
        H::ShowMapTopology => C::ShowMapTopology { map: map() },
        H::ShowMapFormat | H::ShowMapRawFormat => C::ShowMapFormat { map: map(), fmt: fmt() },
        H::ShowMapJson => C::ShowMapJson { map: map() },
        H::ShowConfigLocal => C::ShowConfig { local: true },
        H::ShowConfig => C::ShowConfig { local: false },
        H::ShowBlacklist => C::ShowBlacklist,
        H::ShowDevices => C::ShowDevices,
        H::ShowWildcards => C::ShowWildcards,
        H::ResetMapsStats => C::ResetMapsStats,
        H::ResetMapStats => C::ResetMapStats { map: map() },
        H::AddPath => C::AddPath { path: path() },
        H::DelPath => C::DelPath { path: path() },
        H::AddMap => C::AddMap { map: map() },
        H::DelMap => C::DelMap { map: map() },
        H::DelMaps => C::DelMaps,
        H::SwitchGroup => C::SwitchGroup {
            map: map(),
            group: param(Kw::Group),
        },
        H::Reconfigure => C::Reconfigure { all: false },
        H::ReconfigureAll => C::Reconfigure { all: true },
        H::Suspend => C::Suspend { map: map() },
        H::Resume => C::Resume { map: map() },
        H::Resize => C::Resize { map: map() },
        H::Reload => C::Reload { map: map() },
        H::ResetMap => C::ResetMap { map: map() },
        H::Reinstate => C::ReinstatePath { path: path() },
        H::Fail => C::FailPath { path: path() },
        H::DisableQueueingMap => C::DisableQueueing { map: Some(map()) },
        H::RestoreQueueingMap => C::RestoreQueueing { map: Some(map()) },
        H::DisableQueueingMaps => C::DisableQueueing { map: None },
        H::RestoreQueueingMaps => C::RestoreQueueing { map: None },
        H::Quit => C::Quit,
        H::Shutdown => C::Shutdown,
        H::GetPrStatus => C::GetPrStatus { map: map() },
        H::SetPrStatus => C::SetPrStatus {
            map: map(),
            pathlist: None,
        },
        H::SetPrStatusList => C::SetPrStatus {
            map: map(),
            pathlist: Some(param(Kw::PathList)),
        },
        H::UnsetPrStatus => C::UnsetPrStatus { map: map() },
        H::ForceQueueingDaemon => C::ForceQueueingDaemon,
        H::RestoreQueueingDaemon => C::RestoreQueueingDaemon,
        H::GetPrKey => C::GetPrKey { map: map() },
        H::SetPrKey => C::SetPrKey {
            map: map(),
            key: param(Kw::Key),
        },
        H::UnsetPrKey => C::UnsetPrKey { map: map() },
        H::SetMarginal => C::SetMarginal { path: path() },
        H::UnsetMarginal => C::UnsetMarginal { path: path() },
        H::UnsetMarginalMap => C::UnsetMarginalMap { map: map() },
        H::GetPrHold => C::GetPrHold { map: map() },
        H::SetPrHold => C::SetPrHold { map: map() },
        H::UnsetPrHold => C::UnsetPrHold { map: map() },
        H::ShowMarginal => C::ShowMarginal,
        H::ShowMarginalJson => C::ShowMarginalJson,
    })
}

/// The help line of one handler, e.g. ` list|show map|multipath $map topology`.
pub fn help_line(fingerprint: &[Kw]) -> String {
    let mut line = String::new();
    for kw in fingerprint {
        let mut spellings = KEYWORDS.iter().filter(|k| k.kw == *kw);
        let Some(first) = spellings.next() else {
            continue;
        };
        line.push(' ');
        line.push_str(first.word);
        for alias in spellings {
            line.push('|');
            line.push_str(alias.word);
        }
        if first.has_param {
            let _ = write!(line, " ${}", first.word);
        }
    }
    line
}

/// The full help: version line, `CLI commands reference:`, one line per handler.
pub fn help_text() -> String {
    let mut text = format!("{VERSION_LINE}\nCLI commands reference:\n");
    for (fp, _) in HANDLERS {
        text.push_str(&help_line(fp));
        text.push('\n');
    }
    text
}

/// Errors a handler reports; each maps to upstream's reply text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerError {
    /// Unknown map or path (ENODEV).
    DeviceNotFound,
    /// Map or partition in use (EBUSY).
    Busy,
    /// The command could not finish within `uxsock_timeout` (ETIMEDOUT).
    Timeout,
    /// Non-root client ran a command other than list/show (EPERM).
    PermissionDenied,
    /// Any other failure: a bare `fail\n`.
    Failed,
}

impl HandlerError {
    pub fn reply(self) -> &'static str {
        match self {
            HandlerError::DeviceNotFound => "fail\ndevice not found\n",
            HandlerError::Busy => "fail\nmap or partition in use\n",
            HandlerError::Timeout => "fail\ntimeout\n",
            HandlerError::PermissionDenied => "fail\npermission deny: need to be root\n",
            HandlerError::Failed => "fail\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        tokenize(line)
            .into_iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w),
                Token::Quote => None,
            })
            .collect()
    }

    #[test]
    fn tokenizer_follows_config_quoting() {
        assert_eq!(tokenize("keyword \"value\"").len(), 4);
        assert_eq!(
            words("keyword \t \"  value   more  \""),
            ["keyword", "  value   more  "]
        );
        assert_eq!(words("keyword\"value comment\""), ["keyword", "value comment"]);
        assert_eq!(words("keyword \"2.5\"\" SSD\""), ["keyword", "2.5\" SSD"]);
        assert_eq!(words("keyword \"\"\"\"\" is empty\""), ["keyword", "\"\" is empty"]);
        assert_eq!(words("keyword \"\"\"\""), ["keyword", "\""]);
        assert_eq!(words("key \"!value\""), ["key", "!value"]);
        assert_eq!(words("keyword value ! comment"), ["keyword", "value"]);
        assert_eq!(words("a {b} c"), ["a", "{", "b", "}", "c"]);
        assert!(tokenize("   ").is_empty());
        assert!(tokenize("# comment").is_empty());
    }

    #[test]
    fn prefix_matching() {
        assert_eq!(find_keyword("sho").map(|k| k.word), Some("show"));
        assert!(find_keyword("sh").is_none());
        assert_eq!(find_keyword("map").map(|k| k.word), Some("map"));
        assert_eq!(find_keyword("path").map(|k| k.word), Some("path"));
        assert_eq!(find_keyword("disable").map(|k| k.word), Some("disablequeueing"));
        assert!(find_keyword("stat").is_none());
        assert_eq!(find_keyword("topo").map(|k| k.word), Some("topology"));
    }

    #[test]
    fn help_lines_match_upstream_layout() {
        let help = help_text();
        for line in [
            " list|show paths raw format $format",
            " list|show maps|multipaths json",
            " remove|del map|multipath $map",
            " switch|switchgroup map|multipath $map group $group",
            " reconfigure all",
            " quit|exit",
            " setprstatus map|multipath $map pathlist $pathlist",
        ] {
            assert!(help.lines().any(|l| l == line), "missing {line:?}");
        }
        assert_eq!(help.lines().count(), 2 + HANDLERS.len());
        assert!(help.starts_with(&format!("{VERSION_LINE}\nCLI commands reference:\n list|show paths\n")));
    }

    #[test]
    fn help_first_line_is_what_clients_match() {
        // infi.multipathtools reads the version from `?`, avocado and `multipath` spot the help
        // by this prefix; the release is the one whose CLI we answer as
        assert!(help_text().starts_with("multipath-tools v0.14.3 ("), "{}", help_text());
    }
}
