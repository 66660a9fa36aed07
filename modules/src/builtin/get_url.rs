//! `get_url`: download a file over HTTP(S), FTP or `file://` to the host,
//! with the host's own curl (or wget), optionally verified by a checksum.
//!
//! The plan probes the destination (stat, sha1 and the checksum algorithm's
//! digest, owner lookups) in one trip, plus one trip to fetch the checksum
//! file when `checksum` is `alg:URL`. An existing file whose digest matches
//! `checksum`, or any existing file without a `checksum` and with `force:
//! no`, is not downloaded again; only its owner, group and mode are fixed.
//!
//! Apply downloads into a temp file beside the destination, checks the
//! status and the checksum, and renames it into place only if its content
//! differs from the destination's, so a forced download of an unchanged
//! file reports no change (as Ansible does).
//!
//! Differences from Ansible: a directory `dest` gets the URL's basename
//! (Content-Disposition is not read); `use_proxy`, `use_gssapi`,
//! `use_netrc`, `ciphers`, `client_cert`/`client_key`, `decompress`,
//! `unredirected_headers`, `tmp_dest` and the SELinux options are accepted
//! and ignored; `force_basic_auth` is implied (credentials are always sent
//! up front). A forced download without a checksum is reported as a change
//! in check mode, since the remote content can't be known without fetching.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{self, fetch_script, headers_param, redact, Request, NO_CLIENT_RC};
use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_string, de_opt_u64, yes, Mode};
use crate::probe::{checksum_snippet, tagged, WantedAttrs};
use crate::shell_quote::{quote, quote_path};
use crate::textfile::{self, Read};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `get_url`: what `herd doc` shows, and what the parser takes.
pub struct GetUrlParams {
    /// What to download: `http(s)://`, `ftp://` or `file://`, fetched on the host with curl (or
    /// wget).
    pub url: String,
    /// Where the file goes on the host; a directory gets the URL's base name.
    pub dest: String,
    /// `ALG:DIGEST` (e.g. `sha256:9f86...`) the download must match, or `ALG:URL` of a checksum
    /// file. An existing file with this digest is not downloaded again.
    #[serde(default)]
    pub checksum: String,
    /// Removed from Ansible; `sha256sum: X` means `checksum: sha256:X`.
    pub sha256sum: Option<String>,
    /// Download even when `dest` exists (the file is replaced only when the content differs).
    /// Without it and without `checksum`, an existing file is kept.
    #[serde(default, alias = "thirsty", deserialize_with = "de_bool")]
    pub force: bool,
    /// Seconds the request may take (default 10).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub timeout: Option<u64>,
    /// Request headers, a mapping.
    pub headers: Option<Value>,
    /// User name for HTTP basic authentication.
    #[serde(alias = "username")]
    pub url_username: Option<String>,
    /// Password for HTTP basic authentication (never shown in output).
    #[serde(alias = "password")]
    pub url_password: Option<String>,
    /// Verify the server's TLS certificate.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub validate_certs: bool,
    /// Accepted; credentials are always sent with the first request.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub force_basic_auth: Option<bool>,
    /// The User-Agent header.
    pub http_agent: Option<String>,
    /// Keep a timestamped copy of the file (`FILE.PID.YYYY-MM-DD@HH:MM:SS~`) before changing
    /// it; its path is returned as `backup_file`.
    #[serde(default, deserialize_with = "de_bool")]
    pub backup: bool,
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
    /// Accepted and ignored (the host's curl/wget proxy settings apply).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub use_proxy: Option<bool>,
    /// Accepted and ignored (no GSSAPI authentication).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub use_gssapi: Option<bool>,
    /// Accepted and ignored (`~/.netrc` is not read).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub use_netrc: Option<bool>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub decompress: Option<bool>,
    /// Accepted and ignored (the host's TLS defaults apply).
    pub ciphers: Option<Value>,
    /// Accepted and ignored (no client certificates).
    pub client_cert: Option<String>,
    /// Accepted and ignored (no client certificates).
    pub client_key: Option<String>,
    /// Accepted and ignored.
    pub unredirected_headers: Option<Value>,
    /// Accepted and ignored (the temp file is always next to `dest`).
    pub tmp_dest: Option<String>,
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
}

