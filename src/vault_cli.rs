//! `herd vault`: ansible-vault's subcommands (`encrypt`, `decrypt`, `view`,
//! `edit`, `create`, `encrypt_string`, `rekey`) over the format code in
//! [`crate::vault`], with ansible-vault's flags and its choices: files are
//! changed in place unless `--output` names another file (`-` is stdout),
//! no file means stdin to stdout, the secret to encrypt with is the only one
//! given or the one `--encrypt-vault-id` names, and an encrypted file is
//! never encrypted twice. Files are replaced by rename, keeping their mode,
//! so an interrupted run leaves the old file or the new one, never half.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::vault::{self, PasswordSources, VaultError, VaultSecret, DEFAULT_ID};

/// `herd vault ...`.
#[derive(Debug, Args)]
pub struct VaultArgs {
    #[command(subcommand)]
    pub action: VaultAction,
}

/// The vault password flags, shared by every command that reads vault data.
#[derive(Debug, Clone, Default, Args)]
pub struct VaultPasswordOpts {
    /// Vault password file, or an executable that prints the password (repeatable).
    #[arg(long = "vault-password-file", alias = "vault-pass-file")]
    pub vault_password_files: Vec<PathBuf>,
    /// Vault password as LABEL@FILE, LABEL@SCRIPT or LABEL@prompt (repeatable).
    #[arg(long = "vault-id")]
    pub vault_ids: Vec<String>,
    /// Ask for the vault password (needs a terminal).
    #[arg(short = 'J', long = "ask-vault-pass", alias = "ask-vault-password")]
    pub ask_vault_pass: bool,
}

impl VaultPasswordOpts {
    /// Where the passwords come from, before ansible.cfg adds its own.
    pub fn sources(&self) -> PasswordSources {
        PasswordSources {
            password_files: self.vault_password_files.clone(),
            vault_ids: self.vault_ids.clone(),
            ask: self.ask_vault_pass,
            configured: None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum VaultAction {
    /// Encrypt files in place (or stdin to stdout).
    Encrypt(EncryptArgs),
    /// Decrypt vault files in place (or stdin to stdout).
    Decrypt(DecryptArgs),
    /// Print the plaintext of vault files.
    View(ViewArgs),
    /// Decrypt a vault file into $EDITOR, then encrypt what was saved.
    Edit(EditArgs),
    /// Create a new vault file with $EDITOR.
    Create(CreateArgs),
    /// Encrypt strings as YAML `!vault` values to paste into vars files.
    #[command(name = "encrypt_string", alias = "encrypt-string")]
    EncryptString(EncryptStringArgs),
    /// Encrypt vault files again with a new password.
    Rekey(RekeyArgs),
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// Files to encrypt; none, or `-`, reads stdin.
    pub files: Vec<PathBuf>,
    /// Write here instead of in place (`-` for stdout).
    #[arg(long = "output")]
    pub output: Option<PathBuf>,
    /// The vault id to encrypt with when several passwords are given.
    #[arg(long = "encrypt-vault-id")]
    pub encrypt_vault_id: Option<String>,
    #[command(flatten)]
    pub passwords: VaultPasswordOpts,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Vault files to decrypt; none, or `-`, reads stdin.
    pub files: Vec<PathBuf>,
    /// Write here instead of in place (`-` for stdout).
    #[arg(long = "output")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub passwords: VaultPasswordOpts,
}

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Vault files to show.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub passwords: VaultPasswordOpts,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The vault file to edit.
    pub file: PathBuf,
    /// The vault id to encrypt with when several passwords are given.
    #[arg(long = "encrypt-vault-id")]
    pub encrypt_vault_id: Option<String>,
    #[command(flatten)]
    pub passwords: VaultPasswordOpts,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The vault file to create; it must not exist.
    pub file: PathBuf,
    /// The vault id to encrypt with when several passwords are given.
    #[arg(long = "encrypt-vault-id")]
    pub encrypt_vault_id: Option<String>,
    #[command(flatten)]
    pub passwords: VaultPasswordOpts,
}

#[derive(Debug, Args)]
pub struct EncryptStringArgs {
    /// Strings to encrypt; none reads stdin.
    pub strings: Vec<String>,
    /// Variable name for each string, in order (repeatable).
    #[arg(short = 'n', long = "name")]
    pub names: Vec<String>,
    /// Read the string from stdin and name it NAME.
    #[arg(long = "stdin-name")]
    pub stdin_name: Option<String>,
    /// Ask for the string on the terminal (not echoed).
    #[arg(short = 'p', long = "prompt")]
    pub prompt: bool,
    /// The vault id to encrypt with when several passwords are given.
    #[arg(long = "encrypt-vault-id")]
    pub encrypt_vault_id: Option<String>,
    #[command(flatten)]
    pub passwords: VaultPasswordOpts,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Vault files to encrypt again.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The new password: a file, or an executable that prints it.
    #[arg(long = "new-vault-password-file")]
    pub new_vault_password_file: Option<PathBuf>,
    /// The new password as LABEL@FILE, LABEL@SCRIPT or LABEL@prompt.
    #[arg(long = "new-vault-id", conflicts_with = "new_vault_password_file")]
    pub new_vault_id: Option<String>,
    #[command(flatten)]
    pub passwords: VaultPasswordOpts,
}

/// Why a `herd vault` command failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultCliError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("{path}: input is already encrypted")]
    AlreadyEncrypted { path: String },
    #[error("{path}: input is not vault encrypted data")]
    NotEncrypted { path: String },
    #[error("{path} exists; use `herd vault edit` to change it")]
    Exists { path: String },
    #[error("no vault password to encrypt with; give one with --vault-password-file FILE, --vault-id LABEL@FILE or --ask-vault-pass")]
    NoEncryptPassword,
    #[error("the vault ids {labels} are available to encrypt; choose one with --encrypt-vault-id")]
    SeveralEncryptPasswords { labels: String },
    #[error("no vault password with the id `{label}` was given (--encrypt-vault-id)")]
    UnknownEncryptId { label: String },
    #[error(
        "rekey needs the new password: --new-vault-password-file FILE or --new-vault-id LABEL@FILE"
    )]
    NoNewPassword,
    #[error("the editor `{editor}` failed: {reason}; {path} is unchanged")]
    Editor {
        editor: String,
        path: String,
        reason: String,
    },
    #[error("--prompt needs a terminal")]
    NoTerminal,
    #[error("cannot read the string from the terminal: {0}")]
    Prompt(String),
}

