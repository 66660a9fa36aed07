//! Jinja2's builtin filters where minijinja's versions print or parse
//! differently (`int`, `float`, `indent`, `join`, `replace`, `truncate`,
//! `center`, `escape`, `tojson`, `first`/`last`), rewritten to give
//! Jinja2's results: rendered config files must not change when a playbook
//! moves from Ansible to herd. `testdata/jinja2.json` holds the reference
//! outputs.

use minijinja::value::{Kwargs, Rest, Value, ValueKind, ValueOrKwargs};
use minijinja::{Error, State};

use super::filters::{err, items, json, py_text, require_defined};
use super::pyfmt::{json_dumps, JsonStyle};

/// Jinja2's `join`, with items converted the way Python's `str` does
/// (`True`, `None`), not minijinja's (`true`, `none`).
pub(super) fn join(
    state: &State,
    v: &Value,
    sep: Option<String>,
    attribute: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    require_defined(state, v)?;
    let sep = sep.or(kwargs.get("d")?);
    let attribute = attribute.or(kwargs.get("attribute")?);
    kwargs.assert_all_used()?;
    if v.kind() == ValueKind::String {
        // Joining a string joins its characters.
        let chars: Vec<String> = v
            .as_str()
            .unwrap_or_default()
            .chars()
            .map(String::from)
            .collect();
        return Ok(chars.join(sep.as_deref().unwrap_or("")));
    }
    let mut parts = Vec::new();
    for item in items(state, v, "join")? {
        let item = match &attribute {
            Some(path) => path_get(&item, path),
            None => item,
        };
        require_defined(state, &item)?;
        parts.push(py_text(&item));
    }
    Ok(parts.join(sep.as_deref().unwrap_or("")))
}

/// `attribute='a.0.b'` as Jinja2 reads it: dotted keys, numbers index lists.
fn path_get(v: &Value, path: &str) -> Value {
    let mut cur = v.clone();
    for part in path.split('.') {
        let next = match part.parse::<i64>() {
            Ok(i) => cur.get_item(&Value::from(i)),
            Err(_) => cur.get_attr(part),
        };
        cur = next.unwrap_or(Value::UNDEFINED);
        if cur.is_undefined() {
            break;
        }
    }
    cur
}

/// Python's `int(text, base)`: surrounding whitespace, a sign, `_`
/// between digits and (for base 0 or a matching base) a `0x`/`0o`/`0b`
/// prefix are accepted.
fn py_int(text: &str, base: u32) -> Option<i64> {
    // Python refuses other bases (ValueError); `from_str_radix` would panic.
    if base != 0 && !(2..=36).contains(&base) {
        return None;
    }
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let lower = t.to_ascii_lowercase();
    let prefixed = |p: &str, b: u32| lower.strip_prefix(p).map(|r| (r.to_string(), b));
    let with_prefix = match base {
        0 => prefixed("0x", 16)
            .or_else(|| prefixed("0o", 8))
            .or_else(|| prefixed("0b", 2)),
        16 => prefixed("0x", 16),
        8 => prefixed("0o", 8),
        2 => prefixed("0b", 2),
        _ => None,
    };
    let (digits, base) = match &with_prefix {
        // After a base prefix Python allows one `_` (`0x_1f`).
        Some((d, b)) => (d.strip_prefix('_').unwrap_or(d).to_string(), *b),
        None => (lower.clone(), if base == 0 { 10 } else { base }),
    };
    if !underscores_between_digits(&digits) {
        return None;
    }
    let n = i64::from_str_radix(&digits.replace('_', ""), base).ok()?;
    Some(if neg { -n } else { n })
}

/// Python accepts `_` in numbers only between two digits (`1_000`).
fn underscores_between_digits(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().enumerate().all(|(i, &c)| {
            c != b'_'
                || (i > 0
                    && i + 1 < b.len()
                    && b[i - 1].is_ascii_alphanumeric()
                    && b[i + 1].is_ascii_alphanumeric())
        })
}

