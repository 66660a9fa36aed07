//! The plan's one script: the project's files on the host, the new
//! configuration's hashes and images, the running containers; its parsing,
//! and the delta between what is wanted and what is there.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::probe::{decode_b64, tagged, tagged_file, tagged_line, ProbeError};
use crate::shell_quote::quote;
use crate::textfile;
use crate::{FileDiff, ModuleError};

use super::params::{Color, ComposeDeployParams, Pull};
use super::project::{b64, manifest_names, Want};
use super::MANIFEST;

pub(super) const PROBE_FUNCTIONS: &str = r#"file() { if [ -f "$2" ]; then printf '%s ' "$1"; base64 -w0 < "$2" || exit 3; echo; else echo "$1 -"; fi; }
b64() { printf '%s ' "$1"; base64 -w0 < "$2"; echo; }
containers() { ids=$(docker ps -aq --filter "label=com.docker.compose.project=$2") || exit 3
  if [ -n "$ids" ]; then docker inspect -f "$1C {{index .Config.Labels \"com.docker.compose.service\"}} {{index .Config.Labels \"com.docker.compose.config-hash\"}} {{.Image}} {{.State.Status}} {{.Name}}" $ids || exit 3; fi; }
command -v docker >/dev/null 2>&1 || { echo NODOCKER; exit 0; }
docker compose version >/dev/null 2>&1 || { echo NOCOMPOSE; exit 0; }
"#;

/// The probe of one project, tagged `x`: its files in `dir`, the new
/// configuration's hashes and images (rendered in `$T/x`), its containers.
fn probe_project(x: &str, w: &Want) -> String {
    let mut s = String::new();
    for (i, (n, _)) in w.files.iter().enumerate() {
        s.push_str(&format!("file {x}F{i} {}\n", quote(&w.path(n))));
    }
    s.push_str(&format!("file {x}ENV {}\n", quote(&w.path(".env"))));
    s.push_str(&format!("file {x}MAN {}\n", quote(&w.path(MANIFEST))));
    s.push_str(&format!("mkdir \"$T/{x}\" || exit 3\n"));
    for (n, c) in &w.files {
        s.push_str(&format!(
            "printf '%s' '{}' | base64 -d > \"$T/{x}/{n}\" || exit 3\n",
            b64(c)
        ));
    }
    s.push_str(&format!(
        "printf '%s' '{}' | base64 -d > \"$T/{x}/.env\" || exit 3\n",
        b64(&w.env_text)
    ));
    let mut cfg = format!(
        "docker compose --project-directory {} -p {}",
        quote(&w.dir),
        quote(&w.project)
    );
    for (n, _) in &w.files {
        cfg.push_str(&format!(" -f \"$T/{x}/{n}\""));
    }
    cfg.push_str(&format!(" --env-file \"$T/{x}/.env\""));
    s.push_str(&format!(
        "if {cfg} config --hash '*' > \"$T/{x}.h\" 2> \"$T/{x}.e\" && {cfg} config --format json > \"$T/{x}.j\" 2>> \"$T/{x}.e\"; then\n\
         \x20 sed 's/^/{x}H /' \"$T/{x}.h\"; b64 {x}JSON \"$T/{x}.j\"\n\
         \x20 {cfg} config --images 2>/dev/null | sort -u | while read -r i; do printf '{x}I %s %s\\n' \"$i\" \"$(docker image inspect -f '{{{{.Id}}}}' \"$i\" 2>/dev/null || echo -)\"; done\n\
         else b64 {x}CFGERR \"$T/{x}.e\"; fi\n"
    ));
    s.push_str(&format!("containers {x} {}\n", quote(&w.project)));
    s
}

pub(super) fn probe_script(
    wants: &[(Option<Color>, Want)],
    live: Option<&str>,
    switch: Option<&str>,
) -> String {
    let mut s = String::from(PROBE_FUNCTIONS);
    s.push_str(
        "T=$(mktemp -d) || exit 3; trap 'rm -rf \"$T\"' EXIT; trap 'exit 143' HUP INT TERM\n",
    );
    if let Some(l) = live {
        s.push_str(&format!("file LIVE {}\n", quote(l)));
    }
    if let Some(f) = switch {
        s.push_str(&format!("file SWITCH {}\n", quote(f)));
    }
    for (c, w) in wants {
        s.push_str(&probe_project(c.map_or("P", Color::tag), w));
    }
    s.push_str("true\n");
    s
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Container {
    pub(super) service: String,
    pub(super) hash: String,
    pub(super) image: String,
    pub(super) state: String,
    pub(super) name: String,
}

/// What the probe saw of one project.
#[derive(Debug, Clone, Default)]
pub(super) struct Probed {
    pub(super) files: Vec<Option<String>>,
    pub(super) env: Option<String>,
    pub(super) manifest: Option<String>,
    pub(super) config_error: Option<String>,
    /// service -> config hash of the new configuration
    pub(super) hashes: BTreeMap<String, String>,
    /// service -> image reference
    pub(super) images: BTreeMap<String, String>,
    /// image reference -> local image ID (`None`: not on the host)
    pub(super) image_ids: BTreeMap<String, Option<String>>,
    pub(super) containers: Vec<Container>,
}

fn lines_of<'a>(out: &'a str, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    out.lines()
        .filter_map(move |l| l.strip_prefix(tag)?.strip_prefix(' '))
}