/// Runs one `herd vault` command. `configured` is ansible.cfg's
/// `vault_password_file` (or `ANSIBLE_VAULT_PASSWORD_FILE`).
pub fn run(args: &VaultArgs, configured: Option<PathBuf>) -> Result<(), VaultCliError> {
    let secrets = |p: &VaultPasswordOpts| {
        vault::load_secrets(&PasswordSources {
            configured: configured.clone(),
            ..p.sources()
        })
    };
    match &args.action {
        VaultAction::Encrypt(a) => {
            let secret = encrypt_secret(secrets(&a.passwords)?, a.encrypt_vault_id.as_deref())?;
            transform_each(&a.files, a.output.as_deref(), |what, text| {
                if vault::is_encrypted(text) {
                    return Err(VaultCliError::AlreadyEncrypted { path: what.into() });
                }
                Ok(vault::encrypt(text, &secret)?)
            })?;
            eprintln!("Encryption successful");
        }
        VaultAction::Decrypt(a) => {
            let keys = secrets(&a.passwords)?;
            transform_each(&a.files, a.output.as_deref(), |what, text| {
                decrypt_text(what, text, &keys)
            })?;
            eprintln!("Decryption successful");
        }
        VaultAction::View(a) => {
            let keys = secrets(&a.passwords)?;
            let mut out = std::io::stdout().lock();
            for path in &a.files {
                let what = path.display().to_string();
                let plain = decrypt_text(&what, &read_input(path)?, &keys)?;
                out.write_all(plain.as_bytes())
                    .map_err(|e| write_error("stdout", &e))?;
            }
        }
        VaultAction::Edit(a) => {
            let keys = secrets(&a.passwords)?;
            edit(&a.file, &keys, a.encrypt_vault_id.as_deref())?;
        }
        VaultAction::Create(a) => {
            if a.file.exists() {
                return Err(VaultCliError::Exists {
                    path: a.file.display().to_string(),
                });
            }
            let secret = encrypt_secret(secrets(&a.passwords)?, a.encrypt_vault_id.as_deref())?;
            let text = run_editor(&a.file, "")?;
            write_atomically(&a.file, &vault::encrypt(&text, &secret)?)?;
        }
        VaultAction::EncryptString(a) => encrypt_strings(a, secrets(&a.passwords)?)?,
        VaultAction::Rekey(a) => {
            let keys = secrets(&a.passwords)?;
            let new = new_secret(a)?;
            for path in &a.files {
                let what = path.display().to_string();
                let plain = decrypt_text(&what, &read_input(path)?, &keys)?;
                write_atomically(path, &vault::encrypt(&plain, &new)?)?;
            }
            eprintln!("Rekey successful");
        }
    }
    Ok(())
}

