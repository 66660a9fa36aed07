//! Python's text forms of values: `str()`, `repr()` and `json.dumps()`.
//!
//! Ansible templates print values the way Python does (`True`, `None`,
//! `['a', 1]`), and `to_json` writes what Python's `json` module writes
//! (`{"a": 1}` with a space after `:` and `,`). Playbooks and the files they
//! produce are compared against Ansible's output, so these forms matter.

use std::fmt::Write;

use minijinja::value::{Value, ValueKind};

/// Python's `str(value)`, except that `None` is empty: Ansible's finalize
/// hook prints `{{ none }}` as nothing, not `None`.
pub fn py_str(v: &Value) -> String {
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => String::new(),
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => py_repr(v),
    }
}

/// Python's `repr(value)`: how a value looks inside a printed list or dict.
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v);
    out
}

fn write_repr(out: &mut String, v: &Value) {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&py_number(v)),
        ValueKind::String => write_str_repr(out, v.as_str().unwrap_or_default()),
        ValueKind::Bytes => {
            out.push('b');
            let text = String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned();
            write_str_repr(out, &text);
        }
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(iter) = v.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &item);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(iter) = v.try_iter() {
                for (i, key) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(out, &key);
                    out.push_str(": ");
                    write_repr(out, &v.get_item(&key).unwrap_or_default());
                }
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{v}");
        }
    }
}

/// A number as Python prints it: floats always carry a `.` or an exponent.
pub fn py_number(v: &Value) -> String {
    if v.is_integer() {
        return v.to_string();
    }
    match f64::try_from(v.clone()) {
        Ok(f) => py_float(f),
        Err(_) => v.to_string(),
    }
}

/// Python's `repr(float)`.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Python switches to exponent form outside [1e-4, 1e16) and always
        // signs the exponent with at least two digits.
        let s = format!("{f:e}");
        if let Some((mant, exp)) = s.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            return format!("{mant}e{sign}{digits:0>2}");
        }
        return s;
    }
    // Rust's shortest round-trip form matches Python's repr for this range.
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn write_str_repr(out: &mut String, s: &str) {
    // Python prefers single quotes and only switches when that avoids escapes.
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !py_printable(c) => {
                let n = c as u32;
                let _ = if n <= 0xff {
                    write!(out, "\\x{n:02x}")
                } else if n <= 0xffff {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable()` for one character, from the Unicode
/// categories it rejects: controls, format characters, separators other
/// than the space, and private use. (Unassigned code points, which Python
/// also escapes, are not known here and print as they are.)
fn py_printable(c: char) -> bool {
    let n = c as u32;
    !matches!(n,
        0x00..=0x1f | 0x7f..=0xa0 | 0xad
        | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x890..=0x891 | 0x8e2 | 0x1680 | 0x180e
        | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f
        | 0x3000 | 0xe000..=0xf8ff | 0xfeff | 0xfff9..=0xfffb
        | 0x110bd | 0x110cd | 0x13430..=0x1343f | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a
        | 0xe0001 | 0xe0020..=0xe007f | 0xf0000..=0x10ffff)
}

/// Options of Python's `json.dumps` that Ansible's filters use.
#[derive(Debug, Clone)]
pub struct JsonStyle {
    /// `None` writes everything on one line.
    pub indent: Option<usize>,
    pub sort_keys: bool,
    /// Escape non-ASCII as `\uXXXX` (Python's default).
    pub ensure_ascii: bool,
    /// Separator between items; Python uses `", "` on one line and `","`
    /// when indenting.
    pub item_sep: &'static str,
    pub key_sep: &'static str,
}

impl JsonStyle {
    /// `json.dumps(x)`.
    pub fn compact() -> Self {
        JsonStyle {
            indent: None,
            sort_keys: false,
            ensure_ascii: true,
            item_sep: ", ",
            key_sep: ": ",
        }
    }
}

/// `json.dumps(value, ...)` for a JSON value.
pub fn json_dumps(v: &serde_json::Value, style: &JsonStyle) -> String {
    let mut out = String::new();
    write_json(&mut out, v, style, 0);
    out
}

fn newline(out: &mut String, style: &JsonStyle, depth: usize) {
    if let Some(n) = style.indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', n * depth));
    }
}

fn write_json(out: &mut String, v: &serde_json::Value, style: &JsonStyle, depth: usize) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                // Python writes floats in repr form, and NaN as `NaN`.
                if f.is_nan() {
                    out.push_str("NaN");
                } else if f.is_infinite() {
                    out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
                } else {
                    out.push_str(&py_float(f));
                }
            } else {
                let _ = write!(out, "{n}");
            }
        }
        J::String(s) => write_json_str(out, s, style.ensure_ascii),
        J::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(style.item_sep);
                }
                newline(out, style, depth + 1);
                write_json(out, item, style, depth + 1);
            }
            newline(out, style, depth);
            out.push(']');
        }
        J::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            if style.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(style.item_sep);
                }
                newline(out, style, depth + 1);
                write_json_str(out, k, style.ensure_ascii);
                out.push_str(style.key_sep);
                write_json(out, item, style, depth + 1);
            }
            newline(out, style, depth);
            out.push('}');
        }
    }
}

fn write_json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn repr_matches_python() {
        let v = crate::template::from_json(&serde_json::json!([1, "a", true, null, {"k": 1.5}]));
        assert_eq!(py_repr(&v), "[1, 'a', True, None, {'k': 1.5}]");
        assert_eq!(py_repr(&Value::from("it's")), "\"it's\"");
        assert_eq!(py_str(&Value::from(())), "");
        // Python escapes what str.isprintable() rejects.
        let v = crate::template::from_json(&serde_json::json!(["\u{85}\u{2028}\u{a0}é\t"]));
        assert_eq!(py_repr(&v), "['\\x85\\u2028\\xa0é\\t']");
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(1e20), "1e+20");
        assert_eq!(py_float(1.5e-7), "1.5e-07");
    }

    #[test]
    fn json_matches_python() {
        let v = serde_json::json!({"b": [1, 2], "a": "é"});
        assert_eq!(
            json_dumps(&v, &JsonStyle::compact()),
            r#"{"b": [1, 2], "a": "\u00e9"}"#
        );
        let nice = JsonStyle {
            indent: Some(4),
            sort_keys: true,
            ensure_ascii: true,
            item_sep: ",",
            key_sep: ": ",
        };
        assert_eq!(
            json_dumps(&v, &nice),
            "{\n    \"a\": \"\\u00e9\",\n    \"b\": [\n        1,\n        2\n    ]\n}"
        );
    }
}
