//! Ansible's Jinja tests: `version` (loose and semantic comparison), the
//! regex tests (`match`, `search`, `regex`), task-result tests (`failed`,
//! `changed`, `skipped`, `succeeded` and their aliases), `truthy`/`falsy`,
//! set tests (`subset`, `superset`, `contains`, `any`, `all`) and path tests
//! on the controller (`file`, `directory`, `exists`, `link`, `abs`, ...).
//!
//! minijinja's builtins already cover `defined`, `undefined`, `none`,
//! `string`, `number`, `mapping`, `sequence`, `in`, `eq` and friends. Every
//! test here is also registered as `ansible.builtin.<name>`.

use std::cmp::Ordering;
use std::path::Path;

use minijinja::value::{Kwargs, StringInput, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

pub fn register(env: &mut Environment<'static>) {
    add(env, &["version", "version_compare"], version);
    add(
        env,
        &["match"],
        |s: &State, v: &Value, p: String, k: Kwargs| regex_test(s, v, &p, k, Some("match")),
    );
    add(
        env,
        &["search"],
        |s: &State, v: &Value, p: String, k: Kwargs| regex_test(s, v, &p, k, Some("search")),
    );
    add(
        env,
        &["regex"],
        |s: &State, v: &Value, p: String, k: Kwargs| regex_test(s, v, &p, k, None),
    );
    add(env, &["failed", "failure"], failed);
    add(
        env,
        &["succeeded", "success", "successful"],
        |s: &State, v: &Value| failed(s, v).map(|f| !f),
    );
    add(env, &["changed", "change"], changed);
    add(env, &["skipped", "skip"], |s: &State, v: &Value| {
        result_flag(s, v, "skipped", "skipped")
    });
    add(env, &["unreachable"], |s: &State, v: &Value| {
        result_flag(s, v, "unreachable", "unreachable")
    });
    add(env, &["reachable"], |s: &State, v: &Value| {
        result_flag(s, v, "unreachable", "reachable").map(|u| !u)
    });
    add(env, &["finished"], |s: &State, v: &Value| {
        result_dict(s, v, "finished")?;
        Ok(v.get_attr("finished")?.as_i64().unwrap_or(1) == 1)
    });
    add(env, &["started"], |s: &State, v: &Value| {
        result_dict(s, v, "started")?;
        Ok(v.get_attr("started")?.as_i64().unwrap_or(1) == 1)
    });
    add(env, &["truthy"], |s: &State, v: &Value, k: Kwargs| {
        truthy(s, v, k)
    });
    add(env, &["falsy"], |s: &State, v: &Value, k: Kwargs| {
        truthy(s, v, k).map(|t| !t)
    });
    add(env, &["subset"], |s: &State, a: &Value, b: &Value| {
        Ok::<_, Error>(is_subset(&items(s, a, "subset")?, &items(s, b, "subset")?))
    });
    add(env, &["superset"], |s: &State, a: &Value, b: &Value| {
        Ok::<_, Error>(is_subset(
            &items(s, b, "superset")?,
            &items(s, a, "superset")?,
        ))
    });
    add(
        env,
        &["contains"],
        |s: &State, seq: &Value, item: &Value| {
            Ok::<_, Error>(items(s, seq, "contains")?.contains(item))
        },
    );
    add(env, &["any"], |s: &State, seq: &Value| {
        Ok::<_, Error>(items(s, seq, "any")?.iter().any(Value::is_true))
    });
    add(env, &["all"], |s: &State, seq: &Value| {
        Ok::<_, Error>(items(s, seq, "all")?.iter().all(Value::is_true))
    });
    strict_builtin_tests(env);
    // Jinja2's `sequence` is anything with a length and indexing (strings
    // and dicts too); `iterable` excludes none. minijinja's differ.
    env.add_test("sequence", |v: &Value| {
        matches!(
            v.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::String | ValueKind::Bytes
        )
    });
    // Iterating an undefined value fails in Jinja2, so does this test.
    env.add_test("iterable", |v: &Value| {
        defined(v)?;
        Ok::<_, Error>(matches!(
            v.kind(),
            ValueKind::Seq
                | ValueKind::Map
                | ValueKind::String
                | ValueKind::Bytes
                | ValueKind::Iterable
        ))
    });
    add(env, &["nan"], |v: &Value| {
        f64::try_from(v.clone()).is_ok_and(f64::is_nan)
    });
    add(env, &["file", "is_file"], |p: String| path(&p).is_file());
    add(env, &["directory", "is_dir"], |p: String| path(&p).is_dir());
    add(env, &["exists"], |p: String| path(&p).exists());
    add(env, &["link", "is_link"], |p: String| path(&p).is_symlink());
    add(env, &["link_exists"], |p: String| {
        std::fs::symlink_metadata(path(&p)).is_ok()
    });
    add(env, &["abs", "is_abs"], |p: String| {
        Path::new(&p).is_absolute()
    });
    add(
        env,
        &["same_file", "is_same_file"],
        |a: String, b: String| match (
            std::fs::canonicalize(path(&a)),
            std::fs::canonicalize(path(&b)),
        ) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        },
    );
}

