//! `include_vars`: variables from a YAML/JSON file, or from every file of
//! a directory (`depth`, `files_matching`, `ignore_files`, `extensions`,
//! `ignore_unknown_extensions`), optionally under one `name`, for the host
//! that runs it. As in Ansible they sit above task vars and below
//! `set_fact`, last for the rest of the run; a file is found beside the
//! task's file and the playbook, in a `vars/` directory or not
//! ([`crate::playbook::search`]); a directory is relative to the task's file.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::actions::IncludeVarsParams;
use crate::executor::task::ItemOutcome;
use crate::executor::PlayRunner;
use crate::output::Status;
use crate::playbook::{search, Task};

const DEFAULT_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// What was loaded: the variables, and the files they came from in order.
type Loaded = (Map<String, Value>, Vec<PathBuf>);

/// Why `include_vars` failed, in ansible-core 2.18's words where it has them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IncludeVarsError {
    #[error("You are mixing file only and dir only arguments, these are incompatible")]
    FileAndDir,
    #[error("include_vars needs `file`, `dir` or a file name")]
    NothingNamed,
    #[error("Could not find or access '{name}' (searched: {looked})")]
    NotFound { name: String, looked: String },
    #[error("{} must be stored as a dictionary/hash", .0.display())]
    NotAMapping(PathBuf),
    #[error("{0}")]
    Parse(String),
    #[error("{} directory does not exist", .0.display())]
    NoDirectory(PathBuf),
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{param} is not a valid regular expression")]
    BadPattern { param: &'static str },
    #[error("{} does not have a valid extension: {extensions}", .path.display())]
    BadExtension { path: PathBuf, extensions: String },
    #[error("{} holds more than {max} directories", .dir.display())]
    TooManyDirectories { dir: PathBuf, max: usize },
    #[error("cannot list {}: {source}", .dir.display())]
    List {
        dir: PathBuf,
        source: std::io::Error,
    },
}

impl PlayRunner<'_> {
    pub(crate) fn run_include_vars(&self, args: &Value, task: &Task, i: usize) -> ItemOutcome {
        let p =
            match herdsman_modules::module::parse_params::<IncludeVarsParams>("include_vars", args)
            {
                Ok(p) => p,
                Err(e) => return ItemOutcome::failed(e.to_string()),
            };
        let loaded = match (&p.dir, p.file.as_ref().or(p.raw.as_ref())) {
            (Some(_), Some(_)) => Err(IncludeVarsError::FileAndDir),
            (Some(dir), None) => {
                let dir = match task.span.path.parent() {
                    Some(base) => base.join(dir),
                    None => PathBuf::from(dir),
                };
                load_dir(&dir, &p)
            }
            (None, Some(file)) => {
                let bases = search::task_bases(&task.span.path, &self.playbook.dir);
                load_file_arg(&bases, file.trim_end_matches('\n'))
            }
            (None, None) => Err(IncludeVarsError::NothingNamed),
        };
        let (mut vars, files) = match loaded {
            Ok(l) => l,
            Err(e) => return ItemOutcome::failed(e.to_string()),
        };
        if let Some(name) = p.name {
            let mut scoped = Map::new();
            scoped.insert(name, Value::Object(vars));
            vars = scoped;
        }
        self.run.include_vars(&self.names[i], vars.clone());
        let mut o = ItemOutcome::new(Status::Ok);
        o.result.insert("ansible_facts".into(), Value::Object(vars));
        o.result.insert(
            "ansible_included_var_files".into(),
            Value::from(
                files
                    .iter()
                    .map(|f| absolute(f).display().to_string())
                    .collect::<Vec<_>>(),
            ),
        );
        o
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn load_file_arg(bases: &[PathBuf], name: &str) -> Result<Loaded, IncludeVarsError> {
    let path = search::find(bases, "vars", name).map_err(|looked| {
        let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
        IncludeVarsError::NotFound {
            name: name.to_string(),
            looked: looked.join(", "),
        }
    })?;
    let vars = load_one(&path)?;
    Ok((vars, vec![path]))
}

/// One vars file: a mapping (an empty file is none), else an error naming it.
fn load_one(path: &Path) -> Result<Map<String, Value>, IncludeVarsError> {
    match crate::yaml::parse_file(path).map(|n| n.to_json()) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(IncludeVarsError::NotAMapping(path.to_path_buf())),
        // The loader's diagnostic, already rendered with its location.
        Err(d) => Err(IncludeVarsError::Parse(d.to_string())),
    }
}

