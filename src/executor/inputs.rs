//! Controller-side inputs: before a module runs, the files on the
//! controller that its parameters name (as the module declares them,
//! [`herdsman_modules::capability::ControllerInput`]) are found in the
//! playbook's search paths, read or rendered here, and passed in the
//! parameters, because a module sees only the target host. The engine asks
//! the module what to do; it never decides by the module's name.

use std::path::{Path, PathBuf};

use herdsman_modules::capability::{ControllerInput, HostSide, Ship, SRC_PATH_PARAM};
use herdsman_modules::DynModule;
use serde_json::{Map, Value};

use crate::executor::task::truthy_json;
use crate::playbook;
use crate::template::{Context, Templar, TemplateError};

/// Why a controller-side input could not be passed to its module. Messages
/// name the parameter's value as the task wrote it (a path), never a file's
/// contents.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{module} source `{src}` not found on the controller")]
    NotFound { module: &'static str, src: String },
    #[error("{module} source `{src}` is a directory; directories are not supported yet")]
    IsDirectory { module: &'static str, src: String },
    #[error("{module} source `{src}` is not a regular file")]
    NotRegular { module: &'static str, src: String },
    #[error("cannot read {module} source `{src}`: {source}")]
    Read {
        module: &'static str,
        src: String,
        source: std::io::Error,
    },
    #[error("{noun} `{src}` not found on the controller")]
    RenderedNotFound { noun: &'static str, src: String },
    #[error("cannot read {noun} `{src}`: {source}")]
    RenderedRead {
        noun: &'static str,
        src: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A vault-encrypted source that could not be decrypted (the error
    /// names the file, never its contents).
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
}

/// Where inputs are looked for and how templates among them are rendered.
pub struct InputContext<'a> {
    /// The playbook's directory (search paths and relative directories
    /// start there).
    pub playbook_dir: &'a Path,
    pub templar: &'a Templar,
    /// The task's variables, for `*.j2` inputs.
    pub vars: &'a Context,
    /// Searched before the playbook's paths: in a role, the role's
    /// `files/` and the role itself (and its parents'), as Ansible does.
    pub first: &'a [PathBuf],
}

/// Resolve every controller input `module` declares, in `params`.
pub fn resolve(
    module: &dyn DynModule,
    params: &mut Value,
    cx: &InputContext<'_>,
) -> Result<(), InputError> {
    let Value::Object(map) = params else {
        return Ok(());
    };
    for input in module.controller_inputs() {
        match *input {
            ControllerInput::File {
                param,
                ship,
                host_side,
                decrypt,
                tree,
                ..
            } => {
                let how = FileInput {
                    param,
                    ship,
                    host_side,
                    decrypt,
                    tree,
                };
                file(map, module.name(), &how, cx)?;
            }
            ControllerInput::RenderedFiles { param, into, noun } => {
                rendered_files(map, param, into, noun, cx)?;
            }
            ControllerInput::Directory { param } => directory(map, param, cx.playbook_dir),
            ControllerInput::CommandFile { params, into } => {
                command_file(map, module.name(), params, into, cx)?;
            }
        }
    }
    Ok(())
}

/// What a [`ControllerInput::File`] declares.
struct FileInput {
    param: &'static str,
    ship: Ship,
    host_side: &'static [HostSide],
    decrypt: Option<&'static str>,
    tree: Option<&'static str>,
}

/// One file `param` names, unless `host_side` says it is on the host:
/// read here (a vault-encrypted one decrypted, unless the module's
/// `decrypt` parameter is false) and passed as `ship` says.
fn file(
    map: &mut Map<String, Value>,
    module: &'static str,
    how: &FileInput,
    cx: &InputContext<'_>,
) -> Result<(), InputError> {
    let FileInput {
        param,
        ship,
        host_side,
        decrypt,
        tree,
    } = *how;
    let remote = host_side.iter().any(|side| match side {
        HostSide::Set(flag) => map.get(*flag).is_some_and(truthy_json),
        HostSide::Unset(flag) => map.get(*flag).is_some_and(|c| !truthy_json(c)),
        HostSide::Url => map
            .get(param)
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("://")),
    });
    let wanted = decrypt.is_some_and(|flag| map.get(flag).is_none_or(truthy_json));
    if let Some(into) = tree.filter(|_| !remote) {
        if take_controller_tree(map, module, param, into, wanted, cx)? {
            return Ok(());
        }
    }
    let Some(bytes) = take_controller_src(map, module, param, remote, cx)? else {
        return Ok(());
    };
    let what = map
        .get(SRC_PATH_PARAM)
        .and_then(Value::as_str)
        .unwrap_or(param)
        .to_string();
    let bytes = decrypted(bytes, &what, wanted)?;
    match ship {
        Ship::Text { text, binary } => match String::from_utf8(bytes) {
            Ok(t) => map.insert(text.into(), Value::from(t)),
            Err(e) => map.insert(binary.into(), Value::from(base64_encode(e.as_bytes()))),
        },
        Ship::Base64 { into } => map.insert(into.into(), Value::from(base64_encode(&bytes))),
    };
    Ok(())
}

/// `bytes` decrypted when they are vault-encrypted and decrypting is
/// `wanted`; `what` names the file in errors.
fn decrypted(bytes: Vec<u8>, what: &str, wanted: bool) -> Result<Vec<u8>, InputError> {
    if wanted {
        if let Some(text) = std::str::from_utf8(&bytes)
            .ok()
            .filter(|t| crate::vault::is_encrypted(t))
        {
            return Ok(crate::vault::keyring().decrypt_bytes(what, text)?);
        }
    }
    Ok(bytes)
}

/// When `param` names a controller directory: its tree passed under
/// `into` (see [`ControllerInput::File`]), `param` replaced by
/// [`SRC_PATH_PARAM`] (ending in `/` when `param` does), and `true`.
fn take_controller_tree(
    map: &mut Map<String, Value>,
    module: &'static str,
    param: &str,
    into: &str,
    decrypt: bool,
    cx: &InputContext<'_>,
) -> Result<bool, InputError> {
    let Some(src) = map.get(param).and_then(Value::as_str).map(str::to_string) else {
        return Ok(false);
    };
    let search = [cx.first, &playbook::file_search_paths(cx.playbook_dir)].concat();
    let Some(dir) = playbook::find_in(&search, &src).filter(|p| p.is_dir()) else {
        return Ok(false);
    };
    // As Ansible: `src/` copies the contents, `src` the directory itself.
    let prefix = if src.ends_with('/') {
        String::new()
    } else {
        dir.file_name()
            .map(|n| format!("{}/", n.to_string_lossy()))
            .unwrap_or_default()
    };
    let mut entries = Vec::new();
    let mut ancestors = Vec::new();
    walk_tree(
        module,
        &src,
        &dir,
        &prefix,
        decrypt,
        &mut ancestors,
        &mut entries,
    )?;
    let shown = dir.display().to_string();
    let shown = match (src.ends_with('/'), shown.ends_with('/')) {
        (true, false) => format!("{shown}/"),
        (false, true) => shown.trim_end_matches('/').to_string(),
        _ => shown,
    };
    map.remove(param);
    map.insert(SRC_PATH_PARAM.into(), Value::from(shown));
    map.insert(into.into(), Value::Array(entries));
    Ok(true)
}

/// The files and subdirectories under `dir`, in name order, each as a
/// tree entry under `prefix`. Symlinks are followed (Ansible's
/// `local_follow` default); one that leads back to a directory being
/// walked is left out.
fn walk_tree(
    module: &'static str,
    src: &str,
    dir: &Path,
    prefix: &str,
    decrypt: bool,
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<Value>,
) -> Result<(), InputError> {
    use std::os::unix::fs::PermissionsExt;
    let read_err = |source| InputError::Read {
        module,
        src: src.to_string(),
        source,
    };
    let real = std::fs::canonicalize(dir).map_err(read_err)?;
    ancestors.push(real);
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    names.sort();
    for path in names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = format!("{prefix}{name}");
        // Following symlinks: a dangling one is left out, as Ansible's
        // walk makes it a link it cannot copy either.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let real = std::fs::canonicalize(&path).map_err(read_err)?;
            if ancestors.contains(&real) {
                continue;
            }
            out.push(serde_json::json!({"path": rel, "dir": true}));
            walk_tree(
                module,
                src,
                &path,
                &format!("{rel}/"),
                decrypt,
                ancestors,
                out,
            )?;
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).map_err(read_err)?;
            let bytes = decrypted(bytes, &path.display().to_string(), decrypt)?;
            out.push(serde_json::json!({
                "path": rel,
                "b64": base64_encode(&bytes),
                "mode": meta.permissions().mode() & 0o7777,
            }));
        } else {
            return Err(InputError::NotRegular {
                module,
                src: path.display().to_string(),
            });
        }
    }
    ancestors.pop();
    Ok(())
}

