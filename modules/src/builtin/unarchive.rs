//! `unarchive`: unpack a tar (plain, gzip, bzip2, xz, zstd) or zip archive
//! into a directory on the host, with the host's `tar` or `unzip`.
//!
//! The engine resolves a controller-side `src` before the module sees it:
//! it reads the archive and passes it as `_src_b64`, with the controller
//! path in `_src_path` (for the format and for messages). With `remote_src`,
//! `src` is a path on the host, or a URL fetched there with curl or wget.
//!
//! The plan is one trip: the archive goes to a temp file on the host (fed on
//! stdin), and is compared with `dest`: tar with `tar --diff` (as Ansible
//! does with gtar), zip by checking that every member exists with the same
//! size. The temp file is removed before the probe returns. Apply sends the
//! archive again, extracts it, and sets owner, group and mode on every
//! extracted member.
//!
//! Differences from Ansible: ownership differences (`Uid/Gid differs`) are
//! ignored when comparing, and so are mode differences when `mode` is
//! given, so a change of only owner, group or mode on already-extracted
//! files is not detected; zip members are compared by size only (not
//! mtime); `keep_newer`, `io_buffer_size`, `validate_certs` and the
//! SELinux options are accepted and ignored. A vault-encrypted controller
//! `src` is decrypted by the engine unless `decrypt: false`.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::capability::{ControllerInput, HostSide, Ship};
use crate::http::{fetch_script, Request, NO_CLIENT_RC};
use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_string, Mode};
use crate::probe::{
    check_principals, parse_stat, principals_snippet, stat_snippet, tagged, Kind, WantedAttrs,
};
use crate::shell_quote::{join, quote, quote_path};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `unarchive`: what `herd doc` shows, and what the parser takes.
pub struct UnarchiveParams {
    /// The archive: a controller path (the engine sends it), with `remote_src` a path on the
    /// host, or a URL (fetched on the host).
    pub src: Option<String>,
    /// The directory to extract into; it must exist.
    pub dest: String,
    /// `src` is on the host, not on the controller.
    #[serde(default, deserialize_with = "de_bool")]
    pub remote_src: bool,
    /// Deprecated inverse of `remote_src`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub copy: Option<bool>,
    /// A path on the host: when it exists, nothing is extracted.
    pub creates: Option<String>,
    /// User that should own the file (name or uid); unset leaves it as it is.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub owner: Option<String>,
    /// Group that should own the file (name or gid); unset leaves it as it is.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub group: Option<String>,
    /// Permissions: an octal string (`"0644"`), a YAML octal number (`0644`) or a symbolic mode
    /// (`u=rw,g=r,o=r`); unset leaves them as they are (a new file gets the umask's).
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub mode: Option<Mode>,
    /// More options for tar (or unzip).
    #[serde(default)]
    pub extra_opts: Vec<String>,
    /// Return the archive's member names as `files`.
    #[serde(default, deserialize_with = "de_bool")]
    pub list_files: bool,
    /// Members not to extract.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Only these members are extracted.
    #[serde(default)]
    pub include: Vec<String>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub keep_newer: Option<bool>,
    /// Accepted and ignored.
    pub io_buffer_size: Option<Value>,
    /// A vault-encrypted controller `src` is decrypted on the controller first; `false` sends it
    /// as it is.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub decrypt: Option<bool>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub validate_certs: Option<bool>,
    /// Accepted and ignored: files are always written atomically (temp file, then rename).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub unsafe_writes: Option<bool>,
    /// Accepted and ignored (chattr attributes are not managed).
    #[serde(alias = "attr")]
    pub attributes: Option<String>,
    /// Accepted and ignored (no SELinux support).
    pub seuser: Option<String>,
    /// Accepted and ignored (no SELinux support).
    pub serole: Option<String>,
    /// Accepted and ignored (no SELinux support).
    pub setype: Option<String>,
    /// Accepted and ignored (no SELinux support).
    pub selevel: Option<String>,
    /// Set by the engine: the controller archive, base64.
    #[serde(rename = "_src_b64")]
    pub src_b64: Option<String>,
    /// Set by the engine: the controller path the archive came from.
    #[serde(rename = "_src_path")]
    pub src_path: Option<String>,
}

