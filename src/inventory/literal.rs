//! The two small languages inside an Ansible INI inventory line: POSIX shell
//! words (how a host line is split into `host k=v k=v`) and Python literals
//! (how each value is typed).
//!
//! Ansible splits host lines with Python's `shlex.split(line, comments=True)`
//! and passes every value through `ast.literal_eval`, keeping the raw text
//! when that fails. Both are reproduced here rather than approximated because
//! they decide whether `port=22` is a number and `x='a b'` one value.

use serde_json::{Map, Number, Value};

/// A host line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ShlexError {
    #[error("unterminated quote")]
    NoClosingQuote { col: usize },
    #[error("backslash at the end of the line escapes nothing")]
    NoEscapedChar { col: usize },
}

impl ShlexError {
    /// 0-based character column the problem starts at.
    pub(crate) fn col(&self) -> usize {
        match self {
            ShlexError::NoClosingQuote { col } | ShlexError::NoEscapedChar { col } => *col,
        }
    }
}

/// One word of a shell-split line and the 0-based character column it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub col: usize,
    pub text: String,
}

/// Split a line like `shlex.split(line, comments=True, posix=True)`: quotes
/// group and are removed, a backslash escapes the next character (inside
/// double quotes only `"` and `\`), and `#` starts a comment even in the
/// middle of a word.
pub(crate) fn shell_words(line: &str) -> Result<Vec<Word>, ShlexError> {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    'words: loop {
        while i < chars.len() && is_shell_space(chars[i]) {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '#' {
            break;
        }
        let start = i;
        let mut text = String::new();
        let mut comment = false;
        while i < chars.len() {
            let c = chars[i];
            match c {
                c if is_shell_space(c) => break,
                '#' => {
                    comment = true;
                    break;
                }
                '\'' => {
                    let open = i;
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => return Err(ShlexError::NoClosingQuote { col: open }),
                            Some('\'') => break,
                            Some(&c) => text.push(c),
                        }
                        i += 1;
                    }
                }
                '"' => {
                    let open = i;
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => return Err(ShlexError::NoClosingQuote { col: open }),
                            Some('"') => break,
                            Some('\\') => match chars.get(i + 1) {
                                None => return Err(ShlexError::NoClosingQuote { col: open }),
                                Some(&n) if n == '"' || n == '\\' => {
                                    text.push(n);
                                    i += 1;
                                }
                                Some(_) => text.push('\\'),
                            },
                            Some(&c) => text.push(c),
                        }
                        i += 1;
                    }
                }
                '\\' => match chars.get(i + 1) {
                    None => return Err(ShlexError::NoEscapedChar { col: i }),
                    Some(&n) => {
                        text.push(n);
                        i += 1;
                    }
                },
                c => text.push(c),
            }
            i += 1;
        }
        words.push(Word { col: start, text });
        if comment {
            break 'words;
        }
    }
    Ok(words)
}

fn is_shell_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The value `ast.literal_eval(text)` gives, as JSON: numbers, strings,
/// `True`/`False`/`None`, lists, tuples and sets (as lists) and dicts.
/// `None` when Python would reject the text, in which case Ansible keeps the
/// raw string. Two deliberate gaps, both kept as the raw string: complex
/// numbers (`1j`) and integers beyond 64 bits, which JSON cannot carry here.
pub(crate) fn python_literal(text: &str) -> Option<Value> {
    let mut p = Parser {
        s: text.chars().collect(),
        i: 0,
        depth: 0,
    };
    // literal_eval strips leading spaces and tabs; a top-level newline would end the expression.
    p.skip_space(false);
    let first = p.expr(false)?;
    p.skip_space(false);
    let value = if p.peek() == Some(',') {
        // `1, 2` is a tuple; Ansible turns tuples into lists.
        let mut items = vec![first];
        while p.eat(',') {
            p.skip_space(false);
            if p.at_end() {
                break;
            }
            items.push(p.expr(false)?);
            p.skip_space(false);
        }
        Value::Array(items)
    } else {
        first
    };
    p.skip_space(false);
    p.at_end().then_some(value)
}

