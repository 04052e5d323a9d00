//! The `multipath` target's table text: typed form, formatter and parser.
//!
//! Layout (kernel `dm-mpath.c`): `<#features> <features..> <#hwh args> <hwh..>
//! <#groups> <initial group>`, then per group `<selector> <#sel args> <sel args..>
//! <#paths> <#path args>`, then per path `<dev> <path args..>`.

use std::fmt;

use super::tokens::{ParseError, Tokens};

/// A complete `multipath` target parameter string in typed form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultipathTable {
    /// Feature words, e.g. `["queue_if_no_path", "pg_init_retries", "50"]`; the count is derived.
    pub features: Vec<String>,
    /// Hardware handler words, e.g. `["alua"]`; empty for none.
    pub hwhandler: Vec<String>,
    /// Priority groups in kernel order (group 1 first).
    pub groups: Vec<PathGroup>,
    /// 1-based group the kernel should try first; 0 or 1 with no groups.
    pub initial_group: u32,
}

/// One priority group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGroup {
    /// Selector name followed by its argument count and arguments, e.g. `service-time 0`.
    pub selector: String,
    pub paths: Vec<TablePath>,
}

/// One path of a group: its device and per-path selector arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePath {
    /// `major:minor` (what the kernel prints) or a device node path.
    pub dev: String,
    /// Per-path selector arguments, e.g. `["1"]` (repeat count) for service-time.
    pub args: Vec<String>,
}

impl TablePath {
    pub fn new(dev: impl Into<String>, args: &[&str]) -> Self {
        TablePath {
            dev: dev.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Why a table could not be formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// The selector string is not `<name> <#args> <args..>` with a matching count.
    BadSelector { group: usize, selector: String },
    /// The kernel takes one per-path argument count per group, so all paths must agree.
    UnevenPathArgs {
        group: usize,
        dev: String,
        expected: usize,
        found: usize,
    },
    /// A word is empty or contains whitespace, which would shift every count after it.
    BadWord { word: String },
    /// The kernel rejects a priority group without paths.
    EmptyGroup { group: usize },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::BadSelector { group, selector } => write!(
                f,
                "path group {}: selector {selector:?} is not '<name> <#args> <args..>'",
                group + 1
            ),
            TableError::UnevenPathArgs {
                group,
                dev,
                expected,
                found,
            } => write!(
                f,
                "path group {}: path {dev} has {found} path arguments, the group's first path has {expected}",
                group + 1
            ),
            TableError::BadWord { word } => {
                write!(f, "table word {word:?} is empty or contains whitespace")
            }
            TableError::EmptyGroup { group } => {
                write!(f, "path group {} has no paths", group + 1)
            }
        }
    }
}

impl std::error::Error for TableError {}

fn check_word(w: &str) -> Result<&str, TableError> {
    if w.is_empty() || w.chars().any(char::is_whitespace) {
        Err(TableError::BadWord { word: w.to_owned() })
    } else {
        Ok(w)
    }
}

fn push_counted(out: &mut Vec<String>, words: &[String]) -> Result<(), TableError> {
    out.push(words.len().to_string());
    for w in words {
        out.push(check_word(w)?.to_owned());
    }
    Ok(())
}

/// Checks `<name> <#args> <args..>` and returns its words.
fn selector_words(group: usize, selector: &str) -> Result<Vec<String>, TableError> {
    let words: Vec<&str> = selector.split_whitespace().collect();
    let bad = || TableError::BadSelector {
        group,
        selector: selector.to_owned(),
    };
    match words.as_slice() {
        [_, n, args @ ..] if n.parse::<usize>().ok() == Some(args.len()) => {
            Ok(words.iter().map(|s| s.to_string()).collect())
        }
        _ => Err(bad()),
    }
}