/// The `get_url` module.
pub struct GetUrl;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: GetUrl::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// A checksum as `alg:value`, where value is a digest or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// The digest command (`sha256sum`).
    pub tool: &'static str,
    /// The algorithm (`sha256`).
    pub alg: String,
    /// The expected digest, lowercase hex.
    pub value: String,
}

/// Why a `checksum` parameter cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// No `:` between algorithm and value.
    #[error("the checksum must be `algorithm:value`")]
    NoSeparator,
    /// An algorithm Ansible's get_url does not take.
    #[error("unsupported checksum algorithm {0:?}")]
    UnknownAlgorithm(String),
    /// A digest with non-hex characters.
    #[error("the {0} checksum is not hexadecimal")]
    NotHex(String),
}

/// Read `checksum`: `ALG:DIGEST` or `ALG:URL`; `None` when empty.
pub fn parse_checksum(s: &str) -> Result<Option<Checksum>, ChecksumError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (alg, value) = s.split_once(':').ok_or(ChecksumError::NoSeparator)?;
    let alg = alg.trim().to_ascii_lowercase();
    let tool = match alg.as_str() {
        "md5" => "md5sum",
        "sha1" => "sha1sum",
        "sha224" => "sha224sum",
        "sha256" => "sha256sum",
        "sha384" => "sha384sum",
        "sha512" => "sha512sum",
        other => return Err(ChecksumError::UnknownAlgorithm(other.to_string())),
    };
    let value = value.trim().to_string();
    if !value.contains("://") && !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChecksumError::NotHex(alg));
    }
    // Digests compare case-insensitively; a URL keeps its case.
    let value = if value.contains("://") {
        value
    } else {
        value.to_ascii_lowercase()
    };
    Ok(Some(Checksum { tool, alg, value }))
}

/// The digest for `filename` in a checksum file (`<hex>  name` lines, or a
/// single digest), as Ansible reads it.
pub fn digest_from_file(text: &str, filename: &str) -> Option<String> {
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| !f.is_empty())
        .collect();
    if let [only] = lines.as_slice() {
        if only.len() == 1 {
            return Some(only[0].to_ascii_lowercase());
        }
    }
    lines.iter().find_map(|f| {
        let name = f.get(1)?.trim_start_matches('*').trim_start_matches("./");
        (name == filename).then(|| f[0].to_ascii_lowercase())
    })
}

fn url_basename(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let path = path.split_once("://").map_or(path, |(_, rest)| rest);
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty() || !path.contains('/') {
        "index.html".into()
    } else {
        name.to_string()
    }
}

fn request(p: &GetUrlParams, url: &str) -> Result<Request, ModuleError> {
    Ok(Request {
        url: url.to_string(),
        method: "GET".into(),
        headers: headers_param(p.headers.as_ref()).map_err(|e| invalid("headers", e))?,
        username: p.url_username.clone(),
        password: p.url_password.clone(),
        timeout: p.timeout.unwrap_or(10),
        validate_certs: p.validate_certs,
        follow_redirects: true,
        body: None,
        user_agent: Some(
            p.http_agent
                .clone()
                .unwrap_or_else(|| "ansible-httpget".into()),
        ),
    })
}

/// The script that fetches `url` into the file in `$o` (set by `prefix`),
/// with `file://` URLs copied without any client.
fn fetch(p: &GetUrlParams, url: &str, prefix: &str) -> Result<(String, Vec<u8>), ModuleError> {
    if let Some(path) = url.strip_prefix("file://") {
        let script = format!(
            "{prefix}trap 'rm -f \"$o\"' EXIT; trap 'exit 143' HUP INT TERM\n\
             if cp -- {} \"$o\"; then rc=0; code=200; else rc=37; code=; fi\n",
            quote(path)
        );
        return Ok((script, Vec::new()));
    }
    let (s, stdin) = fetch_script(&request(p, url)?, "\"$o\"")?;
    Ok((format!("{prefix}{s}"), stdin))
}

fn fetch_failed(url: &str, rc: i32, code: &str, stderr: &str) -> ModuleError {
    if rc == NO_CLIENT_RC {
        return http::no_client_error(GetUrl::NAME);
    }
    let url = redact(url);
    let mut result = serde_json::Map::new();
    result.insert("url".into(), json!(url));
    if let Ok(c) = code.parse::<u16>() {
        result.insert("status_code".into(), json!(c));
    }
    ModuleError::Failed {
        msg: format!(
            "Request failed: {url}: {}",
            if stderr.trim().is_empty() {
                format!("HTTP Error {code}")
            } else {
                stderr.trim().to_string()
            }
        ),
        result,
    }
}

