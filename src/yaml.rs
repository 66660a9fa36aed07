//! The YAML front end: serde-saphyr parses a file into a [`Node`] tree that
//! keeps every node's line and column, so loaders can point at the exact key
//! or value a user got wrong. Scalars are read the way Ansible (PyYAML, YAML
//! 1.1) reads them: `yes/no/on/off/true/false` in their usual spellings are
//! booleans, `y`/`n` stay strings, `0755` is octal 493, quoted text is text.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::diagnostic::Diagnostic;

/// Where a node starts in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub path: Arc<PathBuf>,
    pub line: usize,
    pub col: usize,
    pub len: usize,
}

impl Span {
    pub fn diagnostic(&self, message: impl fmt::Display) -> Diagnostic {
        Diagnostic::new(self.path.as_ref().clone(), self.line, self.col, message).with_len(self.len)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in file order; duplicate keys are rejected by the parser.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub span: Span,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            NodeValue::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Seq(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Null)
    }
    /// The value for `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.key_text().as_deref() == Some(key))
            .map(|(_, v)| v)
    }
    /// A scalar's text as a mapping key (`1`, `true` and `null` keys become text).
    pub fn key_text(&self) -> Option<String> {
        match &self.value {
            NodeValue::Str(s) => Some(s.clone()),
            NodeValue::Int(i) => Some(i.to_string()),
            NodeValue::Float(f) => Some(f.to_string()),
            NodeValue::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
            NodeValue::Null => Some(String::new()),
            _ => None,
        }
    }
    /// A short name of the node's kind, for "expected a mapping, found a list".
    pub fn kind(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "nothing",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) | NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }
    /// The plain JSON value, spans dropped (variables, module arguments).
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => {
                let mut m = Map::new();
                for (k, v) in entries {
                    m.insert(k.key_text().unwrap_or_default(), v.to_json());
                }
                Value::Object(m)
            }
        }
    }
}

/// Parse one YAML document. An empty file is `Null`. A vault-encrypted
/// file is decrypted first and inline `!vault` values are decrypted, with
/// this run's vault passwords ([`crate::vault::keyring`]); what comes out of
/// a vault is marked secret.
pub fn parse(path: &Path, text: &str) -> Result<Node, Diagnostic> {
    parse_with(path, text, true)
}

/// [`parse`], with vault decryption switched off (`!vault` values stay
/// their vault text) when `vault` is false.
pub fn parse_with(path: &Path, text: &str, vault: bool) -> Result<Node, Diagnostic> {
    if vault && crate::vault::is_encrypted(text) {
        let plain = crate::vault::keyring()
            .decrypt(&path.display().to_string(), text)
            .map_err(|e| Diagnostic::new(path, 1, 1, e.to_string()).with_len(14))?;
        let node = parse_plain(path, &plain, vault)?;
        mark_leaves(&node);
        return Ok(node);
    }
    parse_plain(path, text, vault)
}

/// Whole vault files: every string value is a secret, except very short
/// ones (a `yes` or an `app` masked everywhere would hide the output).
fn mark_leaves(node: &Node) {
    match &node.value {
        NodeValue::Str(s) if s.chars().count() >= 4 => crate::secrets::mark(s),
        NodeValue::Int(i) if i.to_string().len() >= 4 => crate::secrets::mark(&i.to_string()),
        NodeValue::Seq(items) => items.iter().for_each(mark_leaves),
        NodeValue::Map(entries) => entries.iter().for_each(|(_, v)| mark_leaves(v)),
        _ => {}
    }
}

fn parse_plain(path: &Path, text: &str, vault: bool) -> Result<Node, Diagnostic> {
    let mut options = serde_saphyr::Options::default();
    // Ansible reads `mode: 0755` as octal.
    options.legacy_octal_numbers = true;
    let raw: RawNode = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((0, 0));
        let message = e.without_snippet().to_string();
        let message = message
            .strip_prefix("error: ")
            .unwrap_or(&message)
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_string();
        // serde-saphyr prefixes "line L column C: "; the location is shown separately.
        let message = match message.split_once(": ") {
            Some((head, rest)) if head.starts_with("line ") => rest.to_string(),
            _ => message,
        };
        Diagnostic::new(path, line, col, format!("invalid YAML: {message}"))
    })?;
    let path = Arc::new(path.to_path_buf());
    let mut errors = Vec::new();
    let node = raw.into_node(&path, text, vault, &mut errors);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(node),
    }
}

