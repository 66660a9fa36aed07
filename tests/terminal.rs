//! `herd run` on a real terminal: a tmux pane (a private tmux server per
//! test, on its own socket, killed when the test ends). The live line of
//! the current task while it runs and gone when it is done, the final
//! output the same as through a pipe, no escape codes with `NO_COLOR`,
//! and `--step` answered with send-keys; `--step` without a terminal is an
//! error, never a wait.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{write_files, Herd};

/// Three local hosts: one done at once, two that take a few seconds (one
/// second apart, so results arrive in a known order).
const INVENTORY: &str = "[herd]\nfast ansible_connection=local nap=0\nslow1 ansible_connection=local nap=3\nslow2 ansible_connection=local nap=4\n";

const SLOW_PLAY: &str = "- name: Naps\n  hosts: herd\n  gather_facts: no\n  tasks:\n    - name: Nap\n      command: \"sleep {{ nap }}\"\n    - name: After\n      debug:\n        msg: awake\n";

/// A tmux server of this test's own, with one pane running one command.
struct Pane {
    socket: String,
}

impl Pane {
    /// Run `script` (a shell command line) in `dir`, in a 200×50 pane;
    /// the pane prints `HERD-EXIT=<code>` when herd ends and stays open.
    fn start(name: &str, dir: &Path, script: &str) -> Pane {
        let socket = format!("herd-test-{name}-{}", std::process::id());
        let pane = Pane { socket };
        let line = format!(
            "cd '{}' && {script}; echo HERD-EXIT=$?; sleep 120",
            dir.display()
        );
        let out = pane.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
            "-s",
            "t",
            &line,
        ]);
        assert!(
            out.status.success(),
            "cannot start tmux (is it installed? .ci/run installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pane
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux: {e}"))
    }

    /// The pane's text; with `escapes`, with its colours and attributes
    /// as escape sequences.
    fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "t"];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.tmux(&args).stdout).into_owned()
    }

    /// Type `keys` and Enter.
    fn send(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", keys]);
        self.tmux(&["send-keys", "-t", "t", "Enter"]);
    }

    /// Poll the pane until `pred` holds, for at most `limit`.
    fn wait_for(&self, limit: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.capture(false);
            if pred(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what}; the pane shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait for herd to end; its exit code.
    fn wait_exit(&self) -> i32 {
        let text = self.wait_for(Duration::from_secs(60), "herd to end", |t| {
            t.contains("HERD-EXIT=")
        });
        text.split("HERD-EXIT=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|code| code.parse().ok())
            .unwrap_or(-1)
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        // Only this test's server, by its socket.
        self.tmux(&["kill-server"]);
    }
}

/// `herd ARGS` as a pane's command line: a clean environment (no
/// ANSIBLE_*, no NO_COLOR from the caller) plus `env`.
fn herd_line(args: &str, env: &str) -> String {
    format!(
        "env -i PATH=\"$PATH\" HOME=\"$HOME\" TERM=\"$TERM\" LANG=C.UTF-8 {env} '{}' {args}",
        herd_bin().display()
    )
}

fn herd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_herd"))
}

/// The pane's lines up to herd's end, without trailing blanks.
fn transcript(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .take_while(|l| !l.starts_with("HERD-EXIT="))
        .collect();
    lines.join("\n").trim().to_string()
}

#[test]
fn a_terminal_shows_the_running_task_live_and_keeps_only_the_usual_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[("inventory.ini", INVENTORY), ("site.yml", SLOW_PLAY)],
    );
    let pane = Pane::start(
        "live",
        dir.path(),
        &herd_line("run site.yml -i inventory.ini", ""),
    );
    // While the two slow hosts sleep: the task, the counts, their names.
    let is_live = |l: &str| l.contains("TASK [Nap]") && l.contains("2 running: ");
    let live = pane.wait_for(Duration::from_secs(20), "the live line", |t| {
        t.lines().any(is_live)
    });
    let line = live.lines().find(|l| is_live(l)).unwrap_or_default();
    assert!(line.contains("1/3 done"), "{line}");
    // Named, longest running first (the two started together).
    assert!(line.contains("slow1 ") && line.contains("slow2 "), "{line}");
    assert!(
        !line.contains("fast"),
        "a finished host is not named: {line}"
    );
    // Elapsed time: a number of seconds after the task's name.
    assert!(
        line.split("TASK [Nap] ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())),
        "{line}"
    );
    let colored = pane.capture(true);
    assert_eq!(pane.wait_exit(), 0, "{}", pane.capture(false));
    let done = transcript(&pane.capture(false));
    assert!(!done.contains("running"), "the live line stayed:\n{done}");
    assert!(!done.contains("done ·"), "the live line stayed:\n{done}");
    // What stays on the terminal is what a pipe gets.
    let piped = Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .current_dir(dir.path())
        .run()
        .expect_code(0);
    // Hosts report in the order they finish, which differs from run to run:
    // the same lines, and the banners in the same order.
    let piped_text = transcript(&piped.stdout());
    let sorted = |t: &str| {
        let mut lines: Vec<&str> = t.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    };
    let banners = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("PLAY") || l.starts_with("TASK ["))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        sorted(&done),
        sorted(&piped_text),
        "terminal and pipe differ:\n{done}\n---\n{piped_text}"
    );
    assert_eq!(
        banners(&done),
        banners(&piped_text),
        "terminal and pipe differ:\n{done}\n---\n{piped_text}"
    );
    // Colours on a terminal (the control for the NO_COLOR test).
    assert!(colored.contains("\x1b["), "no colours on the terminal");
    assert!(!piped.stdout().contains('\x1b'), "escape codes in a pipe");
}

