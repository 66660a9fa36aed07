//! `uri`: make an HTTP request from the host (with its curl, or wget) and
//! register the status, headers and body.
//!
//! A GET or HEAD without `dest` only reads, so it runs during the plan (in
//! check mode too) and reports no change, as Ansible's uri does. Any other
//! method, or a `dest` to write, is done by apply; check mode skips it,
//! since what it would do can't be known without doing it. As in Ansible,
//! the task reports changed only when `dest` was written with new content.
//!
//! The result carries `status`, `url` (after redirects), `msg`, `elapsed`,
//! `redirected`, every response header as a top-level key (lowercased, `-`
//! as `_`, e.g. `content_type`), `json` when the body is JSON, and `content`
//! with `return_content`.
//!
//! Differences from Ansible: `body_format: form-multipart`, `src`,
//! `unix_socket`, `cookies`, client certificates, proxies and
//! `unredirected_headers` are not supported (the options are accepted and
//! ignored where harmless); with `dest`, the file is fetched every time and
//! replaced only when its content differs (no `If-Modified-Since`).

use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http::{
    self, fetch_script, headers_param, parse_headers, redact, Request, NO_CLIENT_RC,
};
use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_string, de_opt_u64, Mode};
use crate::probe::{tagged, WantedAttrs};
use crate::shell_quote::quote_path;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `uri`: what `herd doc` shows, and what the parser takes.
pub struct UriParams {
    /// The URL to request, from the host.
    pub url: String,
    /// The HTTP method. GET and HEAD without `dest` run during the plan (in check mode too) and
    /// never report a change.
    #[serde(default = "get")]
    pub method: String,
    /// The request body; with `body_format: json` any value is sent as JSON.
    pub body: Option<Value>,
    /// `raw`, `json` (sets `Content-Type: application/json`) or `form-urlencoded` (a mapping or
    /// a list of pairs). `form-multipart` is not supported.
    #[serde(default = "raw")]
    pub body_format: String,
    /// Request headers, a mapping.
    pub headers: Option<Value>,
    /// The status code(s) that count as success, a number or a list (default 200).
    pub status_code: Option<Value>,
    /// Return the body as `content` (a JSON body is returned as `json` in any case).
    #[serde(default, deserialize_with = "de_bool")]
    pub return_content: bool,
    /// Write the body to this file on the host (replaced only when it differs).
    pub dest: Option<String>,
    /// Seconds the request may take (default 30).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub timeout: Option<u64>,
    /// User name for HTTP basic authentication.
    #[serde(alias = "user")]
    pub url_username: Option<String>,
    /// Password for HTTP basic authentication (never shown in output).
    #[serde(alias = "password")]
    pub url_password: Option<String>,
    /// Verify the server's TLS certificate.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub validate_certs: Option<bool>,
    /// Follow redirects: `safe` (GET and HEAD only, the default), `all`/`yes`, or `none`/`no`.
    pub follow_redirects: Option<Value>,
    /// Send the basic-auth header with the first request instead of waiting for a 401.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub force_basic_auth: Option<bool>,
    /// A path on the host: when it exists, the request is not made.
    pub creates: Option<String>,
    /// A path on the host: when it does not exist, the request is not made.
    pub removes: Option<String>,
    /// The User-Agent header.
    pub http_agent: Option<String>,
    /// Accepted and ignored (the host's curl/wget proxy settings apply).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub use_proxy: Option<bool>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub force: Option<bool>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub decompress: Option<bool>,
    /// Accepted and ignored (no GSSAPI authentication).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub use_gssapi: Option<bool>,
    /// Accepted and ignored (`~/.netrc` is not read).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub use_netrc: Option<bool>,
    /// Accepted and ignored.
    pub unredirected_headers: Option<Value>,
    /// Accepted and ignored (the host's TLS defaults apply).
    pub ciphers: Option<Value>,
    /// Accepted and ignored (no client certificates).
    pub client_cert: Option<String>,
    /// Accepted and ignored (no client certificates).
    pub client_key: Option<String>,
    /// Not supported (an error when set).
    pub src: Option<String>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub remote_src: Option<bool>,
    /// Not supported (an error when set).
    pub unix_socket: Option<String>,
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

fn get() -> String {
    "GET".into()
}
fn raw() -> String {
    "raw".into()
}

/// The `uri` module.
pub struct Uri;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Uri::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// A `status_code` entry that is not an HTTP status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not an HTTP status code")]
pub struct BadStatusCode(pub String);

/// `status_code` as a list of accepted codes (default 200).
pub fn status_codes(v: Option<&Value>) -> Result<Vec<u16>, BadStatusCode> {
    let one = |v: &Value| -> Result<u16, BadStatusCode> {
        match v {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| BadStatusCode(v.to_string()))
    };
    match v {
        None | Some(Value::Null) => Ok(vec![200]),
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(Value::String(s)) if s.contains(',') => s
            .split(',')
            .map(|c| one(&Value::String(c.to_string())))
            .collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The request body and the content type it implies.
pub fn body_bytes(p: &UriParams) -> Result<(Option<Vec<u8>>, Option<&'static str>), ModuleError> {
    let Some(body) = p.body.as_ref().filter(|b| !b.is_null()) else {
        return Ok((None, None));
    };
    match p.body_format.as_str() {
        "raw" => Ok((Some(text_of(body).into_bytes()), None)),
        "json" => {
            let text = match body {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok((Some(text.into_bytes()), Some("application/json")))
        }
        "form-urlencoded" => {
            let text = match body {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(&text_of(v))))
                    .collect::<Vec<_>>()
                    .join("&"),
                Value::Array(a) => a
                    .iter()
                    .filter_map(|pair| match pair {
                        Value::Array(kv) if kv.len() == 2 => Some(format!(
                            "{}={}",
                            percent_encode(&text_of(&kv[0])),
                            percent_encode(&text_of(&kv[1]))
                        )),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("&"),
                other => text_of(other),
            };
            Ok((
                Some(text.into_bytes()),
                Some("application/x-www-form-urlencoded"),
            ))
        }
        other => Err(invalid(
            "body_format",
            format!("{other} is not supported (raw, json, form-urlencoded)"),
        )),
    }
}

fn follows(p: &UriParams) -> bool {
    let safe = matches!(p.method.to_ascii_uppercase().as_str(), "GET" | "HEAD");
    match p.follow_redirects.as_ref() {
        None | Some(Value::Null) => safe,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => match s.as_str() {
            "all" | "yes" | "true" => true,
            "none" | "no" | "false" => false,
            _ => safe,
        },
        Some(_) => safe,
    }
}

fn request(p: &UriParams) -> Result<Request, ModuleError> {
    let mut headers = headers_param(p.headers.as_ref()).map_err(|e| invalid("headers", e))?;
    let (body, ctype) = body_bytes(p)?;
    if let Some(ct) = ctype {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".into(), ct.into()));
        }
    }
    Ok(Request {
        url: p.url.clone(),
        method: p.method.to_ascii_uppercase(),
        headers,
        username: p.url_username.clone(),
        password: p.url_password.clone(),
        timeout: p.timeout.unwrap_or(30),
        validate_certs: p.validate_certs.unwrap_or(true),
        follow_redirects: follows(p),
        body,
        user_agent: Some(
            p.http_agent
                .clone()
                .unwrap_or_else(|| "ansible-httpget".into()),
        ),
    })
}

const HEADERS_MARK: &str = "--herd-headers--";
const BODY_MARK: &str = "--herd-body--";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The registered result from the status line, the headers and the body.
pub fn build_result(
    p: &UriParams,
    code: Option<u16>,
    effective: &str,
    raw_headers: &str,
    body: Option<&[u8]>,
    elapsed: u64,
) -> Map<String, Value> {
    let (hstatus, headers) = parse_headers(raw_headers);
    let status = code.or(hstatus).unwrap_or(0);
    let mut r = Map::new();
    for (k, v) in &headers {
        r.insert(k.replace('-', "_"), json!(v));
    }
    r.insert("status".into(), json!(status));
    r.insert(
        "url".into(),
        json!(redact(if effective.is_empty() {
            &p.url
        } else {
            effective
        })),
    );
    r.insert(
        "redirected".into(),
        json!(!effective.is_empty() && effective != p.url),
    );
    r.insert("elapsed".into(), json!(elapsed));
    r.insert("changed".into(), json!(false));
    if let Some(body) = body {
        r.insert("msg".into(), json!(format!("OK ({} bytes)", body.len())));
        let text = String::from_utf8_lossy(body).into_owned();
        let ctype = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        let is_json = ctype.contains("json");
        if is_json {
            if let Ok(js) = serde_json::from_str::<Value>(&text) {
                r.insert("json".into(), js);
            }
        }
        if p.return_content {
            r.insert("content".into(), json!(text));
        }
    }
    r
}

/// Run the request; `dest` (already quoted) gets the body when given.
fn perform(
    p: &UriParams,
    host: &mut dyn Host,
    dest: Option<&str>,
) -> Result<(Map<String, Value>, bool), ModuleError> {
    let req = request(p)?;
    let mut pre = String::new();
    let guard = |path: &str, exists: bool| {
        let (t, word) = if exists {
            ("", "creates")
        } else {
            ("! ", "removes")
        };
        format!(
            "if {t}[ -e {} ]; then echo \"SKIP {word}\"; exit 0; fi\n",
            quote_path(path)
        )
    };
    if let Some(c) = &p.creates {
        pre.push_str(&guard(c, true));
    }
    if let Some(r) = &p.removes {
        pre.push_str(&guard(r, false));
    }
    let (script, stdin) = match dest {
        Some(d) => {
            let (s, stdin) = fetch_script(&req, "\"$o\"")?;
            (
                format!(
                    "{pre}o=$(mktemp \"$(dirname -- {d})/.herd.uri.XXXXXX\") || exit 1\n{s}\
                     echo \"STATUS $rc $code\"; echo {HEADERS_MARK}; cat \"$h\"\n\
                     if [ \"$rc\" = 0 ]; then\n\
                     if [ -f {d} ] && [ \"$(sha1sum < {d})\" = \"$(sha1sum < \"$o\")\" ]; then echo SAME; else\n\
                     if [ -e {d} ]; then chmod --reference={d} \"$o\"; else chmod 0644 \"$o\"; fi\n\
                     mv -f \"$o\" {d} && echo WROTE; fi; fi\n"
                ),
                stdin,
            )
        }
        None => {
            let (s, stdin) = fetch_script(&req, "\"$o\"")?;
            (
                format!(
                    "{pre}o=$(mktemp) || exit 1\n{s}\
                     echo \"STATUS $rc $code\"; echo {HEADERS_MARK}; cat \"$h\"; echo; echo {BODY_MARK}; cat \"$o\"\n"
                ),
                stdin,
            )
        }
    };
    let start = Instant::now();
    let out = host.run(&script, Some(&stdin))?;
    let elapsed = start.elapsed().as_secs();
    if out.rc == NO_CLIENT_RC {
        return Err(http::no_client_error(Uri::NAME));
    }
    let (head, body) = match find(&out.stdout, format!("{BODY_MARK}\n").as_bytes()) {
        Some(i) => (
            String::from_utf8_lossy(&out.stdout[..i]).into_owned(),
            Some(&out.stdout[i + BODY_MARK.len() + 1..]),
        ),
        None => (out.stdout_str(), None),
    };
    if let Some(why) = tagged(&head, "SKIP") {
        let mut r = Map::new();
        r.insert(
            "msg".into(),
            json!(format!("skipped, since {why} condition holds")),
        );
        r.insert("skipped".into(), json!(true));
        return Ok((r, false));
    }
    let status = tagged(&head, "STATUS").unwrap_or("");
    let (rc, code) = status.split_once(' ').unwrap_or((status, ""));
    let rc: i32 = rc.trim().parse().unwrap_or(-1);
    let code: Option<u16> = code.trim().parse().ok().filter(|c| *c != 0);
    let raw_headers = head
        .split_once(&format!("{HEADERS_MARK}\n"))
        .map_or("", |(_, h)| h);
    let mut result = build_result(p, code, "", raw_headers, body, elapsed);
    let wrote = head.lines().any(|l| l == "WROTE");
    if let Some(d) = &p.dest {
        result.insert("path".into(), json!(d));
        result.insert("changed".into(), json!(wrote));
    }
    let accepted =
        status_codes(p.status_code.as_ref()).map_err(|e| invalid("status_code", e.to_string()))?;
    let got = code.unwrap_or(0);
    if rc != 0 && code.is_none() {
        result.insert("status".into(), json!(-1));
        return Err(ModuleError::Failed {
            msg: format!(
                "Status code was -1 and not {accepted:?}: Request failed: {}",
                out.stderr_str().trim_end()
            ),
            result,
        });
    }
    if !accepted.contains(&got) {
        return Err(ModuleError::Failed {
            msg: format!("Status code was {got} and not {accepted:?}: HTTP Error {got}"),
            result,
        });
    }
    Ok((result, wrote))
}

fn reads_only(p: &UriParams) -> bool {
    p.dest.is_none() && matches!(p.method.to_ascii_uppercase().as_str(), "GET" | "HEAD")
}

impl Module for Uri {
    const NAME: &'static str = "uri";
    // Ansible's uri has no check mode: check mode skips it.
    const CHECK_MODE: bool = false;
    const DOC_SHORT: &'static str = "Make an HTTP request from the host and register the response.";
    const DOC_LONG: &'static str = r##"The host makes the request with its curl or wget. The response's headers become top-level keys of the result (lowercased, `-` as `_`)."##;
    const DOC_EXAMPLE: &'static str = r##"- uri:
    url: http://127.0.0.1:9200/_cluster/health
    return_content: true
  register: health
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("status", "The HTTP status."),
        ("url", "The URL after redirects."),
        ("redirected", "Whether a redirect was followed."),
        ("elapsed", "Seconds the request took."),
        ("json", "The body, when it is JSON."),
        ("content", "The body, with `return_content`."),
        ("msg", "A short status message."),
    ];
    type Params = UriParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        // Validate everything before any request goes out.
        status_codes(p.status_code.as_ref()).map_err(|e| invalid("status_code", e.to_string()))?;
        request(p)?;
        if p.body_format == "form-multipart" || p.src.is_some() || p.unix_socket.is_some() {
            return Err(invalid(
                "body_format",
                "form-multipart, src and unix_socket are not supported",
            ));
        }
        if reads_only(p) {
            let (result, _) = perform(p, host, None)?;
            return Ok(Plan {
                result,
                ..Plan::default()
            });
        }
        let mut plan = Plan::default();
        plan.changes.push(format!(
            "{} {}",
            p.method.to_ascii_uppercase(),
            redact(&p.url)
        ));
        plan.unknowable = true;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let dest = p.dest.as_deref().map(quote_path);
        let (mut result, wrote) = perform(p, host, dest.as_deref())?;
        let want = WantedAttrs::ignoring_preserve(&p.owner, &p.group, &p.mode);
        if let (Some(d), true) = (&dest, wrote) {
            let mode = want
                .mode
                .as_ref()
                .and_then(|m| m.resolve(Some(0o644), false));
            crate::textfile::run_checked(
                host,
                "set attributes",
                &want.apply_script(d, mode, false),
            )?;
        }
        result.insert("changed".into(), json!(wrote));
        Ok(Outcome::changed_if(wrote, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> UriParams {
        crate::module::parse_params::<UriParams>("uri", &v).expect("params")
    }

    #[test]
    fn status_codes_and_bodies() {
        assert_eq!(status_codes(None), Ok(vec![200]));
        assert_eq!(status_codes(Some(&json!([200, "201"]))), Ok(vec![200, 201]));
        assert_eq!(status_codes(Some(&json!("200,204"))), Ok(vec![200, 204]));
        assert!(status_codes(Some(&json!("ok"))).is_err());
        let p = params(
            json!({"url": "http://h/", "method": "POST", "body_format": "json", "body": {"a": 1}}),
        );
        let (b, ct) = body_bytes(&p).expect("body");
        assert_eq!(b.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(ct, Some("application/json"));
        let p = params(
            json!({"url": "http://h/", "body_format": "form-urlencoded", "body": {"q": "a b&c"}}),
        );
        assert_eq!(
            body_bytes(&p).expect("body").0.as_deref(),
            Some(&b"q=a+b%26c"[..])
        );
        assert!(!follows(&params(json!({"url": "u", "method": "POST"}))));
        assert!(follows(&params(
            json!({"url": "u", "follow_redirects": "all", "method": "PUT"})
        )));
    }

    #[test]
    fn results_like_ansible() {
        let p = params(json!({"url": "http://h/x.json", "return_content": true}));
        let r = build_result(
            &p,
            Some(200),
            "",
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n",
            Some(br#"{"a": 1}"#),
            0,
        );
        assert_eq!(r["status"], 200);
        assert_eq!(r["content_type"], "application/json");
        assert_eq!(r["content_length"], "8");
        assert_eq!(r["json"]["a"], 1);
        assert_eq!(r["content"], r#"{"a": 1}"#);
        assert_eq!(r["msg"], "OK (8 bytes)");
    }
}
