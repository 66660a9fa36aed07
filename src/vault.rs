//! ansible-vault, format 1.1 and 1.2 with AES256: reading vault-encrypted
//! files and inline `!vault` values, and writing them (`herd vault`, in
//! [`crate::vault_cli`], is the command over these functions). Also owns the vault passwords of a
//! run (`--vault-password-file`, `--vault-id`, `--ask-vault-pass`,
//! `ANSIBLE_VAULT_PASSWORD_FILE`), kept in one process-wide [`Keyring`] so
//! every YAML loader can decrypt without threading it through.
//!
//! The format, as ansible-core 2.18 writes it: a header line
//! `$ANSIBLE_VAULT;1.1;AES256` (or `;1.2;AES256;<vault-id>`), then the hex
//! of three lines `hex(salt)\nhex(hmac)\nhex(ciphertext)`, wrapped at 80
//! columns. Keys come from PBKDF2-HMAC-SHA256 (10000 rounds, 80 bytes:
//! cipher key, HMAC key, initial counter); the HMAC-SHA256 of the
//! ciphertext is checked before AES-256-CTR decrypts it, and the plaintext
//! carries PKCS#7 padding to the 16-byte block.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock};

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// What every vault text starts with.
pub const HEADER: &str = "$ANSIBLE_VAULT";
/// The label of a password given without one (Ansible's `default`).
pub const DEFAULT_ID: &str = "default";
const ITERATIONS: u32 = 10_000;
const SALT_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("{what}: not a vault text: bad header (expected `$ANSIBLE_VAULT;1.1;AES256` or `$ANSIBLE_VAULT;1.2;AES256;<id>`)")]
    BadHeader { what: String },
    #[error("{what}: vault format version `{version}` is not supported (1.1 and 1.2 are)")]
    UnsupportedVersion { what: String, version: String },
    #[error("{what}: vault cipher `{cipher}` is not supported (AES256 is)")]
    UnsupportedCipher { what: String, cipher: String },
    #[error("{what}: vault text is not valid hex ({part})")]
    BadHex { what: String, part: &'static str },
    #[error("{what}: decryption failed: no vault password matches (HMAC mismatch: wrong password, or the text was changed)")]
    WrongPassword { what: String },
    #[error("{what}: decrypted vault data has bad padding")]
    BadPadding { what: String },
    #[error("{what}: decrypted vault data is not UTF-8 text")]
    NotText { what: String },
    #[error("{what} is vault-encrypted but no vault password was given; give one with --vault-password-file FILE, --vault-id LABEL@FILE, --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE")]
    NoPassword { what: String },
    #[error("cannot read vault password file {path}: {reason}")]
    PasswordFile { path: PathBuf, reason: String },
    #[error("vault password script {path} failed: {reason}")]
    PasswordScript { path: PathBuf, reason: String },
    #[error("the vault password from {source_name} is empty")]
    EmptyPassword { source_name: String },
    #[error("cannot prompt for the vault password{label} without a terminal; use --vault-password-file FILE or --vault-id LABEL@FILE")]
    NoTerminal { label: String },
    #[error("cannot read the vault password from the terminal: {0}")]
    Prompt(String),
    #[error("cannot get random bytes for the vault salt: {0}")]
    Random(String),
}

/// One password and its vault-id label.
#[derive(Clone)]
pub struct VaultSecret {
    pub label: String,
    password: Vec<u8>,
}

impl std::fmt::Debug for VaultSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password itself.
        f.debug_struct("VaultSecret")
            .field("label", &self.label)
            .finish()
    }
}

impl VaultSecret {
    pub fn new(label: impl Into<String>, password: impl Into<Vec<u8>>) -> Self {
        Self {
            label: label.into(),
            password: password.into(),
        }
    }
}

/// True when `text` is a vault text (leading whitespace allowed, as in an
/// indented `!vault |` block).
pub fn is_encrypted(text: &str) -> bool {
    text.trim_start().starts_with(HEADER)
}

/// The parsed envelope: version, vault id (1.2 only) and the raw payload.
struct Envelope {
    vault_id: Option<String>,
    payload: Vec<u8>,
}

fn parse_envelope(what: &str, text: &str) -> Result<Envelope, VaultError> {
    let mut lines = text.trim().lines();
    let header = lines.next().unwrap_or_default().trim();
    let fields: Vec<&str> = header.split(';').map(str::trim).collect();
    if fields.len() < 3 || fields[0] != HEADER {
        return Err(VaultError::BadHeader { what: what.into() });
    }
    let version = fields[1];
    if version != "1.1" && version != "1.2" {
        return Err(VaultError::UnsupportedVersion {
            what: what.into(),
            version: version.into(),
        });
    }
    if fields[2] != "AES256" {
        return Err(VaultError::UnsupportedCipher {
            what: what.into(),
            cipher: fields[2].into(),
        });
    }
    let vault_id = fields
        .get(3)
        .filter(|s| !s.is_empty())
        .map(std::string::ToString::to_string);
    let body: String = lines.map(str::trim).collect();
    let payload = hex::decode(body.as_bytes()).map_err(|_| VaultError::BadHex {
        what: what.into(),
        part: "body",
    })?;
    Ok(Envelope { vault_id, payload })
}

