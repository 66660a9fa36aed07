//! `Diagnostic`: a user-input error with `path:line:col`, and its one renderer.
//!
//! Every loader (inventory, playbook, template) reports through this type so
//! errors look the same everywhere:
//!
//! ```text
//! error: unknown parameter `valu` for module `sysctl`
//!   --> playbooks/sysctl.yml:12:9
//!    |
//! 12 |         valu: 262144
//!    |         ^^^^ expected one of: name, value, state, reload, sysctl_file
//!    = help: did you mean `value`?
//! ```
//! The source line is read from the file when rendering; values of variables
//! are never put into messages (they may be secrets).

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based; 0 when the error is about the file as a whole.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    /// Characters to underline; at least one caret is drawn.
    pub len: usize,
    pub message: String,
    /// Text beside the carets.
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(
        path: impl Into<PathBuf>,
        line: usize,
        col: usize,
        message: impl fmt::Display,
    ) -> Self {
        Diagnostic {
            path: path.into(),
            line,
            col,
            len: 1,
            message: message.to_string(),
            label: None,
            help: None,
        }
    }
    pub fn with_len(mut self, len: usize) -> Self {
        self.len = len.max(1);
        self
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `path:line:col`, the form editors and CI annotations understand.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.path.display().to_string()
        } else {
            format!("{}:{}:{}", self.path.display(), self.line, self.col)
        }
    }

    /// Render with the source line and carets, reading the file for the line.
    pub fn render(&self) -> String {
        // Lossily, so a file with a stray bad byte still shows its line.
        let source = std::fs::read(&self.path)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        self.render_with_source(source.as_deref())
    }

    /// Render against the given file text (tests pass it to stay hermetic).
    /// [`render`](Self::render), headed `warning:` (a problem that does not
    /// stop the run).
    pub fn render_as_warning(&self) -> String {
        let text = self.render();
        match text.strip_prefix("error: ") {
            Some(rest) => format!("warning: {rest}"),
            None => text,
        }
    }

    pub fn render_with_source(&self, source: Option<&str>) -> String {
        let mut out = format!("error: {}\n", self.message);
        let line_text = source
            .filter(|_| self.line > 0)
            .and_then(|s| s.lines().nth(self.line - 1));
        let gutter = if self.line > 0 {
            self.line.to_string().len()
        } else {
            1
        };
        let pad = " ".repeat(gutter);
        out.push_str(&format!("{pad}--> {}\n", self.location()));
        if let Some(text) = line_text {
            let text = text.trim_end();
            out.push_str(&format!("{pad} |\n"));
            out.push_str(&format!("{} | {}\n", self.line, text));
            let col = self.col.max(1);
            let width = text.chars().count();
            let len = self.len.max(1).min(width.saturating_sub(col - 1).max(1));
            let indent: String = text
                .chars()
                .take(col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("{pad} | {indent}{}", "^".repeat(len)));
            if let Some(label) = &self.label {
                out.push(' ');
                out.push_str(label);
            }
            out.push('\n');
        } else if let Some(label) = &self.label {
            out.push_str(&format!("{pad} = {label}\n"));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("{pad} = help: {help}\n"));
        }
        out
    }

    /// The path shown relative to `base` (for stable snapshots).
    pub fn relative_to(mut self, base: &Path) -> Self {
        if let Ok(p) = self.path.strip_prefix(base) {
            self.path = p.to_path_buf();
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Read a user's file as text. A file that is not UTF-8 is an error at the
/// line and column of its first bad byte, so the user can find it; a file
/// that cannot be read at all is an error about the whole file. `what`
/// names the file in messages ("inventory file", "vars file").
pub fn read_source(path: &Path, what: &str) -> Result<String, Diagnostic> {
    let bytes = std::fs::read(path)
        .map_err(|e| Diagnostic::new(path, 0, 0, format!("cannot read {what}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // `good` is valid UTF-8 by construction.
        let good = std::str::from_utf8(good).unwrap_or_default();
        let line = good.matches('\n').count() + 1;
        let col = good.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Diagnostic::new(path, line, col, format!("{what} is not valid UTF-8"))
            .with_help("save the file as UTF-8")
    })
}

/// The closest candidate to `word`, if one is close enough to suggest.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    // Among equally close names the one sharing the longest start wins:
    // `valu` is `value`, not the alias `val`.
    let common_prefix = |c: &str| {
        word.chars()
            .zip(c.chars())
            .take_while(|(a, b)| a == b)
            .count()
    };
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, c)| (*d, std::cmp::Reverse(common_prefix(c))))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_file_points_at_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, b"[web]\nw\xc3\xa9b1 x=\xff\n").unwrap();
        let d = read_source(&path, "inventory file").unwrap_err();
        assert_eq!((d.line, d.col), (2, 8));
        assert_eq!(d.message, "inventory file is not valid UTF-8");
        assert!(d.render().contains("2 | w\u{e9}b1 x=\u{fffd}"));
        std::fs::write(&path, "ok\n").unwrap();
        assert_eq!(read_source(&path, "inventory file").unwrap(), "ok\n");
    }

    #[test]
    fn renders_caret_under_token() {
        let src = "- hosts: all\n  tasks:\n    - sysctl:\n        valu: 262144\n";
        let d = Diagnostic::new(
            "playbooks/sysctl.yml",
            4,
            9,
            "unknown parameter `valu` for module `sysctl`",
        )
        .with_len(4)
        .with_label("expected one of: name, value")
        .with_help("did you mean `value`?");
        let r = d.render_with_source(Some(src));
        assert_eq!(
            r,
            "error: unknown parameter `valu` for module `sysctl`\n \
             --> playbooks/sysctl.yml:4:9\n  |\n4 |         valu: 262144\n  |         ^^^^ expected one of: name, value\n  = help: did you mean `value`?\n"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("valu", ["name", "value"]), Some("value"));
        assert_eq!(did_you_mean("becom", ["become", "tags"]), Some("become"));
        assert_eq!(did_you_mean("zzzzzz", ["become", "tags"]), None);
        assert_eq!(did_you_mean("valu", ["val", "value"]), Some("value"));
    }
}