/// Jinja2's tests that compute with the value (`x is even`, `x is eq 1`,
/// `x is in l`, `x is lower`) fail on an undefined value, as Ansible's
/// do (recorded in `tests/fixtures/undefined/cases/tests_on_undefined.yml`);
/// minijinja's answer false. Tests of the value's kind (`is number`,
/// `is none`, `is defined`, `is sameas`) still see it without failing.
fn strict_builtin_tests(env: &mut Environment<'static>) {
    use minijinja::tests as t;
    fn cmp(env: &mut Environment<'static>, names: &[&'static str], f: fn(&Value, &Value) -> bool) {
        for name in names {
            env.add_test(*name, move |v: &Value, other: &Value| {
                defined(v)?;
                Ok::<_, Error>(f(v, other))
            });
        }
    }
    cmp(env, &["eq", "equalto", "=="], t::is_eq);
    cmp(env, &["ne", "!="], t::is_ne);
    cmp(env, &["lt", "lessthan", "<"], t::is_lt);
    cmp(env, &["le", "<="], t::is_le);
    cmp(env, &["gt", "greaterthan", ">"], t::is_gt);
    cmp(env, &["ge", ">="], t::is_ge);
    cmp(env, &["divisibleby"], t::is_divisibleby);
    env.add_test("in", |s: &State, v: &Value, other: &Value| {
        defined(v)?;
        t::is_in(s, v, other)
    });
    env.add_test("odd", |v: &Value| {
        defined(v)?;
        Ok::<_, Error>(t::is_odd(v.clone()))
    });
    env.add_test("even", |v: &Value| {
        defined(v)?;
        Ok::<_, Error>(t::is_even(v.clone()))
    });
    env.add_test("lower", |v: &Value| {
        defined(v)?;
        Ok::<_, Error>(t::is_lower(v))
    });
    env.add_test("upper", |v: &Value| {
        defined(v)?;
        Ok::<_, Error>(t::is_upper(v))
    });
}

/// Fails on an undefined value with minijinja's own error, which names it.
fn defined(v: &Value) -> Result<(), Error> {
    if v.is_undefined() {
        // Looking into an undefined value is minijinja's undefined error,
        // carrying where the value came from (the variable's name).
        v.get_attr("value")?;
        return Err(Error::new(ErrorKind::UndefinedError, "undefined value"));
    }
    Ok(())
}

