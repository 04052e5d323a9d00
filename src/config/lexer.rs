//! Splits one configuration line into tokens with the pest grammar in
//! `grammar/multipath.pest`.

use pest::Parser;
use pest_derive::Parser;

#[derive(Parser)]
#[grammar = "../grammar/multipath.pest"]
struct LineGrammar;

/// The grammar refused a line (boxed: pest's error is large).
pub type LexError = Box<pest::error::Error<Rule>>;

/// One token of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// `{` or `}`.
    Brace(char),
    /// An unquoted word.
    Bare(String),
    /// A quoted string with `""` already turned into `"`; `closed` is false
    /// when the line ended inside the quotes.
    Quoted { text: String, closed: bool },
}

impl Token {
    /// The token's text as the value of a keyword.
    pub fn text(&self) -> &str {
        match self {
            Token::Brace('{') => "{",
            Token::Brace(_) => "}",
            Token::Bare(s) | Token::Quoted { text: s, .. } => s,
        }
    }

    /// The text as upstream's diagnostics show it (a quoted token starts with
    /// its quote marker).
    pub fn shown(&self) -> String {
        match self {
            Token::Quoted { .. } => "\"".to_string(),
            t => t.text().to_string(),
        }
    }
}

/// Tokenizes one line (without its newline). Never fails: the grammar
/// accepts every string; a failure would be a grammar bug and is reported as
/// an error so the caller can name the line.
pub fn tokenize(line: &str) -> Result<Vec<Token>, LexError> {
    let mut pairs = LineGrammar::parse(Rule::line, line).map_err(Box::new)?;
    let mut tokens = Vec::new();
    let Some(root) = pairs.next() else {
        return Ok(tokens);
    };
    for pair in root.into_inner() {
        match pair.as_rule() {
            Rule::brace => tokens.push(Token::Brace(if pair.as_str() == "{" { '{' } else { '}' })),
            Rule::bare => tokens.push(Token::Bare(pair.as_str().to_string())),
            Rule::quoted => {
                let mut text = String::new();
                let mut closed = false;
                for part in pair.into_inner() {
                    match part.as_rule() {
                        Rule::qtext => text = part.as_str().replace("\"\"", "\""),
                        Rule::qclose => closed = true,
                        _ => {}
                    }
                }
                tokens.push(Token::Quoted { text, closed });
            }
            _ => {}
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Number of entries upstream's token vector holds for a token: a quoted
    /// string is an opening marker, the text (when not empty) and a closing marker.
    fn upstream_len(t: &Token) -> usize {
        match t {
            Token::Quoted { text, closed } => 1 + usize::from(!text.is_empty()) + usize::from(*closed),
            _ => 1,
        }
    }

    fn value(line: &str) -> (usize, String) {
        let t = tokenize(line).unwrap();
        (
            t.iter().map(upstream_len).sum(),
            t.get(1).map(|t| t.text().to_string()).unwrap_or_default(),
        )
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
            assert_eq!(value(line), (*n, v.to_string()), "line {line:?}");
        }
    }

    #[test]
    fn braces_comments_and_non_ascii() {
        assert_eq!(
            tokenize("devices{device}").unwrap(),
            vec![
                Token::Bare("devices".into()),
                Token::Brace('{'),
                Token::Bare("device".into()),
                Token::Brace('}')
            ]
        );
        assert_eq!(tokenize("v#x").unwrap(), vec![Token::Bare("v".into())]);
        assert_eq!(
            tokenize("a\u{e9}b").unwrap(),
            vec![Token::Bare("a".into()), Token::Bare("b".into())]
        );
        assert_eq!(tokenize("k \"a\u{e9}\"").unwrap()[1].text(), "a\u{e9}");
        assert_eq!(
            tokenize("k \"open").unwrap()[1],
            Token::Quoted {
                text: "open".into(),
                closed: false
            }
        );
        assert!(tokenize("   # only a comment").unwrap().is_empty());
        assert!(tokenize("").unwrap().is_empty());
    }
}