fn ok_code(code: &str, url: &str) -> bool {
    url.starts_with("file://")
        || url.starts_with("ftp")
        || code.parse::<u16>().is_ok_and(|c| (200..300).contains(&c))
}

/// Resolve `alg:URL` checksums by fetching the checksum file on the host.
fn resolve_checksum(
    p: &GetUrlParams,
    host: &mut dyn Host,
) -> Result<Option<Checksum>, ModuleError> {
    let raw = match (&p.sha256sum, p.checksum.trim()) {
        (Some(s), "") if !s.trim().is_empty() => format!("sha256:{s}"),
        _ => p.checksum.clone(),
    };
    let Some(mut c) = parse_checksum(&raw).map_err(|e| invalid("checksum", e.to_string()))? else {
        return Ok(None);
    };
    if c.value.contains("://") {
        let (s, stdin) = fetch(p, &c.value, "o=$(mktemp) || exit 1\n")?;
        let script = format!("{s}echo \"FETCH $rc $code\"; cat \"$o\"\n");
        let out = host.run(&script, Some(&stdin))?;
        let text = out.stdout_str();
        let status = tagged(&text, "FETCH").unwrap_or("");
        let (rc, code) = status.split_once(' ').unwrap_or((status, ""));
        let rc = if out.rc == NO_CLIENT_RC {
            out.rc
        } else {
            rc.parse().unwrap_or(-1)
        };
        if rc != 0 || !ok_code(code, &c.value) {
            return Err(fetch_failed(&c.value, rc, code, &out.stderr_str()));
        }
        let body = text.split_once('\n').map_or("", |(_, b)| b);
        let name = url_basename(&p.url);
        c.value = digest_from_file(body, &name).ok_or_else(|| {
            ModuleError::failed(format!(
                "Unable to find a checksum for file '{name}' in '{}'",
                redact(&c.value)
            ))
        })?;
    }
    Ok(Some(c))
}

impl GetUrl {
    fn want(p: &GetUrlParams) -> WantedAttrs {
        WantedAttrs::ignoring_preserve(&p.owner, &p.group, &p.mode)
    }
}

