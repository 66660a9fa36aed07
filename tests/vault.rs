//! ansible-vault through the `herd` binary: an encrypted group_vars file and
//! an inline `!vault` value reach a task and never its output; a missing or
//! wrong password is an error naming the file. And the other direction:
//! what herd encrypts, the real `ansible-vault` 2.18 (installed by
//! `bench/setup-ansible.sh`) decrypts. A missing ansible-vault fails the
//! test; it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{repo, write_files, Herd};

const FILE_SECRET: &str = "s3cr3t-from-file";
const INLINE_SECRET: &str = "inline-s3cret";
const EXTRA_SECRET: &str = "from-extra-file-token";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/vault").join(name)).expect("fixture")
}

fn ansible_vault() -> PathBuf {
    let playbook = std::env::var("HERD_ANSIBLE_PLAYBOOK")
        .unwrap_or_else(|_| "/var/cache/herd-bench/venv/bin/ansible-playbook".into());
    PathBuf::from(playbook).with_file_name("ansible-vault")
}

/// A local project: group_vars/all.yml is the ansible-vault 1.1 fixture,
/// the play has an inline `!vault` var from `encrypt_string`.
fn project(dir: &Path) {
    let inline = fixture("string-1.1.yml");
    let inline = inline.replace('\n', "\n    ");
    let site = format!(
        "- hosts: localhost\n  gather_facts: no\n  vars:\n    {}\n  tasks:\n    - name: write\n      copy:\n        content: \"{{{{ db_password }}:{{{{ api_token }}}}\\n\"\n        dest: \"{{{{ out }}}}\"\n",
        inline.trim_end()
    )
    .replace("{{ db_password }:", "{{ db_password }}:");
    write_files(
        dir,
        &[
            ("inventory.ini", "localhost ansible_connection=local\n"),
            ("group_vars/all.yml", &fixture("file-1.1.yml")),
            ("site.yml", &site),
            ("pw.txt", "herd-test-password\n"),
            ("wrong.txt", "not-the-password\n"),
            ("extra.yml", &fixture("extra-1.2-dev.yml")),
            ("dev.txt", "dev-password\n"),
        ],
    );
}

/// `herd run` of the project's play, with no vault password from the
/// environment.
fn site(dir: &Path) -> Herd {
    Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .vars(format!("out={}", dir.join("out.txt").display()))
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .current_dir(dir)
}

#[test]
fn vault_values_reach_the_task_and_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    for (extra, token) in [
        (
            &["--vault-password-file", "pw.txt", "--diff", "-vvv"][..],
            INLINE_SECRET,
        ),
        (
            &["--vault-id", "default@pw.txt", "--output", "jsonl", "-vvv"][..],
            INLINE_SECRET,
        ),
        // -e @file: a vault 1.2 file whose `dev` password is tried first.
        (
            &[
                "--vault-password-file",
                "pw.txt",
                "--vault-id",
                "dev@dev.txt",
                "-e",
                "@extra.yml",
                "-vvv",
            ][..],
            EXTRA_SECRET,
        ),
    ] {
        let _ = std::fs::remove_file(dir.path().join("out.txt"));
        let r = site(dir.path()).args(extra).run().expect_code(0);
        let written = std::fs::read_to_string(dir.path().join("out.txt")).unwrap();
        assert_eq!(written, format!("{FILE_SECRET}:{token}\n"));
        for secret in [FILE_SECRET, INLINE_SECRET, EXTRA_SECRET] {
            assert!(
                !r.stdout().contains(secret) && !r.stderr().contains(secret),
                "`{secret}` printed by herd {}:\n{}\n{}",
                r.label,
                r.stdout(),
                r.stderr()
            );
        }
    }
}

#[test]
fn missing_or_wrong_vault_password_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let r = site(dir.path()).run().expect_code(1);
    assert!(r.stderr().contains("all.yml"), "{}", r.stderr());
    assert!(
        r.stderr().contains("--vault-password-file"),
        "{}",
        r.stderr()
    );
    let r = site(dir.path())
        .args(["--vault-password-file", "wrong.txt"])
        .run()
        .expect_code(1);
    assert!(r.stderr().contains("all.yml"), "{}", r.stderr());
    assert!(
        r.stderr().contains("no vault password matches"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains("not-the-password"), "{}", r.stderr());
    assert!(!dir.path().join("out.txt").exists());
    // --ask-vault-pass without a terminal is an error, not a hang.
    let r = site(dir.path())
        .args(["--ask-vault-pass"])
        .run()
        .expect_code(1);
    assert!(r.stderr().contains("without a terminal"), "{}", r.stderr());
    let r = site(dir.path())
        .args(["--vault-id", "dev@prompt"])
        .run()
        .expect_code(1);
    assert!(r.stderr().contains("vault id `dev`"), "{}", r.stderr());
    assert!(r.stderr().contains("without a terminal"), "{}", r.stderr());
}

