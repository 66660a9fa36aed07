//! Loose parameter types shared by the built-in modules.
//!
//! Ansible accepts `"yes"`, `"0644"` or `300` as strings as well as typed
//! values, and playbooks rely on it; these helpers give every module the same
//! leniency (and the same error messages) instead of each one re-inventing it.
//! Use them with `#[serde(default, deserialize_with = "...")]`.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A loose parameter value that cannot be read as what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LooseValueError {
    /// Not one of Ansible's boolean spellings; holds what was given.
    #[error("expected a boolean, got {0}")]
    NotBool(String),
    /// Octal digits above 07777.
    #[error("mode {0:?} is out of range")]
    ModeOutOfRange(String),
    /// Neither octal, `preserve`, nor a valid symbolic mode.
    #[error("invalid mode {0:?}")]
    InvalidMode(String),
}

/// Ansible's boolean spellings (`module_utils.parsing.convert_bool`).
fn bool_from(v: &Value) -> Result<bool, LooseValueError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Ok(true),
            Some(0.0) => Ok(false),
            _ => Err(LooseValueError::NotBool(n.to_string())),
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "on" | "1" | "true" | "y" | "t" => Ok(true),
            "no" | "off" | "0" | "false" | "n" | "f" => Ok(false),
            _ => Err(LooseValueError::NotBool(format!("{s:?}"))),
        },
        other => Err(LooseValueError::NotBool(kind(other).to_string())),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A boolean given as a bool, 0/1, or one of Ansible's strings.
pub fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    bool_from(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// Like [`de_bool`], for parameters whose absence means something.
pub fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => bool_from(&v).map(Some).map_err(serde::de::Error::custom),
    }
}

/// For `#[serde(default = "yes")]`.
pub fn yes() -> bool {
    true
}

/// A non-negative number given as a number or a numeric string (`"300"`).
pub fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    finite_number(d, true)
}

/// A finite number from a number or a numeric string, `None` for null;
/// `non_negative` refuses one below zero.
fn finite_number<'de, D: Deserializer<'de>>(
    d: D,
    non_negative: bool,
) -> Result<Option<f64>, D::Error> {
    let v = Value::deserialize(d)?;
    let x = match &v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match x {
        Some(x) if x.is_finite() && (x >= 0.0 || !non_negative) => Ok(Some(x)),
        _ => Err(serde::de::Error::custom(format!(
            "expected a {}number, got {}",
            if non_negative { "non-negative " } else { "" },
            kind(&v)
        ))),
    }
}

/// An integer given as a number or a numeric string (ports, uids).
pub fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    let x = match &v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    x.map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!("expected a non-negative integer, got {}", kind(&v)))
    })
}

/// A signed integer given as a number or a numeric string (`-1` days).
pub fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Value::deserialize(d)?;
    let x = match &v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    x.map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {}", kind(&v))))
}

/// A number, negative or not, given as a number or a numeric string
/// (`expires: -1`).
pub fn de_opt_signed_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    finite_number(d, false)
}

/// A string that YAML may have typed as a number or boolean (`owner: 1000`).
pub fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(if b { "True" } else { "False" }.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, got {}",
            kind(&other)
        ))),
    }
}

/// Like [`de_opt_string`], for a required parameter.
pub fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_opt_string(d)?.ok_or_else(|| serde::de::Error::custom("expected a string, got null"))
}

/// A file mode as Ansible takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Permission bits; YAML `0644` arrives as 420, the string "0644" too.
    Octal(u32),
    /// chmod's symbolic form, `u=rw,g=r,o=r` or `a+X`; validated at parse time.
    Symbolic(String),
    /// `preserve`: keep the source's mode (copy with a source file).
    Preserve,
}

impl Mode {
    /// Read a mode: octal digits, `preserve`, or a symbolic mode (checked here, so plan and
    /// apply never meet a bad one).
    pub fn parse(s: &str) -> Result<Mode, LooseValueError> {
        let s = s.trim();
        if s == "preserve" {
            return Ok(Mode::Preserve);
        }
        if !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return match u32::from_str_radix(s, 8) {
                Ok(m) if m <= 0o7777 => Ok(Mode::Octal(m)),
                _ => Err(LooseValueError::ModeOutOfRange(s.to_string())),
            };
        }
        // Validate once so plan and apply never meet a bad clause.
        apply_symbolic(s, 0, false)?;
        Ok(Mode::Symbolic(s.to_string()))
    }

    /// The permission bits this mode gives a path whose bits are `current`
    /// (`None` when it does not exist yet: a new file starts from 0644 or
    /// 0755, what a 022 umask gives). `None` for `preserve`.
    pub fn resolve(&self, current: Option<u32>, is_dir: bool) -> Option<u32> {
        match self {
            Mode::Octal(m) => Some(*m),
            Mode::Preserve => None,
            Mode::Symbolic(s) => {
                let base = current.unwrap_or(if is_dir { 0o755 } else { 0o644 });
                apply_symbolic(s, base, is_dir).ok()
            }
        }
    }
}

/// A symbolic mode for chmod with an explicit `who` in every clause: chmod
/// masks a who-less `+w` with the umask, which [`apply_symbolic`] (and
/// Ansible) do not, and plan and apply must agree.
pub fn symbolic_for_chmod(spec: &str) -> String {
    spec.split(',')
        .map(|c| {
            if c.starts_with(['u', 'g', 'o', 'a']) {
                c.to_string()
            } else {
                format!("a{c}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A mode given as a YAML number (octal, as YAML 1.1 reads `0644`), an octal string or a
/// symbolic string; for `deserialize_with`.
pub fn de_opt_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mode>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(m) if m <= 0o7777 => Ok(Some(Mode::Octal(m as u32))),
            _ => Err(serde::de::Error::custom(format!(
                "mode {n} is out of range (quote it, e.g. \"0644\")"
            ))),
        },
        Value::String(s) => Mode::parse(&s).map(Some).map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!(
            "expected a mode like \"0644\" or \"u=rw,g=r\", got {}",
            kind(&other)
        ))),
    }
}

