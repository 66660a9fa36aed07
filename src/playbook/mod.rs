//! Playbooks: YAML plays and tasks loaded into [`model`] with spans kept,
//! then validated (keywords, modules, parameters, handlers, templates)
//! before any host is contacted.

pub mod load;
pub mod model;
pub mod validate;

use std::path::{Path, PathBuf};

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