/// The one secret to encrypt with, as ansible-vault picks it.
fn encrypt_secret(
    secrets: Vec<VaultSecret>,
    wanted: Option<&str>,
) -> Result<VaultSecret, VaultCliError> {
    if let Some(label) = wanted {
        return secrets
            .into_iter()
            .find(|s| s.label == label)
            .ok_or_else(|| VaultCliError::UnknownEncryptId {
                label: label.into(),
            });
    }
    let mut labels: Vec<&str> = secrets.iter().map(|s| s.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    match labels.len() {
        0 => Err(VaultCliError::NoEncryptPassword),
        1 => Ok(secrets
            .into_iter()
            .next()
            .ok_or(VaultCliError::NoEncryptPassword)?),
        _ => Err(VaultCliError::SeveralEncryptPasswords {
            labels: labels.join(", "),
        }),
    }
}

fn new_secret(a: &RekeyArgs) -> Result<VaultSecret, VaultCliError> {
    let sources = PasswordSources {
        password_files: a.new_vault_password_file.iter().cloned().collect(),
        vault_ids: a.new_vault_id.iter().cloned().collect(),
        ask: false,
        configured: None,
    };
    let mut new = vault::load_secrets(&sources)?;
    new.pop().ok_or(VaultCliError::NoNewPassword)
}

fn decrypt_text(what: &str, text: &str, keys: &[VaultSecret]) -> Result<String, VaultCliError> {
    if !vault::is_encrypted(text) {
        return Err(VaultCliError::NotEncrypted { path: what.into() });
    }
    Ok(vault::decrypt(what, text, keys)?)
}

/// Reads each input (a file, or stdin for none or `-`), transforms it and
/// writes it back in place, or to `output`.
fn transform_each(
    files: &[PathBuf],
    output: Option<&Path>,
    mut transform: impl FnMut(&str, &str) -> Result<String, VaultCliError>,
) -> Result<(), VaultCliError> {
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    for path in files {
        let what = if is_dash(path) {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        let result = transform(&what, &read_input(path)?)?;
        match output {
            Some(out) => write_output(out, &result)?,
            None if is_dash(path) => write_output(Path::new("-"), &result)?,
            None => write_atomically(path, &result)?,
        }
    }
    Ok(())
}

fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn read_input(path: &Path) -> Result<String, VaultCliError> {
    let mut text = String::new();
    let result = if is_dash(path) {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    result.map_err(|e| VaultCliError::Read {
        path: if is_dash(path) {
            "stdin".into()
        } else {
            path.display().to_string()
        },
        reason: e.to_string(),
    })?;
    Ok(text)
}

fn write_error(path: &str, e: &std::io::Error) -> VaultCliError {
    VaultCliError::Write {
        path: path.into(),
        reason: e.to_string(),
    }
}

fn write_output(out: &Path, text: &str) -> Result<(), VaultCliError> {
    if is_dash(out) {
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| write_error("stdout", &e))
    } else {
        write_atomically(out, text)
    }
}

/// Writes `text` to a new file beside `path` and renames it over `path`,
/// keeping the old file's mode (a new file gets 0600: it may be plaintext).
fn write_atomically(path: &Path, text: &str) -> Result<(), VaultCliError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let shown = path.display().to_string();
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.herd-vault-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_error(&shown, &e));
    }
    Ok(())
}

/// `edit`: the plaintext goes to a private temporary file for the editor;
/// the file is rewritten only when the text changed, with the vault id it
/// had when that password is among those given.
fn edit(path: &Path, keys: &[VaultSecret], wanted: Option<&str>) -> Result<(), VaultCliError> {
    let what = path.display().to_string();
    let old = read_input(path)?;
    let plain = decrypt_text(&what, &old, keys)?;
    let edited = run_editor(path, &plain)?;
    if edited == plain {
        return Ok(());
    }
    let label = wanted.map(str::to_string).or_else(|| vault_id_of(&old));
    let secret = match label {
        Some(l) if keys.iter().any(|k| k.label == l) => encrypt_secret(keys.to_vec(), Some(&l))?,
        _ => encrypt_secret(keys.to_vec(), wanted)?,
    };
    write_atomically(path, &vault::encrypt(&edited, &secret)?)
}

/// The vault id in a 1.2 header; `default` for 1.1.
fn vault_id_of(text: &str) -> Option<String> {
    let header = text.trim_start().lines().next()?;
    let mut fields = header.split(';');
    match (fields.nth(1), fields.nth(1)) {
        (Some("1.2"), Some(id)) => Some(id.trim().to_string()),
        (Some(_), _) => Some(DEFAULT_ID.to_string()),
        _ => None,
    }
}

