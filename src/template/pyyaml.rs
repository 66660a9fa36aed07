//! A YAML writer that lays documents out the way PyYAML's `yaml.dump` does,
//! for the `to_yaml` and `to_nice_yaml` filters.
//!
//! Files written from templates end up diffed against what Ansible wrote
//! before, so the layout follows PyYAML: sequences inside mappings are not
//! indented, a mapping inside a sequence starts on the `-` line padded to the
//! indent (`-   a: 1` with indent 4), leaf collections are written in flow
//! style when `default_flow_style` is `None` (Ansible's `to_yaml`), strings
//! that would read back as another type are single-quoted, and a plain scalar
//! document ends with `...`.
//!
//! Known difference: PyYAML folds long scalars and flow collections at 80
//! columns; this writer never folds (as if `width` were infinite). The
//! parsed result is the same.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value as J;

/// How collections are laid out (PyYAML's `default_flow_style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `None`: collections of scalars only are written inline.
    Auto,
    /// `False`: always block style.
    Block,
    /// `True`: everything inline.
    Always,
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub indent: usize,
    pub flow: Flow,
    pub sort_keys: bool,
}

/// `yaml.dump(value, ...)`.
pub fn dump(v: &J, style: Style) -> String {
    let mut w = Writer {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
        open_ended: false,
        style: Style {
            // PyYAML ignores indents outside 2..=9.
            indent: if (2..10).contains(&style.indent) {
                style.indent
            } else {
                2
            },
            ..style
        },
    };
    w.node(v, Ctx::Root, 0);
    w.line_break();
    if w.open_ended {
        w.out.push_str("...\n");
    }
    w.out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Root,
    MappingValue,
    SequenceItem,
    Flow,
}

struct Writer {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    open_ended: bool,
    style: Style,
}

fn is_scalar(v: &J) -> bool {
    !matches!(v, J::Array(_) | J::Object(_))
}

fn is_empty_collection(v: &J) -> bool {
    match v {
        J::Array(a) => a.is_empty(),
        J::Object(m) => m.is_empty(),
        _ => false,
    }
}

impl Writer {
    fn write(&mut self, s: &str) {
        self.column += s.chars().count();
        self.out.push_str(s);
    }