/// Read and parse a YAML file.
pub fn parse_file(path: &Path) -> Result<Node, Diagnostic> {
    let text = crate::diagnostic::read_source(path, "file")?;
    parse(path, &text)
}

/// What serde-saphyr gives us before the YAML 1.1 fix-ups.
struct RawNode {
    value: RawValue,
    line: u64,
    col: u64,
    byte_offset: Option<u64>,
    byte_len: Option<u64>,
    chars: u64,
}

enum RawValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<RawNode>),
    Map(Vec<(RawNode, RawNode)>),
}

/// PyYAML's boolean spellings; serde-saphyr also takes `y`, `n` and mixed case.
const YAML11_BOOLS: &[&str] = &[
    "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on",
    "On", "ON", "off", "Off", "OFF",
];

impl RawNode {
    fn into_node(
        self,
        path: &Arc<PathBuf>,
        text: &str,
        vault: bool,
        errors: &mut Vec<Diagnostic>,
    ) -> Node {
        let source = match (self.byte_offset, self.byte_len) {
            (Some(o), Some(l)) => text.get(o as usize..(o + l) as usize),
            _ => None,
        };
        let value = match self.value {
            RawValue::Null => NodeValue::Null,
            RawValue::Bool(b) => match source {
                Some(s) if !YAML11_BOOLS.contains(&s) && !s.starts_with(['\'', '"', '!']) => {
                    NodeValue::Str(s.to_string())
                }
                _ => NodeValue::Bool(b),
            },
            RawValue::Int(i) => NodeValue::Int(i),
            RawValue::Float(f) => NodeValue::Float(f),
            // serde-saphyr drops the tag; the source text still has it.
            RawValue::Str(s) if vault && tagged_vault(text, self.byte_offset) => {
                let what = format!("{}:{}:{}", path.display(), self.line, self.col);
                match crate::vault::keyring().decrypt(&what, &s) {
                    Ok(plain) => {
                        crate::secrets::mark(&plain);
                        NodeValue::Str(plain)
                    }
                    Err(e) => {
                        errors.push(
                            Diagnostic::new(
                                path.as_ref().clone(),
                                self.line as usize,
                                self.col as usize,
                                e.to_string(),
                            )
                            .with_len(6),
                        );
                        NodeValue::Null
                    }
                }
            }
            RawValue::Str(s) => NodeValue::Str(s),
            RawValue::Seq(items) => NodeValue::Seq(
                items
                    .into_iter()
                    .map(|n| n.into_node(path, text, vault, errors))
                    .collect(),
            ),
            RawValue::Map(entries) => NodeValue::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k.into_node(path, text, vault, errors),
                            v.into_node(path, text, vault, errors),
                        )
                    })
                    .collect(),
            ),
        };
        Node {
            value,
            span: Span {
                path: path.clone(),
                line: self.line as usize,
                col: self.col as usize,
                len: self.chars as usize,
            },
        }
    }
}

