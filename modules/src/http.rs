//! HTTP requests made *on the host* with its curl (or, failing that, wget),
//! shared by `get_url`, `uri` and `apt_key`: targets have no python, so the
//! host's own client fetches, and the controller never needs a route to the
//! URL.
//!
//! Everything secret (URL, headers, credentials) goes to the client in a
//! config file fed on stdin, never on its command line, so it shows in no
//! process list and in no `-v` script. The request body follows the config
//! files on the same stdin.

use std::fmt::Write as _;

use crate::shell_quote::quote;
use crate::ModuleError;

/// One request as the modules describe it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The URL to request.
    pub url: String,
    /// The HTTP method.
    pub method: String,
    /// Request headers, in order.
    pub headers: Vec<(String, String)>,
    /// User for basic authentication.
    pub username: Option<String>,
    /// Password for basic authentication.
    pub password: Option<String>,
    /// Seconds the request may take.
    pub timeout: u64,
    /// Verify the server's TLS certificate.
    pub validate_certs: bool,
    /// Follow redirects.
    pub follow_redirects: bool,
    /// The request body.
    pub body: Option<Vec<u8>>,
    /// The User-Agent header.
    pub user_agent: Option<String>,
}

/// The exit status a [`fetch_script`] uses when the host has no client.
pub const NO_CLIENT_RC: i32 = 69;

/// The error for a host that has neither curl nor wget.
pub fn no_client_error(module: &str) -> ModuleError {
    ModuleError::failed(format!(
        "{module}: neither curl nor wget is installed on the host (install curl)"
    ))
}

fn curl_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn no_newline(what: &str, v: &str) -> Result<(), ModuleError> {
    if v.contains(['\n', '\r']) {
        Err(ModuleError::failed(format!(
            "{what} must not contain a newline"
        )))
    } else {
        Ok(())
    }
}

/// curl's `-K` config for the request.
pub fn curl_config(r: &Request) -> Result<String, ModuleError> {
    let mut c = String::new();
    let _ = writeln!(c, "url = {}", curl_string(&r.url));
    if r.method.eq_ignore_ascii_case("HEAD") {
        c.push_str("head\n");
    } else if !r.method.eq_ignore_ascii_case("GET") || r.body.is_some() {
        let _ = writeln!(
            c,
            "request = {}",
            curl_string(&r.method.to_ascii_uppercase())
        );
    }
    for (k, v) in &r.headers {
        no_newline("a header", k)?;
        no_newline("a header", v)?;
        let _ = writeln!(c, "header = {}", curl_string(&format!("{k}: {v}")));
    }
    if let Some(u) = &r.username {
        let pw = r.password.as_deref().unwrap_or("");
        let _ = writeln!(c, "user = {}", curl_string(&format!("{u}:{pw}")));
    }
    if !r.validate_certs {
        c.push_str("insecure\n");
    }
    if r.follow_redirects {
        c.push_str("location\nmax-redirs = 50\n");
    }
    if r.timeout > 0 {
        let _ = writeln!(c, "max-time = {}", r.timeout);
        let _ = writeln!(c, "connect-timeout = {}", r.timeout);
    }
    if let Some(a) = &r.user_agent {
        let _ = writeln!(c, "user-agent = {}", curl_string(a));
    }
    c.push_str("silent\nshow-error\n");
    Ok(c)
}

/// wget's config (a `WGETRC`) for the request; the URL and method go on
/// its command line from the script's variables.
pub fn wget_config(r: &Request) -> Result<String, ModuleError> {
    let mut c = String::new();
    for (k, v) in &r.headers {
        no_newline("a header", k)?;
        no_newline("a header", v)?;
        let _ = writeln!(c, "header = {k}: {v}");
    }
    if let Some(u) = &r.username {
        no_newline("url_username", u)?;
        let pw = r.password.as_deref().unwrap_or("");
        no_newline("url_password", pw)?;
        let _ = writeln!(c, "user = {u}\npassword = {pw}\nauth_no_challenge = on");
    }
    if !r.validate_certs {
        c.push_str("check_certificate = off\n");
    }
    if !r.follow_redirects {
        c.push_str("max_redirect = 0\n");
    }
    if r.timeout > 0 {
        let _ = writeln!(c, "timeout = {}", r.timeout);
    }
    if let Some(a) = &r.user_agent {
        no_newline("http_agent", a)?;
        let _ = writeln!(c, "user_agent = {a}");
    }
    c.push_str("tries = 1\n");
    Ok(c)
}

