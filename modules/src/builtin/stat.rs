//! `stat`: report facts about a path. Never changes anything.
//!
//! The whole probe (stat fields, access checks, link target, checksum) is one
//! script and one round trip. The plan is always empty and carries the
//! result as `{"stat": {...}}` in `Plan.result`, which the engine registers
//! for an empty plan; `apply` returns the same if it is ever called.
//!
//! `mimetype` and `charset` come from `file(1)` when the host has it (else
//! they are absent, as when Ansible cannot tell).
//!
//! Differences from Ansible: `get_attributes` is accepted and ignored (no
//! `attributes` key); times are whole seconds.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::{de_bool, de_opt_bool, mode_str, yes};
use crate::probe::{checksum_snippet, parse_stat, stat_snippet, tagged, Kind};
use crate::shell_quote::quote_path;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `stat`: what `herd doc` shows, and what the parser takes.
pub struct StatParams {
    /// The path on the host to look at.
    #[serde(alias = "dest", alias = "name")]
    pub path: String,
    /// Follow a symlink `path` and report what it points to.
    #[serde(default, deserialize_with = "de_bool")]
    pub follow: bool,
    /// Return the file's checksum (`checksum`), computed with `checksum_algorithm`.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub get_checksum: bool,
    /// `sha1` (the default), `md5`, `sha224`, `sha256`, `sha384` or `sha512`.
    #[serde(alias = "checksum", alias = "checksum_algo")]
    pub checksum_algorithm: Option<String>,
    /// Return `mimetype` and `charset` (needs `file(1)` on the host).
    #[serde(
        default,
        alias = "mime",
        alias = "mime_type",
        alias = "mime-type",
        deserialize_with = "de_opt_bool"
    )]
    pub get_mime: Option<bool>,
    /// Accepted and ignored (no `lsattr` attributes).
    #[serde(
        default,
        alias = "attr",
        alias = "attributes",
        deserialize_with = "de_opt_bool"
    )]
    pub get_attributes: Option<bool>,
    /// Removed from Ansible; accepted so old playbooks still load.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub get_md5: Option<bool>,
}

/// The `stat` module.
pub struct Stat;