/// Python's `float(text)`.
fn py_float_parse(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.contains('_') && !underscores_between_digits(t) {
        return None;
    }
    let t = t.replace('_', "");
    match t.to_ascii_lowercase().trim_start_matches(['+', '-']) {
        "inf" | "infinity" | "nan" => {}
        rest if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {}
        _ => return None,
    }
    t.parse::<f64>().ok()
}

/// An integral float as the smallest integer value that holds it
/// (Python's ints are unbounded).
fn int_of_float(f: f64) -> Value {
    let t = f.trunc();
    if t.abs() < 9.0e18 {
        Value::from(t as i64)
    } else {
        Value::from(t as i128)
    }
}

/// Jinja2's `int`: strings in `base`, then as a float (`'42.5'` is 42),
/// else `default` (0).
pub(super) fn to_int(
    state: &State,
    v: &Value,
    default: Option<Value>,
    base: Option<u32>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    require_defined(state, v)?;
    let default = default.or(kwargs.get("default")?);
    let base = base.or(kwargs.get("base")?).unwrap_or(10);
    kwargs.assert_all_used()?;
    let fallback = || default.clone().unwrap_or(Value::from(0));
    Ok(match v.kind() {
        ValueKind::Bool => Value::from(v.is_true() as i64),
        ValueKind::Number if v.is_integer() => v.clone(),
        ValueKind::Number => match f64::try_from(v.clone()) {
            Ok(f) if f.is_finite() => int_of_float(f),
            _ => fallback(),
        },
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            match py_int(s, base) {
                Some(n) => Value::from(n),
                None => match py_float_parse(s) {
                    Some(f) if f.is_finite() => int_of_float(f),
                    _ => fallback(),
                },
            }
        }
        _ => fallback(),
    })
}

/// Jinja2's `float`: `default` (0.0) when the value is not a number.
pub(super) fn to_float(
    state: &State,
    v: &Value,
    default: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    require_defined(state, v)?;
    let default = default.or(kwargs.get("default")?);
    kwargs.assert_all_used()?;
    let parsed = match v.kind() {
        ValueKind::Bool => Some(v.is_true() as i64 as f64),
        ValueKind::Number => f64::try_from(v.clone()).ok(),
        ValueKind::String => py_float_parse(v.as_str().unwrap_or_default()),
        _ => None,
    };
    Ok(match parsed {
        Some(f) => Value::from(f),
        None => default.unwrap_or(Value::from(0.0)),
    })
}

/// Jinja2's `replace`, with its `count` argument.
pub(super) fn replace(s: String, old: String, new: String, count: Option<usize>) -> String {
    match count {
        Some(n) => s.replacen(&old, &new, n),
        None => s.replace(&old, &new),
    }
}

/// Jinja2's `truncate(length=255, killwords=False, end='...', leeway=5)`.
pub(super) fn truncate(
    s: String,
    length: Option<usize>,
    killwords: Option<bool>,
    rest: Rest<Value>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let length = length.or(kwargs.get("length")?).unwrap_or(255);
    let killwords = killwords.or(kwargs.get("killwords")?).unwrap_or(false);
    // `end` and `leeway` may come third and fourth, positionally.
    let positional_end = rest.first().and_then(|v| v.as_str().map(str::to_string));
    let positional_leeway = rest.get(1).and_then(minijinja::Value::as_usize);
    if rest.len() > 2 {
        return Err(err("truncate: too many arguments"));
    }
    let end = positional_end
        .or(kwargs.get("end")?)
        .unwrap_or_else(|| "...".into());
    let leeway = positional_leeway.or(kwargs.get("leeway")?).unwrap_or(5);
    kwargs.assert_all_used()?;
    let chars: Vec<char> = s.chars().collect();
    let end_len = end.chars().count();
    if length < end_len {
        return Err(err("truncate: expected length >= the length of end"));
    }
    if chars.len() <= length.saturating_add(leeway) {
        return Ok(s);
    }
    let head: String = chars[..length - end_len].iter().collect();
    if killwords {
        return Ok(head + &end);
    }
    let head = match head.rfind(' ') {
        Some(i) => head[..i].to_string(),
        None => head,
    };
    Ok(head + &end)
}