    fn line_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
        self.whitespace = true;
        self.indention = true;
    }

    /// PyYAML's `write_indent`: start a new line unless the cursor already
    /// sits at (or before) `indent` right after an indicator.
    fn indent_to(&mut self, indent: usize) {
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.line_break();
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.write(&pad);
        }
    }

    fn indicator(&mut self, ind: &str, need_whitespace: bool, whitespace: bool, indention: bool) {
        if self.whitespace || !need_whitespace {
            self.write(ind);
        } else {
            self.write(&format!(" {ind}"));
        }
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
    }

    fn flow_style(&self, v: &J) -> bool {
        if is_empty_collection(v) {
            return true;
        }
        match self.style.flow {
            Flow::Always => true,
            Flow::Block => false,
            Flow::Auto => match v {
                J::Array(a) => a.iter().all(is_scalar),
                J::Object(m) => m.values().all(is_scalar),
                _ => false,
            },
        }
    }

    fn entries<'a>(&self, m: &'a serde_json::Map<String, J>) -> Vec<(&'a String, &'a J)> {
        let mut entries: Vec<_> = m.iter().collect();
        if self.style.sort_keys {
            entries.sort_by(|a, b| a.0.cmp(b.0));
        }
        entries
    }

    /// Writes `v`; `indent` is the indent of the enclosing block collection.
    fn node(&mut self, v: &J, ctx: Ctx, indent: usize) {
        let best = self.style.indent;
        match v {
            J::Array(items) if ctx == Ctx::Flow || self.flow_style(v) => {
                self.indicator("[", true, true, false);
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.indicator(",", false, false, false);
                    }
                    self.node(item, Ctx::Flow, indent);
                }
                self.indicator("]", false, false, false);
            }
            J::Object(m) if ctx == Ctx::Flow || self.flow_style(v) => {
                self.indicator("{", true, true, false);
                for (i, (k, item)) in self.entries(m).into_iter().enumerate() {
                    if i > 0 {
                        self.indicator(",", false, false, false);
                    }
                    self.scalar(&J::String(k.clone()), true, Ctx::Flow, indent);
                    self.indicator(":", false, false, false);
                    self.node(item, Ctx::Flow, indent);
                }
                self.indicator("}", false, false, false);
            }
            J::Array(items) => {
                // A sequence that is a mapping's value is not indented.
                let seq_indent = match ctx {
                    Ctx::Root | Ctx::MappingValue => indent,
                    _ => indent + best,
                };
                for item in items {
                    self.indent_to(seq_indent);
                    self.indicator("-", true, false, true);
                    self.node(item, Ctx::SequenceItem, seq_indent);
                }
            }
            J::Object(m) => {
                let map_indent = match ctx {
                    Ctx::Root => 0,
                    _ => indent + best,
                };
                for (k, item) in self.entries(m) {
                    self.indent_to(map_indent);
                    self.scalar(&J::String(k.clone()), true, Ctx::MappingValue, map_indent);
                    self.indicator(":", false, false, false);
                    self.node(item, Ctx::MappingValue, map_indent);
                }
            }
            _ => self.scalar(v, false, ctx, indent),
        }
    }

    fn scalar(&mut self, v: &J, simple_key: bool, ctx: Ctx, indent: usize) {
        let text = match v {
            J::Null => "null".to_string(),
            J::Bool(b) => b.to_string(),
            J::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
                Some(f) => yaml_float(f),
                None => n.to_string(),
            },
            J::String(s) => {
                let style = choose_style(s, simple_key, ctx == Ctx::Flow);
                match style {
                    Quote::Plain => self.plain(s, ctx),
                    Quote::Single => self.single_quoted(s, indent + self.style.indent),
                    Quote::Double => self.double_quoted(s),
                }
                return;
            }
            _ => String::new(),
        };
        self.plain(&text, ctx);
    }

    fn plain(&mut self, s: &str, ctx: Ctx) {
        if ctx == Ctx::Root {
            self.open_ended = true;
        }
        if !self.whitespace {
            self.write(" ");
        }
        self.write(s);
        self.whitespace = false;
        self.indention = false;
    }

    fn single_quoted(&mut self, s: &str, cont_indent: usize) {
        self.indicator("'", true, false, false);
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' => self.write("''"),
                '\n' => {
                    // A quoted line break is written as an empty line; a run
                    // of n breaks becomes n + 1 line ends.
                    self.line_break();
                    self.line_break();
                    while chars.peek() == Some(&'\n') {
                        chars.next();
                        self.line_break();
                    }
                    self.indent_to(cont_indent);
                }
                c => {
                    let mut buf = [0u8; 4];
                    self.write(c.encode_utf8(&mut buf));
                }
            }
        }
        self.indicator("'", false, false, false);
    }

    fn double_quoted(&mut self, s: &str) {
        let mut text = String::new();
        for c in s.chars() {
            match c {
                '"' => text.push_str("\\\""),
                '\\' => text.push_str("\\\\"),
                '\0' => text.push_str("\\0"),
                '\x07' => text.push_str("\\a"),
                '\x08' => text.push_str("\\b"),
                '\t' => text.push_str("\\t"),
                '\n' => text.push_str("\\n"),
                '\x0b' => text.push_str("\\v"),
                '\x0c' => text.push_str("\\f"),
                '\r' => text.push_str("\\r"),
                '\x1b' => text.push_str("\\e"),
                '\u{85}' => text.push_str("\\N"),
                '\u{a0}' => text.push_str("\\_"),
                '\u{2028}' => text.push_str("\\L"),
                '\u{2029}' => text.push_str("\\P"),
                c if is_printable(c) => text.push(c),
                c if (c as u32) <= 0xff => text.push_str(&format!("\\x{:02X}", c as u32)),
                c if (c as u32) <= 0xffff => text.push_str(&format!("\\u{:04X}", c as u32)),
                c => text.push_str(&format!("\\U{:08X}", c as u32)),
            }
        }
        self.indicator("\"", true, false, false);
        self.write(&text);
        self.indicator("\"", false, false, false);
    }
}

/// PyYAML's `represent_float`.
fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let r = super::pyfmt::py_float(f).to_lowercase();
    // PyYAML adds `.0` so that `1e+20` still reads back as a float.
    if !r.contains('.') {
        if let Some((m, e)) = r.split_once('e') {
            return format!("{m}.0e{e}");
        }
    }
    r
}

#[derive(Debug, PartialEq, Eq)]
enum Quote {
    Plain,
    Single,
    Double,
}

/// True when a plain `s` would read back as something other than a string
/// (PyYAML's YAML 1.1 implicit resolvers).
fn resolves_to_non_string(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        let bool_ = r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF";
        let float = r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)";
        let int = r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+";
        let null = r"~|null|Null|NULL|";
        let ts = r"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?";
        let pattern = format!("^(?:{bool_}|{float}|{int}|{null}|{ts}|<<|=)$");
        Regex::new(&pattern).expect("the YAML 1.1 resolver patterns are valid")
    });
    re.is_match(s)
}

