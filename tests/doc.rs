//! `herd doc`: every registered module has a page in each format, the
//! Markdown one is the page under docs/modules/, and every module's
//! example passes `herd validate` (the parser the docs are generated from).

use crate::support::{repo, write_files, Herd};

fn module_names() -> Vec<&'static str> {
    herdsman_modules::registry()
        .iter()
        .map(|m| m.name())
        .collect()
}

#[test]
fn doc_lists_every_module_with_its_line() {
    let run = Herd::new(["doc"]).run().expect_code(0);
    let out = run.stdout();
    for name in module_names() {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("`{name}` not listed:\n{out}"));
        assert!(
            line.len() > name.len() + 2,
            "{name} has no description: {line}"
        );
    }
}

#[test]
fn doc_module_works_for_every_module_in_every_format() {
    for name in module_names() {
        let text = Herd::new(["doc", name]).run().expect_code(0).stdout();
        assert!(text.starts_with(&format!("{name} - ")), "{text}");
        assert!(
            text.contains("\nPARAMETERS\n") && text.contains("\nEXAMPLE\n"),
            "{text}"
        );

        let json = Herd::new(["doc", name, "--format", "json"])
            .run()
            .expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&json.stdout()).expect("json");
        assert_eq!(v["name"], name);
        assert!(v["params"].is_array(), "{v}");

        let md = Herd::new(["doc", name, "--format", "markdown"])
            .run()
            .expect_code(0);
        let page = std::fs::read_to_string(repo().join(format!("docs/modules/{name}.md")))
            .unwrap_or_default();
        assert_eq!(
            md.stdout(),
            page,
            "docs/modules/{name}.md differs from herd doc"
        );
    }
}

#[test]
fn doc_takes_long_names_and_suggests_close_ones() {
    let run = Herd::new(["doc", "ansible.builtin.copy"])
        .run()
        .expect_code(0);
    assert!(run.stdout().starts_with("copy - "), "{}", run.stdout());
    let run = Herd::new(["doc", "coppy"]).run().expect_code(1);
    assert!(
        run.stderr().contains("did you mean `copy`"),
        "{}",
        run.stderr()
    );
    let run = Herd::new(["doc", "debug"]).run().expect_code(1);
    assert!(
        run.stderr().contains("run by the engine"),
        "{}",
        run.stderr()
    );
}

/// Each example, as the tasks of a play, loads: the parameters it shows
/// are ones the parser takes.
#[test]
fn every_module_example_passes_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The controller files the examples name.
    write_files(
        dir.path(),
        &[
            ("files/site.conf", "server {}\n"),
            ("hosts.ini", "h1 ansible_connection=local\n"),
        ],
    );
    let mut failed = Vec::new();
    for m in herdsman_modules::registry() {
        let doc = m.doc();
        let tasks: String = doc.example.lines().map(|l| format!("    {l}\n")).collect();
        let play = format!("- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}");
        let file = format!("{}.yml", doc.name);
        write_files(dir.path(), &[(file.as_str(), play.as_str())]);
        let run = Herd::new(["validate", &file, "-i", "hosts.ini"])
            .current_dir(dir.path())
            .run();
        if run.code() != 0 {
            failed.push(format!("{}: {}", doc.name, run.stderr()));
        }
    }
    assert!(
        failed.is_empty(),
        "examples that do not load:\n{}",
        failed.join("\n")
    );
}