/// Writes `initial` to a 0600 file in a fresh 0700 directory, runs
/// `$EDITOR` (else `$VISUAL`, else `vi`) on it through `sh`, so an editor
/// with flags (`code --wait`) works, and returns what was saved. The file
/// is overwritten with zeros before it is removed.
fn run_editor(target: &Path, initial: &str) -> Result<String, VaultCliError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let editor = std::env::var("EDITOR")
        .or_else(|_| std::env::var("VISUAL"))
        .unwrap_or_else(|_| "vi".into());
    let failed = |reason: String| VaultCliError::Editor {
        editor: editor.clone(),
        path: target.display().to_string(),
        reason,
    };
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| VaultError::Random(e.to_string()))?;
    let dir = std::env::temp_dir().join(format!("herd-vault-{}", hex::encode(nonce)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    let ext = target
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let file = dir.join(format!("plaintext{ext}"));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(initial.as_bytes()))
        .map_err(|e| failed(format!("cannot write {}: {e}", file.display())))
        .and_then(|()| {
            let status = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("{editor} \"$1\""))
                .arg("sh")
                .arg(&file)
                .status()
                .map_err(|e| failed(e.to_string()))?;
            if !status.success() {
                return Err(failed(format!("it exited with {status}")));
            }
            std::fs::read_to_string(&file).map_err(|e| failed(e.to_string()))
        });
    if let Ok(meta) = std::fs::metadata(&file) {
        let zeros = vec![0u8; usize::try_from(meta.len()).unwrap_or(0)];
        let _ = std::fs::write(&file, zeros);
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `encrypt_string`: one YAML value per string, named as `-n` says, the
/// vault text indented under `!vault |` as ansible-vault prints it.
fn encrypt_strings(a: &EncryptStringArgs, keys: Vec<VaultSecret>) -> Result<(), VaultCliError> {
    let secret = encrypt_secret(keys, a.encrypt_vault_id.as_deref())?;
    let mut items: Vec<(Option<String>, String)> = Vec::new();
    if a.prompt {
        if !std::io::stdin().is_terminal() {
            return Err(VaultCliError::NoTerminal);
        }
        let value = rpassword::prompt_password("String to encrypt: ")
            .map_err(|e| VaultCliError::Prompt(e.to_string()))?;
        items.push((a.names.first().cloned(), value));
    } else if let Some(name) = &a.stdin_name {
        items.push((Some(name.clone()), read_input(Path::new("-"))?));
    } else if a.strings.is_empty() || a.strings == ["-"] {
        items.push((a.names.first().cloned(), read_input(Path::new("-"))?));
    } else {
        for (i, s) in a.strings.iter().enumerate() {
            items.push((a.names.get(i).cloned(), s.clone()));
        }
    }
    let mut out = String::new();
    for (name, value) in items {
        let text = vault::encrypt(&value, &secret)?;
        match name {
            Some(n) => out.push_str(&format!("{n}: !vault |\n")),
            None => out.push_str("!vault |\n"),
        }
        for line in text.lines() {
            out.push_str("          ");
            out.push_str(line);
            out.push('\n');
        }
    }
    write_output(Path::new("-"), &out)?;
    eprintln!("Encryption successful");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(label: &str, p: &str) -> VaultSecret {
        VaultSecret::new(label, p)
    }

    #[test]
    fn the_only_secret_encrypts_and_several_need_a_choice() {
        assert!(matches!(
            encrypt_secret(vec![], None),
            Err(VaultCliError::NoEncryptPassword)
        ));
        let one = encrypt_secret(vec![pw("dev", "a")], None).unwrap();
        assert_eq!(one.label, "dev");
        let two = vec![pw("dev", "a"), pw(DEFAULT_ID, "b")];
        match encrypt_secret(two.clone(), None) {
            Err(VaultCliError::SeveralEncryptPasswords { labels }) => {
                assert_eq!(labels, "default, dev");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            encrypt_secret(two.clone(), Some("dev")).unwrap().label,
            "dev"
        );
        assert!(matches!(
            encrypt_secret(two, Some("prod")),
            Err(VaultCliError::UnknownEncryptId { .. })
        ));
    }

    #[test]
    fn vault_id_is_read_from_the_header() {
        assert_eq!(
            vault_id_of("$ANSIBLE_VAULT;1.2;AES256;dev\n00\n").as_deref(),
            Some("dev")
        );
        assert_eq!(
            vault_id_of("$ANSIBLE_VAULT;1.1;AES256\n00\n").as_deref(),
            Some(DEFAULT_ID)
        );
        assert_eq!(vault_id_of(""), None);
    }

    #[test]
    fn files_are_replaced_keeping_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vars.yml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}
