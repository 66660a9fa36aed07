//! Ansible's per-file Jinja overrides: a template file whose first line is
//! `#jinja2: lstrip_blocks: True, trim_blocks: False` is rendered with
//! those settings, and the line itself is dropped, as Ansible's `template`
//! module and lookup do.

use minijinja::syntax::SyntaxConfig;
use minijinja::Environment;

const PREFIX: &str = "#jinja2:";

/// Why a `#jinja2:` line cannot be used. Names the override, never a
/// rendered value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum HeaderError {
    #[error("cannot read the #jinja2 override '{pair}': expected key: value")]
    NotAPair { pair: String },
    #[error("#jinja2 override {key} must be True or False")]
    NotABool { key: String },
    #[error("#jinja2 override {key} must be a quoted string")]
    NotQuoted { key: String },
    #[error("#jinja2 override '{key}' is not supported")]
    Unsupported { key: String },
    #[error("#jinja2 override: {detail}")]
    Syntax { detail: String },
}

/// The overrides of a template's first line and the body after it.
pub(super) struct Header<'a> {
    pairs: Vec<(String, String)>,
    pub body: &'a str,
}

/// `None` when the file has no `#jinja2:` line.
pub(super) fn split(source: &str) -> Result<Option<Header<'_>>, HeaderError> {
    let Some(rest) = source.strip_prefix(PREFIX) else {
        return Ok(None);
    };
    let (line, body) = match rest.find('\n') {
        Some(eol) => (&rest[..eol], &rest[eol + 1..]),
        None => (rest, ""),
    };
    let mut pairs = Vec::new();
    for pair in line.split(',') {
        let Some((key, value)) = pair.split_once(':') else {
            return Err(HeaderError::NotAPair {
                pair: pair.trim().to_string(),
            });
        };
        pairs.push((key.trim().to_string(), value.trim().to_string()));
    }
    Ok(Some(Header { pairs, body }))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, HeaderError> {
    match v {
        "True" | "true" => Ok(true),
        "False" | "false" => Ok(false),
        _ => Err(HeaderError::NotABool { key: key.into() }),
    }
}

fn parse_str(key: &str, v: &str) -> Result<String, HeaderError> {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        Ok(v[1..v.len() - 1].to_string())
    } else {
        Err(HeaderError::NotQuoted { key: key.into() })
    }
}

impl Header<'_> {
    /// True when the delimiters change, so the body must not be touched by
    /// the `{{ }}`-based preprocessing.
    pub(super) fn changes_delimiters(&self) -> bool {
        self.pairs.iter().any(|(k, _)| k.ends_with("_string"))
    }

    /// A copy of `base` with the overrides applied.
    pub(super) fn environment<'e>(
        &self,
        base: &Environment<'e>,
    ) -> Result<Environment<'e>, HeaderError> {
        let current = base.syntax().clone();
        let mut b = current.to_builder();
        let (mut bs, mut be) = pair(current.block_delimiters());
        let (mut vs, mut ve) = pair(current.variable_delimiters());
        let (mut cs, mut ce) = pair(current.comment_delimiters());
        for (key, value) in &self.pairs {
            match key.as_str() {
                "trim_blocks" => {
                    b.trim_blocks(parse_bool(key, value)?);
                }
                "lstrip_blocks" => {
                    b.lstrip_blocks(parse_bool(key, value)?);
                }
                "keep_trailing_newline" => {
                    b.keep_trailing_newline(parse_bool(key, value)?);
                }
                "block_start_string" => bs = parse_str(key, value)?,
                "block_end_string" => be = parse_str(key, value)?,
                "variable_start_string" => vs = parse_str(key, value)?,
                "variable_end_string" => ve = parse_str(key, value)?,
                "comment_start_string" => cs = parse_str(key, value)?,
                "comment_end_string" => ce = parse_str(key, value)?,
                // Output always uses "\n"; accept the default spelling.
                "newline_sequence" if parse_str(key, value)? == "\\n" => {}
                other => return Err(HeaderError::Unsupported { key: other.into() }),
            }
        }
        b.block_delimiters(bs, be)
            .variable_delimiters(vs, ve)
            .comment_delimiters(cs, ce);
        let syntax: SyntaxConfig = b.build().map_err(|e| HeaderError::Syntax {
            detail: e.detail().unwrap_or("invalid").to_string(),
        })?;
        let mut env = base.clone();
        env.set_syntax(syntax);
        Ok(env)
    }
}

fn pair((a, b): (&str, &str)) -> (String, String) {
    (a.to_string(), b.to_string())
}