/// A mode is written as an octal string (`"0644"`), a YAML number
/// (`0644`, read as octal) or a symbolic string (`u=rw,g=r`): the schema
/// says "string or integer" as [`de_opt_mode`] takes them.
impl schemars::JsonSchema for Mode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Mode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["string", "integer"] })
    }
}

/// `0644` as Ansible reports modes.
pub fn mode_str(m: u32) -> String {
    format!("{m:04o}")
}

/// Apply a symbolic mode (`u+x,go-w`, `a=rX`) to `mode`, as chmod does
/// without a umask (Ansible does the same for an absent `who`).
pub fn apply_symbolic(spec: &str, mode: u32, is_dir: bool) -> Result<u32, LooseValueError> {
    let bad = || LooseValueError::InvalidMode(spec.to_string());
    let mut mode = mode & 0o7777;
    for clause in spec.split(',') {
        let mut chars = clause.chars().peekable();
        let mut who = 0u32;
        while let Some(&c) = chars.peek() {
            let w = match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => break,
            };
            who |= w;
            chars.next();
        }
        if who == 0 {
            who = 0o7777;
        }
        let mut saw_op = false;
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return Err(bad());
            }
            saw_op = true;
            let mut bits = 0u32;
            while let Some(&c) = chars.peek() {
                bits |= match c {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    'X' => 0,
                    's' => 0o6000,
                    't' => 0o1000,
                    '+' | '-' | '=' => break,
                    _ => return Err(bad()),
                };
                chars.next();
            }
            let bits = bits & who;
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !who) | bits,
            }
        }
        if !saw_op {
            return Err(bad());
        }
    }
    Ok(mode)
}

/// Whether `wanted` (a name or a numeric id) names the `name`/`id` a file has.
pub fn same_principal(wanted: &str, name: &str, id: u32) -> bool {
    wanted == name || wanted.parse::<u32>().ok() == Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize)]
    struct P {
        #[serde(default, deserialize_with = "de_bool")]
        b: bool,
        #[serde(default, deserialize_with = "de_opt_mode")]
        mode: Option<Mode>,
        #[serde(default, deserialize_with = "de_opt_string")]
        owner: Option<String>,
        #[serde(default, deserialize_with = "de_opt_f64")]
        timeout: Option<f64>,
    }

    fn p(v: Value) -> Result<P, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn loose_booleans() {
        for (v, want) in [
            (json!("yes"), true),
            (json!("No"), false),
            (json!("true"), true),
            (json!("0"), false),
            (json!(1), true),
            (json!(false), false),
        ] {
            assert_eq!(p(json!({ "b": v })).map(|p| p.b).ok(), Some(want));
        }
        assert!(p(json!({"b": "maybe"})).is_err());
        assert!(!p(json!({})).map(|p| p.b).unwrap_or(true));
    }

    #[test]
    fn modes_in_every_spelling() {
        let m = |v: Value| p(json!({ "mode": v })).ok().and_then(|p| p.mode);
        assert_eq!(m(json!(493)), Some(Mode::Octal(0o755)));
        assert_eq!(m(json!("0644")), Some(Mode::Octal(0o644)));
        assert_eq!(m(json!("644")), Some(Mode::Octal(0o644)));
        assert_eq!(m(json!("preserve")), Some(Mode::Preserve));
        assert_eq!(
            m(json!("u=rw,g=r,o=r")),
            Some(Mode::Symbolic("u=rw,g=r,o=r".into()))
        );
        assert!(p(json!({"mode": "u~x"})).is_err());
        assert!(p(json!({"mode": 99999})).is_err());
        assert_eq!(mode_str(0o755), "0755");
    }

    #[test]
    fn symbolic_modes_like_chmod() {
        assert_eq!(apply_symbolic("u=rw,g=r,o=r", 0o777, false), Ok(0o644));
        assert_eq!(apply_symbolic("u+x", 0o644, false), Ok(0o744));
        assert_eq!(apply_symbolic("go-w", 0o666, false), Ok(0o644));
        assert_eq!(apply_symbolic("a=rX", 0o700, true), Ok(0o555));
        assert_eq!(apply_symbolic("a=rX", 0o600, false), Ok(0o444));
        assert_eq!(apply_symbolic("u+s,+t", 0o755, false), Ok(0o5755));
        assert_eq!(apply_symbolic("u+r-w", 0o200, false), Ok(0o400));
        assert_eq!(symbolic_for_chmod("+w,go-x"), "a+w,go-x");
        assert_eq!(
            Mode::Symbolic("g+w".into()).resolve(None, false),
            Some(0o664)
        );
    }

    #[test]
    fn strings_numbers_and_principals() {
        let q = p(json!({"owner": 1000, "timeout": "2.5"})).ok();
        assert_eq!(
            q.as_ref().and_then(|p| p.owner.clone()),
            Some("1000".into())
        );
        assert_eq!(q.and_then(|p| p.timeout), Some(2.5));
        assert!(same_principal("0", "root", 0));
        assert!(same_principal("root", "root", 0));
        assert!(!same_principal("nobody", "root", 0));
    }
}
