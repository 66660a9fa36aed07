//! [`ModuleDoc`] as terminal text (`herd doc MODULE`) and as Markdown (the
//! pages under `docs/modules/`, `--format markdown`).

use std::fmt::Write;

use serde_json::Value;

use super::{ModuleDoc, ParamDoc};

/// A value as a task would write it: strings bare, the rest as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `string, required, default: x, choices: a, b, aliases: c`.
fn facts(p: &ParamDoc, code: &dyn Fn(&str) -> String) -> String {
    let mut out = vec![p.kind.clone()];
    if p.required {
        out.push("required".into());
    }
    if let Some(d) = &p.default {
        out.push(format!("default: {}", code(&show(d))));
    }
    if !p.choices.is_empty() {
        let c: Vec<String> = p.choices.iter().map(|c| code(&show(c))).collect();
        let also: Vec<String> = p.choice_aliases.iter().map(|a| code(a)).collect();
        if also.is_empty() {
            out.push(format!("choices: {}", c.join(", ")));
        } else {
            out.push(format!(
                "choices: {} (also: {})",
                c.join(", "),
                also.join(", ")
            ));
        }
    }
    if !p.aliases.is_empty() {
        let a: Vec<String> = p.aliases.iter().map(|a| code(a)).collect();
        out.push(format!("aliases: {}", a.join(", ")));
    }
    out.join("; ")
}

/// Every line of `text` indented by `n` spaces (blank lines stay blank).
fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` wrapped at 80 columns and indented by `n` spaces. A line that
/// starts a list item (`- `) or a code line (indented) starts a new line,
/// as in Markdown; an item's continuation lines are indented under it.
fn wrap(text: &str, n: usize) -> String {
    let width = 80usize.saturating_sub(n).max(20);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut hang = "";
    for line in text.lines() {
        let breaks = line.trim().is_empty() || line.starts_with("- ") || line.starts_with(' ');
        if breaks && !cur.is_empty() {
            lines.push(std::mem::take(&mut cur));
        }
        if line.trim().is_empty() {
            lines.push(String::new());
            hang = "";
            continue;
        }
        if line.starts_with("- ") {
            hang = "  ";
        }
        for word in line.split_whitespace() {
            if cur.len() + 1 + word.len() > width && !cur.trim().is_empty() {
                lines.push(std::mem::take(&mut cur));
                cur.push_str(hang);
            } else if !cur.trim().is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    indent(&lines.join("\n"), n)
}

/// The terminal page of `herd doc MODULE`.
pub fn text(doc: &ModuleDoc) -> String {
    let mut out = format!("{} - {}\n", doc.name, doc.short);
    if !doc.long.trim().is_empty() {
        let _ = writeln!(out, "\n{}", wrap(doc.long.trim(), 2));
    }
    out.push_str("\nPARAMETERS\n");
    text_params(&mut out, &doc.params, 2);
    if !doc.returns.is_empty() {
        out.push_str("\nRETURNS\n");
        for r in &doc.returns {
            let _ = writeln!(out, "  {}\n{}", r.name, wrap(r.description, 6));
        }
    }
    if !doc.example.trim().is_empty() {
        let _ = writeln!(out, "\nEXAMPLE\n{}", indent(doc.example.trim_end(), 2));
    }
    if !doc.differences.is_empty() {
        let _ = writeln!(
            out,
            "\nDIFFERENCES FROM ANSIBLE\n{}",
            wrap(doc.differences, 2)
        );
    }
    out
}

fn text_params(out: &mut String, params: &[ParamDoc], depth: usize) {
    if params.is_empty() {
        let _ = writeln!(out, "{}(none)", " ".repeat(depth));
    }
    let plain = |s: &str| s.to_string();
    for p in params {
        let _ = writeln!(
            out,
            "{}{} ({})",
            " ".repeat(depth),
            p.name,
            facts(p, &plain)
        );
        let _ = writeln!(out, "{}", wrap(&p.description, depth + 4));
        if !p.suboptions.is_empty() {
            text_params(out, &p.suboptions, depth + 4);
        }
    }
}

/// The Markdown page of one module (`docs/modules/<name>.md`).
pub fn markdown(doc: &ModuleDoc) -> String {
    let mut out = format!("# `{}`\n\n{}\n", doc.name, doc.short);
    if !doc.long.trim().is_empty() {
        let _ = writeln!(out, "\n{}", doc.long.trim());
    }
    out.push_str("\n## Parameters\n\n");
    if doc.params.is_empty() {
        out.push_str("None.\n");
    }
    md_params(&mut out, &doc.params, "");
    if !doc.returns.is_empty() {
        out.push_str("\n## Returns\n\n");
        for r in &doc.returns {
            let _ = writeln!(out, "- `{}`: {}", r.name, r.description.trim());
        }
    }
    if !doc.example.trim().is_empty() {
        let _ = writeln!(
            out,
            "\n## Example\n\n```yaml\n{}\n```",
            doc.example.trim_end()
        );
    }
    if !doc.differences.is_empty() {
        let _ = writeln!(
            out,
            "\n## Differences from Ansible\n\n{}\n\n(The module's row in \
             [COMPATIBILITY.md](../../modules/COMPATIBILITY.md).)",
            doc.differences
        );
    }
    out.push_str(
        "\n<!-- Generated from the module's Params and DOC_* definitions; \
         regenerate with HERD_UPDATE_DOCS=1 cargo test -p herdsman-modules --lib doc:: -->\n",
    );
    out
}

fn md_params(out: &mut String, params: &[ParamDoc], parent: &str) {
    let code = |s: &str| format!("`{s}`");
    for p in params {
        let _ = writeln!(
            out,
            "- **`{parent}{}`** ({})\n\n{}\n",
            p.name,
            facts(p, &code),
            indent(&p.description, 2)
        );
        if !p.suboptions.is_empty() {
            md_params(out, &p.suboptions, &format!("{parent}{}.", p.name));
        }
    }
}

/// The index page (`docs/modules/README.md`): one line per module.
pub fn markdown_index(docs: &[ModuleDoc]) -> String {
    let mut out = String::from(
        "# Built-in modules\n\nOne page per module, generated from the definitions the \
         parameter parser uses (`herd doc MODULE` prints the same). Differences from \
         Ansible are in [COMPATIBILITY.md](../../modules/COMPATIBILITY.md).\n\n\
         | module | what it does |\n|---|---|\n",
    );
    for d in docs {
        let _ = writeln!(out, "| [`{0}`]({0}.md) | {1} |", d.name, d.short);
    }
    out.push_str(
        "\n<!-- Generated; regenerate with HERD_UPDATE_DOCS=1 cargo test -p herdsman-modules \
         --lib doc:: -->\n",
    );
    out
}

/// `herd doc`'s list: name and one line, aligned.
pub fn list(docs: &[ModuleDoc]) -> String {
    let width = docs.iter().map(|d| d.name.len()).max().unwrap_or(0);
    docs.iter()
        .map(|d| format!("{:width$}  {}\n", d.name, d.short))
        .collect()
}