struct Keys {
    cipher: [u8; 32],
    mac: [u8; 32],
    iv: [u8; 16],
}

fn derive(password: &[u8], salt: &[u8]) -> Keys {
    let mut out = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, ITERATIONS, &mut out);
    let mut k = Keys {
        cipher: [0; 32],
        mac: [0; 32],
        iv: [0; 16],
    };
    k.cipher.copy_from_slice(&out[..32]);
    k.mac.copy_from_slice(&out[32..64]);
    k.iv.copy_from_slice(&out[64..80]);
    k
}

fn hmac_of(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Decrypt a vault text with the first of `secrets` that opens it: the one
/// labelled with the text's 1.2 vault id first, then all in order (as
/// Ansible does). `what` names the file or value in errors.
pub fn decrypt(what: &str, text: &str, secrets: &[VaultSecret]) -> Result<String, VaultError> {
    let data = decrypt_bytes(what, text, secrets)?;
    String::from_utf8(data).map_err(|_| VaultError::NotText { what: what.into() })
}

/// [`decrypt`], for contents that need not be text (a vaulted file `copy`
/// ships as it is).
pub fn decrypt_bytes(
    what: &str,
    text: &str,
    secrets: &[VaultSecret],
) -> Result<Vec<u8>, VaultError> {
    let env = parse_envelope(what, text)?;
    if secrets.is_empty() {
        return Err(VaultError::NoPassword { what: what.into() });
    }
    let bad_hex = |part| VaultError::BadHex {
        what: what.into(),
        part,
    };
    let mut parts = env.payload.splitn(3, |b| *b == b'\n');
    let salt = hex::decode(parts.next().unwrap_or_default()).map_err(|_| bad_hex("salt"))?;
    let mac =
        hex::decode(parts.next().ok_or_else(|| bad_hex("hmac"))?).map_err(|_| bad_hex("hmac"))?;
    let mut data = hex::decode(parts.next().ok_or_else(|| bad_hex("ciphertext"))?)
        .map_err(|_| bad_hex("ciphertext"))?;
    let ordered = secrets
        .iter()
        .filter(|s| env.vault_id.as_deref() == Some(s.label.as_str()))
        .chain(secrets.iter());
    for secret in ordered {
        let keys = derive(&secret.password, &salt);
        let expected = hmac_of(&keys.mac, &data);
        if expected.ct_eq(mac.as_slice()).into() {
            let mut cipher = Aes256Ctr::new(&keys.cipher.into(), &keys.iv.into());
            cipher.apply_keystream(&mut data);
            let pad = usize::from(*data.last().unwrap_or(&0));
            if pad == 0 || pad > 16 || pad > data.len() {
                return Err(VaultError::BadPadding { what: what.into() });
            }
            if data[data.len() - pad..]
                .iter()
                .any(|b| usize::from(*b) != pad)
            {
                return Err(VaultError::BadPadding { what: what.into() });
            }
            data.truncate(data.len() - pad);
            return Ok(data);
        }
    }
    Err(VaultError::WrongPassword { what: what.into() })
}

/// Encrypt `plaintext` as ansible-vault does: format 1.1, or 1.2 when the
/// secret's label is not `default`; a fresh random 32-byte salt each time.
pub fn encrypt(plaintext: &str, secret: &VaultSecret) -> Result<String, VaultError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| VaultError::Random(e.to_string()))?;
    let keys = derive(&secret.password, &salt);
    let mut data = plaintext.as_bytes().to_vec();
    let pad = 16 - data.len() % 16;
    data.extend(std::iter::repeat_n(pad as u8, pad));
    let mut cipher = Aes256Ctr::new(&keys.cipher.into(), &keys.iv.into());
    cipher.apply_keystream(&mut data);
    let mac = hmac_of(&keys.mac, &data);
    let inner = format!(
        "{}\n{}\n{}",
        hex::encode(salt),
        hex::encode(mac),
        hex::encode(&data)
    );
    let body = hex::encode(inner);
    let mut out = if secret.label == DEFAULT_ID {
        format!("{HEADER};1.1;AES256\n")
    } else {
        format!("{HEADER};1.2;AES256;{}\n", secret.label)
    };
    for chunk in body.as_bytes().chunks(80) {
        // hex is ASCII, so any chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    Ok(out)
}

