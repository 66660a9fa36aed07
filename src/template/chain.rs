//! Source preprocessing that makes Ansible idioms work on minijinja.
//!
//! Ansible's undefined values chain: `a.b.c | default(1)` and
//! `a.b.c is defined` work when `a.b` is missing, because looking up an
//! attribute of an undefined value gives another undefined value. Under
//! minijinja's strict mode that lookup is an error, while everything else
//! strict mode does (printing, iterating or testing the truth of an
//! undefined value fails) is exactly what Ansible does. So the operand of
//! `default`/`d`/`mandatory` and of `is <test>` is rewritten when it is a
//! plain lookup chain: `a.b['c'][i]` becomes `__herd_chain(a, 'b', 'c', i)`,
//! a function that walks the chain and stops at the first undefined step.
//!
//! Two more rewrites: `x | mandatory` gets `name='x'` so its error can say
//! which variable is missing, and Python's `'%s:%d' % (h, p)` becomes
//! `('%s:%d' | format(h, p))` (minijinja has no `%` on strings).
//!
//! Only code inside `{{ }}`/`{% %}` is touched (not text, comments or
//! `{% raw %}`), and no line breaks are added, so error line numbers still
//! match the file.

use std::borrow::Cow;

use minijinja::value::{Rest, Value};

/// The function the rewritten chains call.
pub(super) const CHAIN_FN: &str = "__herd_chain";

/// Walks `base[key1][key2]...`, giving undefined as soon as a step is missing.
pub(super) fn chain(base: &Value, keys: Rest<Value>) -> Value {
    let mut cur = base.clone();
    for key in keys.iter() {
        if cur.is_undefined() || cur.is_none() {
            return Value::UNDEFINED;
        }
        let mut next = cur.get_item(key).unwrap_or(Value::UNDEFINED);
        if next.is_undefined() {
            if let Some(name) = key.as_str() {
                next = cur.get_attr(name).unwrap_or(Value::UNDEFINED);
            }
        }
        cur = next;
    }
    cur
}

/// Rewrites chains inside the `{{ }}` and `{% %}` blocks of a template.
pub(super) fn rewrite_template(src: &str) -> Cow<'_, str> {
    if !might_need_rewrite(src) {
        return Cow::Borrowed(src);
    }
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 32);
    let mut i = 0;
    let mut text_start = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        let close = match bytes[i + 1] {
            b'{' => "}}",
            b'%' => "%}",
            b'#' => {
                // Comments are copied as they are.
                i = src[i..]
                    .find("#}")
                    .map(|p| i + p + 2)
                    .unwrap_or(bytes.len());
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let code_start = i + 2;
        let Some(code_len) = find_close(&src[code_start..], close) else {
            break;
        };
        let code_end = code_start + code_len;
        let code = &src[code_start..code_end];
        out.push_str(&src[text_start..code_start]);
        if close == "%}" && is_raw_start(code) {
            // `{% raw %}` ... `{% endraw %}` is text, whatever it contains.
            let after = code_end + 2;
            let end = find_endraw(src, after).unwrap_or(bytes.len());
            out.push_str(&src[code_start..end]);
            i = end;
            text_start = end;
            continue;
        }
        out.push_str(&rewrite_expression(code));
        i = code_end;
        text_start = code_end;
    }
    out.push_str(&src[text_start..]);
    Cow::Owned(out)
}

fn might_need_rewrite(src: &str) -> bool {
    src.contains("default")
        || src.contains(" is ")
        || src.contains("d(")
        || src.contains("|d")
        || src.contains("mandatory")
        || src.contains(" % ")
        || src.contains("'%")
        || src.contains("\"%")
}

fn is_raw_start(code: &str) -> bool {
    code.trim_matches(|c: char| c.is_whitespace() || c == '-' || c == '+') == "raw"
}

fn find_endraw(src: &str, from: usize) -> Option<usize> {
    let mut pos = from;
    while let Some(p) = src[pos..].find("{%") {
        let start = pos + p;
        let close = src[start + 2..].find("%}")? + start + 2;
        if src[start + 2..close].trim_matches(|c: char| c.is_whitespace() || c == '-' || c == '+')
            == "endraw"
        {
            return Some(start);
        }
        pos = close + 2;
    }
    None
}