/// Register a test under each name and its `ansible.builtin.` FQCN.
fn add<F, Rv, Args>(env: &mut Environment<'static>, names: &[&'static str], f: F)
where
    F: minijinja::functions::Function<Rv, Args> + Clone,
    Rv: minijinja::value::FunctionResult,
    Args: for<'a> minijinja::value::FunctionArgs<'a>,
{
    for name in names {
        env.add_test(*name, f.clone());
        env.add_test(format!("ansible.builtin.{name}"), f.clone());
    }
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn require_defined(state: &State, v: &Value) -> Result<(), Error> {
    if v.is_undefined() {
        StringInput::new(state, v)?;
    }
    Ok(())
}

fn items(state: &State, v: &Value, test: &str) -> Result<Vec<Value>, Error> {
    require_defined(state, v)?;
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => Ok(v.try_iter()?.collect()),
        // A string is a sequence of characters in Python.
        ValueKind::String => Ok(v
            .as_str()
            .unwrap_or_default()
            .chars()
            .map(|c| Value::from(c.to_string()))
            .collect()),
        _ => Err(err(format!(
            "the '{test}' test expects a list, got {}",
            v.kind()
        ))),
    }
}

fn is_subset(a: &[Value], b: &[Value]) -> bool {
    a.iter().all(|x| b.contains(x))
}

/// `~` expands to the home directory, as `os.path.expanduser` does.
fn path(p: &str) -> std::path::PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Path::new(&home).join(rest);
        }
    }
    Path::new(p).to_path_buf()
}

/// One component of a `LooseVersion`: numbers compare as numbers, the rest
/// as text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Num(u128),
    Text(String),
}

/// distutils' `LooseVersion` split: runs of digits, runs of lower-case
/// letters, and whatever lies between them; dots only separate.
fn loose_parts(v: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let chars: Vec<char> = v.chars().collect();
    let mut i = 0;
    let mut other = String::new();
    let flush = |other: &mut String, parts: &mut Vec<Part>| {
        if !other.is_empty() {
            parts.push(Part::Text(std::mem::take(other)));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            flush(&mut other, &mut parts);
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            parts.push(match digits.parse::<u128>() {
                Ok(n) => Part::Num(n),
                Err(_) => Part::Text(digits),
            });
        } else if c.is_ascii_lowercase() {
            flush(&mut other, &mut parts);
            let start = i;
            while i < chars.len() && chars[i].is_ascii_lowercase() {
                i += 1;
            }
            parts.push(Part::Text(chars[start..i].iter().collect()));
        } else if c == '.' {
            flush(&mut other, &mut parts);
            i += 1;
        } else {
            other.push(c);
            i += 1;
        }
    }
    flush(&mut other, &mut parts);
    parts
}

fn compare_loose(a: &str, b: &str) -> Result<Ordering, Error> {
    let (pa, pb) = (loose_parts(a), loose_parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (x, y) {
            (Part::Num(m), Part::Num(n)) => m.cmp(n),
            (Part::Text(m), Part::Text(n)) => m.cmp(n),
            // Python 3 refuses to order int against str; so does Ansible.
            _ => {
                return Err(err(
                    "version: cannot compare a number with text in these versions (try version_type='semver')",
                ))
            }
        };
        if ord != Ordering::Equal {
            return Ok(ord);
        }
    }
    Ok(pa.len().cmp(&pb.len()))
}

/// Semantic versioning 2.0 precedence (build metadata ignored).
fn compare_semver(a: &str, b: &str) -> Result<Ordering, Error> {
    fn parse(v: &str) -> Option<(Vec<u64>, Vec<String>)> {
        let v = v.split('+').next()?;
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, p.split('.').map(str::to_string).collect()),
            None => (v, Vec::new()),
        };
        let nums: Option<Vec<u64>> = core.split('.').map(|n| n.parse().ok()).collect();
        let nums = nums?;
        (nums.len() == 3).then_some((nums, pre))
    }
    let (Some((na, pa)), Some((nb, pb))) = (parse(a), parse(b)) else {
        return Err(err(
            "version: not a valid semantic version (MAJOR.MINOR.PATCH)",
        ));
    };
    let ord = na.cmp(&nb);
    if ord != Ordering::Equal {
        return Ok(ord);
    }
    Ok(match (pa.is_empty(), pb.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            for (x, y) in pa.iter().zip(pb.iter()) {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return Ok(ord);
                }
            }
            pa.len().cmp(&pb.len())
        }
    })
}

