//! Where a task's relative file names are found, the way Ansible's
//! `path_dwim_relative_stack` finds them: for each base directory in turn
//! (the task file's directory, later role directories prepended by the
//! caller, then the playbook's directory), `<base>/<subdir>/<name>` and
//! then `<base>/<name>`. `include_vars` uses it with the `vars` subdir.

use std::path::{Path, PathBuf};

/// Every place `name` is looked for under `bases` with `subdir`, in order.
/// A name that already starts with `subdir/` is not looked for under a
/// second `subdir`; an absolute name is only itself.
pub fn candidates(bases: &[PathBuf], subdir: &str, name: &str) -> Vec<PathBuf> {
    let path = Path::new(name);
    if path.is_absolute() {
        return vec![path.to_path_buf()];
    }
    let already_in_subdir = path
        .components()
        .next()
        .is_some_and(|c| c.as_os_str() == subdir);
    let mut out: Vec<PathBuf> = Vec::new();
    for base in bases {
        if !already_in_subdir {
            out.push(base.join(subdir).join(path));
        }
        out.push(base.join(path));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// The first of [`candidates`] that exists, or every place looked in.
pub fn find(bases: &[PathBuf], subdir: &str, name: &str) -> Result<PathBuf, Vec<PathBuf>> {
    let all = candidates(bases, subdir, name);
    match all.iter().find(|p| p.exists()) {
        Some(p) => Ok(p.clone()),
        None => Err(all),
    }
}

/// The bases for a task written in `task_file` of a playbook in
/// `playbook_dir`: the task file's directory, then the playbook's.
pub fn task_bases(task_file: &Path, playbook_dir: &Path) -> Vec<PathBuf> {
    let mut bases = Vec::new();
    if let Some(dir) = task_file.parent() {
        bases.push(dir.to_path_buf());
    }
    if !bases.iter().any(|b| b == playbook_dir) {
        bases.push(playbook_dir.to_path_buf());
    }
    bases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_subdir_then_base_for_each_base_in_order() {
        let bases = vec![PathBuf::from("/pb/tasks"), PathBuf::from("/pb")];
        assert_eq!(
            candidates(&bases, "vars", "x.yml"),
            [
                "/pb/tasks/vars/x.yml",
                "/pb/tasks/x.yml",
                "/pb/vars/x.yml",
                "/pb/x.yml"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            candidates(&bases, "vars", "vars/x.yml"),
            ["/pb/tasks/vars/x.yml", "/pb/vars/x.yml"].map(PathBuf::from)
        );
        assert_eq!(
            candidates(&bases, "vars", "/etc/x.yml"),
            [PathBuf::from("/etc/x.yml")]
        );
    }

    #[test]
    fn finds_the_first_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("vars")).unwrap();
        std::fs::write(dir.path().join("vars/a.yml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("a.yml"), "a: 2\n").unwrap();
        let bases = vec![dir.path().to_path_buf()];
        assert_eq!(
            find(&bases, "vars", "a.yml").unwrap(),
            dir.path().join("vars/a.yml")
        );
        assert_eq!(find(&bases, "vars", "b.yml").unwrap_err().len(), 2);
    }
}