/// Length of the code before `close`, skipping string literals.
fn find_close(code: &str, close: &str) -> Option<usize> {
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => i = skip_string(bytes, i, q),
            _ if bytes[i..].starts_with(close.as_bytes()) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Index just past the string literal starting at `i`.
pub(super) fn skip_string(bytes: &[u8], i: usize, quote: u8) -> usize {
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    bytes.len()
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The word starting at `i`, if it is a whole identifier.
fn word_at(bytes: &[u8], i: usize) -> &[u8] {
    if i > 0 && is_ident(bytes[i - 1]) {
        return &[];
    }
    let mut j = i;
    while j < bytes.len() && is_ident(bytes[j]) {
        j += 1;
    }
    &bytes[i..j]
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Rewrites chains in one expression (the inside of a block, or a bare
/// `when:` condition).
pub(super) fn rewrite_expression(code: &str) -> Cow<'_, str> {
    if !might_need_rewrite(code) {
        return Cow::Borrowed(code);
    }
    let bytes = code.as_bytes();
    let pairs = bracket_pairs(bytes);
    // (start, end, replacement) of each chain, in source order.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut mandatory_edits: Vec<(usize, usize, String)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\'' || b == b'"' {
            let end = skip_string(bytes, i, b);
            if let Some(edit) = percent_format(code, i, end) {
                i = edit.1;
                mandatory_edits.push(edit);
                continue;
            }
            i = end;
            continue;
        }
        let trigger = if b == b'|' {
            let j = skip_ws(bytes, i + 1);
            let w = word_at(bytes, j);
            if w == b"mandatory" {
                if let Some(edit) = name_mandatory(code, &pairs, i, j) {
                    mandatory_edits.push(edit);
                }
            }
            w == b"default" || w == b"d" || w == b"mandatory"
        } else if b == b'i' && word_at(bytes, i) == b"is" {
            // `x is defined`, `x is not none`, ...: tests see undefined
            // values without failing, as in Ansible.
            i + 2 < bytes.len() && bytes[i + 2].is_ascii_whitespace()
        } else {
            false
        };
        if trigger {
            if let Some((start, replacement)) = chain_before(code, &pairs, i) {
                let end = trim_end_ws(bytes, i);
                // A chain that contains earlier edits (inside its brackets)
                // was rewritten as a whole, inner parts included.
                edits.retain(|(s, _, _)| *s < start);
                edits.push((start, end, replacement));
            }
        }
        i += 1;
    }
    // A `mandatory` inside a rewritten chain's brackets was handled there.
    mandatory_edits.retain(|(s, _, _)| !edits.iter().any(|(a, b, _)| a <= s && s < b));
    edits.extend(mandatory_edits);
    edits.sort_by_key(|e| e.0);
    if edits.is_empty() {
        return Cow::Borrowed(code);
    }
    let mut out = String::with_capacity(code.len() + edits.len() * 24);
    let mut last = 0;
    for (start, end, replacement) in edits {
        out.push_str(&code[last..start]);
        out.push_str(&replacement);
        last = end;
    }
    out.push_str(&code[last..]);
    Cow::Owned(out)
}

/// Python's `'%s:%d' % (host, port)` (and `'%s' % name`) becomes
/// `('%s:%d' | format(host, port))`; minijinja has no `%` on strings.
/// `lit` is the string literal's range.
fn percent_format(code: &str, lit: usize, lit_end: usize) -> Option<(usize, usize, String)> {
    let bytes = code.as_bytes();
    let pct = skip_ws(bytes, lit_end);
    if bytes.get(pct) != Some(&b'%') {
        return None;
    }
    let rhs = skip_ws(bytes, pct + 1);
    let (args, end) = match *bytes.get(rhs)? {
        b'(' => {
            let close = matching_close(bytes, rhs)?;
            (code[rhs + 1..close].trim(), close + 1)
        }
        q @ (b'\'' | b'"') => {
            let end = skip_string(bytes, rhs, q);
            (code[rhs..end].trim(), end)
        }
        c if is_ident(c) => {
            let end = chain_end(bytes, rhs)?;
            (code[rhs..end].trim(), end)
        }
        _ => return None,
    };
    // `'%s' % x | upper` applies the filter to `x` first; leave such
    // expressions alone rather than guess.
    let next = skip_ws(bytes, end);
    if matches!(bytes.get(next), Some(b'|' | b'.' | b'[' | b'(')) || args.is_empty() {
        return None;
    }
    let args = rewrite_expression(args);
    Some((
        lit,
        end,
        format!("({} | format({args}))", &code[lit..lit_end]),
    ))
}

/// End of the name or lookup chain (`a.b[0]`) or number starting at `i`.
fn chain_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        while i < bytes.len() && (is_ident(bytes[i]) || bytes[i] == b'.') {
            i += 1;
        }
        if bytes.get(i) == Some(&b'[') {
            i = matching_close(bytes, i)? + 1;
        } else {
            return Some(i);
        }
    }
}

