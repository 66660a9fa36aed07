//! `herd completions bash|zsh|fish`: the scripts are printed, and
//! completing through them works: bash itself runs the registered function
//! with `COMP_WORDS` set, and each shell's callback protocol
//! (`COMPLETE=SHELL herd -- WORDS...`) answers with subcommands, flags,
//! module names and the host and group names of the inventory named on the
//! command line being completed (or in ansible.cfg).

use std::path::Path;
use std::process::Command;

use crate::support::{write_files, Herd};

const INVENTORY: &str = "\
[webservers]
web1
web2

[dbservers]
db1

[prod:children]
webservers
dbservers
";

/// A directory holding `inventory.ini`.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write_files(dir.path(), &[("inventory.ini", INVENTORY)]);
    dir
}

/// What `herd` answers when `shell`'s function asks to complete the last
/// of `words` (the protocol the registration scripts speak).
fn ask(dir: &Path, shell: &str, words: &[&str]) -> Vec<String> {
    let index = words.len() - 1;
    let run = Herd::new(["--"])
        .args(words)
        .env("COMPLETE", shell)
        .env("_CLAP_COMPLETE_INDEX", index.to_string())
        .env("_CLAP_IFS", "\n")
        .current_dir(dir)
        .run()
        .expect_code(0);
    run.stdout().lines().map(str::to_string).collect()
}

#[test]
fn every_shell_gets_a_script_that_calls_this_herd_back() {
    for (shell, registers) in [
        ("bash", "complete -o nospace"),
        ("zsh", "compdef _clap_dynamic_completer_herd herd"),
        ("fish", "complete --keep-order --exclusive --command herd"),
    ] {
        let run = Herd::new(["completions", shell]).run().expect_code(0);
        let script = run.stdout();
        assert!(script.contains(registers), "{shell}:\n{script}");
        // Run by path, the script calls back that same binary.
        assert!(
            script.contains(env!("CARGO_BIN_EXE_herd")),
            "{shell}:\n{script}"
        );
        assert!(run.stderr().is_empty(), "{}", run.stderr());
    }
    let run = Herd::new(["completions", "tcsh"]).run().expect_code(1);
    assert!(run.stderr().contains("bash, zsh, fish"), "{}", run.stderr());
}

#[test]
fn bash_completes_group_and_host_names_from_the_inventory() {
    let dir = project();
    // The function the script registers, called as bash calls it on Tab:
    // COMP_WORDS and COMP_CWORD set, the command, the word and the one
    // before it as arguments.
    let script = format!(
        r#"source <("{herd}" completions bash) || exit 1
complete -p herd || exit 1
echo ---
complete_at() {{
  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_TYPE=9
  COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=()
  _clap_complete_herd herd "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
  printf '%s\n' "${{COMPREPLY[@]}}"
  echo ---
}}
complete_at herd adhoc -i inventory.ini ''
complete_at herd run site.yml -i inventory.ini --limit 'webservers:&d'
complete_at herd ''
"#,
        herd = env!("CARGO_BIN_EXE_herd")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .current_dir(dir.path())
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bash failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Vec<&str>> = stdout
        .split("---\n")
        .map(|block| block.lines().collect())
        .collect();
    assert!(
        answers[0]
            .iter()
            .any(|l| l.ends_with("-F _clap_complete_herd herd")),
        "{stdout}"
    );
    for name in [
        "all",
        "ungrouped",
        "webservers",
        "dbservers",
        "prod",
        "web1",
        "db1",
    ] {
        assert!(
            answers[1].contains(&name),
            "`{name}` not offered:\n{stdout}"
        );
    }
    assert_eq!(
        answers[2],
        ["webservers:&dbservers", "webservers:&db1"],
        "{stdout}"
    );
    for sub in ["run", "adhoc", "inventory", "completions"] {
        assert!(answers[3].contains(&sub), "`{sub}` not offered:\n{stdout}");
    }
}

#[test]
fn the_callback_protocol_answers_each_shell() {
    let dir = project();
    let d = dir.path();
    // bash and zsh give the index of the word; fish completes the last one.
    let bash = ask(d, "bash", &["herd", "adhoc", "-i", "inventory.ini", "we"]);
    assert_eq!(bash, ["webservers", "web1", "web2"]);
    let zsh = ask(
        d,
        "zsh",
        &[
            "herd",
            "run",
            "x.yml",
            "--inventory=inventory.ini",
            "-l",
            "prod:!d",
        ],
    );
    // zsh's answer is `value:help`, with `:` in the value escaped.
    assert_eq!(zsh, [r"prod\:!dbservers:group", r"prod\:!db1:host"]);
    let fish = ask(
        d,
        "fish",
        &["herd", "inventory", "-iinventory.ini", "--host", ""],
    );
    assert_eq!(fish, ["web1\thost", "web2\thost", "db1\thost"]);
    // Flags and enum values come from the definitions.
    let flags = ask(d, "bash", &["herd", "run", "--li"]);
    assert!(flags.contains(&"--limit".to_string()), "{flags:?}");
    let shells = ask(d, "bash", &["herd", "completions", ""]);
    assert!(
        shells.starts_with(&["bash".into(), "zsh".into(), "fish".into()]),
        "{shells:?}"
    );
    // Module names, for `herd doc` and `herd adhoc -m`.
    let modules = ask(d, "bash", &["herd", "adhoc", "all", "-m", "sysc"]);
    assert_eq!(modules, ["sysctl", "sysctl_tuning"]);
}

#[test]
fn without_dash_i_the_names_come_from_ansible_cfg_and_a_broken_inventory_gives_none() {
    let dir = project();
    write_files(
        dir.path(),
        &[("ansible.cfg", "[defaults]\ninventory = inventory.ini\n")],
    );
    let names = ask(dir.path(), "bash", &["herd", "adhoc", "db"]);
    assert_eq!(names, ["dbservers", "db1"]);
    write_files(dir.path(), &[("broken.ini", "[web\nweb1\n")]);
    let none = ask(
        dir.path(),
        "bash",
        &["herd", "adhoc", "-i", "broken.ini", "w"],
    );
    assert!(none.iter().all(String::is_empty), "{none:?}");
}