fn checksum_tool(module: &'static str, alg: Option<&str>) -> Result<&'static str, ModuleError> {
    Ok(match alg.unwrap_or("sha1") {
        "sha1" => "sha1sum",
        "sha224" => "sha224sum",
        "sha256" => "sha256sum",
        "sha384" => "sha384sum",
        "sha512" => "sha512sum",
        "md5" => "md5sum",
        other => {
            return Err(ModuleError::Params(ParamError::Invalid {
                module,
                path: "checksum_algorithm".into(),
                reason: format!(
                    "unsupported algorithm {other:?}; expected one of md5, sha1, sha224, sha256, sha384, sha512"
                ),
            }))
        }
    })
}

/// Probe `path` and build Ansible's `stat` dictionary.
pub fn stat_path(
    host: &mut dyn Host,
    path: &str,
    follow: bool,
    checksum_tool: Option<&str>,
    mime: bool,
) -> Result<Map<String, Value>, ModuleError> {
    let w = quote_path(path);
    let mut script = stat_snippet("S", &w, follow);
    script.push_str(&format!(
        "a=; [ -r {w} ] && a=${{a}}r; [ -w {w} ] && a=${{a}}w; [ -x {w} ] && a=${{a}}x; echo A \"$a.\"\n\
         if [ -L {w} ]; then printf 'L %s\\n' \"$(readlink -- {w})\"; printf 'F %s\\n' \"$(readlink -f -- {w})\"; fi\n"
    ));
    if let Some(tool) = checksum_tool {
        script.push_str(&checksum_snippet("C", &w, tool));
    }
    if mime {
        script.push_str(&format!(
            "if [ -e {w} ] && command -v file >/dev/null 2>&1; then \
             printf 'MT %s\\n' \"$(file -b{l} --mime-type -- {w})\"; \
             printf 'CS %s\\n' \"$(file -b{l} --mime-encoding -- {w})\"; fi\n",
            l = if follow { "L" } else { "" }
        ));
    }
    let out = host.run(&script, None)?;
    let text = out.stdout_str();
    let st = parse_stat(&text, "S").map_err(ModuleError::from)?;
    let mut s = Map::new();
    let Some(st) = st else {
        s.insert("exists".into(), json!(false));
        return Ok(s);
    };
    let m = st.mode;
    let bit = |b: u32| json!(m & b != 0);
    let access = tagged(&text, "A").unwrap_or(".");
    s.insert("exists".into(), json!(true));
    s.insert("path".into(), json!(path));
    s.insert("mode".into(), json!(mode_str(m)));
    for (k, kind) in [
        ("isdir", Kind::Dir),
        ("ischr", Kind::Char),
        ("isblk", Kind::Block),
        ("isreg", Kind::File),
        ("isfifo", Kind::Fifo),
        ("islnk", Kind::Link),
        ("issock", Kind::Socket),
    ] {
        s.insert(k.into(), json!(st.kind == kind));
    }
    s.insert("uid".into(), json!(st.uid));
    s.insert("gid".into(), json!(st.gid));
    s.insert("size".into(), json!(st.size));
    s.insert("inode".into(), json!(st.inode));
    s.insert("dev".into(), json!(st.dev));
    s.insert("nlink".into(), json!(st.nlink));
    s.insert("atime".into(), json!(st.atime as f64));
    s.insert("mtime".into(), json!(st.mtime as f64));
    s.insert("ctime".into(), json!(st.ctime as f64));
    for (k, b) in [
        ("wusr", 0o200),
        ("rusr", 0o400),
        ("xusr", 0o100),
        ("wgrp", 0o020),
        ("rgrp", 0o040),
        ("xgrp", 0o010),
        ("woth", 0o002),
        ("roth", 0o004),
        ("xoth", 0o001),
        ("isuid", 0o4000),
        ("isgid", 0o2000),
    ] {
        s.insert(k.into(), bit(b));
    }
    s.insert("readable".into(), json!(access.contains('r')));
    s.insert("writeable".into(), json!(access.contains('w')));
    s.insert("executable".into(), json!(access.contains('x')));
    s.insert("pw_name".into(), json!(st.owner));
    s.insert("gr_name".into(), json!(st.group));
    if st.kind == Kind::Link {
        if let Some(t) = tagged(&text, "L") {
            s.insert("lnk_target".into(), json!(t));
        }
        if let Some(src) = tagged(&text, "F") {
            s.insert("lnk_source".into(), json!(src));
        }
    }
    if let Some(c) = tagged(&text, "C") {
        s.insert("checksum".into(), json!(c));
    }
    if let Some(m) = tagged(&text, "MT") {
        s.insert("mimetype".into(), json!(m));
    }
    if let Some(c) = tagged(&text, "CS") {
        s.insert("charset".into(), json!(c));
    }
    Ok(s)
}

impl Stat {
    fn result(
        &self,
        p: &StatParams,
        host: &mut dyn Host,
    ) -> Result<Map<String, Value>, ModuleError> {
        let tool = if p.get_checksum {
            Some(checksum_tool(Self::NAME, p.checksum_algorithm.as_deref())?)
        } else {
            None
        };
        let stat = stat_path(host, &p.path, p.follow, tool, p.get_mime.unwrap_or(true))?;
        let mut r = Map::new();
        r.insert("stat".into(), Value::Object(stat));
        Ok(r)
    }
}

impl Module for Stat {
    const NAME: &'static str = "stat";
    const DOC_SHORT: &'static str =
        "Report a path's facts: existence, type, owner, mode, size, checksum.";
    const DOC_LONG: &'static str =
        r##"Never changes anything. The result is registered under `stat`, as Ansible's is."##;
    const DOC_EXAMPLE: &'static str = r##"- stat:
    path: /etc/app.conf
  register: conf

- debug:
    msg: "{{ conf.stat.checksum }}"
  when: conf.stat.exists
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("stat", "The facts: `exists`, `isdir`, `isreg`, `islnk`, `mode`, `uid`, `gid`, `pw_name`, `gr_name`, `size`, `mtime`, `checksum`, `lnk_source`, ..."),
    ];
    type Params = StatParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        Ok(Plan {
            result: self.result(p, host)?,
            ..Plan::default()
        })
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::unchanged(self.result(p, host)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, path_in, plan};
    use std::os::unix::fs::PermissionsExt;

    fn stat_of(params: Value) -> Map<String, Value> {
        let p = plan(&Stat, &params);
        assert!(p.is_empty(), "stat never plans changes");
        match p.result.get("stat") {
            Some(Value::Object(m)) => m.clone(),
            other => panic!("no stat: {other:?}"),
        }
    }

    #[test]
    fn regular_file_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, "hello\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let s = stat_of(json!({"path": f}));
        assert_eq!(get(&s, "exists"), true);
        assert_eq!(get(&s, "isreg"), true);
        assert_eq!(get(&s, "isdir"), false);
        assert_eq!(get(&s, "mode"), "0640");
        assert_eq!(get(&s, "size"), 6);
        assert_eq!(get(&s, "rgrp"), true);
        assert_eq!(get(&s, "roth"), false);
        assert_eq!(get(&s, "pw_name"), "root");
        assert_eq!(get(&s, "uid"), 0);
        assert_eq!(get(&s, "readable"), true);
        assert_eq!(
            get(&s, "checksum"),
            "f572d396fae9206628714fb2ce00f72e94f2258f"
        );
        assert!(get(&s, "mtime").is_f64());
        // Plan alone changed nothing.
        assert_eq!(std::fs::read(&f).ok(), Some(b"hello\n".to_vec()));

        let s = stat_of(json!({"path": f, "checksum_algorithm": "sha256", "get_mime": "yes"}));
        assert_eq!(
            get(&s, "checksum"),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        let s = stat_of(json!({"path": f, "get_checksum": false}));
        assert!(s.get("checksum").is_none());
        assert_eq!(get(&s, "mimetype"), "text/plain");
        assert_eq!(get(&s, "charset"), "us-ascii");
        let s = stat_of(json!({"path": f, "get_mime": false}));
        assert!(s.get("mimetype").is_none());
    }

    #[test]
    fn missing_dir_and_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = stat_of(json!({"path": path_in(&dir, "none")}));
        assert_eq!(
            s,
            json!({"exists": false})
                .as_object()
                .cloned()
                .unwrap_or_default()
        );
        let d = dir.path().to_string_lossy().to_string();
        let s = stat_of(json!({"path": d}));
        assert_eq!(get(&s, "isdir"), true);
        assert!(s.get("checksum").is_none());

        let target = path_in(&dir, "t");
        std::fs::write(&target, "x").expect("write");
        let link = path_in(&dir, "l");
        std::os::unix::fs::symlink("t", &link).expect("symlink");
        let s = stat_of(json!({"path": link}));
        assert_eq!(get(&s, "islnk"), true);
        assert_eq!(get(&s, "lnk_target"), "t");
        assert_eq!(get(&s, "lnk_source"), &json!(target));
        let s = stat_of(json!({"path": link, "follow": "yes"}));
        assert_eq!(get(&s, "islnk"), false);
        assert_eq!(get(&s, "isreg"), true);
    }

    #[test]
    fn tilde_is_the_home_directory() {
        let s = stat_of(json!({"path": "~"}));
        assert_eq!(get(&s, "exists"), true);
        assert_eq!(get(&s, "isdir"), true);
    }

    #[test]
    fn bad_algorithm_is_a_param_error() {
        let err = Stat
            .result(
                &StatParams {
                    path: "/".into(),
                    follow: false,
                    get_checksum: true,
                    checksum_algorithm: Some("crc".into()),
                    get_mime: None,
                    get_attributes: None,
                    get_md5: None,
                },
                &mut crate::testing::host(),
            )
            .expect_err("crc");
        assert!(matches!(err, ModuleError::Params(_)));
    }
}
