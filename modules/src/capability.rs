//! What a module needs from the engine besides its rendered parameters,
//! declared on its [`Module`](crate::Module) impl (as ripgrep declares every
//! property of a flag on its `impl Flag`): a free-form argument, the
//! controller-side files its parameters name, inventory access. The engine
//! asks these questions; it never decides by a module's name.
//!
//! Controller-side inputs exist because a module sees only the target
//! [`Host`](crate::Host): a file on the controller has to be found in the
//! playbook's search paths, read (or rendered) by the engine and passed in
//! the parameters. [`ControllerInput`] says which parameter names it, when
//! it is on the host after all, and how its contents are passed.

/// The parameter that carries where a controller file was found, so the
/// module's messages can name it (`_src_path`).
pub const SRC_PATH_PARAM: &str = "_src_path";

/// A controller-side input named by a module's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerInput {
    /// `param` names one file, found in the playbook's file search paths
    /// (`files/`, the playbook's directory) and read. `param` is then
    /// replaced by [`SRC_PATH_PARAM`] and the contents passed as `ship`
    /// says. The file is the host's business when one of `host_side`
    /// holds.
    File {
        /// The parameter that names the file.
        param: &'static str,
        /// How its contents reach the module.
        ship: Ship,
        /// When the file is on the host instead (any one suffices).
        host_side: &'static [HostSide],
        /// A static `param` that names no file is a load error (before
        /// any host is contacted), not a task failure.
        checked_before_run: bool,
        /// A vault-encrypted file is decrypted on the controller (as
        /// Ansible does) unless this parameter is given and false
        /// (`decrypt: false`); `None`: the file is passed as it is.
        decrypt: Option<&'static str>,
        /// A directory `param` names is passed whole under this parameter:
        /// a list of `{path, dir: true}` for its subdirectories and
        /// `{path, b64, mode}` for its files (symlinks followed, each file
        /// decrypted as above), `path` relative to the destination: under
        /// the directory's own name, or without it when `param` ends in
        /// `/` (its contents), as Ansible's copy walks a directory. `None`:
        /// a directory is an error.
        tree: Option<&'static str>,
    },
    /// `param` names one file or a list of files, each found in the file
    /// and template search paths and read; one named `*.j2` is rendered as
    /// a template (and looked for in the template paths first). Passed as a
    /// list of `{name, content, src}` under `into`, `name` being the file
    /// name without `.j2`. `noun` names such a file in messages.
    RenderedFiles {
        /// The parameter that names the file or files.
        param: &'static str,
        /// The parameter the list of files is passed under.
        into: &'static str,
        /// What such a file is called in messages (`compose file`).
        noun: &'static str,
    },
    /// The first word of the first of `params` that is set names a
    /// controller file, followed by its arguments (`script: setup.sh
    /// --fast`): the file is found in the playbook's file search paths and
    /// read, passed base64-encoded under `into`, and where it was found
    /// under [`SRC_PATH_PARAM`]. The parameter itself is kept.
    CommandFile {
        /// The parameters that may hold the command line, in order.
        params: &'static [&'static str],
        /// The parameter the encoded contents are passed under.
        into: &'static str,
    },
    /// `param` names a directory on the controller the module writes
    /// into (a fetch): a relative one is taken from the playbook's
    /// directory, not from wherever herd was started.
    Directory {
        /// The parameter that names the directory.
        param: &'static str,
    },
}

/// How a [`ControllerInput::File`]'s bytes reach the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ship {
    /// As text under `text`; bytes that are not UTF-8 go base64-encoded
    /// under `binary`.
    Text {
        /// The parameter for UTF-8 contents.
        text: &'static str,
        /// The parameter for other contents, base64-encoded.
        binary: &'static str,
    },
    /// Base64-encoded under `into` (an archive the module streams).
    Base64 {
        /// The parameter the encoded contents are passed under.
        into: &'static str,
    },
}

/// When a [`ControllerInput::File`] lives on the target host instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSide {
    /// This parameter is true (`remote_src: yes`).
    Set(&'static str),
    /// This parameter is given and false (`copy: no`).
    Unset(&'static str),
    /// The file parameter is a URL (`https://...`).
    Url,
}

/// How a module runs under a task's `async:` (Ansible runs every plain
/// module in the background; herd detaches only the modules whose change
/// is one host command, and runs the others in the foreground).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncSupport {
    /// The module's `apply` makes exactly one [`Host::run`](crate::Host::run)
    /// call, whose output alone makes its result: the engine runs that
    /// command detached on the host (it survives the connection) and later
    /// hands the recorded output to `apply` again to build the result.
    Detached,
    /// The module runs in the foreground within the `async` time limit
    /// (`poll` > 0 behaves as in Ansible); `poll: 0` is refused, naming
    /// the module.
    Foreground,
    /// Ansible refuses `async` for this action (`raw`): so does herd.
    Refused,
}