impl MultipathTable {
    /// The parameter string for DM_TABLE_LOAD, with every count computed.
    pub fn format(&self) -> Result<String, TableError> {
        let mut out: Vec<String> = Vec::new();
        push_counted(&mut out, &self.features)?;
        push_counted(&mut out, &self.hwhandler)?;
        out.push(self.groups.len().to_string());
        out.push(self.initial_group.to_string());
        for (gi, g) in self.groups.iter().enumerate() {
            out.extend(selector_words(gi, &g.selector)?);
            if g.paths.is_empty() {
                return Err(TableError::EmptyGroup { group: gi });
            }
            let nargs = g.paths.first().map_or(0, |p| p.args.len());
            out.push(g.paths.len().to_string());
            out.push(nargs.to_string());
            for p in &g.paths {
                if p.args.len() != nargs {
                    return Err(TableError::UnevenPathArgs {
                        group: gi,
                        dev: p.dev.clone(),
                        expected: nargs,
                        found: p.args.len(),
                    });
                }
                out.push(check_word(&p.dev)?.to_owned());
                for a in &p.args {
                    out.push(check_word(a)?.to_owned());
                }
            }
        }
        Ok(out.join(" "))
    }

    /// Parses the parameter part of a `multipath` table as the kernel prints it.
    pub fn parse(params: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(params);
        let features = t.counted("feature")?;
        let hwhandler = t.counted("hardware handler argument")?;
        let ngroups: usize = t.number("path group count")?;
        let initial_group: u32 = t.number("initial path group")?;
        if initial_group as usize > ngroups {
            return Err(t.error_last(format!(
                "initial path group {initial_group} is beyond the {ngroups} groups"
            )));
        }
        let mut groups = Vec::new();
        for _ in 0..ngroups {
            let name = t.word("path selector name")?;
            let sel_args = t.counted("path selector argument")?;
            let mut selector = format!("{name} {}", sel_args.len());
            for a in &sel_args {
                selector.push(' ');
                selector.push_str(a);
            }
            let npaths: usize = t.number("path count")?;
            if npaths == 0 {
                return Err(t.error_last("a path group needs at least one path"));
            }
            let nargs: usize = t.number("per-path argument count")?;
            let needed = npaths.checked_mul(nargs.saturating_add(1));
            if needed.is_none_or(|n| n > t.remaining()) {
                return Err(t.error(format!(
                    "{npaths} paths with {nargs} arguments each do not fit in the {} words left",
                    t.remaining()
                )));
            }
            let mut paths = Vec::with_capacity(npaths);
            for _ in 0..npaths {
                let dev = t.word("path device")?.to_owned();
                let args = (0..nargs)
                    .map(|_| t.word("path argument").map(str::to_owned))
                    .collect::<Result<_, _>>()?;
                paths.push(TablePath { dev, args });
            }
            groups.push(PathGroup { selector, paths });
        }
        t.finish()?;
        Ok(MultipathTable {
            features,
            hwhandler,
            groups,
            initial_group,
        })
    }
}

/// One line of `dmsetup table`/`dmsetup status` output: `<start> <length> <target> <params>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLine {
    pub start: u64,
    pub length: u64,
    pub target: String,
    pub params: String,
}

impl TargetLine {
    /// Splits a line (without the `name: ` prefix `dmsetup` prints for several maps).
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let mut t = Tokens::new(line);
        let start = t.number("start sector")?;
        let length = t.number("length in sectors")?;
        let target = t.word("target type")?.to_owned();
        let params = t.rest(line).to_owned();
        Ok(TargetLine {
            start,
            length,
            target,
            params,
        })
    }
}

/// Splits a counted word list such as a config `features "2 pg_init_retries 50"`
/// or `hardware_handler "1 alua"` into its words, checking the count.
pub fn parse_counted(text: &str) -> Result<Vec<String>, ParseError> {
    let mut t = Tokens::new(text);
    let words = t.counted("word")?;
    t.finish()?;
    Ok(words)
}

/// Why a feature string edit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureError {
    /// The feature string does not start with `<count> `.
    BadFeatures(String),
    /// The feature to add/remove starts or ends with whitespace.
    BadFeature(String),
}

impl fmt::Display for FeatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureError::BadFeatures(s) => {
                write!(f, "feature string {s:?} does not start with a word count")
            }
            FeatureError::BadFeature(s) => {
                write!(f, "feature {s:?} has leading or trailing whitespace")
            }
        }
    }
}

impl std::error::Error for FeatureError {}