/// Whether the scalar starting at `offset` carries the `!vault` tag.
/// serde-saphyr drops unknown tags and its span starts at the value (the
/// quote, the text, or the first line of a block scalar), so the tag is
/// looked for in the text just before it: `!vault`, then for a block
/// scalar its `|`/`>` indicator (with chomping/indent marks).
fn tagged_vault(text: &str, offset: Option<u64>) -> bool {
    let Some(before) = offset.and_then(|o| text.get(..o as usize)) else {
        return false;
    };
    let before = before.trim_end();
    let before = match before.strip_suffix(|c: char| matches!(c, '-' | '+' | '1'..='9')) {
        Some(b) => b.trim_end_matches(|c: char| matches!(c, '-' | '+' | '1'..='9')),
        None => before,
    };
    let before = before
        .strip_suffix(['|', '>'])
        .map(str::trim_end)
        .unwrap_or(before);
    before.ends_with("!vault")
        && before[..before.len() - "!vault".len()]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || matches!(c, ':' | '-' | '[' | ',' | '{'))
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: serde_saphyr::Spanned<RawValue> = serde_saphyr::Spanned::deserialize(d)?;
        let span = s.referenced.span();
        Ok(RawNode {
            value: s.value,
            line: s.referenced.line(),
            col: s.referenced.column(),
            byte_offset: span.byte_offset(),
            byte_len: span.byte_len(),
            chars: span.len(),
        })
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_none<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawValue, D::Error> {
        RawValue::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(b))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawValue, E> {
        Ok(i64::try_from(v)
            .map(RawValue::Int)
            .unwrap_or(RawValue::Float(v as f64)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<RawValue, E> {
        Ok(i64::try_from(v)
            .map(RawValue::Int)
            .unwrap_or(RawValue::Float(v as f64)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<RawValue, E> {
        Ok(i64::try_from(v)
            .map(RawValue::Int)
            .unwrap_or(RawValue::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = a.next_element()? {
            items.push(n);
        }
        Ok(RawValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = a.next_entry()? {
            entries.push(entry);
        }
        Ok(RawValue::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        parse(Path::new("t.yml"), text).unwrap().to_json()
    }

    #[test]
    fn booleans_read_as_ansible_reads_them() {
        let v = json("a: no\nb: 'no'\nc: yes\nd: n\ne: y\nf: On\ng: nO\n");
        assert_eq!(
            v,
            serde_json::json!({"a": false, "b": "no", "c": true, "d": "n", "e": "y", "f": true, "g": "nO"})
        );
    }

    #[test]
    fn octal_modes_and_versions() {
        let v = json("mode: 0755\nquoted: '0644'\nversion: 7.17\nempty:\n");
        assert_eq!(
            v,
            serde_json::json!({"mode": 493, "quoted": "0644", "version": 7.17, "empty": null})
        );
    }

    #[test]
    fn spans_point_at_keys() {
        let n = parse(
            Path::new("t.yml"),
            "- hosts: all\n  tasks:\n    - name: x\n",
        )
        .unwrap();
        let play = &n.as_seq().unwrap()[0];
        let (k, _) = &play.as_map().unwrap()[1];
        assert_eq!((k.span.line, k.span.col, k.span.len), (2, 3, 5));
    }

    #[test]
    fn vault_tags_are_found_before_the_value() {
        let text =
            "a: !vault |\n  $X\nb: !vault '$X'\nc: !vault $X\nd: |-\n  $X\ne: !vault >+2\n  $X\n";
        let raw: RawNode = serde_saphyr::from_str(text).unwrap();
        let RawValue::Map(m) = raw.value else {
            panic!("a map")
        };
        let tagged: Vec<bool> = m
            .iter()
            .map(|(_, v)| tagged_vault(text, v.byte_offset))
            .collect();
        assert_eq!(tagged, [true, true, true, false, true]);
    }

    #[test]
    fn vault_files_and_inline_values_decrypt_with_the_keyring() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vault");
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        crate::vault::keyring().set(vec![
            crate::vault::VaultSecret::new("default", "herd-test-password"),
            crate::vault::VaultSecret::new("dev", "dev-password"),
        ]);
        let v = json(&read("file-1.2-dev.yml"));
        assert_eq!(
            v,
            serde_json::json!({"db_password": "s3cr3t-from-file", "db_user": "app"})
        );
        let v = json(&format!(
            "{}{}",
            read("string-1.1.yml"),
            read("string-1.2-dev.yml").replace("api_token", "dev")
        ));
        assert_eq!(
            v,
            serde_json::json!({"api_token": "inline-s3cret", "dev": "inline-dev-s3cret"})
        );
        assert_eq!(
            crate::secrets::redact("x inline-s3cret s3cr3t-from-file"),
            "x ******** ********"
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = parse(Path::new("t.yml"), "a: [1, 2\nb: c\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 2));
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
        let e = parse(Path::new("t.yml"), "a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("duplicate"), "{}", e.message);
    }
}
