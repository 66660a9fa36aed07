//! The docs test: every registered module is documented (description,
//! example, every parameter), has its `COMPATIBILITY.md` row, and the
//! generated pages under `docs/modules/` are current.
//!
//! Regenerate the pages with
//! `HERD_UPDATE_DOCS=1 cargo test -p herdsman-modules --lib doc::`.

use std::path::{Path, PathBuf};

use super::render;
use super::*;
use crate::registry;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Parameters (and sub-options) without a description, as `module.param`.
fn undocumented(module: &str, params: &[ParamDoc], out: &mut Vec<String>) {
    for p in params {
        if p.description.trim().is_empty() {
            out.push(format!("{module}.{}", p.name));
        }
        undocumented(&format!("{module}.{}", p.name), &p.suboptions, out);
    }
}

#[test]
fn every_registered_module_is_documented() {
    let mut missing = Vec::new();
    for m in registry::registry() {
        let doc = m.doc();
        if doc.short.trim().is_empty() || doc.short.contains('\n') {
            missing.push(format!("{}: DOC_SHORT (one line)", doc.name));
        }
        if doc.example.trim().is_empty() {
            missing.push(format!("{}: DOC_EXAMPLE", doc.name));
        }
        if doc.differences.is_empty() {
            missing.push(format!("{}: a row in modules/COMPATIBILITY.md", doc.name));
        }
        let mut params = Vec::new();
        undocumented(doc.name, &doc.params, &mut params);
        missing.extend(params.into_iter().map(|p| format!("{p}: a `///` doc")));
    }
    assert!(
        missing.is_empty(),
        "missing docs:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_example_names_its_module() {
    for m in registry::registry() {
        let doc = m.doc();
        let named = doc.example.lines().any(|l| {
            let l = l.trim_start().trim_start_matches("- ");
            l.starts_with(&format!("{}:", doc.name)) || l.contains(&format!(".{}:", doc.name))
        });
        assert!(
            named,
            "{}: DOC_EXAMPLE has no `{}:` task",
            doc.name, doc.name
        );
    }
}

/// An optional parameter that cannot be null has a default the docs show
/// (its type needs `Serialize` for schemars to record it).
#[test]
fn optional_parameters_show_their_default() {
    let mut missing = Vec::new();
    for m in registry::registry() {
        for p in m.doc().params {
            let nullable = p.kind == "any" || p.default.is_some();
            if !p.required && !nullable && !p.nullable {
                missing.push(format!("{}.{}", m.name(), p.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no default shown for:\n  {}",
        missing.join("\n  ")
    );
}

/// What `docs/modules/` should hold: one page per module and the index.
fn expected_pages() -> Vec<(String, String)> {
    let docs: Vec<ModuleDoc> = registry::registry().iter().map(|m| m.doc()).collect();
    let mut pages = vec![("README.md".to_string(), render::markdown_index(&docs))];
    pages.extend(
        docs.iter()
            .map(|d| (format!("{}.md", d.name), render::markdown(d))),
    );
    pages
}

#[test]
fn generated_pages_are_current() {
    let dir = repo_root().join("docs/modules");
    let pages = expected_pages();
    if std::env::var_os("HERD_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(&dir).expect("docs/modules can be created");
        for entry in std::fs::read_dir(&dir)
            .expect("docs/modules is readable")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".md") && !pages.iter().any(|(n, _)| *n == name) {
                std::fs::remove_file(entry.path()).expect("a stale page can be removed");
            }
        }
        for (name, text) in &pages {
            std::fs::write(dir.join(name), text).expect("a page can be written");
        }
    }
    let mut stale = Vec::new();
    for (name, text) in &pages {
        if std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(text.as_str()) {
            stale.push(name.clone());
        }
    }
    let extra: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".md") && !pages.iter().any(|(p, _)| p == n))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "docs/modules is stale (regenerate with \
         `HERD_UPDATE_DOCS=1 cargo test -p herdsman-modules --lib doc::`): \
         out of date or missing {stale:?}, not a module {extra:?}"
    );
}

#[test]
fn types_defaults_and_choices_come_from_the_definitions() {
    let doc = registry::find("sysctl")
        .map(super::super::module::DynModule::doc)
        .expect("sysctl is registered");
    let get = |n: &str| doc.params.iter().find(|p| p.name == n).cloned().expect(n);
    let name = get("name");
    assert!(name.required);
    assert_eq!(name.kind, "string");
    assert_eq!(name.aliases, ["key"]);
    let state = get("state");
    assert_eq!(
        state.choices,
        [Value::from("present"), Value::from("absent")]
    );
    assert_eq!(state.default, Some(Value::from("present")));
    let reload = get("reload");
    assert_eq!(reload.kind, "boolean");
    assert_eq!(reload.default, Some(Value::Bool(true)));
    assert_eq!(
        get("sysctl_file").default,
        Some(Value::from("/etc/sysctl.conf"))
    );
    assert_eq!(get("value").aliases, ["val"]);
}

#[test]
fn free_form_and_engine_fields() {
    let doc = registry::find("command")
        .map(super::super::module::DynModule::doc)
        .expect("command");
    assert_eq!(doc.params[0].name, FREE_FORM);
    let copy = registry::find("copy")
        .map(super::super::module::DynModule::doc)
        .expect("copy");
    assert!(copy.params.iter().all(|p| !p.name.starts_with('_')));
}

#[test]
fn doc_lines_become_paragraphs() {
    assert_eq!(unwrap_lines("a\nb\n\nc\n- d\n- e"), "a b\n\nc\n- d\n- e");
}

#[test]
fn enum_value_aliases_come_from_serde() {
    let doc = registry::find("apt")
        .map(super::super::module::DynModule::doc)
        .expect("apt");
    let state = doc
        .params
        .iter()
        .find(|p| p.name == "state")
        .expect("state");
    assert_eq!(state.choice_aliases, ["installed", "removed"]);
}
