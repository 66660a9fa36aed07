//! Python methods on values (`'a.b'.rsplit('.', 1)`, `'7'.zfill(3)`) that
//! minijinja-contrib's pycompat layer lacks; everything else is passed on
//! to pycompat. Mutating methods (`list.append`, `dict.update`) cannot be
//! offered: template values are immutable here.

use minijinja::value::{from_args, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

pub(super) fn unknown_method_callback(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        if let Some(rv) = string_method(s, method, args)? {
            return Ok(rv);
        }
    }
    if value.kind() == ValueKind::Seq && method == "index" {
        let (needle,): (Value,) = from_args(args)?;
        return match value.try_iter()?.position(|v| v == needle) {
            Some(i) => Ok(Value::from(i)),
            None => Err(Error::new(
                ErrorKind::InvalidOperation,
                "list.index(x): x not in list",
            )),
        };
    }
    if value.kind() == ValueKind::Map && method == "copy" {
        let () = from_args(args)?;
        return Ok(value.clone());
    }
    if method == "format" {
        if let Some(s) = value.as_str() {
            super::jinja::str_format_widths(s, args)?;
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

fn pad(s: &str, width: usize, fill: Option<&str>, left: bool) -> Result<String, Error> {
    let fill = fill.unwrap_or(" ");
    let mut chars = fill.chars();
    let (Some(f), None) = (chars.next(), chars.next()) else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "the fill character must be exactly one character long",
        ));
    };
    let len = s.chars().count();
    if width <= len {
        return Ok(s.to_string());
    }
    super::bounds::check_width(if left { "rjust" } else { "ljust" }, width)?;
    let padding: String = std::iter::repeat_n(f, width - len).collect();
    Ok(if left {
        format!("{padding}{s}")
    } else {
        format!("{s}{padding}")
    })
}

fn string_method(s: &str, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    Ok(Some(match method {
        "rsplit" => {
            let (sep, maxsplit): (Option<Value>, Option<i64>) = from_args(args)?;
            let sep = sep.filter(|v| !v.is_none());
            let maxsplit = maxsplit.filter(|m| *m >= 0).map(|m| m as usize);
            let mut parts: Vec<String> = match (sep.as_ref().and_then(|v| v.as_str()), maxsplit) {
                (Some(sep), Some(n)) => s.rsplitn(n + 1, sep).map(String::from).collect(),
                (Some(sep), None) => s.rsplit(sep).map(String::from).collect(),
                (None, max) => {
                    // Whitespace splitting drops empty pieces, as in Python.
                    let words: Vec<&str> = s.split_whitespace().collect();
                    match max {
                        Some(n) if n < words.len() => {
                            let keep = words.len() - n;
                            let head_end = nth_word_end(s, keep);
                            let mut out: Vec<String> = words[keep..]
                                .iter()
                                .rev()
                                .map(std::string::ToString::to_string)
                                .collect();
                            out.push(s[..head_end].trim_end().to_string());
                            out
                        }
                        _ => words
                            .iter()
                            .rev()
                            .map(std::string::ToString::to_string)
                            .collect(),
                    }
                }
            };
            parts.reverse();
            Value::from(parts)
        }
        "zfill" => {
            let (width,): (usize,) = from_args(args)?;
            let (sign, digits) = match s.strip_prefix(['-', '+']) {
                Some(rest) => (&s[..1], rest),
                None => ("", s),
            };
            let len = s.chars().count();
            if width <= len {
                Value::from(s)
            } else {
                super::bounds::check_width("zfill", width)?;
                Value::from(format!("{sign}{}{digits}", "0".repeat(width - len)))
            }
        }
        "ljust" | "rjust" | "center" => {
            let (width, fill): (usize, Option<String>) = from_args(args)?;
            match method {
                "ljust" => Value::from(pad(s, width, fill.as_deref(), false)?),
                "rjust" => Value::from(pad(s, width, fill.as_deref(), true)?),
                _ => {
                    let len = s.chars().count();
                    if width <= len {
                        Value::from(s)
                    } else {
                        super::bounds::check_width("center", width)?;
                        let marg = width - len;
                        let left = marg / 2 + (marg & width & 1);
                        let f = fill.unwrap_or_else(|| " ".into());
                        Value::from(format!("{}{s}{}", f.repeat(left), f.repeat(marg - left)))
                    }
                }
            }
        }
        "index" | "rindex" => {
            let (sub,): (String,) = from_args(args)?;
            let found = if method == "index" {
                s.find(&sub)
            } else {
                s.rfind(&sub)
            };
            match found {
                Some(byte) => Value::from(s[..byte].chars().count()),
                None => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "str.index(): substring not found",
                    ))
                }
            }
        }
        "partition" | "rpartition" => {
            let (sep,): (String,) = from_args(args)?;
            let found = if method == "partition" {
                s.find(&sep)
            } else {
                s.rfind(&sep)
            };
            let parts = match found {
                Some(i) => [&s[..i], sep.as_str(), &s[i + sep.len()..]],
                None if method == "partition" => [s, "", ""],
                None => ["", "", s],
            };
            Value::from(parts.iter().map(|p| Value::from(*p)).collect::<Vec<_>>())
        }
        "swapcase" => {
            let () = from_args(args)?;
            Value::from(
                s.chars()
                    .flat_map(|c| {
                        if c.is_uppercase() {
                            c.to_lowercase().collect::<Vec<_>>()
                        } else {
                            c.to_uppercase().collect::<Vec<_>>()
                        }
                    })
                    .collect::<String>(),
            )
        }
        "casefold" => {
            let () = from_args(args)?;
            Value::from(s.to_lowercase())
        }
        _ => return Ok(None),
    }))
}

/// Byte offset just past the `n`-th whitespace-separated word of `s`.
fn nth_word_end(s: &str, n: usize) -> usize {
    let mut count = 0;
    let mut in_word = false;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            if in_word {
                count += 1;
                if count == n {
                    return i;
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    s.len()
}

#[cfg(test)]
mod unit {
    use crate::template::testutil::e;
    use serde_json::json;

    #[test]
    fn python_string_methods() {
        assert_eq!(e("'a.b.c'.rsplit('.', 1)"), json!(["a.b", "c"]));
        assert_eq!(e("'a.b.c'.rsplit('.')"), json!(["a", "b", "c"]));
        assert_eq!(e("' a  b c '.rsplit(None, 1)"), json!([" a  b", "c"]));
        assert_eq!(e("'7'.zfill(3)"), json!("007"));
        assert_eq!(e("'-7'.zfill(3)"), json!("-07"));
        assert_eq!(e("'ab'.ljust(4, '.')"), json!("ab.."));
        assert_eq!(e("'ab'.rjust(4)"), json!("  ab"));
        assert_eq!(e("'ab'.center(5, '*')"), json!("**ab*"));
        assert_eq!(e("'abcb'.index('b')"), json!(1));
        assert_eq!(e("'abcb'.rindex('b')"), json!(3));
        assert_eq!(e("'k=v=w'.partition('=')"), json!(["k", "=", "v=w"]));
        assert_eq!(e("'k=v=w'.rpartition('=')"), json!(["k=v", "=", "w"]));
        assert_eq!(e("'aB'.swapcase()"), json!("Ab"));
        assert_eq!(e("[1, 2, 3].index(2)"), json!(1));
        assert_eq!(e("'a,b'.split(',')"), json!(["a", "b"]));
    }
}
