//! Host-key checking against OpenSSH `known_hosts` files.
//!
//! Owns the verdict on a server's host key (libssh2's `KnownHosts`, which
//! understands hashed entries), recording new keys under `accept-new`, and the
//! `file:line` of a stale entry when a key has changed — libssh2 does not
//! report lines, so this module also parses the files itself. The same parser
//! tells the handshake which key types are already recorded for a host, so the
//! server is asked for the key we can check rather than one we have never seen.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, KnownHostFileKind, Session};

use super::ssh::SshError;

/// What to do with a host key that is not in any known_hosts file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HostKeyChecking {
    /// Unknown hosts are refused; changed keys are refused.
    Strict,
    /// Unknown hosts are recorded and trusted; changed keys are refused
    /// (OpenSSH's `StrictHostKeyChecking=accept-new`).
    #[default]
    AcceptNew,
    /// No checking at all.
    Off,
}

/// What the check concluded, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyVerdict {
    /// A known_hosts entry matches the key.
    Known,
    /// The host was unknown; its key was appended to this file.
    Recorded(PathBuf),
    /// The host was unknown and there was no file to record it in.
    AcceptedUnrecorded,
    /// Checking is off.
    Unchecked,
}

/// Many hosts connect in parallel; without this two of them could both read
/// the file, both find themselves unknown and interleave their appends, or
/// one could read a half-written line.
static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

/// The name OpenSSH uses in known_hosts for a host on a port.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:<base64>` of a key blob, as `ssh-keygen -l` prints it.
pub fn fingerprint_sha256(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The algorithm name at the start of an SSH public key blob (`ssh-ed25519`).
pub fn key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

/// HMAC-SHA1, the hash of hashed known_hosts names (`|1|salt|hash`).
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha1::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    Plain(Vec<String>),
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

impl Names {
    /// Exact comparison, as libssh2 does, so the line we blame is one that
    /// libssh2 also matched.
    fn matches(&self, name: &str) -> bool {
        match self {
            Names::Plain(names) => names.iter().any(|n| n == name),
            Names::Hashed { salt, hash } => hmac_sha1(salt, name.as_bytes()).as_slice() == hash,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// 1-based line number in the file.
    line: usize,
    names: Names,
    key_type: String,
    key_b64: String,
}

/// One known_hosts line, or `None` for comments, blank lines, markers
/// (`@cert-authority`, `@revoked`: libssh2 cannot read them) and garbage.
fn parse_line(text: &str, line: usize) -> Option<Entry> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') || text.starts_with('@') {
        return None;
    }
    let mut fields = text.split_whitespace();
    let hosts = fields.next()?;
    let key_type = fields.next()?.to_string();
    let key_b64 = fields.next()?.to_string();
    let names = if let Some(rest) = hosts.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        Names::Hashed {
            salt: STANDARD.decode(salt).ok()?,
            hash: STANDARD.decode(hash).ok()?,
        }
    } else {
        Names::Plain(hosts.split(',').map(str::to_string).collect())
    };
    Some(Entry {
        line,
        names,
        key_type,
        key_b64,
    })
}

/// An `@revoked` line: its host patterns and key. Revocation lists usually
/// name `*`; exact names and `*` are honoured, other wildcards are not.
fn parse_revoked(text: &str) -> Option<(Vec<String>, String)> {
    let mut fields = text.trim().strip_prefix("@revoked")?.split_whitespace();
    let hosts = fields.next()?.split(',').map(str::to_string).collect();
    let _key_type = fields.next()?;
    Some((hosts, fields.next()?.to_string()))
}

struct KnownHostsFile {
    /// `@revoked` lines: (line, host patterns, key base64).
    revoked: Vec<(usize, Vec<String>, String)>,
    /// Each parsed entry with the raw line it came from.
    entries: Vec<(Entry, String)>,
}