/// `'7.17.9' is version('7.10', '>=')`, Ansible's `version` test.
fn version(
    state: &State,
    value: &Value,
    other: &Value,
    op: Option<String>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    require_defined(state, value)?;
    require_defined(state, other)?;
    let strict = kwargs.get::<Option<bool>>("strict")?;
    let version_type = kwargs.get::<Option<String>>("version_type")?;
    let op = match op {
        Some(op) => op,
        None => kwargs
            .get::<Option<String>>("operator")?
            .unwrap_or_else(|| "eq".into()),
    };
    kwargs.assert_all_used()?;
    let a = super::pyfmt::py_str(value);
    let b = super::pyfmt::py_str(other);
    if a.is_empty() {
        return Err(err("version: input version value cannot be empty"));
    }
    if b.is_empty() {
        return Err(err(
            "version: version parameter to compare against cannot be empty",
        ));
    }
    if strict.is_some() && version_type.is_some() {
        return Err(err(
            "version: cannot specify both 'strict' and 'version_type'",
        ));
    }
    let kind = match (strict, version_type.as_deref()) {
        (Some(true), _) => "strict",
        (_, Some(t)) => t,
        _ => "loose",
    };
    let ord = match kind {
        "loose" | "strict" | "pep440" => compare_loose(&a, &b)?,
        "semver" | "semantic" => compare_semver(&a, &b)?,
        other => {
            return Err(err(format!(
                "version: invalid version type '{other}', must be one of loose, strict, semver, semantic, pep440"
            )))
        }
    };
    Ok(match op.as_str() {
        "==" | "=" | "eq" => ord == Ordering::Equal,
        "!=" | "<>" | "ne" => ord != Ordering::Equal,
        "<" | "lt" => ord == Ordering::Less,
        "<=" | "le" => ord != Ordering::Greater,
        ">" | "gt" => ord == Ordering::Greater,
        ">=" | "ge" => ord != Ordering::Less,
        other => {
            return Err(err(format!(
                "version: invalid operator '{other}', must be one of ==, =, eq, <, lt, <=, le, >, gt, >=, ge, !=, <>, ne"
            )))
        }
    })
}

/// Ansible's `regex` test; `match` anchors at the start, `search` does not.
fn regex_test(
    state: &State,
    value: &Value,
    pattern: &str,
    kwargs: Kwargs,
    fixed: Option<&str>,
) -> Result<bool, Error> {
    require_defined(state, value)?;
    let flag = |name: &str| -> Result<bool, Error> {
        Ok(kwargs
            .get::<Option<Value>>(name)?
            .is_some_and(|v| v.is_true()))
    };
    let ignorecase = flag("ignorecase")?;
    let multiline = flag("multiline")?;
    let match_type = match fixed {
        Some(t) => t.to_string(),
        None => kwargs
            .get::<Option<String>>("match_type")?
            .unwrap_or_else(|| "search".into()),
    };
    kwargs.assert_all_used()?;
    let anchored = match match_type.as_str() {
        "search" => pattern.to_string(),
        "match" => format!(r"\A(?:{pattern})"),
        "fullmatch" => format!(r"\A(?:{pattern})\z"),
        other => {
            return Err(err(format!(
                "regex: match_type must be search, match or fullmatch, not '{other}'"
            )))
        }
    };
    let text = super::pyfmt::py_str(value);
    let re = super::regexes::compile_regex(&match_type, &anchored, ignorecase, multiline, &text)?;
    Ok(re.is_match(&text))
}