impl Module for GetUrl {
    const NAME: &'static str = "get_url";
    const DOC_SHORT: &'static str = "Download a file to the host over HTTP(S), FTP or file://.";
    const DOC_LONG: &'static str = r##"The host downloads with its own curl or wget into a temp file next to `dest`, which is checked (status, `checksum`) and renamed into place only when its content differs."##;
    const DOC_EXAMPLE: &'static str = r##"- get_url:
    url: https://example.com/tool-1.2.tar.gz
    dest: /opt/tool-1.2.tar.gz
    checksum: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"##;
    type Params = GetUrlParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let checksum = resolve_checksum(p, host)?;
        let want = Self::want(p);
        let setup = format!(
            "p={}; if [ -d \"$p\" ]; then p=\"${{p%/}}\"/{}; fi",
            quote_path(&p.dest),
            quote(&url_basename(&p.url))
        );
        let extra = match &checksum {
            Some(c) => checksum_snippet("CSUM", "\"$p\"", c.tool),
            None => String::new(),
        };
        let dest = textfile::probe(host, &setup, false, &want, Read::ChecksumOnly, &extra)?;
        if dest.is_dir() {
            return Err(ModuleError::failed(format!("{} is a directory", dest.path)));
        }
        if !dest.parent_exists {
            return Err(ModuleError::failed(format!(
                "Destination {} does not exist",
                dest.path.rsplit_once('/').map_or(".", |(d, _)| d)
            )));
        }
        let current = tagged(&dest.text, "CSUM").map(str::to_ascii_lowercase);
        let download = match (&checksum, dest.exists()) {
            (_, false) => true,
            (Some(c), true) => current.as_deref() != Some(c.value.as_str()),
            (None, true) => p.force,
        };
        let mut plan = Plan::default();
        let mut result = serde_json::Map::new();
        result.insert("url".into(), json!(redact(&p.url)));
        result.insert("dest".into(), json!(dest.path));
        if download {
            plan.changes
                .push(format!("download {} to {}", redact(&p.url), dest.path));
        } else if let Some(st) = &dest.stat {
            plan.changes.extend(want.diff(&dest.path, st).0);
            let mut r = crate::probe::file_result("dest", &dest.path, Some(st));
            r.insert("url".into(), json!(redact(&p.url)));
            // Ansible reads the checksums only when `checksum` is given
            // (without one it asks the server with If-Modified-Since).
            if checksum.is_some() {
                r.insert("checksum_dest".into(), json!(dest.sha1));
                r.insert("checksum_src".into(), json!(dest.sha1));
            }
            r.insert("msg".into(), json!("file already exists"));
            result = r;
        }
        let mode = textfile::resolve_mode(&want, &dest);
        plan.result = result;
        plan.state = json!({
            "download": download,
            "dest": dest.path,
            "exists": dest.exists(),
            "old_sha1": dest.sha1,
            "mode": mode,
            "checksum": checksum.map(|c| json!({"tool": c.tool, "value": c.value})),
        });
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let st = &plan.state;
        let dest = st
            .get("dest")
            .and_then(Value::as_str)
            .ok_or_else(|| ModuleError::failed("get_url: apply called without a plan"))?;
        let dw = quote(dest);
        let mode = st.get("mode").and_then(Value::as_u64).map(|m| m as u32);
        let want = Self::want(p);
        let mut result = plan.result.clone();
        let download = st.get("download").and_then(Value::as_bool).unwrap_or(false);
        let backup_file =
            if download && p.backup && st.get("exists").and_then(Value::as_bool).unwrap_or(false) {
                Some(textfile::backup(host, dest)?)
            } else {
                None
            };
        let attrs = want.apply_script(&dw, mode, false);
        if !download {
            textfile::run_checked(host, "set attributes", &attrs)?;
            return Ok(Outcome::changed(result));
        }
        let start = std::time::Instant::now();
        let prefix = format!("o=$(mktemp \"$(dirname -- {dw})/.herd.get_url.XXXXXX\") || exit 1\n");
        let (mut s, stdin) = fetch(p, &p.url, &prefix)?;
        s.push_str("echo \"FETCH $rc $code\"\n[ \"$rc\" = 0 ] || exit 0\n");
        // An HTTP error page is never moved into place.
        if p.url.starts_with("http") {
            s.push_str("case \"$code\" in 2??) ;; *) exit 0;; esac\n");
        }
        s.push_str(
            "n=$(sha1sum < \"$o\"); echo \"SHA1 ${n%% *}\"; echo \"SIZE $(stat -c %s \"$o\")\"\n",
        );
        if let Some(c) = st.get("checksum").filter(|c| !c.is_null()) {
            let tool = c.get("tool").and_then(Value::as_str).unwrap_or("sha256sum");
            let value = c.get("value").and_then(Value::as_str).unwrap_or("");
            s.push_str(&format!(
                "d=$({} < \"$o\"); d=${{d%% *}}; echo \"DIGEST $d\"; [ \"$d\" = {} ] || exit 0\n",
                quote(tool),
                quote(value)
            ));
        }
        // Only a different content replaces the destination.
        s.push_str(&format!(
            "if [ -f {dw} ] && [ \"$(sha1sum < {dw})\" = \"$n\" ]; then echo SAME; else\n\
             if [ -e {dw} ]; then chown --reference={dw} \"$o\" 2>/dev/null || true; chmod --reference={dw} \"$o\"; else chmod 0644 \"$o\"; fi\n\
             mv -f \"$o\" {dw} || exit 1; echo MOVED; fi\n{attrs}\n\
             echo \"ATTRS $(stat -c '%a %u %g %U %G' {dw})\"\n"
        ));
        let out = host.run(&format!("set -u\n{s}"), Some(&stdin))?;
        let text = out.stdout_str();
        let status = tagged(&text, "FETCH").unwrap_or("");
        let (rc, code) = status.split_once(' ').unwrap_or((status, ""));
        let rc = if out.rc == NO_CLIENT_RC {
            out.rc
        } else {
            rc.parse().unwrap_or(-1)
        };
        if rc != 0 || !ok_code(code, &p.url) {
            return Err(fetch_failed(&p.url, rc, code, &out.stderr_str()));
        }
        if let Some(c) = st.get("checksum").filter(|c| !c.is_null()) {
            let value = c.get("value").and_then(Value::as_str).unwrap_or("");
            let got = tagged(&text, "DIGEST").unwrap_or("");
            if got != value {
                return Err(ModuleError::failed(format!(
                    "The checksum for {dest} did not match {value}; it was {got}."
                )));
            }
        }
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "could not move the download into place at {dest}: {}",
                out.stderr_str().trim_end()
            )));
        }
        let sha1 = tagged(&text, "SHA1").unwrap_or("").to_string();
        let size: u64 = tagged(&text, "SIZE")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let moved = text.lines().any(|l| l == "MOVED");
        let attrs_changed = plan.changes.len() > 1;
        result.insert("checksum_src".into(), json!(sha1));
        result.insert(
            "checksum_dest".into(),
            st.get("old_sha1").cloned().unwrap_or(Value::Null),
        );
        result.insert("size".into(), json!(size));
        // Ansible's common file keys of the destination.
        let attrs: Vec<&str> = tagged(&text, "ATTRS").unwrap_or("").split(' ').collect();
        if let [m, uid, gid, owner, group] = attrs[..] {
            let num = |s: &str| s.parse::<u64>().unwrap_or(0);
            result.insert("state".into(), json!("file"));
            result.insert(
                "mode".into(),
                json!(crate::params::mode_str(
                    u32::from_str_radix(m, 8).unwrap_or(0)
                )),
            );
            result.insert("owner".into(), json!(owner));
            result.insert("group".into(), json!(group));
            result.insert("uid".into(), json!(num(uid)));
            result.insert("gid".into(), json!(num(gid)));
        }
        result.insert("elapsed".into(), json!(start.elapsed().as_secs()));
        result.insert("msg".into(), json!(format!("OK ({size} bytes)")));
        if let Ok(c) = code.parse::<u16>() {
            result.insert("status_code".into(), json!(c));
        }
        if let Some(b) = backup_file {
            result.insert("backup_file".into(), json!(b));
        }
        Ok(Outcome::changed_if(moved || attrs_changed, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, path_in, plan};

    #[test]
    fn checksums_and_checksum_files() {
        let c = parse_checksum("SHA256: ABCdef")
            .expect("parse")
            .expect("some");
        assert_eq!((c.tool, c.value.as_str()), ("sha256sum", "abcdef"));
        assert!(parse_checksum("sha256:xyz").is_err());
        assert!(parse_checksum("crc:00").is_err());
        assert_eq!(parse_checksum(""), Ok(None));
        let u = parse_checksum("sha1:http://h/SUMS")
            .expect("parse")
            .expect("some");
        assert_eq!(u.value, "http://h/SUMS");
        let sums = "aa11  other.tgz\nBB22 *app.tgz\n";
        assert_eq!(digest_from_file(sums, "app.tgz").as_deref(), Some("bb22"));
        assert_eq!(digest_from_file("cc33\n", "x").as_deref(), Some("cc33"));
        assert_eq!(digest_from_file(sums, "nope"), None);
        assert_eq!(url_basename("http://h/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(url_basename("http://h"), "index.html");
    }

    #[test]
    fn downloads_a_file_url_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = path_in(&dir, "src.txt");
        std::fs::write(&src, "payload\n").expect("write");
        let dest = path_in(&dir, "out");
        std::fs::create_dir(&dest).expect("mkdir");
        let sum = "sha256:b2c0c9fe2bd7f1b9aa43bc5e8ddb2a2b1e04339c7fe3bb7b0fd4c4bcc7d03ac5";
        let params = json!({"url": format!("file://{src}"), "dest": dest, "mode": "0600"});
        converge(&GetUrl, &params);
        let got = std::fs::read_to_string(format!("{dest}/src.txt")).expect("read");
        assert_eq!(got, "payload\n");
        let bad =
            json!({"url": format!("file://{src}"), "dest": format!("{dest}/x"), "checksum": sum});
        let pl = plan(&GetUrl, &bad);
        let r = crate::DynModule::apply(&GetUrl, &bad, pl, &mut crate::testing::host());
        assert!(r.is_err(), "a wrong checksum must fail");
        assert!(!std::path::Path::new(&format!("{dest}/x")).exists());
    }
}