struct Parser {
    s: Vec<char>,
    i: usize,
    /// Bracket nesting; Python's parser gives up at 200 levels, and so do we
    /// rather than overflow the stack on hostile input.
    depth: usize,
}

const MAX_NESTING: usize = 200;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Skip blanks and `#` comments; newlines only inside brackets.
    fn skip_space(&mut self, in_brackets: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\x0c' => self.i += 1,
                '\n' | '\r' if in_brackets => self.i += 1,
                '\\' if self.s.get(self.i + 1) == Some(&'\n') => self.i += 2,
                '#' => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn expr(&mut self, nl: bool) -> Option<Value> {
        if self.depth >= MAX_NESTING {
            return None;
        }
        self.depth += 1;
        let value = self.expr_inner(nl);
        self.depth -= 1;
        value
    }

    fn expr_inner(&mut self, nl: bool) -> Option<Value> {
        self.skip_space(nl);
        match self.peek()? {
            '+' | '-' => {
                let negative = self.peek() == Some('-');
                self.i += 1;
                self.skip_space(nl);
                // literal_eval allows one sign, and only on a number.
                match self.number()? {
                    Value::Number(n) if negative => negate(&n),
                    v => Some(v),
                }
            }
            '[' => {
                self.i += 1;
                Some(Value::Array(self.items(']')?))
            }
            '(' => {
                self.i += 1;
                self.skip_space(true);
                if self.eat(')') {
                    return Some(Value::Array(Vec::new()));
                }
                let first = self.expr(true)?;
                self.skip_space(true);
                if self.eat(')') {
                    // Parentheses alone only group.
                    return Some(first);
                }
                if !self.eat(',') {
                    return None;
                }
                let mut items = vec![first];
                items.extend(self.items(')')?);
                Some(Value::Array(items))
            }
            '{' => {
                self.i += 1;
                self.braces()
            }
            c if c.is_ascii_digit() || c == '.' => self.number(),
            c if c == '\'' || c == '"' || c.is_alphabetic() || c == '_' => self.word_or_string(),
            _ => None,
        }
    }

    /// Comma-separated expressions up to `close` (trailing comma allowed).
    fn items(&mut self, close: char) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            self.skip_space(true);
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.expr(true)?);
            self.skip_space(true);
            if self.eat(close) {
                return Some(items);
            }
            if !self.eat(',') {
                return None;
            }
        }
    }

    /// After `{`: a dict, or a set (which Ansible turns into a list).
    fn braces(&mut self) -> Option<Value> {
        self.skip_space(true);
        if self.eat('}') {
            return Some(Value::Object(Map::new()));
        }
        let first = self.expr(true)?;
        self.skip_space(true);
        if self.eat(':') {
            let mut map = Map::new();
            let v = self.expr(true)?;
            map.insert(key_text(&first)?, v);
            loop {
                self.skip_space(true);
                if self.eat('}') {
                    return Some(Value::Object(map));
                }
                if !self.eat(',') {
                    return None;
                }
                self.skip_space(true);
                if self.eat('}') {
                    return Some(Value::Object(map));
                }
                let k = self.expr(true)?;
                self.skip_space(true);
                if !self.eat(':') {
                    return None;
                }
                let v = self.expr(true)?;
                map.insert(key_text(&k)?, v);
            }
        }
        let mut items = vec![first];
        self.skip_space(true);
        if !self.eat('}') {
            if !self.eat(',') {
                return None;
            }
            items.extend(self.items('}')?);
        }
        // Sets hold no lists or dicts (unhashable) and no duplicates.
        if items.iter().any(|v| v.is_array() || v.is_object()) {
            return None;
        }
        let mut unique: Vec<Value> = Vec::new();
        for v in items {
            if !unique.contains(&v) {
                unique.push(v);
            }
        }
        Some(Value::Array(unique))
    }

    /// `True`, `False`, `None`, `set()`, or string literals with optional
    /// prefixes; adjacent string literals concatenate as in Python.
    fn word_or_string(&mut self) -> Option<Value> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.i += 1;
        }
        let word: String = self.s[start..self.i].iter().collect();
        match (word.as_str(), self.peek()) {
            (_, Some('\'' | '"')) => {
                self.i = start;
                self.strings()
            }
            ("True", _) => Some(Value::Bool(true)),
            ("False", _) => Some(Value::Bool(false)),
            ("None", _) => Some(Value::Null),
            ("set", Some('(')) => {
                self.i += 1;
                self.skip_space(true);
                self.eat(')').then(|| Value::Array(Vec::new()))
            }
            _ => None,
        }
    }

    fn strings(&mut self) -> Option<Value> {
        let mut out = String::new();
        let mut bytes: Option<bool> = None;
        loop {
            self.skip_space(false);
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some('\'' | '"')) {
                self.i = start;
                break;
            }
            let prefix: String = self.s[start..self.i]
                .iter()
                .collect::<String>()
                .to_ascii_lowercase();
            let (raw, is_bytes) = match prefix.as_str() {
                "" | "u" => (false, false),
                "r" => (true, false),
                "b" => (false, true),
                "br" | "rb" => (true, true),
                // f-strings are not literals; anything else is a syntax error.
                _ => return None,
            };
            if bytes.is_some_and(|b| b != is_bytes) {
                return None;
            }
            bytes = Some(is_bytes);
            out.push_str(&self.string_body(raw, is_bytes)?);
        }
        Some(Value::String(out))
    }

    /// One quoted literal starting at the quote.
    fn string_body(&mut self, raw: bool, is_bytes: bool) -> Option<String> {
        let q = self.peek()?;
        let triple = self.s.get(self.i + 1) == Some(&q) && self.s.get(self.i + 2) == Some(&q);
        self.i += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            if c == q {
                if !triple {
                    self.i += 1;
                    return Some(out);
                }
                if self.s.get(self.i + 1) == Some(&q) && self.s.get(self.i + 2) == Some(&q) {
                    self.i += 3;
                    return Some(out);
                }
            }
            if c == '\n' && !triple {
                return None;
            }
            if is_bytes && !c.is_ascii() {
                return None;
            }
            self.i += 1;
            if c != '\\' {
                out.push(c);
                continue;
            }
            let n = self.peek()?;
            self.i += 1;
            if raw {
                // In raw strings the backslash stays; it only stops a quote from closing.
                out.push('\\');
                out.push(n);
                continue;
            }
            match n {
                '\n' => {}
                '\\' | '\'' | '"' => out.push(n),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\x0b'),
                '0'..='7' => {
                    let mut code = n.to_digit(8)?;
                    for _ in 0..2 {
                        match self.peek().and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                code = code * 8 + d;
                                self.i += 1;
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(code)?);
                }
                'x' => out.push(self.hex_escape(2)?),
                'u' if !is_bytes => out.push(self.hex_escape(4)?),
                'U' if !is_bytes => out.push(self.hex_escape(8)?),
                // `\N{name}` needs the Unicode name table; keep the raw text instead.
                'N' if !is_bytes => return None,
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> Option<char> {
        let text: String = self.s.get(self.i..self.i + digits)?.iter().collect();
        if !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        self.i += digits;
        char::from_u32(u32::from_str_radix(&text, 16).ok()?)
    }

    /// A Python number token. Leading zeros (`0755`) are a syntax error in
    /// Python 3, so such values stay strings, as they do in Ansible.
    fn number(&mut self) -> Option<Value> {
        let rest: String = self.s[self.i..].iter().collect();
        let m = number_regex().find(&rest)?;
        let token = m.as_str();
        self.i += token.chars().count();
        if self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            // `1j`, `12abc`, `1.2.3`: complex or not a literal.
            return None;
        }
        let clean = token.replace('_', "");
        let lower = clean.to_ascii_lowercase();
        let radix = match lower.get(..2) {
            Some("0x") => Some(16),
            Some("0o") => Some(8),
            Some("0b") => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            return int_value(i128::from_str_radix(&clean[2..], radix).ok()?);
        }
        if lower.contains(['.', 'e']) {
            let f: f64 = clean.parse().ok()?;
            return f
                .is_finite()
                .then(|| Number::from_f64(f).map(Value::Number))?;
        }
        if clean.len() > 1 && clean.starts_with('0') && clean.chars().any(|c| c != '0') {
            return None;
        }
        int_value(clean.parse::<i128>().ok()?)
    }
}

