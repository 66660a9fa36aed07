//! `slurp`: read a file on the host and return its content, base64
//! encoded. It never changes anything: the plan is empty and carries the
//! result, read in one round trip (the file is base64-encoded on the host,
//! so binary content survives any transport).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::shell_quote::quote_path;
use crate::{Host, Module, ModuleError, Outcome, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `slurp`: what `herd doc` shows, and what the parser takes.
pub struct SlurpParams {
    /// The file to read; `~` is the remote user's home.
    #[serde(alias = "path")]
    pub src: String,
}

/// The `slurp` module.
pub struct Slurp;

/// Exit codes of the read script, one per failure Ansible names.
const NOT_FOUND: i32 = 64;
const IS_DIR: i32 = 65;
const NOT_READABLE: i32 = 66;

impl Slurp {
    fn result(p: &SlurpParams, host: &mut dyn Host) -> Result<Map<String, Value>, ModuleError> {
        let script = format!(
            "p={}\nif [ -d \"$p\" ]; then exit {IS_DIR}; fi\n\
             if [ ! -e \"$p\" ]; then exit {NOT_FOUND}; fi\n\
             if [ ! -r \"$p\" ]; then exit {NOT_READABLE}; fi\n\
             base64 -w0 < \"$p\"",
            quote_path(&p.src)
        );
        let out = host.run(&script, None)?;
        let src = &p.src;
        let msg = match out.rc {
            0 => {
                let mut r = Map::new();
                r.insert("content".into(), json!(out.stdout_str().trim_end()));
                r.insert("source".into(), json!(src));
                r.insert("encoding".into(), json!("base64"));
                return Ok(r);
            }
            NOT_FOUND => format!("file not found: {src}"),
            IS_DIR => format!("source is a directory and must be a file: {src}"),
            NOT_READABLE => format!("file is not readable: {src}"),
            _ => format!("unable to slurp file: {}", out.stderr_str().trim_end()),
        };
        Err(ModuleError::failed(msg))
    }
}

impl Module for Slurp {
    const NAME: &'static str = "slurp";
    const DOC_SHORT: &'static str =
        "Read a file on the host and return its content, base64 encoded.";
    const DOC_LONG: &'static str = r##"Never changes the host (it reports ok, in check mode too). The content comes back base64 encoded, so binary files survive; decode it with the `b64decode` filter. Meant for small files: the whole content is held in memory and in the registered result."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Read the node's token
  slurp:
    src: /etc/app/token
  register: token
- name: Use it
  debug:
    msg: "{{ token.content | b64decode | trim }}"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("content", "the file's content, base64 encoded"),
        ("encoding", "`base64`"),
        ("source", "the path read, as given"),
    ];
    type Params = SlurpParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        Ok(Plan {
            result: Self::result(p, host)?,
            ..Plan::default()
        })
    }

    fn apply(
        &self,
        _p: &Self::Params,
        plan: Plan,
        _host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::read_in_plan(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, host, path_in, plan, FakeHost, Match};
    use crate::DynModule;
    use crate::ParamError;

    #[test]
    fn reads_text_and_binary_files() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        let bytes: Vec<u8> = (0..=255u8).chain(b"\nend".iter().copied()).collect();
        std::fs::write(&f, &bytes).expect("write");
        // The plan is the whole task: never a change, so check mode is the same.
        let pl = plan(&Slurp, &json!({"src": f}));
        assert!(pl.is_empty());
        let content = get(&pl.result, "content")
            .as_str()
            .unwrap_or_default()
            .to_string();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&content)
            .expect("base64");
        assert_eq!(decoded, bytes);
        assert_eq!(get(&pl.result, "encoding"), "base64");
        assert_eq!(get(&pl.result, "source"), f.as_str());
        let out = DynModule::apply(&Slurp, &json!({"path": f}), pl, &mut host()).expect("apply");
        assert!(!out.changed);
        assert_eq!(get(&out.result, "content"), content.as_str());
        std::fs::write(&f, "").expect("write");
        assert_eq!(get(&plan(&Slurp, &json!({"src": f})).result, "content"), "");
    }

    #[test]
    fn failures_say_what_ansible_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        let none = path_in(&dir, "none");
        let err = DynModule::plan(&Slurp, &json!({"src": none}), &mut host()).expect_err("missing");
        assert_eq!(err.to_string(), format!("file not found: {none}"));
        let d = dir.path().to_string_lossy().into_owned();
        let err = DynModule::plan(&Slurp, &json!({"src": d}), &mut host()).expect_err("dir");
        assert_eq!(
            err.to_string(),
            format!("source is a directory and must be a file: {d}")
        );
        let mut h = FakeHost::new().answer(Match::contains("base64"), NOT_READABLE, "", "");
        let err =
            DynModule::plan(&Slurp, &json!({"src": "/etc/shadow"}), &mut h).expect_err("perm");
        assert_eq!(err.to_string(), "file is not readable: /etc/shadow");
        assert_eq!(h.scripts.len(), 1, "one round trip");
        let e = Slurp.check_params(&json!({}));
        assert!(matches!(e, Err(ParamError::Missing { ref field, .. }) if field == "src"));
    }
}
