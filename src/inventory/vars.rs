//! `group_vars/` and `host_vars/` directories: the variables files Ansible
//! reads beside an inventory source and beside a playbook.
//!
//! For a group or host `name`, the first of these that exists is used
//! (Ansible's `find_vars_files`): `name` (a file, or a directory whose files
//! are all read), `name.yml`, `name.yaml`, `name.json`. Inside a directory,
//! files are read in sorted order, recursing into subdirectories, skipping
//! hidden files, `~` backups and extensions other than none/.yml/.yaml/.json;
//! later files override earlier ones, shallowly. Only names of groups and
//! hosts that exist are looked up, so a stray file is never parsed.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::diagnostic::Diagnostic;
use crate::yaml::NodeValue;

const EXTENSIONS: [&str; 3] = ["yml", "yaml", "json"];

/// The variables one directory contributes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VarsDir {
    /// The directory holding `group_vars/` and `host_vars/`.
    pub dir: PathBuf,
    /// Beside a playbook (read after, and winning over, inventory ones).
    pub from_playbook: bool,
    /// Group name -> merged vars, for groups that have a vars file here.
    pub groups: IndexMap<String, Map<String, Value>>,
    /// Host name -> merged vars, for hosts that have a vars file here.
    pub hosts: IndexMap<String, Map<String, Value>>,
}

/// Read `base/group_vars` for `groups` and `base/host_vars` for `hosts`.
pub fn read(
    base: &Path,
    groups: &[String],
    hosts: &[String],
    from_playbook: bool,
) -> Result<VarsDir, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut out = VarsDir {
        dir: base.to_path_buf(),
        from_playbook,
        ..VarsDir::default()
    };
    for (sub, names, into) in [
        ("group_vars", groups, &mut out.groups),
        ("host_vars", hosts, &mut out.hosts),
    ] {
        let dir = base.join(sub);
        if !dir.is_dir() {
            continue;
        }
        for name in names {
            // A name with a path separator cannot be a file name here.
            if name.contains(['/', '\\']) || name == ".." || name == "." {
                continue;
            }
            let mut merged = Map::new();
            let files = find_vars_files(&dir, name);
            if files.is_empty() {
                continue;
            }
            for file in files {
                match read_file(&file) {
                    Ok(vars) => merged.extend(vars),
                    Err(d) => errors.push(d),
                }
            }
            into.insert(name.clone(), merged);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn find_vars_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let bare = dir.join(name);
    let candidates = std::iter::once(bare.clone())
        .chain(EXTENSIONS.iter().map(|e| dir.join(format!("{name}.{e}"))));
    for path in candidates {
        if path.is_dir() {
            let mut found = Vec::new();
            files_in(&path, &mut found);
            return found;
        }
        if path.is_file() {
            return vec![path];
        }
    }
    Vec::new()
}

fn files_in(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = dir.join(&name);
        let ext = path.extension().and_then(|e| e.to_str());
        if path.is_dir() {
            if ext.is_none() {
                files_in(&path, found);
            }
        } else if ext.is_none_or(|e| EXTENSIONS.contains(&e)) {
            found.push(path);
        }
    }
}

/// One vars file: a YAML (or JSON) mapping, or empty.
fn read_file(path: &Path) -> Result<Map<String, Value>, Diagnostic> {
    let text = crate::diagnostic::read_source(path, "vars file")?;
    let node = crate::yaml::parse(path, &text)?;
    match &node.value {
        NodeValue::Null => Ok(Map::new()),
        NodeValue::Map(_) => match node.to_json() {
            Value::Object(m) => Ok(m),
            _ => Ok(Map::new()),
        },
        _ => Err(node
            .span
            .diagnostic(format!(
                "a vars file must be a mapping of variable names to values, found {}",
                node.kind()
            ))
            .with_help("write one `name: value` per line")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn first_match_wins_and_directories_merge_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "group_vars/web.yml", "a: 1\n");
        write(root, "group_vars/web.json", "{\"a\": 2}");
        write(root, "group_vars/db/10-base.yml", "a: 1\nb: 1\n");
        write(root, "group_vars/db/20-over.yaml", "b: 2\n");
        write(root, "group_vars/db/sub/x", "c: 3\n");
        write(root, "group_vars/db/notes.txt", "not: read\n");
        write(root, "group_vars/db/.hidden.yml", "not: read\n");
        write(root, "group_vars/ghost.yml", "- not parsed\n");
        write(root, "host_vars/h1", "h: true\n");
        let names = |v: &[&str]| {
            v.iter()
                .map(std::string::ToString::to_string)
                .collect::<Vec<_>>()
        };
        let d = read(root, &names(&["web", "db"]), &names(&["h1", "h2"]), false).unwrap();
        assert_eq!(Value::Object(d.groups["web"].clone()), json!({"a": 1}));
        assert_eq!(
            Value::Object(d.groups["db"].clone()),
            json!({"a": 1, "b": 2, "c": 3})
        );
        assert_eq!(Value::Object(d.hosts["h1"].clone()), json!({"h": true}));
        assert!(!d.hosts.contains_key("h2"));
    }

    #[test]
    fn non_mapping_is_an_error_at_the_node() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "group_vars/all.yml", "# vars\n- a\n- b\n");
        let e = read(tmp.path(), &["all".to_string()], &[], false).unwrap_err();
        assert_eq!((e[0].line, e[0].col), (2, 1));
        assert!(e[0].message.contains("found a list"), "{}", e[0].message);
    }
}