/// The `unarchive` module.
pub struct Unarchive;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Unarchive::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// How the archive is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// tar, with the decompression flag (`-z`, `-j`, `-J`, `--zstd` or none).
    Tar(&'static str),
    /// zip, read with unzip.
    Zip,
}

impl Format {
    fn handler(self) -> &'static str {
        match self {
            Format::Zip => "ZipArchive",
            Format::Tar("--zstd") => "TarZstdArchive",
            Format::Tar("-J") => "TarXzArchive",
            Format::Tar("-j") => "TarBzipArchive",
            Format::Tar("-z") => "TgzArchive",
            Format::Tar(_) => "TarArchive",
        }
    }
}

/// The format from the first bytes of the archive.
pub fn sniff(head: &[u8]) -> Option<Format> {
    Some(match head {
        [0x1f, 0x8b, ..] => Format::Tar("-z"),
        [b'B', b'Z', b'h', ..] => Format::Tar("-j"),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Format::Tar("-J"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Format::Tar("--zstd"),
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Format::Zip,
        _ if head.len() > 262 && &head[257..262] == b"ustar" => Format::Tar(""),
        _ => return None,
    })
}

/// The format from a file name, for archives the module can't look into.
pub fn by_name(name: &str) -> Option<Format> {
    let n = name.to_ascii_lowercase();
    let n = n.split(['?', '#']).next().unwrap_or("");
    Some(if n.ends_with(".zip") {
        Format::Zip
    } else if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
        Format::Tar("-z")
    } else if n.ends_with(".tar.bz2") || n.ends_with(".tbz2") || n.ends_with(".tbz") {
        Format::Tar("-j")
    } else if n.ends_with(".tar.xz") || n.ends_with(".txz") {
        Format::Tar("-J")
    } else if n.ends_with(".tar.zst") || n.ends_with(".tzst") {
        Format::Tar("--zstd")
    } else if n.ends_with(".tar") {
        Format::Tar("")
    } else {
        return None;
    })
}

/// Where the archive comes from.
enum Source {
    Bytes(Vec<u8>),
    Remote(String),
    Url(String),
}

fn source(p: &UnarchiveParams) -> Result<Source, ModuleError> {
    let remote = p.remote_src || p.copy == Some(false);
    if let Some(b64) = &p.src_b64 {
        return base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(Source::Bytes)
            .map_err(|e| invalid("_src_b64", e.to_string()));
    }
    let src = p
        .src
        .clone()
        .ok_or_else(|| invalid("src", "src is required"))?;
    if src.contains("://") {
        return Ok(Source::Url(src));
    }
    if !remote {
        return Err(invalid(
            "src",
            "a controller `src` must be read by the engine and passed as _src_b64",
        ));
    }
    Ok(Source::Remote(src))
}

/// Shell that leaves the archive in the file named by `$a`; the bytes of a
/// controller archive come on stdin.
fn stage(src: &Source) -> Result<(String, Option<Vec<u8>>), ModuleError> {
    Ok(match src {
        Source::Bytes(b) => (
            "a=$(mktemp) || exit 1; trap 'rm -f \"$a\"' EXIT; trap 'exit 143' HUP INT TERM; cat > \"$a\"\n".into(),
            Some(b.clone()),
        ),
        Source::Remote(path) => (
            format!(
                "a={}; [ -f \"$a\" ] && [ -r \"$a\" ] || {{ echo NOSRC; exit 0; }}\n",
                quote_path(path)
            ),
            None,
        ),
        Source::Url(url) => {
            let req = Request {
                url: url.clone(),
                method: "GET".into(),
                timeout: 60,
                validate_certs: true,
                follow_redirects: true,
                ..Request::default()
            };
            let (s, stdin) = fetch_script(&req, "\"$a\"")?;
            (
                format!(
                    "a=$(mktemp) || exit 1; o=\"$a\"\n{s}\
                     case \"$rc:$code\" in 0:2*) ;; *) echo \"FETCHFAIL $rc $code\"; exit 0;; esac\n"
                ),
                Some(stdin),
            )
        }
    })
}

fn name_of(p: &UnarchiveParams) -> String {
    p.src_path
        .clone()
        .or_else(|| p.src.clone())
        .unwrap_or_default()
}

fn format_of(p: &UnarchiveParams, src: &Source) -> Option<Format> {
    match src {
        Source::Bytes(b) => sniff(&b[..b.len().min(512)]).or_else(|| by_name(&name_of(p))),
        _ => by_name(&name_of(p)),
    }
}

