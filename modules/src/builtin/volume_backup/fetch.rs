//! `fetch_to`: copying this run's archives and manifest to the controller
//! in pieces, each checked against its SHA-256 before it gets its name.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::host::FetchFileError;
use crate::Host;

pub(super) fn fetch_dir(to: &str, host: &str) -> PathBuf {
    Path::new(to).join(host)
}

/// Why a fetched copy could not be made.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    #[error(transparent)]
    Fetch(#[from] FetchFileError),
    #[error("not found on the host")]
    Missing,
    #[error("cannot write {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
    #[error("the copy's SHA-256 {got} differs from the host's {want}")]
    Checksum { got: String, want: String },
}

/// Writes into a file and hashes what went through, so an archive of any
/// size is copied and checked in one pass with bounded memory.
pub(super) struct HashingWriter {
    pub(super) file: std::fs::File,
    pub(super) hash: Sha256,
}

impl std::io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Copy one file from the host to `local` (temp name, then rename), and
/// check its SHA-256 when known. The copy streams in pieces
/// ([`Host::fetch_file`]): archives may be larger than memory.
pub(super) fn fetch_one(
    host: &mut dyn Host,
    remote: &str,
    local: &Path,
    sha: Option<&str>,
) -> Result<(), FetchError> {
    let local_err = |source| FetchError::Local {
        path: local.display().to_string(),
        source,
    };
    let dir = local.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(local_err)?;
    let tmp = dir.join(format!(
        ".{}.partial",
        local
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    ));
    let result = (|| {
        let mut out = HashingWriter {
            file: std::fs::File::create(&tmp).map_err(local_err)?,
            hash: Sha256::new(),
        };
        host.fetch_file(remote, &mut out)?
            .ok_or(FetchError::Missing)?;
        out.file.sync_all().map_err(local_err)?;
        if let Some(want) = sha {
            let got = hex::encode(out.hash.finalize());
            if got != want {
                return Err(FetchError::Checksum {
                    got,
                    want: want.to_string(),
                });
            }
        }
        std::fs::rename(&tmp, local).map_err(local_err)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