/// Python's `str.center(width)`.
pub(super) fn center(s: String, width: Option<usize>) -> Result<String, Error> {
    let width = width.unwrap_or(80);
    let len = s.chars().count();
    if width <= len {
        return Ok(s);
    }
    super::bounds::check_width("center", width)?;
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    Ok(format!(
        "{}{s}{}",
        " ".repeat(left),
        " ".repeat(marg - left)
    ))
}

/// The `format` filter (Python's `'%d' % x` is rewritten to it), with
/// printf widths and precisions bounded, then minijinja's own.
pub(super) fn format(state: &State, fmt: Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    if let Some(f) = fmt.as_str() {
        let values: Vec<Value> = args
            .0
            .iter()
            .cloned()
            .map(ValueOrKwargs::into_value)
            .collect();
        printf_widths(f, &values)?;
    }
    // minijinja's filter wants a state of its own; a blank one differs
    // only in what it never reads here (blocks, macros).
    let tmpl = state.env().template_from_str("")?;
    let mut own = tmpl.new_state();
    minijinja::filters::format(&mut own, &fmt, args)
}

/// Every width and precision of a printf format, literal or `*` (taken
/// from `args` in order), checked against [`super::bounds::MAX_WIDTH`].
fn printf_widths(fmt: &str, args: &[Value]) -> Result<(), Error> {
    let b = fmt.as_bytes();
    let mut i = 0;
    let mut arg = 0;
    let number = |i: &mut usize, arg: &mut usize| -> Result<(), Error> {
        if b.get(*i) == Some(&b'*') {
            *i += 1;
            let n = args
                .get(*arg)
                .and_then(|v| i64::try_from(v.clone()).ok())
                .unwrap_or(0);
            *arg += 1;
            super::bounds::check_width(
                "format",
                n.unsigned_abs().try_into().unwrap_or(usize::MAX),
            )?;
            return Ok(());
        }
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        // `start` is past the end after an unclosed `%(`: no digits then.
        let n = fmt
            .get(start..*i)
            .and_then(|d| d.parse::<usize>().ok())
            .unwrap_or(if *i > start { usize::MAX } else { 0 });
        super::bounds::check_width("format", n).map(|_| ())
    };
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        i += 1;
        if b.get(i) == Some(&b'%') {
            i += 1;
            continue;
        }
        if b.get(i) == Some(&b'(') {
            while i < b.len() && b[i] != b')' {
                i += 1;
            }
            i = (i + 1).min(b.len());
        }
        while b.get(i).is_some_and(|c| b"-#0 +".contains(c)) {
            i += 1;
        }
        number(&mut i, &mut arg)?;
        if b.get(i) == Some(&b'.') {
            i += 1;
            number(&mut i, &mut arg)?;
        }
        arg += 1;
    }
    Ok(())
}

/// Widths and precisions in the `{...:spec}` fields of a `str.format`
/// string. A width taken from an argument (`{:>{}}`, a field nested in a
/// field) is checked against every integer argument.
pub(super) fn str_format_widths(fmt: &str, args: &[Value]) -> Result<(), Error> {
    let mut depth = 0usize;
    let mut nested = false;
    let mut in_spec = false;
    let mut digits = String::new();
    let check = |digits: &mut String| -> Result<(), Error> {
        if !digits.is_empty() {
            super::bounds::check_width("format", digits.parse().unwrap_or(usize::MAX))?;
            digits.clear();
        }
        Ok(())
    };
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // `{{` and `}}` outside a field are literal braces.
            '{' | '}' if depth == 0 && chars.peek() == Some(&c) => {
                chars.next();
            }
            '{' => {
                depth += 1;
                nested |= depth > 1;
                check(&mut digits)?;
            }
            '}' => {
                depth = depth.saturating_sub(1);
                in_spec = false;
                check(&mut digits)?;
            }
            ':' if depth == 1 => in_spec = true,
            c if in_spec && c.is_ascii_digit() => digits.push(c),
            _ => check(&mut digits)?,
        }
    }
    check(&mut digits)?;
    if nested {
        for a in args {
            if let Ok(n) = i64::try_from(a.clone()) {
                super::bounds::check_width(
                    "format",
                    n.unsigned_abs().try_into().unwrap_or(usize::MAX),
                )?;
            }
        }
    }
    Ok(())
}