/// The `)` or `]` closing the bracket at `open`, skipping string literals.
fn matching_close(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i = skip_string(bytes, i, q);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `x.y | mandatory` becomes `x.y | mandatory(name='x.y')` so the error
/// can say which variable is missing; `pipe` is the `|`, `word` the filter.
fn name_mandatory(
    code: &str,
    pairs: &Pairs,
    pipe: usize,
    word: usize,
) -> Option<(usize, usize, String)> {
    let bytes = code.as_bytes();
    let end = trim_end_ws(bytes, pipe);
    let start = operand_start(code, pairs, end)?;
    let name = code[start..end].replace('\\', "\\\\").replace('\'', "\\'");
    let after = word + "mandatory".len();
    let p = skip_ws(bytes, after);
    if bytes.get(p) == Some(&b'(') {
        let q = skip_ws(bytes, p + 1);
        let sep = if bytes.get(q) == Some(&b')') {
            ""
        } else {
            ", "
        };
        Some((p, p + 1, format!("(name='{name}'{sep}")))
    } else {
        Some((word, after, format!("mandatory(name='{name}')")))
    }
}

/// Start of a plain name or lookup chain ending at `end`.
fn operand_start(code: &str, pairs: &Pairs, end: usize) -> Option<usize> {
    let bytes = code.as_bytes();
    let mut end = end;
    loop {
        if end == 0 {
            return None;
        }
        match bytes[end - 1] {
            b']' => end = *pairs.get(&(end - 1))?,
            c if is_ident(c) => {
                let mut start = end;
                while start > 0 && is_ident(bytes[start - 1]) {
                    start -= 1;
                }
                if start > 0 && bytes[start - 1] == b'.' {
                    end = start - 1;
                    continue;
                }
                if bytes[start].is_ascii_digit() {
                    return None;
                }
                return Some(start);
            }
            _ => return None,
        }
    }
}

fn trim_end_ws(bytes: &[u8], mut end: usize) -> usize {
    while end > 0 && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

/// The lookup chain that ends right before `pos` (ignoring spaces), as
/// `(start, replacement)`; `None` when it is not a plain chain with at
/// least one step.
fn chain_before(code: &str, pairs: &Pairs, pos: usize) -> Option<(usize, String)> {
    let bytes = code.as_bytes();
    let mut end = trim_end_ws(bytes, pos);
    let mut keys: Vec<String> = Vec::new();
    loop {
        if end == 0 {
            return None;
        }
        match bytes[end - 1] {
            b']' => {
                let open = *pairs.get(&(end - 1))?;
                let inner = code[open + 1..end - 1].trim();
                if inner.is_empty() || inner.contains(':') && !is_string_literal(inner) {
                    // Slices are not lookups.
                    return None;
                }
                keys.push(rewrite_expression(inner).into_owned());
                end = open;
            }
            c if is_ident(c) => {
                let mut start = end;
                while start > 0 && is_ident(bytes[start - 1]) {
                    start -= 1;
                }
                let name = &code[start..end];
                if start > 0 && bytes[start - 1] == b'.' {
                    keys.push(if name.bytes().all(|b| b.is_ascii_digit()) {
                        name.to_string()
                    } else {
                        format!("'{name}'")
                    });
                    end = start - 1;
                    continue;
                }
                let first = name.as_bytes()[0];
                let keyword = matches!(
                    name,
                    "true"
                        | "false"
                        | "none"
                        | "True"
                        | "False"
                        | "None"
                        | "not"
                        | "and"
                        | "or"
                        | "in"
                        | "is"
                        | "if"
                        | "else"
                );
                if keys.is_empty() || first.is_ascii_digit() || keyword {
                    return None;
                }
                // `x.y` right after a quote or a closing bracket is a method
                // or literal chain we do not touch.
                if start > 0 && matches!(bytes[start - 1], b'\'' | b'"' | b')' | b'}') {
                    return None;
                }
                keys.reverse();
                return Some((start, format!("{CHAIN_FN}({name}, {})", keys.join(", "))));
            }
            _ => return None,
        }
    }
}

fn is_string_literal(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && skip_string(b, 0, b[0]) == b.len()
}

/// For each `]`, the `[` it closes (string literals skipped).
type Pairs = std::collections::HashMap<usize, usize>;

/// Every bracket pair of the code, found in one forward scan (backward
/// scanning cannot tell quotes apart). Looking one pair up by scanning
/// from the start each time made code with thousands of `x[..] is ...`
/// quadratic (found by the fuzzer).
fn bracket_pairs(bytes: &[u8]) -> Pairs {
    let mut pairs = Pairs::new();
    let mut stack = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i = skip_string(bytes, i, q);
                continue;
            }
            b'[' => stack.push(i),
            b']' => {
                if let Some(open) = stack.pop() {
                    pairs.insert(i, open);
                }
            }
            _ => {}
        }
        i += 1;
    }
    pairs
}