fn result_dict(state: &State, v: &Value, test: &str) -> Result<(), Error> {
    require_defined(state, v)?;
    if v.kind() != ValueKind::Map {
        return Err(err(format!(
            "the '{test}' test expects a dictionary (a registered task result)"
        )));
    }
    Ok(())
}

fn result_flag(state: &State, v: &Value, key: &str, test: &str) -> Result<bool, Error> {
    result_dict(state, v, test)?;
    Ok(v.get_attr(key)?.is_true())
}

/// `failed` is the result's `failed` key; a result without one (from a
/// module that only reports `rc`) fails when `rc` is not 0.
fn failed(state: &State, v: &Value) -> Result<bool, Error> {
    result_dict(state, v, "failed")?;
    let f = v.get_attr("failed")?;
    if !f.is_undefined() {
        return Ok(f.is_true());
    }
    let rc = v.get_attr("rc")?;
    Ok(rc.as_i64().is_some_and(|rc| rc != 0))
}

/// `changed` is the `changed` key, or for a loop result whether any item
/// changed.
fn changed(state: &State, v: &Value) -> Result<bool, Error> {
    result_dict(state, v, "changed")?;
    let c = v.get_attr("changed")?;
    if !c.is_undefined() {
        return Ok(c.is_true());
    }
    let results = v.get_attr("results")?;
    if results.kind() == ValueKind::Seq {
        for r in results.try_iter()? {
            if r.kind() == ValueKind::Map && r.get_attr("changed")?.is_true() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// `truthy(convert_bool=True)` applies the `bool` filter's word rules first.
fn truthy(state: &State, v: &Value, kwargs: Kwargs) -> Result<bool, Error> {
    require_defined(state, v)?;
    let convert = kwargs
        .get::<Option<Value>>("convert_bool")?
        .is_some_and(|v| v.is_true());
    kwargs.assert_all_used()?;
    if convert && matches!(v.kind(), ValueKind::String | ValueKind::Number) {
        let s = super::pyfmt::py_str(v).to_lowercase();
        if matches!(s.as_str(), "yes" | "on" | "1" | "true" | "y" | "t" | "1.0") {
            return Ok(true);
        }
        if matches!(s.as_str(), "no" | "off" | "0" | "false" | "n" | "f" | "0.0") {
            return Ok(false);
        }
    }
    Ok(v.is_true())
}

#[cfg(test)]
mod unit {
    use crate::template::testutil::{e, eval};
    use serde_json::json;

    fn t(expr: &str) -> bool {
        match e(expr) {
            serde_json::Value::Bool(b) => b,
            other => panic!("{expr}: not a bool: {other}"),
        }
    }

    #[test]
    fn version_compares_loosely() {
        assert!(t("'7.17.9' is version('7.10', '>=')"));
        assert!(t("'7.17.9' is version('7.10', 'ge')"));
        assert!(t("'7.9' is version('7.10', '<')"));
        assert!(t("'1.0' is version('1.0.0', 'lt')"));
        assert!(t("'2.0' is version('2.0', '==')"));
        assert!(t("'2.0' is version('2.0')"));
        assert!(t("'2.0' is version('2.1', '!=')"));
        assert!(t("'2.0' is version('2.1', '<>')"));
        assert!(t("'1.2.3' is version('1.2.3', operator='le')"));
        assert!(t("'12.04' is version_compare('12.4', '=')"));
        assert!(t(
            "'1.0.0-rc.1' is version('1.0.0', 'lt', version_type='semver')"
        ));
        assert!(t("'7.17.9' is ansible.builtin.version('7.10', 'gt')"));
        assert!(t("3 is version(2, '>')"));
        let err = eval("'1.0' is version('1.0', 'bogus')", json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid operator"), "{err}");
        assert!(eval("'' is version('1.0')", json!({})).is_err());
    }

    #[test]
    fn regex_tests() {
        assert!(!t(
            "'http://example.com/users/1' is match('http://example.com/users/.*/resources')"
        ));
        assert!(t(
            "'http://example.com/users' is match('http://example.com/users')"
        ));
        assert!(!t("'xhttp' is match('http')"));
        assert!(t("'xhttp' is search('http')"));
        assert!(!t("'users/1/resources' is search('/users/.*/resources')"));
        assert!(t("'/users/1/resources' is search('/users/.*/resources')"));
        assert!(t("'ABC' is search('abc', ignorecase=true)"));
        assert!(t("'abc' is regex('b')"));
        assert!(!t("'abc' is regex('b', match_type='match')"));
        assert!(t("'abc' is regex('abc', match_type='fullmatch')"));
        assert!(!t("'a\\nb' is match('^b', multiline=true)"));
        assert!(t("'a\\nb' is search('^b', multiline=true)"));
        // Python's `$` matches before a final newline.
        assert!(t("'ok\\n' is search('ok$')"));
        assert!(t("'ok\\n' is match('ok$')"));
        assert!(!t("'ok\\n' is regex('ok$', match_type='fullmatch')"));
    }

    #[test]
    fn task_result_tests() {
        let vars = json!({
            "ok": {"changed": false, "failed": false, "rc": 0},
            "bad": {"failed": true, "rc": 2},
            "rc_only": {"rc": 1},
            "chg": {"changed": true},
            "skip": {"skipped": true, "changed": false},
            "loop": {"results": [{"changed": false}, {"changed": true}]}
        });
        let check = |expr: &str| eval(expr, vars.clone()).unwrap() == json!(true);
        assert!(check("ok is succeeded"));
        assert!(check("ok is success"));
        assert!(check("ok is not failed"));
        assert!(check("bad is failed"));
        assert!(check("bad is failure"));
        assert!(check("rc_only is failed"));
        assert!(check("chg is changed"));
        assert!(check("chg is change"));
        assert!(check("ok is not changed"));
        assert!(check("loop is changed"));
        assert!(check("skip is skipped"));
        assert!(check("skip is skip"));
        assert!(check("ok is not skipped"));
        assert!(check("ok is ansible.builtin.succeeded"));
        assert!(eval("'x' is failed", json!({})).is_err());
    }

    #[test]
    fn truthiness_and_sets() {
        assert!(t("'false' is truthy"));
        assert!(t("'false' is falsy(convert_bool=true)"));
        assert!(t("'' is falsy"));
        assert!(t("[1, 2] is subset([1, 2, 3])"));
        assert!(!t("[1, 4] is subset([1, 2, 3])"));
        assert!(t("[1, 2, 3] is superset([2])"));
        assert!(t("[1, 2, 3] is contains(2)"));
        assert!(t("[0, 1] is any"));
        assert!(!t("[0, 1] is all"));
        assert!(t("x is not defined"));
        assert!(t("none is none"));
        assert!(t("'abc' is sequence"));
        assert!(t("{'a': 1} is sequence"));
        assert!(!t("1 is sequence"));
        assert!(!t("none is iterable"));
        assert!(t("{} is iterable"));
    }

    #[test]
    fn path_tests() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "x").unwrap();
        let vars = json!({"d": dir.path(), "f": file, "m": dir.path().join("missing")});
        let check = |expr: &str| eval(expr, vars.clone()).unwrap() == json!(true);
        assert!(check("f is file"));
        assert!(check("d is directory"));
        assert!(check("d is not file"));
        assert!(check("f is exists"));
        assert!(check("m is not exists"));
        assert!(check("f is abs"));
        assert!(check("'rel/path' is not abs"));
        assert!(check("f is same_file(f)"));
    }

    #[test]
    fn loose_version_parts() {
        use super::{loose_parts, Part};
        assert_eq!(
            loose_parts("1.2-rc1"),
            vec![
                Part::Num(1),
                Part::Num(2),
                Part::Text("-".into()),
                Part::Text("rc".into()),
                Part::Num(1)
            ]
        );
    }
}