/// Splits `"<count> <rest>"` into the count and the rest (kept verbatim).
fn split_features(features: &str) -> Result<(usize, &str), FeatureError> {
    let bad = || FeatureError::BadFeatures(features.to_owned());
    let digits = features.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let count: usize = features[..digits].parse().map_err(|_| bad())?;
    let rest = &features[digits..];
    if rest.is_empty() {
        return Ok((count, ""));
    }
    if !rest.starts_with(|c: char| c.is_whitespace()) {
        return Err(bad());
    }
    Ok((count, rest.trim_start()))
}

fn check_feature(feature: &str) -> Result<(), FeatureError> {
    if feature.starts_with(char::is_whitespace) || feature.ends_with(char::is_whitespace) {
        Err(FeatureError::BadFeature(feature.to_owned()))
    } else {
        Ok(())
    }
}

/// Byte position of `needle` in `hay` as whole words (bounded by whitespace or the ends).
fn find_words(hay: &str, needle: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = hay[from..].find(needle).map(|i| i + from) {
        let before_ok = hay[..i].chars().next_back().is_none_or(char::is_whitespace);
        let end = i + needle.len();
        let after_ok = hay[end..].chars().next().is_none_or(char::is_whitespace);
        if before_ok && after_ok {
            return Some(i);
        }
        from = i + hay[i..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// Adds `feature` (one or more words) to a counted feature string, rewriting the count.
/// `None` stands for an unset feature string. Adding an existing feature or an empty one
/// leaves the string unchanged.
pub fn add_feature(features: Option<&str>, feature: &str) -> Result<String, FeatureError> {
    check_feature(feature)?;
    let words = feature.split_whitespace().count();
    let Some(features) = features else {
        return Ok(if words == 0 {
            "0".to_owned()
        } else {
            format!("{words} {feature}")
        });
    };
    let (count, rest) = split_features(features)?;
    if words == 0 || find_words(rest, feature).is_some() {
        return Ok(features.to_owned());
    }
    // A count this large cannot match its words anyway: refuse rather than wrap.
    let total = count
        .checked_add(words)
        .ok_or_else(|| FeatureError::BadFeatures(features.to_owned()))?;
    if rest.is_empty() {
        Ok(format!("{total} {feature}"))
    } else {
        Ok(format!("{total} {rest} {feature}"))
    }
}

/// Removes `feature` (one or more words) from a counted feature string, rewriting the
/// count; a feature that is not present leaves the string unchanged.
pub fn remove_feature(features: &str, feature: &str) -> Result<String, FeatureError> {
    check_feature(feature)?;
    let (count, rest) = split_features(features)?;
    let words = feature.split_whitespace().count();
    if words == 0 {
        return Ok(features.to_owned());
    }
    let Some(i) = find_words(rest, feature) else {
        return Ok(features.to_owned());
    };
    let end = i + feature.len();
    let after = &rest[end..];
    let trimmed_after = after.trim_start();
    let remaining = if trimmed_after.is_empty() {
        // Last feature: drop the whitespace before it instead.
        rest[..i].trim_end().to_owned()
    } else {
        format!("{}{}", &rest[..i], trimmed_after)
    };
    let count = count.saturating_sub(words);
    if count == 0 || remaining.is_empty() {
        Ok("0".to_owned())
    } else {
        Ok(format!("{count} {remaining}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(paths: &[(&str, &[&str])]) -> PathGroup {
        PathGroup {
            selector: "service-time 0".into(),
            paths: paths.iter().map(|(d, a)| TablePath::new(*d, a)).collect(),
        }
    }

    #[test]
    fn formats_upstream_example() {
        let t = MultipathTable {
            features: vec!["queue_if_no_path".into(), "retain_attached_hw_handler".into()],
            hwhandler: vec!["alua".into()],
            groups: vec![st(&[("8:48", &["1"])])],
            initial_group: 1,
        };
        assert_eq!(
            t.format().unwrap(),
            "2 queue_if_no_path retain_attached_hw_handler 1 alua 1 1 service-time 0 1 1 8:48 1"
        );
    }

    #[test]
    fn parses_kernel_table_with_two_groups_and_roundtrips() {
        let line = "0 32768 multipath 0 1 alua 2 1 service-time 0 1 2 8:16 1 1 service-time 0 1 2 8:0 1 1";
        let tl = TargetLine::parse(line).unwrap();
        assert_eq!((tl.start, tl.length, tl.target.as_str()), (0, 32768, "multipath"));
        let t = MultipathTable::parse(&tl.params).unwrap();
        assert_eq!(
            t,
            MultipathTable {
                features: vec![],
                hwhandler: vec!["alua".into()],
                groups: vec![st(&[("8:16", &["1", "1"])]), st(&[("8:0", &["1", "1"])])],
                initial_group: 1,
            }
        );
        assert_eq!(t.format().unwrap(), tl.params);
        let odd = TargetLine::parse(" 0 8  0 \t 1 0 \n").unwrap();
        assert_eq!((odd.target.as_str(), odd.params.as_str()), ("0", "1 0"));
    }

    #[test]
    fn parses_round_robin_and_queue_mode_tables() {
        let t = MultipathTable::parse("0 0 1 1 round-robin 0 2 1 8:0 1000 8:16 1000").unwrap();
        assert_eq!(t.groups[0].selector, "round-robin 0");
        assert_eq!(t.groups[0].paths[1], TablePath::new("8:16", &["1000"]));
        let t = MultipathTable::parse("2 queue_mode bio 0 1 1 round-robin 0 2 1 254:1 1 254:2 1").unwrap();
        assert_eq!(t.features, vec!["queue_mode", "bio"]);
        let t = MultipathTable::parse("1 queue_if_no_path 0 1 1 service-time 0 2 2 8:0 1 1 8:16 1 1").unwrap();
        assert_eq!(
            t.format().unwrap(),
            "1 queue_if_no_path 0 1 1 service-time 0 2 2 8:0 1 1 8:16 1 1"
        );
    }

    #[test]
    fn selector_with_args_roundtrips() {
        let p = "0 0 1 1 historical-service-time 2 3 500 1 1 8:0 1";
        let t = MultipathTable::parse(p).unwrap();
        assert_eq!(t.groups[0].selector, "historical-service-time 2 3 500");
        assert_eq!(t.format().unwrap(), p);
    }

    #[test]
    fn empty_map_roundtrips() {
        let t = MultipathTable::parse("1 queue_if_no_path 0 0 0").unwrap();
        assert!(t.groups.is_empty());
        assert_eq!(t.format().unwrap(), "1 queue_if_no_path 0 0 0");
    }

    #[test]
    fn parse_errors_carry_position() {
        let e = MultipathTable::parse("0 0 1 1 service-time 0 2 1 8:0 1").unwrap_err();
        assert_eq!(e.word, 8);
        assert_eq!(
            e.to_string(),
            "word 8 (byte 27): 2 paths with 1 arguments each do not fit in the 2 words left"
        );
        let e = MultipathTable::parse("3 a b").unwrap_err();
        assert_eq!(e.word, 0);
        assert!(e.reason.contains("feature count 3 exceeds"), "{e}");
        let e = MultipathTable::parse("0 0 x").unwrap_err();
        assert_eq!((e.word, e.offset), (2, 4));
        let e = MultipathTable::parse("0 0 0 0 extra").unwrap_err();
        assert_eq!(e.reason, "unexpected trailing word \"extra\"");
        let e = MultipathTable::parse("0 0 1 2 round-robin 0 0 0").unwrap_err();
        assert!(e.reason.contains("initial path group 2"), "{e}");
        let e = MultipathTable::parse("0 0 1").unwrap_err();
        assert_eq!(e.to_string(), "word 3 (byte 5): missing initial path group");
    }

    #[test]
    fn format_rejects_inconsistent_tables() {
        let mut t = MultipathTable {
            groups: vec![st(&[("8:0", &["1"]), ("8:16", &[])])],
            initial_group: 1,
            ..Default::default()
        };
        assert_eq!(
            t.format().unwrap_err(),
            TableError::UnevenPathArgs {
                group: 0,
                dev: "8:16".into(),
                expected: 1,
                found: 0
            }
        );
        t.groups[0] = PathGroup {
            selector: "service-time 0".into(),
            paths: vec![],
        };
        assert_eq!(t.format(), Err(TableError::EmptyGroup { group: 0 }));
        t.groups[0] = PathGroup {
            selector: "service-time 1".into(),
            paths: vec![],
        };
        assert!(matches!(t.format(), Err(TableError::BadSelector { .. })));
        t.groups.clear();
        t.features = vec!["a b".into()];
        assert!(matches!(t.format(), Err(TableError::BadWord { .. })));
    }

    #[test]
    fn counted_strings() {
        assert_eq!(
            parse_counted("2 pg_init_retries 50").unwrap(),
            vec!["pg_init_retries", "50"]
        );
        assert_eq!(parse_counted("0").unwrap(), Vec::<String>::new());
        assert!(parse_counted("2 queue_if_no_path").is_err());
        assert!(parse_counted("1 a b").is_err());
    }

    // Vectors from upstream tests/features.c.
    #[test]
    fn add_feature_vectors() {
        let ok = |f: Option<&str>, a: &str| add_feature(f, a).unwrap();
        assert_eq!(ok(Some("0"), "test"), "1 test");
        assert_eq!(
            ok(Some("3 contest testy intestine"), "test"),
            "4 contest testy intestine test"
        );
        assert_eq!(ok(Some("4 this is a test"), "test"), "4 this is a test");
        assert_eq!(
            ok(Some("5 contest testy intestine test retest"), "test"),
            "5 contest testy intestine test retest"
        );
        assert_eq!(ok(Some("0"), "this is a test"), "4 this is a test");
        assert_eq!(ok(Some("1 features"), "more values"), "3 features more values");
        assert_eq!(ok(Some("2 one\ttwo"), "three\t four"), "4 one\ttwo three\t four");
        assert_eq!(ok(Some("2 pg_init_retries 5"), ""), "2 pg_init_retries 5");
        assert_eq!(ok(None, "test"), "1 test");
        assert_eq!(ok(None, "test\neven\tmore"), "3 test\neven\tmore");
        assert!(add_feature(Some("bad"), "test").is_err());
        assert!(add_feature(Some("1bad"), "test").is_err());
        for bad in [" ", "\tbad", "bad ", " bad "] {
            assert_eq!(
                add_feature(Some("2 pg_init_retries 5"), bad),
                Err(FeatureError::BadFeature(bad.into()))
            );
        }
    }

    #[test]
    fn remove_feature_vectors() {
        let ok = |f: &str, r: &str| remove_feature(f, r).unwrap();
        assert_eq!(ok("4 this\t is a test", "is a"), "2 this\t test");
        assert_eq!(ok("3 one more test", "more test"), "1 one");
        assert_eq!(ok("3 test1 test\ttest2", "test"), "2 test1 test2");
        assert_eq!(ok("2 feature1 feature2", "feature2"), "1 feature1");
        assert_eq!(ok("2 feature1 feature2", "feature1"), "1 feature2");
        assert_eq!(ok("1 test", "test"), "0");
        assert_eq!(ok("2 another\t test", "another\t test"), "0");
        for (f, r) in [
            ("0", "test"),
            ("1 detest", "test"),
            ("4 testing one two three", "test"),
            ("1 contestant", "test"),
            ("3 testament protest detestable", "test"),
            ("1 feature", ""),
        ] {
            assert_eq!(ok(f, r), f);
        }
        assert!(remove_feature("invalid feature test string", "test").is_err());
        assert!(remove_feature("2no space test", "test").is_err());
        for bad in [" ", " bad", "bad\n", "\tbad  \n"] {
            assert!(remove_feature("1 feature", bad).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "[0-9a-z: \t-]{0,80}") {
            let _ = MultipathTable::parse(&s);
            let _ = TargetLine::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_numbers(v in proptest::collection::vec(0u32..6, 0..30)) {
            let s: Vec<String> = v.iter().map(|n| n.to_string()).collect();
            if let Ok(t) = MultipathTable::parse(&s.join(" ")) {
                // Whatever parses must format back to the same words.
                proptest::prop_assert_eq!(t.format().unwrap(), s.join(" "));
            }
        }

        #[test]
        fn feature_edits_never_panic(f in "[0-9a-z \t]{0,30}", a in "[a-z \t]{0,10}") {
            let _ = add_feature(Some(&f), &a);
            let _ = remove_feature(&f, &a);
        }
    }
}