/// Where the passwords of a run come from (the command-line flags).
#[derive(Debug, Clone, Default)]
pub struct PasswordSources {
    pub password_files: Vec<PathBuf>,
    pub vault_ids: Vec<String>,
    pub ask: bool,
    /// `vault_password_file` of ansible.cfg or `ANSIBLE_VAULT_PASSWORD_FILE`
    /// (see [`crate::config`]), which Ansible adds to what the flags give.
    pub configured: Option<PathBuf>,
}

/// Read every password the flags and the configuration name.
pub fn load_secrets(src: &PasswordSources) -> Result<Vec<VaultSecret>, VaultError> {
    let mut out = Vec::new();
    for id in &src.vault_ids {
        let (label, source) = match id.split_once('@') {
            Some((l, s)) => (l.to_string(), s.to_string()),
            None => (DEFAULT_ID.to_string(), id.clone()),
        };
        if source == "prompt" {
            out.push(VaultSecret::new(label.clone(), prompt(Some(&label))?));
        } else {
            out.push(VaultSecret::new(label, read_source(Path::new(&source))?));
        }
    }
    for path in &src.password_files {
        out.push(VaultSecret::new(DEFAULT_ID, read_source(path)?));
    }
    if src.ask {
        out.push(VaultSecret::new(DEFAULT_ID, prompt(None)?));
    }
    // Ansible adds the configured password file to whatever the flags give.
    if let Some(path) = &src.configured {
        out.push(VaultSecret::new(DEFAULT_ID, read_source(path)?));
    }
    Ok(out)
}

fn prompt(label: Option<&str>) -> Result<Vec<u8>, VaultError> {
    let shown = label
        .map(|l| format!(" for vault id `{l}`"))
        .unwrap_or_default();
    // Without a terminal rpassword would read stdin; refuse rather than hang.
    if !std::io::stdin().is_terminal() {
        return Err(VaultError::NoTerminal { label: shown });
    }
    let text = match label {
        Some(l) => format!("Vault password ({l}): "),
        None => "Vault password: ".to_string(),
    };
    let pass = rpassword::prompt_password(text).map_err(|e| VaultError::Prompt(e.to_string()))?;
    if pass.is_empty() {
        return Err(VaultError::EmptyPassword {
            source_name: "the prompt".into(),
        });
    }
    Ok(pass.into_bytes())
}

/// A password file, or an executable that prints the password; leading
/// and trailing CR/LF are stripped, as Ansible strips them.
fn read_source(path: &Path) -> Result<Vec<u8>, VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| VaultError::PasswordFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let raw = if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
        let out = std::process::Command::new(path)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| VaultError::PasswordScript {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(VaultError::PasswordScript {
                path: path.to_path_buf(),
                reason: format!("it exited with {}", out.status),
            });
        }
        out.stdout
    } else {
        std::fs::read(path).map_err(|e| VaultError::PasswordFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
    };
    let start = raw.iter().position(|b| !matches!(b, b'\r' | b'\n'));
    let end = raw.iter().rposition(|b| !matches!(b, b'\r' | b'\n'));
    let pass = match (start, end) {
        (Some(s), Some(e)) => raw[s..=e].to_vec(),
        _ => Vec::new(),
    };
    if pass.is_empty() {
        return Err(VaultError::EmptyPassword {
            source_name: path.display().to_string(),
        });
    }
    Ok(pass)
}

/// The passwords of this run. Empty until the command line sets them.
pub struct Keyring {
    secrets: RwLock<Vec<VaultSecret>>,
}

pub fn keyring() -> &'static Keyring {
    static K: OnceLock<Keyring> = OnceLock::new();
    K.get_or_init(|| Keyring {
        secrets: RwLock::new(Vec::new()),
    })
}

