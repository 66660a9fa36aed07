//! One compose project as it should be on the host (`Want`, one per color
//! under blue-green), the texts of its `.env` and manifest, and the
//! `docker compose` command line over its files.

use std::collections::BTreeMap;

use base64::Engine;

use crate::shell_quote::quote;
use crate::ModuleError;

use super::params::{Color, ComposeDeployParams, DeployState, Strategy};
use super::{invalid, HEADER, MANIFEST};

/// One compose project as it should be on the host.
#[derive(Debug, Clone)]
pub(super) struct Want {
    pub(super) project: String,
    pub(super) dir: String,
    /// (name in dir, content)
    pub(super) files: Vec<(String, String)>,
    pub(super) env: BTreeMap<String, String>,
    pub(super) env_text: String,
    pub(super) manifest: String,
}

impl Want {
    pub(super) fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }
    pub(super) fn names(&self) -> Vec<&str> {
        self.files.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// `.env` text: a header and `KEY=value` lines, single-quoted (literal to
/// compose) unless plain.
pub(super) fn env_text(env: &BTreeMap<String, String>) -> String {
    let mut s = String::from(HEADER);
    for (k, v) in env {
        let plain = v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:@,+-".contains(&b));
        if plain {
            s.push_str(&format!("{k}={v}\n"));
        } else {
            s.push_str(&format!("{k}='{v}'\n"));
        }
    }
    s
}

fn manifest_text(names: &[&str]) -> String {
    let mut s = String::from(HEADER);
    for n in names {
        s.push_str(n);
        s.push('\n');
    }
    s
}

pub(super) fn manifest_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| valid_file_name(l))
        .map(str::to_string)
        .collect()
}

fn valid_file_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The projects this task wants: one, or one per color.
pub(super) fn wants(p: &ComposeDeployParams) -> Result<Vec<(Option<Color>, Want)>, ModuleError> {
    let files =
        match (&p.rendered, p.state) {
            (Some(f), _) => f.clone(),
            (None, DeployState::Absent) => Vec::new(),
            (None, _) if p.files.is_empty() => {
                return Err(invalid("files", "give at least one compose file"))
            }
            (None, _) => return Err(invalid(
                "files",
                "the files were not read on the controller (the engine passes them as `_files`)",
            )),
        };
    if files.is_empty() && p.state != DeployState::Absent {
        return Err(invalid("files", "give at least one compose file"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &files {
        if !valid_file_name(&f.name) || f.name == MANIFEST {
            return Err(invalid(
                "files",
                format!("`{}` cannot be a file name in `dir`", f.name),
            ));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(invalid(
                "files",
                format!("two files would both be `{}` in `dir`", f.name),
            ));
        }
    }
    let files: Vec<(String, String)> = files.into_iter().map(|f| (f.name, f.content)).collect();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let manifest = manifest_text(&names);
    let dir = p.dir.trim_end_matches('/').to_string();
    Ok(match p.strategy {
        Strategy::Recreate => vec![(
            None,
            Want {
                project: p.project.clone(),
                dir,
                env_text: env_text(&p.env),
                env: p.env.clone(),
                files,
                manifest,
            },
        )],
        Strategy::BlueGreen => [Color::Blue, Color::Green]
            .into_iter()
            .map(|c| {
                let mut env = p.env.clone();
                let extra = p.colors.as_ref().map(|cs| match c {
                    Color::Blue => &cs.blue,
                    Color::Green => &cs.green,
                });
                if let Some(extra) = extra {
                    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                env.insert("DEPLOY_COLOR".into(), c.word().into());
                (
                    Some(c),
                    Want {
                        project: format!("{}-{}", p.project, c.word()),
                        dir: format!("{dir}/{}", c.word()),
                        env_text: env_text(&env),
                        env,
                        files: files.clone(),
                        manifest: manifest.clone(),
                    },
                )
            })
            .collect(),
    })
}

/// `docker compose` with the project's directory, name, files and env file.
pub(super) fn compose_cmd(project: &str, dir: &str, names: &[&str]) -> String {
    let mut s = format!(
        "docker compose --project-directory {} -p {}",
        quote(dir),
        quote(project)
    );
    for n in names {
        s.push_str(&format!(" -f {}", quote(&format!("{dir}/{n}"))));
    }
    s.push_str(&format!(" --env-file {}", quote(&format!("{dir}/.env"))));
    s
}

pub(super) fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// `.env` lines back into a map (for the rolled-back version's health URL).
pub(super) fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}
