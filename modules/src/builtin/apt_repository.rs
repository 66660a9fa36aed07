//! `apt_repository`: add or remove a one-line apt source
//! (`deb [opts] URI suite [components]`) in `/etc/apt/sources.list.d`.
//!
//! The plan is one probe that prints every `.list` source file (and
//! `/etc/apt/sources.list`). A repository counts as present when an
//! enabled line equal to it (whitespace aside) is in any of them; a new one
//! is appended to `<filename>.list` (named from the URI as Ansible does
//! when `filename` is not given). `absent` removes the line wherever it is,
//! and a file left empty is deleted. After a change, `update_cache`
//! (default yes) runs `apt-get update`.
//!
//! Differences from Ansible: `ppa:` repositories are not supported (they
//! need Launchpad); a commented-out copy of the line is not re-enabled in
//! place (the line is added to `filename` instead); `codename` and
//! `install_python_apt` are accepted and ignored.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::host::FileAttrs;
use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_u64, mode_str, yes, Mode};
use crate::shell_quote::quote;
use crate::{FileDiff, Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum RepoState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `apt_repository`: what `herd doc` shows, and what the parser takes.
pub struct AptRepositoryParams {
    /// The source line (`deb [signed-by=...] http://host/debian bookworm main`); `ppa:` is not
    /// supported.
    pub repo: String,
    /// `present`: the line is in the file; `absent`: it is not (a file left empty is deleted).
    #[serde(default)]
    pub state: RepoState,
    /// The file's name under `/etc/apt/sources.list.d/`, without `.list` (default: made from
    /// the line).
    pub filename: Option<String>,
    /// Run `apt-get update` after a change.
    #[serde(default = "yes", alias = "update-cache", deserialize_with = "de_bool")]
    pub update_cache: bool,
    /// Accepted for compatibility; the update is tried once.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub update_cache_retries: Option<u64>,
    /// Accepted for compatibility; the update is tried once.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub update_cache_retry_max_delay: Option<u64>,
    /// The file's permissions (default 0644).
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub mode: Option<Mode>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub validate_certs: Option<bool>,
    /// Accepted and ignored (only used by Ansible for `ppa:`).
    pub codename: Option<String>,
    /// Accepted and ignored (nothing needs Python).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub install_python_apt: Option<bool>,
}

/// The `apt_repository` module.
pub struct AptRepository;

const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
const MAIN_LIST: &str = "/etc/apt/sources.list";

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: AptRepository::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// A source line with its whitespace collapsed, or `None` for anything
/// that is not an enabled `deb`/`deb-src` line.
pub fn normalize(line: &str) -> Option<String> {
    let line = line.split('#').next().unwrap_or("").trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.first() {
        Some(&("deb" | "deb-src")) if words.len() >= 3 => Some(words.join(" ")),
        _ => None,
    }
}

/// Ansible's file name for a repository line: the URI without its scheme,
/// options and credentials, every run of other characters as `_`.
pub fn suggest_filename(repo: &str) -> String {
    let mut line = String::new();
    let mut depth = 0;
    for c in repo.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            c if depth == 0 => line.push(c),
            _ => {}
        }
    }
    let uri = line
        .split_whitespace()
        .find(|w| !matches!(*w, "deb" | "deb-src"))
        .unwrap_or("");
    let uri = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let uri = uri.rsplit_once('@').map_or(uri, |(_, host)| host);
    uri.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// Source files as the probe printed them: `FILE path` then `L line`s.
pub fn parse_files(out: &str) -> Vec<(String, Vec<String>)> {
    let mut files: Vec<(String, Vec<String>)> = Vec::new();
    for line in out.lines() {
        if let Some(path) = line.strip_prefix("FILE ") {
            files.push((path.to_string(), Vec::new()));
        } else if let (Some(l), Some(last)) = (line.strip_prefix("L "), files.last_mut()) {
            last.1.push(l.to_string());
        } else if let (Some("L"), Some(last)) = (Some(line), files.last_mut()) {
            last.1.push(String::new());
        }
    }
    files
}