impl KnownHostsFile {
    fn parse(text: &str) -> KnownHostsFile {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| parse_line(l, i + 1).map(|e| (e, l.to_string())))
            .collect();
        let revoked = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| parse_revoked(l).map(|(h, k)| (i + 1, h, k)))
            .collect();
        KnownHostsFile { revoked, entries }
    }

    /// The `@revoked` line that names one of the host's names with this key.
    fn revoked_line(&self, lookups: &[String], hosts: &[&str], actual_b64: &str) -> Option<usize> {
        self.revoked
            .iter()
            .find(|(_, patterns, key)| {
                key == actual_b64
                    && patterns
                        .iter()
                        .any(|p| p == "*" || lookups.contains(p) || hosts.contains(&p.as_str()))
            })
            .map(|(line, _, _)| *line)
    }
}

/// A missing or unreadable file is skipped, as OpenSSH does.
fn load(path: &Path) -> Option<KnownHostsFile> {
    let text = fs::read_to_string(path).ok()?;
    Some(KnownHostsFile::parse(&text))
}

/// What a known_hosts text says about a host presenting `blob`, without a
/// session: the key types recorded for it, the `@revoked` line refusing the
/// key, and the line and fingerprint a changed-key error would name. This
/// is every step of [`verify`] that reads the file (the fuzzer drives it).
pub(crate) fn judge_text(
    text: &str,
    hosts: &[&str],
    port: u16,
    blob: &[u8],
) -> (Vec<String>, Option<usize>, Option<(usize, String)>) {
    let file = KnownHostsFile::parse(text);
    let lookups: Vec<String> = hosts.iter().map(|h| lookup_name(h, port)).collect();
    let mut types = Vec::new();
    for (entry, _) in &file.entries {
        if lookups.iter().any(|l| entry.names.matches(l)) && !types.contains(&entry.key_type) {
            types.push(entry.key_type.clone());
        }
    }
    let b64 = STANDARD.encode(blob);
    let revoked = file.revoked_line(&lookups, hosts, &b64);
    let stale = lookups.iter().find_map(|l| {
        stale_entry(&file, l, key_type(blob), &b64).map(|e| (e.line, entry_fingerprint(e)))
    });
    (types, revoked, stale)
}

/// The key types recorded for any of `hosts` on `port`, in file order.
pub fn recorded_key_types(files: &[PathBuf], hosts: &[&str], port: u16) -> Vec<String> {
    let lookups: Vec<String> = hosts.iter().map(|h| lookup_name(h, port)).collect();
    let mut types = Vec::new();
    for file in files.iter().filter_map(|f| load(f)) {
        for (entry, _) in &file.entries {
            if lookups.iter().any(|l| entry.names.matches(l)) && !types.contains(&entry.key_type) {
                types.push(entry.key_type.clone());
            }
        }
    }
    types
}

/// Host-key algorithms to offer, most wanted first: those whose keys are
/// already recorded for the host, then the rest of what libssh2 supports.
/// Without this libssh2 may negotiate, say, ECDSA for a host recorded with
/// its Ed25519 key, and a good host would look like a changed one.
pub fn host_key_preference(recorded: &[String], supported: &[&str]) -> Option<String> {
    if recorded.is_empty() {
        return None;
    }
    let mut order: Vec<&str> = Vec::new();
    for kt in recorded {
        // A recorded `ssh-rsa` key is the same key under the SHA-2 signatures.
        let single = [kt.as_str()];
        let algs: &[&str] = if kt == "ssh-rsa" {
            &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        } else {
            &single
        };
        for alg in algs {
            if supported.contains(alg) && !order.contains(alg) {
                order.push(alg);
            }
        }
    }
    if order.is_empty() {
        return None;
    }
    for alg in supported {
        if !order.contains(alg) {
            order.push(alg);
        }
    }
    Some(order.join(","))
}

