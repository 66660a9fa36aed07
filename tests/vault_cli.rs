//! `herd vault` through the built binary, checked both ways against the
//! real `ansible-vault` 2.18 (installed by `bench/setup-ansible.sh`): what
//! herd encrypts, rekeys, edits or creates, ansible-vault reads, and what
//! ansible-vault encrypts, herd decrypts. A missing ansible-vault fails the
//! tests; they are never skipped.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{Herd, Run};

const PLAIN: &str = "db_password: round-trip\nlist:\n  - 1\n";

fn ansible_vault() -> PathBuf {
    let playbook = std::env::var("HERD_ANSIBLE_PLAYBOOK")
        .unwrap_or_else(|_| "/var/cache/herd-bench/venv/bin/ansible-playbook".into());
    let vault = PathBuf::from(playbook).with_file_name("ansible-vault");
    assert!(
        vault.exists(),
        "{} is missing: run bench/setup-ansible.sh (or set HERD_ANSIBLE_PLAYBOOK)",
        vault.display()
    );
    vault
}

/// ansible-vault with `args`; its stdout, or a failure with its stderr.
fn ansible(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(ansible_vault())
        .args(args)
        .current_dir(dir)
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run ansible-vault");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn herd(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["vault"];
    all.extend_from_slice(args);
    Herd::new(all)
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .env_remove("EDITOR")
        .env_remove("VISUAL")
        .current_dir(dir)
        .run()
}