/// The controller file `param` names, found in the playbook's file paths
/// and read; `param` is replaced by [`SRC_PATH_PARAM`] for messages.
/// `Ok(None)` when there is no `param` or it lives on the host (`remote`).
fn take_controller_src(
    map: &mut Map<String, Value>,
    module: &'static str,
    param: &str,
    remote: bool,
    cx: &InputContext<'_>,
) -> Result<Option<Vec<u8>>, InputError> {
    let Some(src) = map.get(param).and_then(Value::as_str).map(str::to_string) else {
        return Ok(None);
    };
    if remote {
        return Ok(None);
    }
    let (path, bytes) = find_and_read(module, src, cx)?;
    map.remove(param);
    map.insert(
        SRC_PATH_PARAM.into(),
        Value::from(path.display().to_string()),
    );
    Ok(Some(bytes))
}

/// The command line's first word names a controller file: read it and
/// pass it base64-encoded under `into`, with its path. A line that does
/// not split is left for the module to refuse.
fn command_file(
    map: &mut Map<String, Value>,
    module: &'static str,
    params: &[&str],
    into: &str,
    cx: &InputContext<'_>,
) -> Result<(), InputError> {
    let Some(line) = params
        .iter()
        .find_map(|p| map.get(*p).and_then(Value::as_str))
    else {
        return Ok(());
    };
    let first = herdsman_modules::shell_quote::split(line)
        .ok()
        .and_then(|w| w.into_iter().next());
    let Some(src) = first else {
        return Ok(());
    };
    let (path, bytes) = find_and_read(module, src, cx)?;
    map.insert(
        SRC_PATH_PARAM.into(),
        Value::from(path.display().to_string()),
    );
    map.insert(into.into(), Value::from(base64_encode(&bytes)));
    Ok(())
}