/// Shell that sets `$f` for a host-side archive in `$a` whose name said
/// nothing, from its magic bytes.
const SNIFF_ON_HOST: &str = "m=$(od -An -tx1 -N6 \"$a\" | tr -d ' \\n'); case $m in \
     1f8b*) f=-z;; 425a68*) f=-j;; fd377a585a00) f=-J;; \
     28b52ffd*) f=--zstd;; 504b0304*|504b0506*) f=zip;; *) f=none;; esac\n";

fn tar_filters(p: &UnarchiveParams) -> Vec<String> {
    p.exclude.iter().map(|e| format!("--exclude={e}")).collect()
}

/// The comparison script for the archive in `$a` against `$d`.
fn diff_script(fmt_var: &str, p: &UnarchiveParams) -> String {
    let excl = join(&tar_filters(p));
    let incl = join(&p.include);
    format!(
        "case {fmt_var} in\n\
         zip) command -v unzip >/dev/null 2>&1 || {{ echo NOUNZIP; exit 0; }}\n\
         unzip -l \"$a\" | awk 'NR>3 && $1 ~ /^[0-9]+$/ && NF>=4 {{s=$1; $1=$2=$3=\"\"; sub(/^ +/, \"\"); print s \"\\t\" $0}}' > \"$a.l\"\n\
         tab=$(printf '\\t')\n\
         while IFS=\"$tab\" read -r s n; do case $n in */) [ -d \"$d/$n\" ] || echo \"DIFF $n\";; \
         *) [ \"$(stat -c %s -- \"$d/$n\" 2>/dev/null)\" = \"$s\" ] || echo \"DIFF $n\";; esac; \
         [ {list} = 1 ] && echo \"FILE $n\"; done < \"$a.l\"; rm -f \"$a.l\";;\n\
         *) tar -d $f -f \"$a\" -C \"$d\" {excl} {incl} 2>&1 | sed 's/^/DIFF /'\n\
         [ {list} = 1 ] && tar -t $f -f \"$a\" {excl} {incl} | sed 's/^/FILE /';;\n\
         esac\n",
        list = if p.list_files { 1 } else { 0 },
    )
}

/// Lines of `tar --diff` that count as a difference.
pub fn real_differences(lines: &[&str], mode_given: bool) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            !(l.ends_with("Uid differs")
                || l.ends_with("Gid differs")
                || (mode_given && l.ends_with("Mode differs"))
                || l.starts_with("tar: ") && l.contains("Exiting with failure"))
        })
        .map(std::string::ToString::to_string)
        .collect()
}

impl Unarchive {
    fn want(p: &UnarchiveParams) -> WantedAttrs {
        WantedAttrs::ignoring_preserve(&p.owner, &p.group, &p.mode)
    }
}

fn fmt_setup(fmt: Option<Format>) -> String {
    match fmt {
        Some(Format::Zip) => "f=zip\n".into(),
        Some(Format::Tar(flag)) => format!("f={}\n", quote(flag)),
        None => SNIFF_ON_HOST.to_string(),
    }
}

