//! The worker's confinement, applied to itself after the interpreter is initialised and before
//! any user code runs. The mechanisms live in `quarry-sandbox` (shared with the extraction
//! worker); this module decides what the REPL allows.
//!
//! Order and why:
//! 1. **Protocol descriptors** move to fds >= 100 and fds 0/1 become `/dev/null`, so user code
//!    that prints through the C library or `os.write(1, ..)` cannot inject protocol lines.
//! 2. **Python is initialised first** (isolated mode: no user site-packages, no `PYTHON*`
//!    variables). No model code has run yet, and it tells us exactly which directories the
//!    interpreter needs (`sys.prefix`, `sys.path`): those stay readable for lazy imports.
//! 3. **User + network namespace** (`unshare`): no interface but a down loopback. It must happen
//!    while the process is single-threaded, which is why the protocol reader thread starts only
//!    afterwards. The user namespace is left without a uid map on purpose: a mapped root would
//!    regain `CAP_DAC_OVERRIDE` over root-owned files inside it. Optional, because the seccomp
//!    filter below already denies `socket()` (distributions that forbid unprivileged user
//!    namespaces would otherwise have to run unconfined). When it fails and we are root, every
//!    capability is dropped instead, so root cannot raise its rlimits back.
//! 4. **rlimits**: address space, CPU, file size, open files, no core dumps.
//! 5. **Landlock**: read-only the Python installation, the system libraries extension modules
//!    link against, and the context/analysed folder; read-write the scratch directory; nothing
//!    else (not `/proc`, not `/etc`, not `$HOME`). On ABI >= 6 it also scopes signals and abstract
//!    unix sockets to the sandbox.
//! 6. **seccomp** (last, so the steps above may use the syscalls it denies): no `execve`, no
//!    new processes (`clone` without `CLONE_THREAD`, `fork`, `vfork`; `clone3` answers ENOSYS so
//!    glibc falls back to the inspectable `clone`), no `socket()` of any family (a pathname unix
//!    socket is reachable through `connect`, which Landlock does not mediate — think
//!    `/var/run/docker.sock`), no `io_uring` (it would bypass the socket rule), no `ptrace`, and
//!    no signals, rlimit or scheduling changes aimed at any other process. `RLIMIT_NPROC` is not
//!    used: it does not bind root and, for an ordinary user, counts all their desktop processes.

use std::path::PathBuf;

pub use quarry_sandbox::{
    rearm_cpu_limit, take_protocol_fds, Confinement, LANDLOCK, NETWORK_NAMESPACE, RLIMITS, SECCOMP,
};

use quarry_repl::protocol::WorkerConfig;

/// Applies steps 3-6 of the module docs. Errors only when a required mechanism is missing and
/// the host did not allow unconfined mode; the message names the mechanism.
pub fn confine(config: &WorkerConfig, python_paths: &[PathBuf]) -> Result<Confinement, String> {
    let limits = &config.limits;
    quarry_sandbox::confine(&quarry_sandbox::Policy {
        read_only: python_paths.iter().chain(config.readable.iter()).cloned().collect(),
        scratch: config.scratch.clone(),
        limits: quarry_sandbox::Limits {
            memory_bytes: limits.memory_bytes,
            cpu_seconds: limits.cpu_seconds,
            file_size_bytes: limits.file_size_bytes,
            open_files: limits.open_files,
        },
        allow_unconfined: config.allow_unconfined,
        pretend_unavailable: config.pretend_unavailable.clone(),
        protects: "model-written code".into(),
    })
}
