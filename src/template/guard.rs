//! Limits checked before minijinja parses a template or expression.
//!
//! minijinja's parser bounds most nesting (brackets, calls, blocks) with
//! its own recursion guard, but recurses once per prefix operator without
//! one: `- - - - x` or `not not not x` a few thousand long overflows the
//! stack and aborts the whole process (found by the fuzzer, in templates
//! and in `when:` conditions). A run of more than [`MAX_UNARY_RUN`] prefix
//! operators is refused here, with its line; no real template has one.

use minijinja::syntax::SyntaxConfig;

/// The most prefix operators (`-`, `not`) allowed in a row.
pub(crate) const MAX_UNARY_RUN: usize = 32;

/// Where a refused run of prefix operators is, carried as the source of
/// the minijinja error so the error keeps its line (minijinja sets lines
/// only on errors of its own).
#[derive(Debug, thiserror::Error)]
#[error("a run of prefix operators at line {line}")]
pub(crate) struct UnaryRunAt {
    pub line: usize,
}

/// The 1-based line of the first run of too many prefix operators in the
/// code of a template (inside its variable and block tags, whatever
/// delimiters `syntax` sets; text and comments are not code).
pub(crate) fn unary_run_in_template(src: &str, syntax: &SyntaxConfig) -> Option<usize> {
    let (vs, ve) = syntax.variable_delimiters();
    let (bs, be) = syntax.block_delimiters();
    let (cs, ce) = syntax.comment_delimiters();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Bytes, not `str` slices: `i` may be inside a multi-byte character.
        let rest = &bytes[i..];
        let (open, close) = if rest.starts_with(cs.as_bytes()) {
            i = find(&rest[cs.len()..], ce.as_bytes())
                .map_or(bytes.len(), |p| i + cs.len() + p + ce.len());
            continue;
        } else if rest.starts_with(vs.as_bytes()) {
            (vs, ve)
        } else if rest.starts_with(bs.as_bytes()) {
            (bs, be)
        } else {
            i += 1;
            continue;
        };
        let code_start = i + open.len();
        let (end, found) = unary_run(&bytes[code_start..], Some(close.as_bytes()));
        if let Some(at) = found {
            return Some(line_of(src, code_start + at));
        }
        i = code_start + end + close.len();
    }
    None
}

/// The same for a bare expression (`when:`), whose whole text is code.
pub(crate) fn unary_run_in_expression(expr: &str) -> Option<usize> {
    unary_run(expr.as_bytes(), None)
        .1
        .map(|at| line_of(expr, at))
}

fn line_of(src: &str, at: usize) -> usize {
    src.as_bytes()[..at.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Scan code up to `close` (outside string literals): how far it went,
/// and where a too-long run of prefix operators starts.
fn unary_run(bytes: &[u8], close: Option<&[u8]>) -> (usize, Option<usize>) {
    let mut i = 0;
    let mut run = 0;
    let mut run_start = 0;
    while i < bytes.len() {
        if close.is_some_and(|c| bytes[i..].starts_with(c)) {
            return (i, None);
        }
        let b = bytes[i];
        let unary = if b == b'-' {
            i += 1;
            true
        } else if bytes[i..].starts_with(b"not")
            && !bytes
                .get(i + 3)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        {
            i += 3;
            true
        } else {
            if b == b'\'' || b == b'"' {
                i = super::chain::skip_string(bytes, i, b);
            } else if !b.is_ascii_whitespace() {
                run = 0;
                i += 1;
            } else {
                i += 1;
            }
            if b == b'\'' || b == b'"' {
                run = 0;
            }
            false
        };
        if unary {
            if run == 0 {
                run_start = i.saturating_sub(1);
            }
            run += 1;
            if run > MAX_UNARY_RUN {
                return (i, Some(run_start));
            }
        }
    }
    (bytes.len(), None)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax() -> SyntaxConfig {
        SyntaxConfig::default()
    }

    #[test]
    fn long_runs_of_prefix_operators_are_found_with_their_line() {
        let minus = format!("a\n{{{{ {}1 }}}}", "- ".repeat(40));
        assert_eq!(unary_run_in_template(&minus, &syntax()), Some(2));
        let nots = format!("{{% if {}x %}}{{% endif %}}", "not ".repeat(40));
        assert_eq!(unary_run_in_template(&nots, &syntax()), Some(1));
        assert_eq!(unary_run_in_expression(&"-".repeat(5000)), Some(1));
    }

    /// Found by the fuzzer: the scan sliced `str`s inside multi-byte characters.
    #[test]
    fn multi_byte_characters_next_to_tags_do_not_panic() {
        for src in [
            "{{ x }}é",
            "é{{ 'ä' | length }}",
            "{% if x\u{2028} %}",
            "{{ 42 is false\u{202e} }}",
        ] {
            assert_eq!(unary_run_in_template(src, &syntax()), None);
        }
        assert_eq!(unary_run_in_expression(" raw '}'ä' | l\u{feff}ength"), None);
    }

    #[test]
    fn text_comments_strings_and_ordinary_code_pass() {
        let ok = format!(
            "# {}\n{{# {} #}}{{{{ '{}' ~ x - -1 }}}}{{% if not x and not y %}}{{% endif %}}{{{{- x -}}}}",
            "-".repeat(80),
            "- ".repeat(80),
            "-".repeat(80)
        );
        assert_eq!(unary_run_in_template(&ok, &syntax()), None);
        assert_eq!(
            unary_run_in_expression("not x and nothing is notable"),
            None
        );
    }
}