#[cfg(test)]
mod unit {
    use super::*;

    /// Found by the fuzzer: each chain scanned the code from its start to
    /// pair brackets, so 64 KiB of `x['k'] is defined` took seconds.
    #[test]
    fn many_chains_rewrite_in_linear_time() {
        let code = "x['k'] is defined and ".repeat(3000) + "true";
        let start = std::time::Instant::now();
        let out = rewrite_expression(&code);
        assert!(out.starts_with("__herd_chain(x, 'k') is defined and __herd_chain(x, 'k')"));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn rewrites_only_chains_before_default_and_tests() {
        assert_eq!(
            rewrite_expression("a.b.c | default(1)"),
            "__herd_chain(a, 'b', 'c') | default(1)"
        );
        assert_eq!(
            rewrite_expression("a['b'][x].c is defined"),
            "__herd_chain(a, 'b', x, 'c') is defined"
        );
        assert_eq!(
            rewrite_expression("a.b is not defined and c|d(2)"),
            "__herd_chain(a, 'b') is not defined and c|d(2)"
        );
        assert_eq!(
            rewrite_expression("x.0|default"),
            "__herd_chain(x, 0)|default"
        );
        assert_eq!(rewrite_expression("a | default(1)"), "a | default(1)");
        assert_eq!(
            rewrite_expression("'%s:%d' % (h, p) ~ x"),
            "('%s:%d' | format(h, p)) ~ x"
        );
        assert_eq!(
            rewrite_expression("'%s' % a.b[0]"),
            "('%s' | format(a.b[0]))"
        );
        assert_eq!(
            rewrite_expression("'%s' % (a.b | default('x'))"),
            "('%s' | format(__herd_chain(a, 'b') | default('x')))"
        );
        assert_eq!(rewrite_expression("'%s' % x | upper"), "'%s' % x | upper");
        assert_eq!(rewrite_expression("n % 2"), "n % 2");
        assert_eq!(rewrite_expression("'%s' % 'x'"), "('%s' | format('x'))");
        assert_eq!(
            rewrite_expression("a | mandatory"),
            "a | mandatory(name='a')"
        );
        assert_eq!(
            rewrite_expression("a.b | mandatory(msg='m')"),
            "__herd_chain(a, 'b') | mandatory(name='a.b', msg='m')"
        );
        assert_eq!(
            rewrite_expression("a['k'] | mandatory()"),
            "__herd_chain(a, 'k') | mandatory(name='a[\\'k\\']')"
        );
        assert_eq!(
            rewrite_expression("f(x).b | default(1)"),
            "f(x).b | default(1)"
        );
        assert_eq!(
            rewrite_expression("'a.b | default' ~ x"),
            "'a.b | default' ~ x"
        );
        assert_eq!(rewrite_expression("a.b | upper"), "a.b | upper");
        assert_eq!(rewrite_expression("l[1:] | default"), "l[1:] | default");
        assert_eq!(
            rewrite_expression("a[b.c | default('k')].d | default(0)"),
            "__herd_chain(a, __herd_chain(b, 'c') | default('k'), 'd') | default(0)"
        );
    }

    /// Arbitrary input (unbalanced quotes and brackets, non-ASCII text)
    /// must never make the preprocessor panic.
    #[test]
    fn never_panics_on_odd_input() {
        let pieces = [
            "{{",
            "}}",
            "{%",
            "%}",
            "{#",
            "#}",
            "a.b",
            "|",
            " default",
            "d(",
            "is",
            " ",
            "'",
            "\"",
            "\\",
            "[",
            "]",
            "(",
            ")",
            "é",
            "日本",
            "%",
            "mandatory",
            ".",
            "x",
            "raw",
            "endraw",
            "0",
            ",",
            ":",
            "-",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..12 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let _ = rewrite_template(&text);
            let _ = rewrite_expression(&text);
        }
    }

    #[test]
    fn rewrites_inside_blocks_only() {
        assert_eq!(
            rewrite_template("a.b | default {{ a.b | default(1) }}\n{% if x.y is defined %}{% endif %}"),
            "a.b | default {{ __herd_chain(a, 'b') | default(1) }}\n{% if __herd_chain(x, 'y') is defined %}{% endif %}"
        );
        assert_eq!(
            rewrite_template("{% raw %}{{ a.b | default(1) }}{% endraw %}"),
            "{% raw %}{{ a.b | default(1) }}{% endraw %}"
        );
        assert_eq!(
            rewrite_template("{# a.b | default #}{{ '}}' ~ a.b|d }}"),
            "{# a.b | default #}{{ '}}' ~ __herd_chain(a, 'b')|d }}"
        );
    }
}