/// Check the session's host key for `hosts` (the address connected to first,
/// then other names of the host) on `port`, under `policy`.
pub fn verify(
    session: &Session,
    display_host: &str,
    hosts: &[&str],
    port: u16,
    policy: HostKeyChecking,
    files: &[PathBuf],
) -> Result<HostKeyVerdict, SshError> {
    if policy == HostKeyChecking::Off {
        return Ok(HostKeyVerdict::Unchecked);
    }
    let (blob, _) = session.host_key().ok_or_else(|| SshError::NoHostKey {
        host: display_host.to_string(),
    })?;
    let blob = blob.to_vec();
    let actual_fp = fingerprint_sha256(&blob);
    let actual_b64 = STANDARD.encode(&blob);
    let lookups: Vec<String> = hosts.iter().map(|h| lookup_name(h, port)).collect();

    // A poisoned lock only means another connect panicked; the files are
    // still whole because every append is a single write.
    let _guard = KNOWN_HOSTS_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);

    let mut changed: Option<SshError> = None;
    let mut loaded = Vec::new();
    for path in files {
        let Some(file) = load(path) else { continue };
        // A revoked key is refused whatever else the files say.
        if let Some(line) = file.revoked_line(&lookups, hosts, &actual_b64) {
            return Err(SshError::HostKeyRevoked {
                host: display_host.to_string(),
                fingerprint: actual_fp,
                file: path.clone(),
                line,
            });
        }
        loaded.push((path, file));
    }
    for (path, file) in loaded {
        let known = session.known_hosts().map_err(|source| SshError::Session {
            host: display_host.to_string(),
            context: "reading known_hosts",
            source,
        })?;
        let mut known = known;
        // Line by line, so one line libssh2 cannot parse does not hide the rest.
        for (_, raw) in &file.entries {
            let _ = known.read_str(raw, KnownHostFileKind::OpenSSH);
        }
        for lookup in &lookups {
            // `check` with the bracketed name rather than `check_port`: for a
            // port other than 22, libssh2's check_port falls back to the plain
            // host entry, so two sshds on one machine (containers on mapped
            // ports) would look like a changed key. OpenSSH does not fall back.
            match known.check(lookup, &blob) {
                CheckResult::Match => return Ok(HostKeyVerdict::Known),
                CheckResult::Mismatch if changed.is_none() => {
                    let stale = stale_entry(&file, lookup, key_type(&blob), &actual_b64);
                    let (line, expected_fingerprint) = match stale {
                        Some(e) => (e.line, entry_fingerprint(e)),
                        None => (0, "unknown".to_string()),
                    };
                    changed = Some(SshError::HostKeyChanged {
                        host: display_host.to_string(),
                        file: path.clone(),
                        line,
                        expected_fingerprint,
                        actual_fingerprint: actual_fp.clone(),
                    });
                }
                _ => {}
            }
        }
    }
    // A match in any file wins (OpenSSH does the same); only then is a
    // mismatch elsewhere a changed key.
    if let Some(err) = changed {
        return Err(err);
    }
    match policy {
        HostKeyChecking::Strict => Err(SshError::HostKeyUnknown {
            host: display_host.to_string(),
            fingerprint: actual_fp,
        }),
        HostKeyChecking::AcceptNew => {
            let (Some(path), Some(first)) = (files.first(), lookups.first()) else {
                return Ok(HostKeyVerdict::AcceptedUnrecorded);
            };
            let kt = key_type(&blob).unwrap_or("unknown");
            append(path, &format!("{first} {kt} {actual_b64}\n")).map_err(|source| {
                SshError::KnownHostsWrite {
                    host: display_host.to_string(),
                    file: path.clone(),
                    source,
                }
            })?;
            Ok(HostKeyVerdict::Recorded(path.clone()))
        }
        HostKeyChecking::Off => Ok(HostKeyVerdict::Unchecked),
    }
}

/// The entry libssh2 matched for `lookup` with a different key: one of the
/// same key type if there is one (that is the key that changed), else the first.
fn stale_entry<'a>(
    file: &'a KnownHostsFile,
    lookup: &str,
    actual_type: Option<&str>,
    actual_b64: &str,
) -> Option<&'a Entry> {
    let candidates: Vec<&Entry> = file
        .entries
        .iter()
        .map(|(e, _)| e)
        .filter(|e| e.names.matches(lookup) && e.key_b64 != actual_b64)
        .collect();
    candidates
        .iter()
        .find(|e| Some(e.key_type.as_str()) == actual_type)
        .or(candidates.first())
        .copied()
}