/// A script fragment that performs `r`, writing the response body to the
/// file in shell variable `$o` (which the caller sets) and the response
/// headers to `$h`, and leaving the status code in `$code` and the
/// client's exit status in `$rc`. Temp files are removed on exit; the
/// caller may name more in `extra_cleanup` (shell words). Returns the
/// script and the stdin to feed it.
pub fn fetch_script(r: &Request, extra_cleanup: &str) -> Result<(String, Vec<u8>), ModuleError> {
    no_newline("url", &r.url)?;
    let curl = curl_config(r)?;
    let wget = wget_config(r)?;
    let method = r.method.to_ascii_uppercase();
    let mut s = format!(
        "umask 077\n\
         c=$(mktemp) && w=$(mktemp) && b=$(mktemp) && h=$(mktemp) || exit 1\n\
         trap 'rm -f \"$c\" \"$w\" \"$b\" \"$h\" {extra_cleanup}' EXIT; trap 'exit 143' HUP INT TERM\n\
         head -c {} > \"$c\"; head -c {} > \"$w\"; cat > \"$b\"\n",
        curl.len(),
        wget.len()
    );
    let data = if r.body.is_some() {
        " --data-binary @\"$b\""
    } else {
        ""
    };
    let wget_body = if r.body.is_some() {
        " --body-file=\"$b\""
    } else {
        ""
    };
    let wget_method = if method != "GET" {
        format!(" --method={}", quote(&method))
    } else {
        String::new()
    };
    let _ = write!(
        s,
        "if command -v curl >/dev/null 2>&1; then\n\
         \x20 code=$(curl -K \"$c\"{data} -o \"$o\" -D \"$h\" -w '%{{http_code}}'); rc=$?\n\
         elif command -v wget >/dev/null 2>&1; then\n\
         \x20 WGETRC=\"$w\" wget -q -S --content-on-error{wget_method}{wget_body} -O \"$o\" {url} 2> \"$h.w\"; rc=$?\n\
         \x20 sed -n 's/^  //p' \"$h.w\" > \"$h\"; rm -f \"$h.w\"\n\
         \x20 code=$(sed -n 's/^HTTP\\/[0-9.]* \\([0-9][0-9]*\\).*/\\1/p' \"$h\" | tail -n 1)\n\
         \x20 if [ -n \"$code\" ] && [ $rc -eq 8 ]; then rc=0; fi\n\
         else exit {NO_CLIENT_RC}; fi\n",
        url = quote(&r.url),
    );
    let mut stdin = curl.into_bytes();
    stdin.extend_from_slice(wget.as_bytes());
    if let Some(b) = &r.body {
        stdin.extend_from_slice(b);
    }
    Ok((s, stdin))
}

/// A URL fit for messages and results: a `user:password@` in it is hidden.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://********@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The last response's status line and headers (after redirects), with
/// names lowercased as Ansible reports them.
pub fn parse_headers(raw: &str) -> (Option<u16>, Vec<(String, String)>) {
    let mut status = None;
    let mut headers = Vec::new();
    for line in raw.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("HTTP/") {
            status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            headers.clear();
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (status, headers)
}

/// Headers given as a mapping, or as Ansible's old `"K:V,K2:V2"` string.
pub fn headers_param(v: Option<&serde_json::Value>) -> Result<Vec<(String, String)>, String> {
    use serde_json::Value;
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()),
        Some(Value::String(s)) => s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                p.split_once(':')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .ok_or_else(|| format!("header {p:?} is not `name:value`"))
            })
            .collect(),
        Some(_) => Err("expected a mapping of header names to values".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::host;
    use crate::Host;

    #[test]
    fn configs_quote_and_keep_secrets_off_argv() {
        let r = Request {
            url: "http://h/a b?x=\"1\"".into(),
            method: "POST".into(),
            headers: vec![("X-A".into(), "v\\w".into())],
            username: Some("u".into()),
            password: Some("p\"w".into()),
            timeout: 5,
            validate_certs: false,
            ..Request::default()
        };
        let c = curl_config(&r).expect("config");
        assert!(c.contains("url = \"http://h/a b?x=\\\"1\\\"\"\n"), "{c}");
        assert!(c.contains("header = \"X-A: v\\\\w\"\n"));
        assert!(c.contains("user = \"u:p\\\"w\"\n") && c.contains("insecure\n"));
        let (script, _) = fetch_script(&r, "").expect("script");
        assert!(!script.contains("p\"w"));
        let bad = Request {
            url: "http://h/\n".into(),
            ..Request::default()
        };
        assert!(fetch_script(&bad, "").is_err());
    }

    #[test]
    fn headers_of_the_last_response() {
        let (s, h) = parse_headers(
            "HTTP/1.1 301 Moved\r\nLocation: /b\r\n\r\nHTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Y:  z \r\n",
        );
        assert_eq!(s, Some(200));
        assert_eq!(
            h,
            [
                ("content-type".into(), "text/plain".into()),
                ("x-y".into(), "z".into())
            ]
        );
        assert_eq!(redact("https://u:pw@h/a@b"), "https://********@h/a@b");
        assert_eq!(redact("http://h/x"), "http://h/x");
        let p = headers_param(Some(&serde_json::json!("A:1, B: 2"))).expect("headers");
        assert_eq!(p[1], ("B".into(), "2".into()));
    }

    #[test]
    fn fetches_a_file_url_with_curl() {
        if std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_err()
        {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("s");
        std::fs::write(&src, "hi\n").expect("write");
        let r = Request {
            url: format!("file://{}", src.display()),
            method: "GET".into(),
            timeout: 5,
            validate_certs: true,
            ..Request::default()
        };
        let (s, stdin) = fetch_script(&r, "").expect("script");
        let out_path = dir.path().join("o");
        let script = format!(
            "o={}\n{s}echo \"RC $rc\"; cat \"$o\"",
            quote(&out_path.to_string_lossy())
        );
        let out = host().run(&script, Some(&stdin)).expect("run");
        assert_eq!(out.stdout_str(), "RC 0\nhi\n", "{}", out.stderr_str());
    }
}