impl Module for Unarchive {
    const NAME: &'static str = "unarchive";
    // An action plugin in Ansible that refuses `async`.
    const ASYNC: crate::capability::AsyncSupport = crate::capability::AsyncSupport::Refused;
    /// A controller `src` arrives base64-encoded as `_src_b64`; a URL,
    /// `remote_src: yes` or `copy: no` is the host's business.
    const CONTROLLER_INPUTS: &'static [ControllerInput] = &[ControllerInput::File {
        param: "src",
        ship: Ship::Base64 { into: "_src_b64" },
        host_side: &[
            HostSide::Set("remote_src"),
            HostSide::Unset("copy"),
            HostSide::Url,
        ],
        checked_before_run: false,
        decrypt: Some("decrypt"),
        tree: None,
    }];
    const DOC_SHORT: &'static str = "Extract a tar or zip archive on the host.";
    const DOC_LONG: &'static str = r##"The archive is compared with what is in `dest` (`tar --diff`, or member sizes for zip) and extracted only when they differ."##;
    const DOC_EXAMPLE: &'static str = r##"- unarchive:
    src: https://example.com/app-1.4.tar.gz
    dest: /opt/app
    remote_src: true
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] =
        &[("files", "The members, with `list_files`.")];
    type Params = UnarchiveParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let src = source(p)?;
        let fmt = format_of(p, &src);
        let want = Self::want(p);
        let mut s = format!("d={}\n", quote_path(&p.dest));
        if let Some(c) = &p.creates {
            s.push_str(&format!(
                "if [ -e {} ]; then echo CREATES; exit 0; fi\n",
                quote_path(c)
            ));
        }
        s.push_str(&stat_snippet("DEST", "\"$d\"", true));
        s.push_str("[ -d \"$d\" ] || exit 0\n");
        s.push_str(&principals_snippet(&want));
        let (stage_s, stdin) = stage(&src)?;
        s.push_str(&stage_s);
        s.push_str(&fmt_setup(fmt));
        s.push_str("[ \"$f\" = none ] && { echo NOFMT; exit 0; }\n");
        s.push_str(&diff_script("$f", p));
        let out = host.run(&s, stdin.as_deref())?;
        if out.rc == NO_CLIENT_RC {
            return Err(crate::http::no_client_error(Self::NAME));
        }
        let text = out.stdout_str();
        let mut result = Map::new();
        result.insert("dest".into(), json!(p.dest));
        result.insert("src".into(), json!(name_of(p)));
        if text.lines().any(|l| l == "CREATES") {
            result.insert(
                "msg".into(),
                json!(format!(
                    "skipped, since {} exists",
                    p.creates.as_deref().unwrap_or("")
                )),
            );
            return Ok(Plan {
                result,
                ..Plan::default()
            });
        }
        let dest = parse_stat(&text, "DEST").map_err(ModuleError::from)?;
        if dest.as_ref().map(|d| d.kind) != Some(Kind::Dir) {
            return Err(ModuleError::failed(format!(
                "dest '{}' must be an existing dir",
                p.dest
            )));
        }
        check_principals(&text, &want)?;
        let has = |tag: &str| text.lines().any(|l| l == tag);
        if has("NOSRC") {
            return Err(ModuleError::failed(format!(
                "Source '{}' does not exist",
                name_of(p)
            )));
        }
        if let Some(f) = tagged(&text, "FETCHFAIL") {
            return Err(ModuleError::failed(format!(
                "Failure downloading {}: {f}",
                name_of(p)
            )));
        }
        if has("NOFMT") {
            return Err(ModuleError::failed(format!(
                "Failed to find handler for \"{}\". Make sure the required command to extract the file is installed.",
                name_of(p)
            )));
        }
        if has("NOUNZIP") {
            return Err(ModuleError::failed(
                "Unable to find required 'unzip' binary in the path (install unzip to extract zip files)",
            ));
        }
        let diffs: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("DIFF "))
            .collect();
        let diffs = real_differences(&diffs, p.mode.is_some());
        let files: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("FILE "))
            .map(str::to_string)
            .collect();
        if let Some(st) = &dest {
            result.extend(crate::probe::file_result("dest", &p.dest, Some(st)));
        }
        result.insert(
            "handler".into(),
            json!(fmt.map_or("TarArchive", Format::handler)),
        );
        if p.list_files {
            result.insert("files".into(), json!(files));
        }
        let mut plan = Plan::default();
        if !matches!(fmt, Some(Format::Zip)) {
            // Ansible unpacks tar archives with gtar, which has no check
            // mode: check mode skips the task.
            plan.check_skip = Some(
                "remote module (ansible.legacy.unarchive) does not support check mode when using gtar"
                    .into(),
            );
        }
        if !diffs.is_empty() {
            plan.changes
                .push(format!("extract {} into {}", name_of(p), p.dest));
            plan.changes
                .extend(diffs.iter().take(20).map(|d| format!("  {d}")));
        }
        plan.result = result;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let src = source(p)?;
        let fmt = format_of(p, &src);
        let want = Self::want(p);
        let (stage_s, stdin) = stage(&src)?;
        let mut s = format!("d={}\n{stage_s}", quote_path(&p.dest));
        s.push_str(&fmt_setup(fmt));
        let excl = join(&tar_filters(p));
        let incl = join(&p.include);
        let extra = join(&p.extra_opts);
        let zip_excl = if p.exclude.is_empty() {
            String::new()
        } else {
            format!("-x {}", join(&p.exclude))
        };
        s.push_str(&format!(
            "case $f in\n\
             zip) unzip -o {extra} \"$a\" {incl} {zip_excl} -d \"$d\"; rc=$?; unzip -Z1 \"$a\" > \"$a.l\";;\n\
             *) tar -x $f -f \"$a\" -C \"$d\" {extra} {excl} {incl}; rc=$?; tar -t $f -f \"$a\" {excl} {incl} > \"$a.l\";;\n\
             esac\n\
             echo \"RC $rc\"\n[ $rc = 0 ] || exit 0\n"
        ));
        let mode = want
            .mode
            .as_ref()
            .map(|m| match m {
                Mode::Octal(o) => crate::params::mode_str(*o),
                Mode::Symbolic(sym) => crate::params::symbolic_for_chmod(sym),
                Mode::Preserve => String::new(),
            })
            .filter(|m| !m.is_empty());
        let chown = match (&want.owner, &want.group) {
            (Some(o), Some(g)) => Some(format!("chown -h -- {}", quote(&format!("{o}:{g}")))),
            (Some(o), None) => Some(format!("chown -h -- {}", quote(o))),
            (None, Some(g)) => Some(format!("chgrp -h -- {}", quote(g))),
            (None, None) => None,
        };
        if chown.is_some() || mode.is_some() {
            s.push_str("while IFS= read -r n; do [ -n \"$n\" ] || continue; ");
            if let Some(c) = &chown {
                s.push_str(&format!("{c} \"$d/$n\" || echo \"ATTRFAIL $n\"; "));
            }
            if let Some(m) = &mode {
                s.push_str(&format!(
                    "[ -L \"$d/$n\" ] || chmod {} -- \"$d/$n\" || echo \"ATTRFAIL $n\"; ",
                    quote(m)
                ));
            }
            s.push_str("done < \"$a.l\"\n");
        }
        s.push_str("rm -f \"$a.l\"\n");
        let out = host.run(&s, stdin.as_deref())?;
        let text = out.stdout_str();
        let rc: i32 = tagged(&text, "RC")
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or(out.rc);
        let mut result = plan.result.clone();
        result.insert(
            "extract_results".into(),
            json!({"rc": rc, "out": text, "err": out.stderr_str()}),
        );
        if rc != 0 {
            return Err(ModuleError::Failed {
                msg: format!(
                    "failed to unpack {} to {}: {}",
                    name_of(p),
                    p.dest,
                    out.stderr_str().trim_end()
                ),
                result,
            });
        }
        if let Some(f) = tagged(&text, "ATTRFAIL") {
            return Err(ModuleError::Failed {
                msg: format!("could not set owner, group or mode on {f}"),
                result,
            });
        }
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::converge;

    #[test]
    fn formats_by_magic_and_name() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Some(Format::Tar("-z")));
        assert_eq!(sniff(b"PK\x03\x04"), Some(Format::Zip));
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(by_name("/x/app-1.0.TGZ"), Some(Format::Tar("-z")));
        assert_eq!(by_name("a.tar.xz"), Some(Format::Tar("-J")));
        assert_eq!(by_name("a.txt"), None);
        let d = real_differences(
            &["a: Uid differs", "b: Mod time differs", "c: Mode differs"],
            true,
        );
        assert_eq!(d, ["b: Mod time differs"]);
    }

    #[test]
    fn extracts_a_controller_tarball_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("sub/a.txt"), "a\n").expect("write");
        let tgz = dir.path().join("x.tgz");
        let ok = std::process::Command::new("tar")
            .arg("-czf")
            .arg(&tgz)
            .arg("-C")
            .arg(&src)
            .arg("sub")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "tar failed");
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).expect("mkdir");
        let bytes = std::fs::read(&tgz).expect("read");
        let params = json!({
            "dest": dest.to_string_lossy(),
            "_src_b64": base64::engine::general_purpose::STANDARD.encode(bytes),
            "_src_path": tgz.to_string_lossy(),
            "list_files": true,
        });
        let (plan, _) = converge(&Unarchive, &params);
        assert_eq!(plan.result["files"], json!(["sub/", "sub/a.txt"]));
        assert_eq!(
            std::fs::read_to_string(dest.join("sub/a.txt"))
                .ok()
                .as_deref(),
            Some("a\n")
        );
        std::fs::write(dest.join("sub/a.txt"), "changed\n").expect("write");
        let again = crate::testing::plan(&Unarchive, &params);
        assert!(!again.is_empty());
    }
}