fn entry_fingerprint(entry: &Entry) -> String {
    match STANDARD.decode(&entry.key_b64) {
        Ok(blob) => fingerprint_sha256(&blob),
        Err(_) => "unreadable key".to_string(),
    }
}

/// Append one line with a single write, creating `~/.ssh` (0700) and the
/// file (0600) as ssh does.
fn append(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    // Do not glue our entry onto a last line that lacks its newline.
    let needs_newline = match fs::read(path) {
        Ok(bytes) => bytes.last().is_some_and(|b| *b != b'\n'),
        Err(_) => false,
    };
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let text = if needs_newline {
        format!("\n{line}")
    } else {
        line.to_string()
    };
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut b = (kind.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn hmac_sha1_matches_rfc2202() {
        let out = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(out), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        // Keys longer than a block are hashed first.
        let out = hmac_sha1(
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(hex::encode(out), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    }

    #[test]
    fn hashed_names_match_like_ssh_keygen() {
        let salt = [7u8; 20];
        let hash = hmac_sha1(&salt, b"[127.0.0.1]:2222");
        let line = format!(
            "|1|{}|{} ssh-ed25519 AAAA",
            STANDARD.encode(salt),
            STANDARD.encode(hash)
        );
        let entry = parse_line(&line, 3).expect("parses");
        assert!(entry.names.matches("[127.0.0.1]:2222"));
        assert!(!entry.names.matches("127.0.0.1"));
        assert_eq!(entry.line, 3);
    }

    #[test]
    fn plain_lists_comments_and_markers() {
        let e = parse_line("web1,10.0.0.5 ssh-rsa AAAAB3 comment here", 1).expect("parses");
        assert!(e.names.matches("10.0.0.5"));
        assert!(!e.names.matches("web"));
        assert_eq!(e.key_type, "ssh-rsa");
        assert!(parse_line("# comment", 1).is_none());
        assert!(parse_line("@cert-authority *.example ssh-ed25519 AAAA", 1).is_none());
        assert!(parse_line("   ", 1).is_none());
        assert!(parse_line("onlyhost", 1).is_none());
    }

    #[test]
    fn names_and_fingerprints() {
        assert_eq!(lookup_name("h", 22), "h");
        assert_eq!(lookup_name("h", 2222), "[h]:2222");
        let b = blob("ssh-ed25519", &[1, 2, 3]);
        assert_eq!(key_type(&b), Some("ssh-ed25519"));
        assert_eq!(key_type(&[0, 0, 0, 200, b'x']), None);
        let fp = fingerprint_sha256(&b);
        assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
        assert_eq!(fp.len(), "SHA256:".len() + 43);
    }

    #[test]
    fn preference_puts_recorded_types_first() {
        let supported = [
            "ecdsa-sha2-nistp256",
            "ssh-ed25519",
            "rsa-sha2-256",
            "ssh-rsa",
        ];
        assert_eq!(host_key_preference(&[], &supported), None);
        assert_eq!(
            host_key_preference(&["ssh-ed25519".into()], &supported).as_deref(),
            Some("ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-256,ssh-rsa")
        );
        assert_eq!(
            host_key_preference(&["ssh-rsa".into()], &supported).as_deref(),
            Some("rsa-sha2-256,ssh-rsa,ecdsa-sha2-nistp256,ssh-ed25519")
        );
        assert_eq!(host_key_preference(&["sk-x".into()], &supported), None);
    }

    #[test]
    fn append_creates_private_file_and_keeps_lines_apart() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/known_hosts");
        append(&path, "a ssh-ed25519 AAAA\n").expect("append");
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::write(&path, "a ssh-ed25519 AAAA").expect("write");
        append(&path, "b ssh-ed25519 BBBB\n").expect("append");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "a ssh-ed25519 AAAA\nb ssh-ed25519 BBBB\n"
        );
        let types = recorded_key_types(&[path], &["b"], 22);
        assert_eq!(types, vec!["ssh-ed25519".to_string()]);
    }
}
