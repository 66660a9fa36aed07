//! The `regex_*` filters. Patterns and replacements are written in
//! Python's `re` dialect and run on Rust's regex engine; this module
//! translates what differs (`\g<name>`, `\Z`, `$` before a final
//! newline, Python 3.7's empty-match rule) and reports what cannot be
//! translated (look-around, backreferences) as an error naming the filter.

use minijinja::value::{Kwargs, Rest, Value};
use minijinja::Error;
use regex::{Regex, RegexBuilder};

use super::filters::{err, kw_flag};

/// Compile a Python `re` pattern for matching `text`. Rust's regex lacks
/// look-around and backreferences; such patterns fail with a message
/// naming the problem.
pub(super) fn compile_regex(
    filter: &str,
    pattern: &str,
    ignorecase: bool,
    multiline: bool,
    text: &str,
) -> Result<Regex, Error> {
    // Python's `$` also matches before a final newline ("value\n", as
    // command output ends). When that newline is the only one, Rust's
    // multi-line `$` means exactly that.
    let only_final_newline = text.ends_with('\n') && !text[..text.len() - 1].contains('\n');
    let dollar_before_final_newline = !multiline && only_final_newline;
    RegexBuilder::new(&translate_pattern(pattern, dollar_before_final_newline))
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| err(format!("{filter}: invalid regular expression: {e}")))
}