fn number_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        let digits = "[0-9](?:_?[0-9])*";
        let exp = format!("[eE][+-]?{digits}");
        let pattern = format!(
            "^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+\
             |(?:{digits}\\.(?:{digits})?|\\.{digits})(?:{exp})?|{digits}{exp}|{digits})"
        );
        regex::Regex::new(&pattern).expect("number pattern is valid")
    })
}

fn int_value(i: i128) -> Option<Value> {
    if let Ok(v) = i64::try_from(i) {
        Some(Value::from(v))
    } else {
        u64::try_from(i).ok().map(Value::from)
    }
}

fn negate(n: &Number) -> Option<Value> {
    if let Some(i) = n.as_i64() {
        return Some(Value::from(i.checked_neg()?));
    }
    if n.is_u64() {
        // -(2^63) is the only u64 whose negation fits.
        let u = n.as_u64()?;
        return (u == 1 << 63).then(|| Value::from(i64::MIN));
    }
    Number::from_f64(-n.as_f64()?).map(Value::Number)
}

/// How Python's `json.dumps` writes a non-string dict key.
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn words(line: &str) -> Vec<String> {
        shell_words(line)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn shell_words_quotes_escapes_and_comments() {
        assert_eq!(
            words("web1 x='a b' y=\"c d\" z=e\\ f # trailing"),
            ["web1", "x=a b", "y=c d", "z=e f"]
        );
        assert_eq!(
            words("h secret=\"'03#pa33w0rd'\""),
            ["h", "secret='03#pa33w0rd'"]
        );
        assert_eq!(words("h a=1#comment"), ["h", "a=1"]);
        assert_eq!(words("h e=\"\" q=\"a\\\"b\\n\""), ["h", "e=", "q=a\"b\\n"]);
        assert_eq!(words("   # only a comment"), Vec::<String>::new());
        let cols: Vec<usize> = shell_words("  h  k=v")
            .unwrap()
            .iter()
            .map(|w| w.col)
            .collect();
        assert_eq!(cols, [2, 5]);
    }

    #[test]
    fn shell_words_errors() {
        assert_eq!(
            shell_words("h x='open").unwrap_err(),
            ShlexError::NoClosingQuote { col: 4 }
        );
        assert_eq!(
            shell_words("h x=a\\").unwrap_err(),
            ShlexError::NoEscapedChar { col: 5 }
        );
    }

    #[test]
    fn python_literals_like_literal_eval() {
        let cases: &[(&str, Option<Value>)] = &[
            ("22", Some(json!(22))),
            ("-3", Some(json!(-3))),
            ("1_000", Some(json!(1000))),
            ("0x1F", Some(json!(31))),
            ("0o17", Some(json!(15))),
            ("00", Some(json!(0))),
            ("0755", None),
            ("7.17", Some(json!(7.17))),
            ("1e3", Some(json!(1000.0))),
            (".5", Some(json!(0.5))),
            ("True", Some(json!(true))),
            ("None", Some(Value::Null)),
            ("true", None),
            ("yes", None),
            ("'a b'", Some(json!("a b"))),
            ("\"x\" 'y'", Some(json!("xy"))),
            ("r'\\d'", Some(json!("\\d"))),
            ("'\\x41\\n'", Some(json!("A\n"))),
            ("b'raw'", Some(json!("raw"))),
            ("f'x'", None),
            ("[1, 'a', [True]]", Some(json!([1, "a", [true]]))),
            ("(1,)", Some(json!([1]))),
            ("1, 2", Some(json!([1, 2]))),
            ("(5)", Some(json!(5))),
            ("{'a': 1, 2: None}", Some(json!({"a": 1, "2": null}))),
            ("{1, 2, 1}", Some(json!([1, 2]))),
            ("8080 # a comment", Some(json!(8080))),
            ("hello # a comment", None),
            ("1+2", None),
            ("1j", None),
            ("--1", None),
            ("", None),
            ("a,b", None),
            ("10.0.0.1", None),
            ("99999999999999999999999", None),
            (&"[".repeat(100_000), None),
        ];
        for (text, want) in cases {
            assert_eq!(&python_literal(text), want, "literal_eval({text:?})");
        }
    }
}