fn is_printable(c: char) -> bool {
    // PyYAML with allow_unicode=True (as Ansible calls it).
    matches!(c, '\t' | '\n' | '\x20'..='\x7e' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
        && c != '\u{feff}'
}

/// PyYAML's `analyze_scalar` + `choose_scalar_style` for a string.
fn choose_style(s: &str, simple_key: bool, flow: bool) -> Quote {
    if s.is_empty() {
        return Quote::Single;
    }
    let chars: Vec<char> = s.chars().collect();
    let mut flow_ind = false;
    let mut block_ind = false;
    let mut line_breaks = false;
    let mut special = false;
    let mut space_break = false;
    let mut break_space = false;
    let (mut prev_space, mut prev_break) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        flow_ind = true;
        block_ind = true;
    }
    let is_ws = |c: Option<&char>| matches!(c, None | Some(' ' | '\t' | '\n' | '\r'));
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = is_ws(chars.get(i + 1));
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                flow_ind = true;
                block_ind = true;
            }
            if c == '?' || c == ':' {
                flow_ind = true;
                if followed_by_ws {
                    block_ind = true;
                }
            }
            if c == '-' && followed_by_ws {
                flow_ind = true;
                block_ind = true;
            }
        } else {
            if ",?[]{}".contains(c) {
                flow_ind = true;
            }
            if c == ':' {
                flow_ind = true;
                if followed_by_ws {
                    block_ind = true;
                }
            }
            if c == '#' && preceded_by_ws {
                flow_ind = true;
                block_ind = true;
            }
        }
        if c == '\n' || c == '\u{85}' || c == '\u{2028}' || c == '\u{2029}' {
            line_breaks = true;
        }
        if !(c == '\n' || is_printable(c)) || c == '\u{feff}' {
            special = true;
        }
        if c == ' ' {
            if prev_break && i + 1 < chars.len() {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if c == '\n' {
            if prev_space && i + 1 < chars.len() {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = matches!(c, ' ' | '\t' | '\n' | '\r');
    }
    let first = chars[0];
    let last = chars[chars.len() - 1];
    let leading = first == ' ' || first == '\n';
    let trailing = last == ' ' || last == '\n';

    let mut allow_flow_plain = !(leading || trailing || line_breaks || flow_ind);
    let mut allow_block_plain = !(leading || trailing || line_breaks || block_ind);
    let mut allow_single = true;
    if break_space {
        allow_flow_plain = false;
        allow_block_plain = false;
        allow_single = false;
    }
    if space_break || special {
        allow_flow_plain = false;
        allow_block_plain = false;
        allow_single = false;
    }
    let plain_ok = if flow {
        allow_flow_plain
    } else {
        allow_block_plain
    };
    if plain_ok && !resolves_to_non_string(s) && !(simple_key && line_breaks) {
        return Quote::Plain;
    }
    if allow_single && !(simple_key && line_breaks) {
        return Quote::Single;
    }
    Quote::Double
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn nice(v: J) -> String {
        dump(
            &v,
            Style {
                indent: 4,
                flow: Flow::Block,
                sort_keys: true,
            },
        )
    }

    fn auto(v: J) -> String {
        dump(
            &v,
            Style {
                indent: 2,
                flow: Flow::Auto,
                sort_keys: true,
            },
        )
    }

    #[test]
    fn block_layout_matches_pyyaml() {
        assert_eq!(
            nice(json!({"b": {"c": 1}, "a": [1, 2]})),
            "a:\n- 1\n- 2\nb:\n    c: 1\n"
        );
        assert_eq!(nice(json!([{"a": 1, "b": 2}])), "-   a: 1\n    b: 2\n");
        assert_eq!(nice(json!([[1, 2]])), "-   - 1\n    - 2\n");
        assert_eq!(nice(json!({"a": [{"b": 1}]})), "a:\n-   b: 1\n");
        assert_eq!(nice(json!({"a": []})), "a: []\n");
    }

    #[test]
    fn flow_layout_matches_pyyaml() {
        assert_eq!(auto(json!({"a": 1})), "{a: 1}\n");
        assert_eq!(
            auto(json!({"a": [1, 2], "b": {"c": "d"}})),
            "a: [1, 2]\nb: {c: d}\n"
        );
        assert_eq!(auto(json!([{"a": 1}])), "- {a: 1}\n");
    }

    #[test]
    fn scalars_quote_like_pyyaml() {
        assert_eq!(auto(json!("foo")), "foo\n...\n");
        assert_eq!(auto(json!("yes")), "'yes'\n");
        assert_eq!(nice(json!({"k": "123"})), "k: '123'\n");
        assert_eq!(nice(json!({"k": ""})), "k: ''\n");
        assert_eq!(nice(json!({"k": "a: b"})), "k: 'a: b'\n");
        assert_eq!(nice(json!({"k": "it's"})), "k: it's\n");
        assert_eq!(nice(json!({"k": "x\ny"})), "k: 'x\n\n    y'\n");
        assert_eq!(nice(json!({"k": "tab\u{1}"})), "k: \"tab\\x01\"\n");
        assert_eq!(
            nice(json!({"k": null, "f": 1.5, "t": true})),
            "f: 1.5\nk: null\nt: true\n"
        );
    }
}