/// Every file of `dir` that passes the filters, directories in sorted path
/// order and files sorted in each, later files overriding earlier ones.
fn load_dir(dir: &Path, p: &IncludeVarsParams) -> Result<Loaded, IncludeVarsError> {
    if !dir.exists() {
        return Err(IncludeVarsError::NoDirectory(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(IncludeVarsError::NotADirectory(dir.to_path_buf()));
    }
    let matcher = p
        .files_matching
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|_| IncludeVarsError::BadPattern {
            param: "files_matching",
        })?;
    let ignore: Vec<regex::Regex> = p
        .ignore_files
        .clone()
        .map(super::super::actions::OneOrMany::into_vec)
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .map(|pat| regex::Regex::new(&format!("(?:{pat})$")))
        .collect::<Result<_, _>>()
        .map_err(|_| IncludeVarsError::BadPattern {
            param: "ignore_files",
        })?;
    let extensions: Vec<String> = p.extensions.clone().unwrap_or_else(|| {
        DEFAULT_EXTENSIONS
            .iter()
            .map(std::string::ToString::to_string)
            .collect()
    });
    let mut vars = Map::new();
    let mut files = Vec::new();
    for (root, names) in walk_sorted(dir, p.depth.unwrap_or(0))? {
        for name in names {
            if matcher.as_ref().is_some_and(|m| !m.is_match(&name)) {
                continue;
            }
            if ignore.iter().any(|r| r.is_match(&name)) {
                continue;
            }
            let ext_ok = Path::new(&name)
                .extension()
                .is_some_and(|e| extensions.iter().any(|x| e == x.as_str()));
            if !ext_ok {
                if p.ignore_unknown_extensions {
                    continue;
                }
                return Err(IncludeVarsError::BadExtension {
                    path: root.join(&name),
                    extensions: extensions.join(", "),
                });
            }
            let path = root.join(&name);
            for (k, v) in load_one(&path)? {
                vars.insert(k, v);
            }
            files.push(path);
        }
    }
    Ok((vars, files))
}

/// Directories under `dir` (itself included) no deeper than `depth` (0: no
/// limit), sorted by path, each with its sorted file names.
fn walk_sorted(dir: &Path, depth: u64) -> Result<Vec<(PathBuf, Vec<String>)>, IncludeVarsError> {
    /// A bound on the directories walked, so a link loop cannot hang the run.
    const MAX_DIRS: usize = 10_000;
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), 1u64)];
    while let Some((d, level)) = pending.pop() {
        if out.len() >= MAX_DIRS {
            return Err(IncludeVarsError::TooManyDirectories {
                dir: dir.to_path_buf(),
                max: MAX_DIRS,
            });
        }
        let entries = std::fs::read_dir(&d).map_err(|source| IncludeVarsError::List {
            dir: d.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                pending.push((path, level + 1));
            } else {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        if depth == 0 || level <= depth {
            names.sort();
            out.push((d, names));
        }
    }
    out.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: Value) -> IncludeVarsParams {
        herdsman_modules::module::parse_params("include_vars", &json).unwrap()
    }

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("v");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("b.yml"), "b: 2\nshared: b\n").unwrap();
        std::fs::write(root.join("a.yaml"), "a: 1\nshared: a\n").unwrap();
        std::fs::write(root.join("c.json"), "{\"c\": 3}").unwrap();
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        std::fs::write(root.join("sub/s.yml"), "s: 4\n").unwrap();
        std::fs::write(root.join("sub/deeper/d.yml"), "d: 5\n").unwrap();
        d
    }

    #[test]
    fn a_directory_in_ansible_order_with_filters() {
        let d = tree();
        let dir = d.path().join("v");
        let all = params(serde_json::json!({"dir": "v", "ignore_unknown_extensions": true}));
        let (vars, files) = load_dir(&dir, &all).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yml", "c.json", "s.yml", "d.yml"]);
        assert_eq!(vars["shared"], "b");
        let top = params(serde_json::json!({"dir": "v", "depth": 1, "files_matching": "^[ab]"}));
        let (vars, _) = load_dir(&dir, &top).unwrap();
        assert_eq!(vars.keys().collect::<Vec<_>>(), ["a", "shared", "b"]);
        let strict = params(serde_json::json!({"dir": "v", "depth": 1}));
        let e = load_dir(&dir, &strict).unwrap_err().to_string();
        assert!(
            e.contains("notes.txt does not have a valid extension"),
            "{e}"
        );
        let ignoring = params(
            serde_json::json!({"dir": "v", "ignore_files": ["notes.txt", "b.yml"], "depth": 1}),
        );
        let (vars, _) = load_dir(&dir, &ignoring).unwrap();
        assert_eq!(vars["shared"], "a");
    }
}