fn text_of(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

impl AptRepository {
    fn target(p: &AptRepositoryParams) -> String {
        let name = p
            .filename
            .clone()
            .unwrap_or_else(|| suggest_filename(&p.repo));
        format!("{SOURCES_DIR}/{name}.list")
    }
}

impl Module for AptRepository {
    const NAME: &'static str = "apt_repository";
    const DOC_SHORT: &'static str = "Add or remove a one-line apt source.";
    const DOC_EXAMPLE: &'static str = r##"- apt_repository:
    repo: deb [signed-by=/etc/apt/keyrings/example.asc] https://packages.example.com/debian bookworm main
    filename: example
"##;
    type Params = AptRepositoryParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if p.repo.trim_start().starts_with("ppa:") {
            return Err(invalid("repo", "ppa: repositories are not supported"));
        }
        let repo = normalize(&p.repo)
            .ok_or_else(|| invalid("repo", "expected `deb URI suite [components]`"))?;
        if p.filename
            .as_deref()
            .is_some_and(|f| f.contains('/') || f.is_empty())
        {
            return Err(invalid("filename", "a file name without a directory"));
        }
        let script = format!(
            "for f in {MAIN_LIST} {SOURCES_DIR}/*.list; do [ -f \"$f\" ] || continue; \
             echo \"FILE $f\"; sed 's/^/L /' \"$f\"; done\n"
        );
        let out = host.run(&script, None)?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "reading the apt sources failed: {}",
                out.stderr_str().trim_end()
            )));
        }
        let files = parse_files(&out.stdout_str());
        let target = Self::target(p);
        let mut plan = Plan::default();
        let mut writes: Vec<(String, Option<String>)> = Vec::new();
        match p.state {
            RepoState::Present => {
                let present = files
                    .iter()
                    .any(|(_, lines)| lines.iter().any(|l| normalize(l).as_deref() == Some(&repo)));
                if !present {
                    let before = files
                        .iter()
                        .find(|(f, _)| *f == target)
                        .map(|(_, l)| text_of(l))
                        .unwrap_or_default();
                    let mut after = before.clone();
                    after.push_str(&repo);
                    after.push('\n');
                    plan.changes.push(format!("add {repo} to {target}"));
                    plan.diffs.push(FileDiff {
                        path: target.clone(),
                        before,
                        after: after.clone(),
                    });
                    writes.push((target.clone(), Some(after)));
                }
            }
            RepoState::Absent => {
                for (f, lines) in &files {
                    let kept: Vec<String> = lines
                        .iter()
                        .filter(|l| normalize(l).as_deref() != Some(&repo))
                        .cloned()
                        .collect();
                    if kept.len() == lines.len() {
                        continue;
                    }
                    let only_blank = kept.iter().all(|l| l.trim().is_empty());
                    let after = text_of(&kept);
                    plan.changes.push(format!("remove {repo} from {f}"));
                    plan.diffs.push(FileDiff {
                        path: f.clone(),
                        before: text_of(lines),
                        after: if only_blank {
                            String::new()
                        } else {
                            after.clone()
                        },
                    });
                    let delete = only_blank && f != MAIN_LIST;
                    writes.push((f.clone(), (!delete).then_some(after)));
                }
            }
        }
        if !plan.is_empty() && p.update_cache {
            plan.changes.push("update the package lists".into());
        }
        let mut result = Map::new();
        result.insert("repo".into(), json!(repo));
        result.insert(
            "state".into(),
            json!(match p.state {
                RepoState::Present => "present",
                RepoState::Absent => "absent",
            }),
        );
        result.insert("sources_added".into(), json!([]));
        result.insert("sources_removed".into(), json!([]));
        plan.result = result;
        plan.state = json!({"writes": writes});
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let writes: Vec<(String, Option<String>)> = plan
            .state
            .get("writes")
            .cloned()
            .and_then(|w| serde_json::from_value(w).ok())
            .ok_or_else(|| ModuleError::failed("apt_repository: apply called without a plan"))?;
        let mode = match &p.mode {
            Some(Mode::Octal(m)) => Some(mode_str(*m)),
            Some(Mode::Symbolic(s)) => Some(crate::params::symbolic_for_chmod(s)),
            _ => Some("0644".to_string()),
        };
        let mut result = plan.result.clone();
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (path, content) in &writes {
            match content {
                Some(text) => {
                    let attrs = FileAttrs {
                        mode: mode.clone(),
                        ..FileAttrs::default()
                    };
                    host.write_file(path, text.as_bytes(), &attrs)?;
                    if p.state == RepoState::Present {
                        added.push(path.clone());
                    } else {
                        removed.push(path.clone());
                    }
                }
                None => {
                    crate::textfile::run_checked(
                        host,
                        "remove source file",
                        &format!("rm -f -- {}", quote(path)),
                    )?;
                    removed.push(path.clone());
                }
            }
        }
        result.insert("sources_added".into(), json!(added));
        result.insert("sources_removed".into(), json!(removed));
        if p.update_cache {
            let out = host.run("DEBIAN_FRONTEND=noninteractive apt-get update -q", None)?;
            if !out.success() {
                result.insert("stderr".into(), json!(out.stderr_str()));
                return Err(ModuleError::Failed {
                    msg: format!(
                        "Failed to update apt cache: {}",
                        out.stderr_str().trim_end()
                    ),
                    result,
                });
            }
            result.insert("cache_updated".into(), Value::Bool(true));
        }
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_file_names_like_ansible() {
        assert_eq!(
            normalize("  deb  [trusted=yes]   http://x/ ./ # c").as_deref(),
            Some("deb [trusted=yes] http://x/ ./")
        );
        assert_eq!(normalize("# deb http://x/ ./"), None);
        assert_eq!(normalize("deb http://x/"), None);
        assert_eq!(
            suggest_filename(
                "deb [arch=amd64] https://u:p@download.docker.com/linux/debian bookworm stable"
            ),
            "download_docker_com_linux_debian"
        );
        assert_eq!(
            suggest_filename("deb http://10.77.0.1:8080 ./"),
            "10_77_0_1_8080"
        );
        let f = parse_files("FILE /a.list\nL deb http://x/ ./\nL\nFILE /b.list\n");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].1, ["deb http://x/ ./", ""]);
    }

    #[test]
    fn plans_add_and_remove() {
        use crate::testing::host;
        let p: AptRepositoryParams = crate::module::parse_params(
            "apt_repository",
            &json!({"repo": "deb http://example.invalid/debian bookworm main", "update_cache": false}),
        )
        .expect("params");
        // The controller's own sources are read, never written, here.
        let plan = AptRepository.plan(&p, &mut host()).expect("plan");
        assert!(plan
            .changes
            .iter()
            .any(|c| c.contains("example_invalid_debian.list")));
    }
}