/// A controller file found in the task's file search paths, and its bytes.
fn find_and_read(
    module: &'static str,
    src: String,
    cx: &InputContext<'_>,
) -> Result<(PathBuf, Vec<u8>), InputError> {
    let search = [cx.first, &playbook::file_search_paths(cx.playbook_dir)].concat();
    let Some(path) = playbook::find_in(&search, &src) else {
        return Err(InputError::NotFound { module, src });
    };
    if path.is_dir() {
        return Err(InputError::IsDirectory { module, src });
    }
    // A device or FIFO (`/dev/zero`) would be read for ever.
    if !path.is_file() {
        return Err(InputError::NotRegular { module, src });
    }
    match std::fs::read(&path) {
        Ok(b) => Ok((path, b)),
        Err(source) => Err(InputError::Read {
            module,
            src,
            source,
        }),
    }
}

/// The files `param` names, each read on the controller (a `.j2` rendered
/// as a template, as `template` does) and passed under `into`, named after
/// the source without `.j2`.
fn rendered_files(
    map: &mut Map<String, Value>,
    param: &str,
    into: &str,
    noun: &'static str,
    cx: &InputContext<'_>,
) -> Result<(), InputError> {
    let names: Vec<String> = match map.get(param) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => return Ok(()),
    };
    let mut files = Vec::new();
    for src in names {
        let template = src.ends_with(".j2");
        let (first, second) = (
            playbook::template_search_paths(cx.playbook_dir),
            playbook::file_search_paths(cx.playbook_dir),
        );
        let search = if template {
            [cx.first, &first, &second].concat()
        } else {
            [cx.first, &second, &first].concat()
        };
        let Some(path) = playbook::find_in(&search, &src) else {
            return Err(InputError::RenderedNotFound { noun, src });
        };
        let content = if template {
            cx.templar.render_file(&path, cx.vars)?
        } else {
            match std::fs::read_to_string(&path) {
                Ok(c) => c,
                Err(source) => return Err(InputError::RenderedRead { noun, src, source }),
            }
        };
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = base.strip_suffix(".j2").unwrap_or(&base).to_string();
        files.push(serde_json::json!({
            "name": name,
            "content": content,
            "src": path.display().to_string(),
        }));
    }
    map.insert(into.into(), Value::Array(files));
    Ok(())
}

/// A controller directory `param` names: a relative one is taken from the
/// playbook's directory, as Ansible's `fetch` takes its `dest`, not from
/// wherever herd was started.
fn directory(map: &mut Map<String, Value>, param: &str, playbook_dir: &Path) {
    if let Some(Value::String(to)) = map.get(param) {
        let path = Path::new(to.trim());
        if !to.trim().is_empty() && path.is_relative() {
            let abs = playbook_dir.join(path).display().to_string();
            map.insert(param.into(), Value::from(abs));
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
