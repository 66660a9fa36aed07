//! Path and URL filters (`basename`, `dirname`, `splitext`, `path_join`,
//! `expanduser`, `realpath`, `relpath`, `urlsplit`) with the semantics of
//! Python's `os.path` and `urllib.parse`, which Ansible's versions call.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, State};

use super::filters::{err, items, require_defined};
use super::pyfmt::py_str;

/// Python's `os.path.basename`.
pub(super) fn basename(path: String) -> String {
    match path.rfind('/') {
        Some(i) => path[i + 1..].to_string(),
        None => path,
    }
}

/// Python's `os.path.dirname`.
pub(super) fn dirname(path: String) -> String {
    let head = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    if !head.is_empty() && head.chars().any(|c| c != '/') {
        head.trim_end_matches('/').to_string()
    } else {
        head.to_string()
    }
}

/// Python's `os.path.splitext`: `[root, ext]`.
pub(super) fn splitext(path: String) -> Value {
    let name_start = path.rfind('/').map(|i| i + 1).unwrap_or(0);
    let name = &path[name_start..];
    let lead = name.len() - name.trim_start_matches('.').len();
    match name[lead..].rfind('.') {
        Some(i) => {
            let at = name_start + lead + i;
            Value::from(vec![Value::from(&path[..at]), Value::from(&path[at..])])
        }
        None => Value::from(vec![Value::from(path.as_str()), Value::from("")]),
    }
}

/// Python's `posixpath.normpath`.
fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    // POSIX keeps exactly two leading slashes; three or more become one.
    let lead = if path.starts_with("//") && !path.starts_with("///") {
        "//"
    } else if path.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." if !parts.is_empty() && parts.last() != Some(&"..") => {
                parts.pop();
            }
            ".." if !lead.is_empty() => {}
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (lead, joined.is_empty()) {
        ("", true) => ".".into(),
        (l, _) => format!("{l}{joined}"),
    }
}

/// `['etc', 'app', 'conf'] | path_join` is `etc/app/conf`; an absolute
/// part restarts the path, as `os.path.join` does.
pub(super) fn path_join(state: &State, v: &Value) -> Result<String, Error> {
    require_defined(state, v)?;
    if v.kind() == ValueKind::String {
        return Ok(py_str(v));
    }
    let mut out = String::new();
    for part in items(state, v, "path_join")? {
        let part = py_str(&part);
        if part.starts_with('/') || out.is_empty() {
            out = part;
        } else if out.ends_with('/') {
            out.push_str(&part);
        } else {
            out.push('/');
            out.push_str(&part);
        }
    }
    Ok(out)
}

/// `~` and `~/...` become the controller user's home directory.
pub(super) fn expanduser(path: String) -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    if home.is_empty() {
        return path;
    }
    if path == "~" {
        return home;
    }
    match path.strip_prefix("~/") {
        Some(rest) => format!("{}/{rest}", home.trim_end_matches('/')),
        None => path,
    }
}

/// Python's `os.path.realpath` on the controller: symlinks resolved where
/// the path exists, the rest normalised.
pub(super) fn realpath(path: String) -> String {
    let abs = if path.starts_with('/') {
        path
    } else {
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!("{cwd}/{path}")
    };
    let norm = normpath(&abs);
    match std::fs::canonicalize(&norm) {
        Ok(p) => p.display().to_string(),
        Err(_) => norm,
    }
}

/// Python's `os.path.relpath(path, start)`.
pub(super) fn relpath(path: String, start: Option<String>) -> Result<String, Error> {
    if path.is_empty() {
        return Err(err("relpath: no path specified"));
    }
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let abs = |p: &str| {
        if p.starts_with('/') {
            normpath(p)
        } else {
            normpath(&format!("{cwd}/{p}"))
        }
    };
    let target = abs(&path);
    let base = abs(start.as_deref().unwrap_or("."));
    let t: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
    let b: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<&str> = vec![".."; b.len() - common];
    parts.extend(&t[common..]);
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// Ansible's `urlsplit`: the parts of a URL as a dict, or one of them.
pub(super) fn urlsplit(url: String, query: Option<String>) -> Result<Value, Error> {
    let (scheme, rest) = match url.split_once(':') {
        Some((s, r))
            if !s.is_empty()
                && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (s.to_ascii_lowercase(), r)
        }
        _ => (String::new(), url.as_str()),
    };
    let (netloc, rest) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?', '#']).unwrap_or(r.len());
            (&r[..end], &r[end..])
        }
        None => ("", rest),
    };
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, query_str) = rest.split_once('?').unwrap_or((rest, ""));
    let (userinfo, hostport) = match netloc.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, netloc),
    };
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((n, p)) => (Value::from(n), Value::from(p)),
            None => (Value::from(u), Value::from(())),
        },
        None => (Value::from(()), Value::from(())),
    };
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        match r.split_once(']') {
            Some((h, p)) => (h.to_string(), p.strip_prefix(':').unwrap_or("")),
            None => (r.to_string(), ""),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (hostport.to_string(), ""),
        }
    };
    let hostname = if host.is_empty() {
        Value::from(())
    } else {
        Value::from(host.to_lowercase())
    };
    let port = if port.is_empty() {
        Value::from(())
    } else {
        Value::from(
            port.parse::<u16>()
                .map_err(|_| err("urlsplit: the port is not a number from 0 to 65535"))?,
        )
    };
    let parts = Value::from_pairs([
        ("fragment", Value::from(fragment)),
        ("hostname", hostname),
        ("netloc", Value::from(netloc)),
        ("password", password),
        ("path", Value::from(path)),
        ("port", port),
        ("query", Value::from(query_str)),
        ("scheme", Value::from(scheme)),
        ("username", username),
    ]);
    match query {
        None => Ok(parts),
        Some(q) => {
            let v = parts.get_attr(&q)?;
            if v.is_undefined() {
                Err(err(format!("urlsplit: unknown URL component '{q}'")))
            } else {
                Ok(v)
            }
        }
    }
}