/// `herd vault ARGS` with `input` on stdin: (exit code, stdout, stderr).
fn herd_with_stdin(dir: &Path, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herd"))
        .arg("vault")
        .args(args)
        .current_dir(dir)
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for herd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A directory with two password files and a plaintext vars file.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw.txt"), "herd-test-password\n").unwrap();
    std::fs::write(dir.path().join("new.txt"), "a-new-password\n").unwrap();
    let vars = dir.path().join("vars.yml");
    std::fs::write(&vars, PLAIN).unwrap();
    std::fs::set_permissions(&vars, std::fs::Permissions::from_mode(0o640)).unwrap();
    dir
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

#[test]
fn ansible_vault_reads_what_herd_encrypts_in_place() {
    let dir = project();
    let d = dir.path();
    let r = herd(
        d,
        &["encrypt", "vars.yml", "--vault-password-file", "pw.txt"],
    )
    .expect_code(0);
    assert!(
        r.stderr().contains("Encryption successful"),
        "{}",
        r.stderr()
    );
    let text = read(d, "vars.yml");
    assert!(text.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"), "{text}");
    let mode = std::fs::metadata(d.join("vars.yml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640, "the file keeps its mode");
    let view = ansible(d, &["view", "--vault-password-file", "pw.txt", "vars.yml"]);
    assert_eq!(view.as_deref(), Ok(PLAIN));

    // Encrypting twice is refused and leaves the file as it was.
    let r = herd(
        d,
        &["encrypt", "vars.yml", "--vault-password-file", "pw.txt"],
    )
    .expect_code(1);
    assert!(
        r.stderr().contains("vars.yml: input is already encrypted"),
        "{}",
        r.stderr()
    );
    assert_eq!(read(d, "vars.yml"), text);
}

#[test]
fn a_vault_id_label_writes_format_1_2_that_ansible_vault_reads() {
    let dir = project();
    let d = dir.path();
    herd(d, &["encrypt", "vars.yml", "--vault-id", "dev@pw.txt"]).expect_code(0);
    assert!(read(d, "vars.yml").starts_with("$ANSIBLE_VAULT;1.2;AES256;dev\n"));
    let view = ansible(d, &["view", "--vault-id", "dev@pw.txt", "vars.yml"]);
    assert_eq!(view.as_deref(), Ok(PLAIN));

    // Two passwords and no choice: refused, naming the ids.
    std::fs::write(d.join("other.yml"), "x: 1\n").unwrap();
    let r = herd(
        d,
        &[
            "encrypt",
            "other.yml",
            "--vault-id",
            "dev@pw.txt",
            "--vault-password-file",
            "new.txt",
        ],
    )
    .expect_code(1);
    assert!(r.stderr().contains("default, dev"), "{}", r.stderr());
    assert!(r.stderr().contains("--encrypt-vault-id"), "{}", r.stderr());
    assert_eq!(read(d, "other.yml"), "x: 1\n");
}

#[test]
fn herd_decrypts_and_views_what_ansible_vault_encrypts() {
    let dir = project();
    let d = dir.path();
    ansible(
        d,
        &["encrypt", "--vault-password-file", "pw.txt", "vars.yml"],
    )
    .unwrap();
    let r = herd(d, &["view", "vars.yml", "--vault-password-file", "pw.txt"]).expect_code(0);
    assert_eq!(r.stdout(), PLAIN);
    let r = herd(
        d,
        &["decrypt", "vars.yml", "--vault-password-file", "pw.txt"],
    )
    .expect_code(0);
    assert!(
        r.stderr().contains("Decryption successful"),
        "{}",
        r.stderr()
    );
    assert_eq!(read(d, "vars.yml"), PLAIN);
    // Decrypting plaintext is refused.
    let r = herd(
        d,
        &["decrypt", "vars.yml", "--vault-password-file", "pw.txt"],
    )
    .expect_code(1);
    assert!(r.stderr().contains("not vault encrypted"), "{}", r.stderr());
}

#[test]
fn a_wrong_password_names_the_file_and_prints_no_plaintext() {
    let dir = project();
    let d = dir.path();
    herd(
        d,
        &["encrypt", "vars.yml", "--vault-password-file", "pw.txt"],
    )
    .expect_code(0);
    let before = read(d, "vars.yml");
    for cmd in ["view", "decrypt"] {
        let r = herd(d, &[cmd, "vars.yml", "--vault-password-file", "new.txt"]).expect_code(1);
        assert!(r.stderr().contains("vars.yml"), "{}", r.stderr());
        assert!(
            r.stderr().contains("no vault password matches"),
            "{}",
            r.stderr()
        );
        assert!(!r.stdout().contains("round-trip") && !r.stderr().contains("round-trip"));
    }
    assert_eq!(read(d, "vars.yml"), before);
}

#[test]
fn no_password_without_a_terminal_is_an_error_not_a_prompt() {
    let dir = project();
    let r = herd(dir.path(), &["encrypt", "vars.yml"]).expect_code(1);
    assert!(
        r.stderr().contains("--vault-password-file"),
        "{}",
        r.stderr()
    );
    assert_eq!(read(dir.path(), "vars.yml"), PLAIN);
}

#[test]
fn stdin_is_encrypted_to_stdout_and_output_writes_elsewhere() {
    let dir = project();
    let d = dir.path();
    let (code, out, err) =
        herd_with_stdin(d, &["encrypt", "--vault-password-file", "pw.txt"], "hi\n");
    assert_eq!(code, 0, "{err}");
    std::fs::write(d.join("piped.vault"), &out).unwrap();
    let view = ansible(
        d,
        &["view", "--vault-password-file", "pw.txt", "piped.vault"],
    );
    assert_eq!(view.as_deref(), Ok("hi\n"));

    herd(
        d,
        &[
            "decrypt",
            "piped.vault",
            "--output",
            "plain.txt",
            "--vault-password-file",
            "pw.txt",
        ],
    )
    .expect_code(0);
    assert_eq!(read(d, "plain.txt"), "hi\n");
    assert_eq!(
        read(d, "piped.vault"),
        out,
        "--output leaves the input alone"
    );
}

/// The vault text of one `!vault |` block, without its indentation.
fn vault_block(yaml: &str) -> String {
    yaml.lines()
        .skip(1)
        .map(|l| format!("{}\n", l.trim()))
        .collect()
}

#[test]
fn encrypt_string_values_are_read_by_ansible_vault_and_by_a_run() {
    let dir = project();
    let d = dir.path();
    let r = herd(
        d,
        &[
            "encrypt_string",
            "s3cret-value",
            "--name",
            "db_pw",
            "--vault-password-file",
            "pw.txt",
        ],
    )
    .expect_code(0);
    let yaml = r.stdout();
    assert!(
        yaml.starts_with("db_pw: !vault |\n          $ANSIBLE_VAULT;1.1;AES256\n"),
        "{yaml}"
    );
    std::fs::write(d.join("block.vault"), vault_block(&yaml)).unwrap();
    let plain = ansible(
        d,
        &[
            "decrypt",
            "--vault-password-file",
            "pw.txt",
            "--output",
            "-",
            "block.vault",
        ],
    );
    assert_eq!(plain.as_deref(), Ok("s3cret-value"));

    // The printed YAML, pasted into a vars file, reaches a task.
    std::fs::write(d.join("secret.yml"), &yaml).unwrap();
    std::fs::write(
        d.join("inventory.ini"),
        "localhost ansible_connection=local\n",
    )
    .unwrap();
    let out = d.join("out.txt");
    std::fs::write(
        d.join("site.yml"),
        format!(
            "- hosts: localhost\n  gather_facts: no\n  vars_files: [secret.yml]\n  tasks:\n    - copy:\n        content: \"{{{{ db_pw }}}}\"\n        dest: {}\n",
            out.display()
        ),
    )
    .unwrap();
    let run = Herd::new([
        "run",
        "site.yml",
        "-i",
        "inventory.ini",
        "--vault-password-file",
        "pw.txt",
    ])
    .current_dir(d)
    .run()
    .expect_code(0);
    assert!(!run.stdout().contains("s3cret-value"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "s3cret-value");

    // From stdin, named with --stdin-name.
    let (code, yaml, err) = herd_with_stdin(
        d,
        &[
            "encrypt_string",
            "--stdin-name",
            "token",
            "--vault-id",
            "dev@pw.txt",
        ],
        "from-stdin",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        yaml.starts_with("token: !vault |\n          $ANSIBLE_VAULT;1.2;AES256;dev\n"),
        "{yaml}"
    );
}

#[test]
fn rekey_changes_the_password_ansible_vault_needs() {
    let dir = project();
    let d = dir.path();
    herd(
        d,
        &["encrypt", "vars.yml", "--vault-password-file", "pw.txt"],
    )
    .expect_code(0);
    let r = herd(
        d,
        &[
            "rekey",
            "vars.yml",
            "--vault-password-file",
            "pw.txt",
            "--new-vault-password-file",
            "new.txt",
        ],
    )
    .expect_code(0);
    assert!(r.stderr().contains("Rekey successful"), "{}", r.stderr());
    assert!(ansible(d, &["view", "--vault-password-file", "pw.txt", "vars.yml"]).is_err());
    let view = ansible(d, &["view", "--vault-password-file", "new.txt", "vars.yml"]);
    assert_eq!(view.as_deref(), Ok(PLAIN));
    // Without the new password: refused, the file untouched.
    let before = read(d, "vars.yml");
    herd(
        d,
        &["rekey", "vars.yml", "--vault-password-file", "new.txt"],
    )
    .expect_code(1);
    assert_eq!(read(d, "vars.yml"), before);
}

fn editor(dir: &Path, name: &str, script: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn edit_rewrites_only_a_changed_text_and_keeps_the_vault_id() {
    let dir = project();
    let d = dir.path();
    ansible(d, &["encrypt", "--vault-id", "dev@pw.txt", "vars.yml"]).unwrap();
    let before = read(d, "vars.yml");

    // An editor that saves nothing new: the file stays byte for byte.
    Herd::new(["vault", "edit", "vars.yml", "--vault-id", "dev@pw.txt"])
        .env("EDITOR", "true")
        .current_dir(d)
        .run()
        .expect_code(0);
    assert_eq!(read(d, "vars.yml"), before);

    let append = editor(d, "append.sh", "printf 'added: yes\\n' >> \"$1\"");
    Herd::new(["vault", "edit", "vars.yml", "--vault-id", "dev@pw.txt"])
        .env("EDITOR", &append)
        .current_dir(d)
        .run()
        .expect_code(0);
    let text = read(d, "vars.yml");
    assert!(
        text.starts_with("$ANSIBLE_VAULT;1.2;AES256;dev\n"),
        "{text}"
    );
    let view = ansible(d, &["view", "--vault-id", "dev@pw.txt", "vars.yml"]);
    assert_eq!(view, Ok(format!("{PLAIN}added: yes\n")));

    // A failing editor leaves the file alone and says so.
    let r = Herd::new(["vault", "edit", "vars.yml", "--vault-id", "dev@pw.txt"])
        .env("EDITOR", "false")
        .current_dir(d)
        .run()
        .expect_code(1);
    assert!(
        r.stderr().contains("vars.yml is unchanged"),
        "{}",
        r.stderr()
    );
    assert_eq!(read(d, "vars.yml"), text);
    // No plaintext copy is left in the temporary directory.
    let left = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("herd-vault-"))
        .filter(|e| e.path().join("plaintext.yml").exists())
        .count();
    assert_eq!(left, 0);
}

#[test]
fn create_writes_a_new_vault_file_and_refuses_an_existing_one() {
    let dir = project();
    let d = dir.path();
    let write = editor(d, "write.sh", "printf 'created: 1\\n' > \"$1\"");
    Herd::new([
        "vault",
        "create",
        "new.yml",
        "--vault-password-file",
        "pw.txt",
    ])
    .env("EDITOR", &write)
    .current_dir(d)
    .run()
    .expect_code(0);
    let view = ansible(d, &["view", "--vault-password-file", "pw.txt", "new.yml"]);
    assert_eq!(view.as_deref(), Ok("created: 1\n"));
    let r = Herd::new([
        "vault",
        "create",
        "vars.yml",
        "--vault-password-file",
        "pw.txt",
    ])
    .env("EDITOR", &write)
    .current_dir(d)
    .run()
    .expect_code(1);
    assert!(r.stderr().contains("herd vault edit"), "{}", r.stderr());
    assert_eq!(read(d, "vars.yml"), PLAIN);
}