#[test]
fn no_color_keeps_the_live_line_and_drops_every_colour() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[("inventory.ini", INVENTORY), ("site.yml", SLOW_PLAY)],
    );
    let pane = Pane::start(
        "nocolor",
        dir.path(),
        &herd_line("run site.yml -i inventory.ini", "NO_COLOR=1"),
    );
    pane.wait_for(Duration::from_secs(20), "the live line", |t| {
        t.contains("2 running: ")
    });
    let during = pane.capture(true);
    assert!(!during.contains("\x1b["), "colour codes: {during:?}");
    assert_eq!(pane.wait_exit(), 0, "{}", pane.capture(false));
    let after = pane.capture(true);
    assert!(after.contains("PLAY RECAP"), "{after}");
    assert!(!after.contains("\x1b["), "colour codes: {after:?}");
}

/// The `--step` playbook and what ansible-playbook 2.18 showed for it
/// on a terminal, answered y, n, c, y (`record.sh` beside them).
const STEP_FIXTURES: &str = "tests/fixtures/step";

fn step_play() -> String {
    std::fs::read_to_string(crate::support::repo().join(STEP_FIXTURES).join("site.yml"))
        .expect("step playbook")
}

/// A transcript without what differs by design: banner widths (Ansible
/// fills the terminal, herd 80 columns), indentation (debug's JSON) and
/// blank lines.
fn normalized(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let l = l.trim();
            match l.find(" ***") {
                Some(i) if l[i..].trim_start().chars().all(|c| c == '*') => {
                    format!("{} ***", &l[..i])
                }
                _ => l.to_string(),
            }
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn step_asks_before_each_task_and_no_skips_it_and_continue_stops_asking() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[
            ("inventory.ini", "[one]\nh1 ansible_connection=local\n"),
            ("site.yml", &step_play()),
        ],
    );
    let pane = Pane::start(
        "step",
        dir.path(),
        &herd_line("run site.yml -i inventory.ini --step", ""),
    );
    let ask = |task: &str| format!("Perform task: TASK: {task} (N)o/(y)es/(c)ontinue:");
    let wait_prompt = |task: &str| {
        let prompt = ask(task);
        pane.wait_for(Duration::from_secs(20), &prompt, |t| {
            t.lines().any(|l| l.trim_end() == prompt)
        })
    };
    wait_prompt("First");
    pane.send("y");
    wait_prompt("Second");
    pane.send("n");
    wait_prompt("Third");
    pane.send("c");
    // `c` holds for the rest of the play; the next play asks again.
    wait_prompt("Fifth");
    pane.send("y");
    assert_eq!(pane.wait_exit(), 0, "{}", pane.capture(false));
    let text = transcript(&pane.capture(false));
    assert!(!text.contains(&ask("Fourth")), "{text}");
    assert!(text.contains("TASK [First]"), "{text}");
    assert!(!text.contains("TASK [Second]"), "{text}");
    assert!(text.contains("TASK [Fourth]"), "{text}");
    assert!(text.contains("TASK [Fifth]"), "{text}");
    // As ansible-playbook: each answered question also stays as a banner.
    assert!(text.contains(&format!("{} ****", ask("Second"))), "{text}");
    let ansible = std::fs::read_to_string(
        crate::support::repo()
            .join(STEP_FIXTURES)
            .join("ansible-2.18.txt"),
    )
    .expect("recorded transcript");
    assert_eq!(normalized(&text), normalized(&ansible), "herd:\n{text}");
    assert!(!dir.path().join("second-ran").exists(), "n ran the task");
    assert!(dir.path().join("fourth-ran").exists(), "c skipped a task");
    assert!(
        text.contains("h1                         : ok=4    changed=1 "),
        "{text}"
    );
}

#[test]
fn step_without_a_terminal_is_an_error_not_a_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[
            ("inventory.ini", "[one]\nh1 ansible_connection=local\n"),
            ("site.yml", &step_play()),
        ],
    );
    let run = Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .args(["--step"])
        .current_dir(dir.path())
        .run()
        .expect_code(1);
    assert!(
        run.stderr().contains(
            "error: --step asks before each task on the terminal, but stdin is not a terminal"
        ),
        "{}",
        run.stderr()
    );
    assert_eq!(run.stdout(), "");
    assert!(!dir.path().join("second-ran").exists());
}