pub(super) fn parse_containers(out: &str, x: &str) -> Vec<Container> {
    let mut v: Vec<Container> = lines_of(out, &format!("{x}C"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5).then(|| Container {
                service: f[0].to_string(),
                hash: f[1].to_string(),
                image: f[2].to_string(),
                state: f[3].to_string(),
                name: f[4].trim_start_matches('/').to_string(),
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

pub(super) fn parse_project(out: &str, x: &str, n_files: usize) -> Result<Probed, ProbeError> {
    let mut p = Probed::default();
    for i in 0..n_files {
        p.files.push(tagged_file(out, &format!("{x}F{i}"))?);
    }
    p.env = tagged_file(out, &format!("{x}ENV"))?;
    p.manifest = tagged_file(out, &format!("{x}MAN"))?;
    let cfgerr = format!("{x}CFGERR");
    if let Some(e) = tagged(out, &cfgerr) {
        p.config_error = Some(decode_b64(&cfgerr, e)?.trim().to_string());
    } else {
        for l in lines_of(out, &format!("{x}H")) {
            if let Some((svc, h)) = l.split_once(' ') {
                p.hashes
                    .insert(svc.trim().to_string(), h.trim().to_string());
            }
        }
        let tag = format!("{x}JSON");
        let json = decode_b64(&tag, tagged_line(out, &tag)?)?;
        let cfg: Value = serde_json::from_str(&json).map_err(|e| ProbeError::BadJson {
            what: "docker compose config",
            reason: e.to_string(),
        })?;
        if let Some(svcs) = cfg.get("services").and_then(Value::as_object) {
            for (name, svc) in svcs {
                if let Some(img) = svc.get("image").and_then(Value::as_str) {
                    p.images.insert(name.clone(), img.to_string());
                }
            }
        }
        for l in lines_of(out, &format!("{x}I")) {
            if let Some((img, id)) = l.rsplit_once(' ') {
                let id = id.trim();
                p.image_ids.insert(
                    img.to_string(),
                    (id != "-" && !id.is_empty()).then(|| id.to_string()),
                );
            }
        }
    }
    p.containers = parse_containers(out, x);
    Ok(p)
}

/// What deploying `w` over what `got` saw would change.
#[derive(Debug, Default)]
pub(super) struct Delta {
    pub(super) changes: Vec<String>,
    pub(super) diffs: Vec<FileDiff>,
    /// Containers would change (`up` has work to do).
    pub(super) services: bool,
    /// Files on the host that the new version no longer has.
    pub(super) stale: Vec<String>,
}

impl Delta {
    pub(super) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

pub(super) fn delta(w: &Want, got: &Probed, p: &ComposeDeployParams) -> Result<Delta, ModuleError> {
    if let Some(e) = &got.config_error {
        return Err(ModuleError::failed(format!(
            "docker compose rejected the configuration of {}: {e}",
            w.project
        )));
    }
    let mut d = Delta::default();
    let file = |d: &mut Delta, path: String, have: Option<&str>, want: &str| {
        if have == Some(want) {
            return;
        }
        d.changes.push(format!(
            "{} {path}",
            if have.is_some() { "update" } else { "create" }
        ));
        if let Some(diff) = textfile::diff(&path, have.unwrap_or("").as_bytes(), want.as_bytes()) {
            d.diffs.push(diff);
        }
    };
    for ((n, c), have) in w.files.iter().zip(&got.files) {
        file(&mut d, w.path(n), have.as_deref(), c);
    }
    file(&mut d, w.path(".env"), got.env.as_deref(), &w.env_text);
    if got.manifest.as_deref() != Some(w.manifest.as_str()) {
        d.changes
            .push(format!("record the files in {}", w.path(MANIFEST)));
    }
    let names = w.names();
    for old in got
        .manifest
        .as_deref()
        .map(manifest_names)
        .unwrap_or_default()
    {
        if !names.contains(&old.as_str()) {
            d.changes.push(format!("remove {}", w.path(&old)));
            d.stale.push(old);
        }
    }
    let before = d.changes.len();
    if p.pull == Pull::Always {
        d.changes
            .push(format!("{}: pull images (pull: always)", w.project));
    }
    for (svc, hash) in &got.hashes {
        let img = got.images.get(svc);
        let want_id = img.and_then(|i| got.image_ids.get(i));
        if let (Some(img), Some(None)) = (img, want_id) {
            if p.pull == Pull::Never {
                return Err(ModuleError::failed(format!(
                    "image {img} of service {svc} is not on the host and pull is `never`"
                )));
            }
            if p.pull == Pull::Missing {
                d.changes.push(format!("{svc}: pull {img}"));
            }
        }
        let want_id = want_id.and_then(Option::as_deref);
        let cs: Vec<&Container> = got
            .containers
            .iter()
            .filter(|c| &c.service == svc)
            .collect();
        if cs.is_empty() {
            d.changes.push(format!("{svc}: create"));
            continue;
        }
        let why = cs.iter().find_map(|c| {
            if &c.hash != hash {
                Some("recreate (configuration changed)".to_string())
            } else if want_id.is_some_and(|id| id != c.image) {
                Some(format!(
                    "recreate (image {} changed)",
                    img.map(String::as_str).unwrap_or("?")
                ))
            } else if c.state != "running" {
                Some(format!("start ({})", c.state))
            } else {
                None
            }
        });
        if let Some(why) = why {
            d.changes.push(format!("{svc}: {why}"));
        }
    }
    if p.remove_orphans {
        for c in &got.containers {
            if !got.hashes.contains_key(&c.service) {
                d.changes
                    .push(format!("remove orphan container {}", c.name));
            }
        }
    }
    d.services = d.changes.len() > before;
    Ok(d)
}