impl Keyring {
    pub fn set(&self, secrets: Vec<VaultSecret>) {
        *self
            .secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = secrets;
    }
    /// Decrypt with this run's passwords and mark the plaintext secret.
    pub fn decrypt(&self, what: &str, text: &str) -> Result<String, VaultError> {
        let secrets = self
            .secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        decrypt(what, text, &secrets)
    }
    /// [`Keyring::decrypt`] for contents that need not be text.
    pub fn decrypt_bytes(&self, what: &str, text: &str) -> Result<Vec<u8>, VaultError> {
        let secrets = self
            .secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        decrypt_bytes(what, text, &secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vault")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }
    fn main_pw() -> VaultSecret {
        VaultSecret::new(DEFAULT_ID, "herd-test-password")
    }
    fn dev_pw() -> VaultSecret {
        VaultSecret::new("dev", "dev-password")
    }
    /// The vault text of an `encrypt_string` output (`name: !vault |` block).
    fn inline(name: &str) -> String {
        let text = fixture(name);
        let node = crate::yaml::parse_with(Path::new(name), &text, false).unwrap();
        node.get("api_token").unwrap().as_str().unwrap().to_string()
    }

    #[test]
    fn decrypts_ansible_vault_1_1_file() {
        let plain = decrypt("file-1.1.yml", &fixture("file-1.1.yml"), &[main_pw()]).unwrap();
        assert_eq!(plain, fixture("plain.yml"));
    }

    #[test]
    fn decrypts_ansible_vault_1_2_file_trying_the_labelled_password_first() {
        let text = fixture("file-1.2-dev.yml");
        assert!(text.starts_with("$ANSIBLE_VAULT;1.2;AES256;dev\n"));
        let plain = decrypt("f", &text, &[main_pw(), dev_pw()]).unwrap();
        assert_eq!(plain, fixture("plain.yml"));
        // The label only orders the tries: a wrongly labelled password still opens it.
        let plain = decrypt("f", &text, &[VaultSecret::new("other", "dev-password")]).unwrap();
        assert_eq!(plain, fixture("plain.yml"));
    }

    #[test]
    fn decrypts_encrypt_string_values() {
        assert_eq!(
            decrypt("v", &inline("string-1.1.yml"), &[main_pw()]).unwrap(),
            "inline-s3cret"
        );
        assert_eq!(
            decrypt("v", &inline("string-1.2-dev.yml"), &[dev_pw()]).unwrap(),
            "inline-dev-s3cret"
        );
    }

    #[test]
    fn wrong_password_names_the_file_and_not_the_password() {
        let e = decrypt("group_vars/all.yml", &fixture("file-1.1.yml"), &[dev_pw()]).unwrap_err();
        assert!(matches!(e, VaultError::WrongPassword { .. }));
        let msg = e.to_string();
        assert!(msg.contains("group_vars/all.yml"), "{msg}");
        assert!(!msg.contains("dev-password"), "{msg}");
        let e = decrypt("secrets.yml", &fixture("file-1.1.yml"), &[]).unwrap_err();
        assert!(e.to_string().contains("--vault-password-file"), "{e}");
    }

    #[test]
    fn bad_envelopes_are_typed_errors() {
        let bad = |t: &str| decrypt("x", t, &[main_pw()]).unwrap_err();
        assert!(matches!(
            bad("$ANSIBLE_VAULT\n00\n"),
            VaultError::BadHeader { .. }
        ));
        assert!(matches!(
            bad("$ANSIBLE_VAULT;1.0;AES256\n00\n"),
            VaultError::UnsupportedVersion { .. }
        ));
        assert!(matches!(
            bad("$ANSIBLE_VAULT;1.1;AES\n00\n"),
            VaultError::UnsupportedCipher { .. }
        ));
        assert!(matches!(
            bad("$ANSIBLE_VAULT;1.1;AES256\nzz\n"),
            VaultError::BadHex { .. }
        ));
    }

    #[test]
    fn round_trip_and_fresh_salt() {
        let a = encrypt("hello\nworld\n", &main_pw()).unwrap();
        let b = encrypt("hello\nworld\n", &main_pw()).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"));
        assert!(a.lines().skip(1).all(|l| l.len() <= 80));
        assert_eq!(decrypt("a", &a, &[main_pw()]).unwrap(), "hello\nworld\n");
        let c = encrypt("x", &dev_pw()).unwrap();
        assert!(c.starts_with("$ANSIBLE_VAULT;1.2;AES256;dev\n"));
        assert_eq!(decrypt("c", &c, &[dev_pw()]).unwrap(), "x");
        // A block-sized plaintext gets a whole block of padding.
        let d = encrypt("0123456789abcdef", &main_pw()).unwrap();
        assert_eq!(decrypt("d", &d, &[main_pw()]).unwrap(), "0123456789abcdef");
    }

    #[test]
    fn password_files_and_scripts_strip_newlines() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pw");
        std::fs::write(&file, "pa ss\r\n").unwrap();
        assert_eq!(read_source(&file).unwrap(), b"pa ss");
        let script = tmp.path().join("pw.sh");
        std::fs::write(&script, "#!/bin/sh\necho scripted\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(read_source(&script).unwrap(), b"scripted");
        let empty = tmp.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(
            read_source(&empty),
            Err(VaultError::EmptyPassword { .. })
        ));
        let src = PasswordSources {
            vault_ids: vec![format!("dev@{}", file.display())],
            ..Default::default()
        };
        let s = load_secrets(&src).unwrap();
        assert_eq!(s[0].label, "dev");
        assert!(!format!("{s:?}").contains("pa ss"));
    }
}