/// Python's `str.splitlines()`.
fn py_splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            lines.push(&s[start..i]);
            let mut next = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = chars.peek() {
                    chars.next();
                    next = j + 1;
                }
            }
            start = next;
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// Jinja2's `indent` exactly: minijinja's drops the text's trailing
/// newline, which shifts the lines after `{{ x | to_nice_yaml | indent(2) }}`.
pub(super) fn indent(
    s: String,
    width: Option<Value>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let width = width.or(kwargs.get("width")?);
    let first = first.or(kwargs.get("first")?).unwrap_or(false);
    let blank = blank.or(kwargs.get("blank")?).unwrap_or(false);
    kwargs.assert_all_used()?;
    let indention = match &width {
        None => "    ".to_string(),
        Some(w) if w.kind() == ValueKind::String => w.as_str().unwrap_or_default().to_string(),
        Some(w) => {
            let n = usize::try_from(w.clone())
                .map_err(|_| err("indent: width must be a number or a string"))?;
            super::bounds::check_width("indent", n)?;
            " ".repeat(n)
        }
    };
    if indention.len().saturating_mul(s.matches('\n').count() + 1) > 64 << 20 {
        return Err(err("indent: the indented text would be too large"));
    }
    // Jinja2 appends a newline so that splitlines keeps a trailing one.
    let text = format!("{s}\n");
    let lines = py_splitlines(&text);
    let mut rv = if blank {
        lines.join(&format!("\n{indention}"))
    } else {
        let mut it = lines.into_iter();
        let mut rv = it.next().unwrap_or_default().to_string();
        let rest: Vec<String> = it
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{indention}{l}")
                }
            })
            .collect();
        if !rest.is_empty() {
            rv.push('\n');
            rv.push_str(&rest.join("\n"));
        }
        rv
    };
    if first {
        rv = format!("{indention}{rv}");
    }
    Ok(rv)
}

/// Items as Python iterates them: list items, dict keys, characters.
pub(super) fn sequence_items(state: &State, v: &Value, filter: &str) -> Result<Vec<Value>, Error> {
    if v.kind() == ValueKind::String {
        return Ok(v
            .as_str()
            .unwrap_or_default()
            .chars()
            .map(|c| Value::from(c.to_string()))
            .collect());
    }
    items(state, v, filter)
}

/// markupsafe's `escape`, as Jinja2 uses it (`'` becomes `&#39;`, `/` is
/// left alone), marked safe.
pub(super) fn escape(state: &State, v: &Value) -> Result<Value, Error> {
    require_defined(state, v)?;
    if v.is_safe() {
        return Ok(v.clone());
    }
    let text = py_text(v);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Ok(Value::from_safe_string(out))
}

/// Jinja2's `tojson`: sorted keys, ASCII only, and `<`, `>`, `&`, `'`
/// escaped so the result is safe inside HTML and single-quoted attributes.
pub(super) fn tojson(
    state: &State,
    v: &Value,
    indent: Option<usize>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    require_defined(state, v)?;
    let indent = indent.or(kwargs.get("indent")?);
    kwargs.assert_all_used()?;
    let style = JsonStyle {
        indent,
        sort_keys: true,
        ensure_ascii: true,
        item_sep: if indent.is_some() { "," } else { ", " },
        key_sep: ": ",
    };
    Ok(json_dumps(&json(v), &style)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027"))
}