#[test]
fn ansible_vault_reads_what_herd_encrypts() {
    let ansible = ansible_vault();
    assert!(
        ansible.exists(),
        "{} is missing: run bench/setup-ansible.sh (or set HERD_ANSIBLE_PLAYBOOK)",
        ansible.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let plain = "db_password: round-trip\nlist:\n  - 1\n";
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "herd-test-password\n").unwrap();
    for (label, flag) in [("default", "--vault-password-file"), ("dev", "--vault-id")] {
        let secret = herdsman::vault::VaultSecret::new(label, "herd-test-password");
        let file = dir.path().join(format!("{label}.yml"));
        std::fs::write(&file, herdsman::vault::encrypt(plain, &secret).unwrap()).unwrap();
        let source = if label == "dev" {
            format!("dev@{}", pw.display())
        } else {
            pw.display().to_string()
        };
        let out = Command::new(&ansible)
            .args(["view", flag, &source])
            .arg(&file)
            .output()
            .expect("run ansible-vault");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), plain);
    }
}

/// `copy` and `template` sources that are vault files: decrypted on the
/// controller (`copy` with `decrypt: false` ships the vault text), and the
/// files written are the ones ansible-playbook 2.18 writes from the same
/// project. A wrong password names the source.
#[test]
fn vaulted_copy_and_template_sources_are_decrypted_as_ansible_does() {
    let playbook = ansible_vault().with_file_name("ansible-playbook");
    assert!(
        playbook.exists(),
        "{} is missing: run bench/setup-ansible.sh (or set HERD_ANSIBLE_PLAYBOOK)",
        playbook.display()
    );
    let secret = herdsman::vault::VaultSecret::new("default", "herd-test-password");
    let template = herdsman::vault::encrypt("greeting={{ greeting }}\n", &secret).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_files(
        d,
        &[
            ("inventory.ini", "localhost ansible_connection=local ansible_python_interpreter=/var/cache/herd-bench/venv/bin/python3\n"),
            ("files/secret.yml", &fixture("file-1.1.yml")),
            ("templates/greet.j2", &template),
            ("pw.txt", "herd-test-password\n"),
            ("wrong.txt", "not-the-password\n"),
            (
                "site.yml",
                "- hosts: localhost\n  gather_facts: no\n  vars:\n    greeting: hello\n  tasks:\n\
                 \x20   - copy: {src: secret.yml, dest: \"{{ out }}/plain.yml\"}\n\
                 \x20   - copy: {src: secret.yml, dest: \"{{ out }}/still.yml\", decrypt: false}\n\
                 \x20   - template: {src: greet.j2, dest: \"{{ out }}/greet.txt\"}\n",
            ),
        ],
    );
    for sub in ["herd", "ansible"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let out = Command::new(&playbook)
        .args([
            "-i",
            "inventory.ini",
            "site.yml",
            "--vault-password-file",
            "pw.txt",
            "-e",
        ])
        .arg(format!("out={}", d.join("ansible").display()))
        .current_dir(d)
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("run ansible-playbook");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .vars(format!("out={}", d.join("herd").display()))
        .args(["--vault-password-file", "pw.txt"])
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .current_dir(d)
        .run()
        .expect_code(0);
    for file in ["plain.yml", "still.yml", "greet.txt"] {
        let a = std::fs::read_to_string(d.join("ansible").join(file)).unwrap();
        let h = std::fs::read_to_string(d.join("herd").join(file)).unwrap();
        assert_eq!(h, a, "{file} differs from ansible-playbook's");
    }
    let plain = std::fs::read_to_string(d.join("herd/plain.yml")).unwrap();
    assert!(plain.contains(FILE_SECRET));
    assert_eq!(
        std::fs::read_to_string(d.join("herd/greet.txt")).unwrap(),
        "greeting=hello\n"
    );
    let r = Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .vars(format!("out={}", d.join("herd").display()))
        .args(["--vault-password-file", "wrong.txt"])
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .current_dir(d)
        .run()
        .expect_code(2);
    let all = format!("{}{}", r.stdout(), r.stderr());
    assert!(all.contains("secret.yml"), "{all}");
    assert!(!all.contains(FILE_SECRET), "{all}");
}
