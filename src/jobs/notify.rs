//! `--notify URL`: POST the run's JSON summary to a webhook. `http://` is
//! spoken directly (HTTP/1.1, one request per connection); `https://` goes
//! through the controller's `curl`, with the URL and body fed on its stdin
//! so neither shows in a process list. Every attempt is bounded by a
//! timeout, a failed one is retried a few times, and a notification that
//! never gets through is reported, never turned into the run's exit code.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Attempts per notification, and the time each may take.
pub const ATTEMPTS: u32 = 3;
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("unsupported URL (want http://HOST[:PORT]/PATH or https://...)")]
    BadUrl,
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("sending failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server answered {0}")]
    Status(String),
    #[error("curl failed: {0}")]
    Curl(String),
}

/// A URL as safe to print: scheme, host and port, never the path or
/// query (webhook tokens live there).
pub fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}/...")
        }
        None => "(not a URL)".into(),
    }
}

/// POST `body` to `url`, retrying: Ok(attempts used) or the last error.
pub fn send(url: &str, body: &str) -> Result<u32, NotifyError> {
    let mut last = NotifyError::BadUrl;
    for attempt in 1..=ATTEMPTS {
        let res = if url.starts_with("https://") {
            post_curl(url, body)
        } else {
            post_http(url, body)
        };
        match res {
            Ok(()) => return Ok(attempt),
            Err(NotifyError::BadUrl) => return Err(NotifyError::BadUrl),
            Err(e) => last = e,
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
        }
    }
    Err(last)
}

/// `http://host[:port]/path` into (host, port, path).
fn parse_http(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, p.parse().ok()?),
            None if after.is_empty() => (h, 80),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, 80),
        }
    };
    Some((host.to_string(), port, path.to_string()))
}

fn post_http(url: &str, body: &str) -> Result<(), NotifyError> {
    let (host, port, path) = parse_http(url).ok_or(NotifyError::BadUrl)?;
    let deadline = Instant::now() + TIMEOUT;
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(NotifyError::Connect)?
        .collect();
    let mut stream = None;
    let mut last = std::io::Error::other("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(NotifyError::Connect(last))?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))?;
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: herd/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    // The status line is all that matters; read a bounded amount.
    let mut buf = Vec::new();
    stream.take(8192).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.lines().next().unwrap_or_default().to_string();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('2') && code.len() == 3 {
        Ok(())
    } else if status.is_empty() {
        Err(NotifyError::Status("nothing".into()))
    } else {
        Err(NotifyError::Status(status))
    }
}

/// A string as curl's config file quotes it.
fn curl_quote(s: &str) -> String {
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

fn post_curl(url: &str, body: &str) -> Result<(), NotifyError> {
    let config = format!(
        "url = {}\nrequest = \"POST\"\nheader = \"Content-Type: application/json\"\n\
         data-binary = {}\nmax-time = {}\nconnect-timeout = {}\nsilent\nshow-error\nfail\n\
         output = \"/dev/null\"\n",
        curl_quote(url),
        curl_quote(body),
        TIMEOUT.as_secs(),
        TIMEOUT.as_secs()
    );
    let mut child = Command::new("curl")
        .args(["--config", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NotifyError::Curl(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(config.as_bytes())?;
    }
    // curl's own max-time bounds the wait.
    let out = child
        .wait_with_output()
        .map_err(|e| NotifyError::Curl(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(NotifyError::Curl(
            err.lines().last().unwrap_or("no message").to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_printed_without_their_path() {
        assert_eq!(
            parse_http("http://127.0.0.1:8080/hook?t=1"),
            Some(("127.0.0.1".into(), 8080, "/hook?t=1".into()))
        );
        assert_eq!(
            parse_http("http://example.test"),
            Some(("example.test".into(), 80, "/".into()))
        );
        assert_eq!(
            parse_http("http://[::1]:9/x"),
            Some(("::1".into(), 9, "/x".into()))
        );
        assert_eq!(parse_http("http://user:pw@h/x"), None);
        assert_eq!(parse_http("ftp://h/x"), None);
        assert_eq!(
            display_url("https://hooks.example/services/T0/B0/secret"),
            "https://hooks.example/..."
        );
    }

    #[test]
    fn curl_config_strings_are_quoted() {
        assert_eq!(curl_quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