/// The few spellings where Python's `re` syntax differs from Rust's regex
/// and the meaning is the same (`\Z` is `\z` in Rust), optionally turning
/// `$` outside character classes into `(?m:$)`.
fn translate_pattern(pattern: &str, dollar_multiline: bool) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('Z') if !in_class => out.push_str("\\z"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` first in a class (after an optional `^`) is literal.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '$' if !in_class && dollar_multiline => out.push_str("(?m:$)"),
            c => out.push(c),
        }
    }
    out
}

/// Python 3.7+'s `finditer`: an empty match may directly follow a
/// non-empty one, but two matches never start at the same place empty.
fn py_captures<'t>(re: &Regex, text: &'t str) -> Vec<regex::Captures<'t>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut must_advance = false;
    while pos <= text.len() {
        let Some(caps) = re.captures_at(text, pos) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        if must_advance && m.start() == pos && m.is_empty() {
            let Some(c) = text[pos..].chars().next() else {
                break;
            };
            pos += c.len_utf8();
            must_advance = false;
            continue;
        }
        must_advance = m.is_empty();
        pos = m.end();
        out.push(caps);
    }
    out
}

/// Python's `re.sub` replacement template (`\1`, `\g<1>`, `\g<name>`,
/// `\n`) in Rust's `${1}` syntax; a literal `$` is escaped.
fn python_replacement(repl: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(repl.len());
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = d.to_string();
                    if let Some(&d2) = chars.peek() {
                        if d2.is_ascii_digit() {
                            n.push(d2);
                            chars.next();
                        }
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    if chars.next() != Some('<') {
                        return Err(err(
                            "regex_replace: bad group reference, expected \\g<name>",
                        ));
                    }
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('>') => break,
                            Some(ch) => name.push(ch),
                            None => {
                                return Err(err("regex_replace: unterminated group name in \\g<"))
                            }
                        }
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('f') => out.push('\x0c'),
                Some('v') => out.push('\x0b'),
                Some('a') => out.push('\x07'),
                Some('b') => out.push('\x08'),
                Some('\\') => out.push('\\'),
                Some(other) if other.is_ascii_alphabetic() => {
                    return Err(err(format!("regex_replace: bad escape \\{other}")))
                }
                Some(other) => {
                    out.push('\\');
                    if other == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(other);
                    }
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

pub(super) fn regex_replace(
    value: String,
    pattern: Option<String>,
    replacement: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let ignorecase = kw_flag(&kwargs, "ignorecase", false)?;
    let multiline = kw_flag(&kwargs, "multiline", false)?;
    let count = kwargs.get::<Option<usize>>("count")?.unwrap_or(0);
    let mandatory_count = kwargs.get::<Option<usize>>("mandatory_count")?.unwrap_or(0);
    kwargs.assert_all_used()?;
    let re = compile_regex(
        "regex_replace",
        pattern.as_deref().unwrap_or_default(),
        ignorecase,
        multiline,
        &value,
    )?;
    let repl = python_replacement(replacement.as_deref().unwrap_or_default())?;
    let matches = py_captures(&re, &value);
    if mandatory_count > 0 && matches.len() != mandatory_count {
        return Err(err(format!(
            "regex_replace: {} matches, expected {mandatory_count}",
            matches.len()
        )));
    }
    let mut out = String::with_capacity(value.len());
    let mut last = 0;
    for (i, caps) in matches.iter().enumerate() {
        if count > 0 && i >= count {
            break;
        }
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&value[last..m.start()]);
        caps.expand(&repl, &mut out);
        last = m.end();
    }
    out.push_str(&value[last..]);
    Ok(out)
}

/// Ansible's `regex_search`: the match, or a list of the groups named by
/// `'\\1'`/`'\\g<name>'` arguments; `None` when nothing matches.
pub(super) fn regex_search(
    value: String,
    pattern: String,
    groups: Rest<String>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let ignorecase = kw_flag(&kwargs, "ignorecase", false)?;
    let multiline = kw_flag(&kwargs, "multiline", false)?;
    kwargs.assert_all_used()?;
    let re = compile_regex("regex_search", &pattern, ignorecase, multiline, &value)?;
    enum Group {
        Index(usize),
        Name(String),
    }
    let mut wanted = Vec::new();
    for g in groups.iter() {
        if let Some(name) = g.strip_prefix("\\g<").and_then(|r| r.strip_suffix('>')) {
            wanted.push(match name.parse::<usize>() {
                Ok(i) => Group::Index(i),
                Err(_) => Group::Name(name.to_string()),
            });
        } else if let Some(n) = g.strip_prefix('\\').and_then(|r| r.parse::<usize>().ok()) {
            wanted.push(Group::Index(n));
        } else {
            return Err(err(
                "regex_search: unknown argument, expected group references like '\\1' or '\\g<name>'",
            ));
        }
    }
    let Some(caps) = re.captures(&value) else {
        return Ok(Value::from(()));
    };
    if wanted.is_empty() {
        return Ok(Value::from(caps.get(0).map(|m| m.as_str()).unwrap_or("")));
    }
    let mut out = Vec::new();
    for g in wanted {
        let m = match &g {
            Group::Index(i) => {
                if *i >= caps.len() {
                    return Err(err(format!("regex_search: no such group {i}")));
                }
                caps.get(*i)
            }
            Group::Name(n) => caps.name(n),
        };
        out.push(
            m.map(|m| Value::from(m.as_str()))
                .unwrap_or(Value::from(())),
        );
    }
    Ok(Value::from(out))
}

/// Python's `re.findall`: whole matches without groups, the group with one,
/// lists of groups with several.
pub(super) fn regex_findall(
    value: String,
    pattern: String,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let ignorecase = kw_flag(&kwargs, "ignorecase", false)?;
    let multiline = kw_flag(&kwargs, "multiline", false)?;
    kwargs.assert_all_used()?;
    let re = compile_regex("regex_findall", &pattern, ignorecase, multiline, &value)?;
    let groups = re.captures_len() - 1;
    let mut out = Vec::new();
    for caps in py_captures(&re, &value) {
        let text = |i: usize| Value::from(caps.get(i).map(|m| m.as_str()).unwrap_or(""));
        out.push(match groups {
            0 => text(0),
            1 => text(1),
            n => Value::from((1..=n).map(text).collect::<Vec<_>>()),
        });
    }
    Ok(Value::from(out))
}

/// Python's `re.escape`.
pub(super) fn regex_escape(value: String, re_type: Option<String>) -> Result<String, Error> {
    match re_type.as_deref().unwrap_or("python") {
        "python" => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if "()[]{}?*+-|^$\\.&~# \t\n\r\x0b\x0c".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(out)
        }
        "posix_basic" => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if "$.*[\\]^".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(out)
        }
        _ => Err(err(
            "regex_escape: re_type must be 'python' or 'posix_basic'",
        )),
    }
}
