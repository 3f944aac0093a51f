//! `quarry-sandbox`: the confinement Quarry's worker processes apply to themselves on Linux
//! before they touch anything untrusted — model-written Python in `quarry worker repl`, hostile
//! documents in `quarry worker extract`.
//!
//! Order and why (a worker calls these in this order; [`confine`] does steps 3-6):
//! 1. **Protocol descriptors** move to fds >= 100 and fds 0/1 become `/dev/null`
//!    ([`take_protocol_fds`]), so code that prints through the C library cannot inject protocol
//!    lines.
//! 2. **Whatever the worker must load** (an interpreter, a shared library such as libpdfium) is
//!    loaded first, so the rules below need not allow it to be opened later.
//! 3. **User + network namespace** (`unshare`): no interface but a down loopback. It must happen
//!    while the process is single-threaded. The user namespace is left without a uid map on
//!    purpose: a mapped root would regain `CAP_DAC_OVERRIDE` over root-owned files inside it.
//!    Optional, because the seccomp filter below already denies `socket()` (distributions that
//!    forbid unprivileged user namespaces would otherwise have to run unconfined). When it fails
//!    and we are root, every capability is dropped instead, so root cannot raise its rlimits
//!    back. Either way a worker started by root no longer bypasses file modes: a `chmod 000` file
//!    is unreadable to it, as to anyone.
//! 4. **rlimits**: address space, CPU, file size, open files, no core dumps.
//! 5. **Landlock**: read-only the given paths and the system libraries; read-write the scratch
//!    directory; nothing else (not `/proc`, not `/etc`, not `$HOME`). On ABI >= 6 it also scopes
//!    signals and abstract unix sockets to the sandbox.
//! 6. **seccomp** (last, so the steps above may use the syscalls it denies): no `execve`, no
//!    new processes (`clone` without `CLONE_THREAD`, `fork`, `vfork`; `clone3` answers ENOSYS so
//!    glibc falls back to the inspectable `clone`), no `socket()` of any family (a pathname unix
//!    socket is reachable through `connect`, which Landlock does not mediate — think
//!    `/var/run/docker.sock`), no `io_uring` (it would bypass the socket rule), no `ptrace`, and
//!    no signals, rlimit or scheduling changes aimed at any other process. `RLIMIT_NPROC` is not
//!    used: it does not bind root and, for an ordinary user, counts all their desktop processes.
//!
//! Moved here from `quarry-repl`'s worker so the extraction worker is confined by the same code
//! (issue 14); the REPL's hostile suite (`crates/repl-worker/tests/it/hostile.rs`) covers it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, ABI,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

/// Mechanism names as ready messages and refusals report them.
pub const LANDLOCK: &str = "landlock";
pub const SECCOMP: &str = "seccomp";
pub const RLIMITS: &str = "rlimits";
pub const NETWORK_NAMESPACE: &str = "network-namespace";

/// The lowest descriptor the protocol pipes are moved to.
const PROTOCOL_FD_FLOOR: libc::c_int = 100;

/// Duplicates stdin and stdout above [`PROTOCOL_FD_FLOOR`] (close-on-exec) and points fds 0 and
/// 1 at `/dev/null`. Returns (protocol in, protocol out).
pub fn take_protocol_fds() -> io::Result<(File, File)> {
    let high = |fd: libc::c_int| -> io::Result<File> {
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, PROTOCOL_FD_FLOOR) };
        if new < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(unsafe { File::from_raw_fd(new) })
    };
    let input = high(0)?;
    let output = high(1)?;
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?.into_raw_fd();
    for fd in [0, 1] {
        if unsafe { libc::dup2(null, fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    unsafe { libc::close(null) };
    Ok((input, output))
}

/// What [`confine`] put in place.
#[derive(Debug, Default, Clone)]
pub struct Confinement {
    pub active: Vec<String>,
    pub missing: Vec<String>,
}

/// The resource limits of a confined worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_AS: address space, which also bounds how many threads can exist (each reserves a
    /// stack).
    pub memory_bytes: u64,
    /// The soft RLIMIT_CPU ([`rearm_cpu_limit`] moves it per task); the hard limit is a day.
    pub cpu_seconds: u64,
    /// RLIMIT_FSIZE: the largest file the worker can write.
    pub file_size_bytes: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
}

/// What a worker asks of [`confine`].
#[derive(Debug, Clone)]
pub struct Policy {
    /// Readable (files or directories, recursively). Paths that do not exist are left out.
    pub read_only: Vec<PathBuf>,
    /// The worker's one read-write directory; it must exist.
    pub scratch: PathBuf,
    pub limits: Limits,
    /// Run even when a required mechanism is missing, reporting it in [`Confinement::missing`].
    pub allow_unconfined: bool,
    /// Mechanisms to treat as missing (tests of the refusal path).
    pub pretend_unavailable: Vec<String>,
    /// What is refused without the sandbox, for the error: "model-written code".
    pub protects: String,
}

/// Applies steps 3-6 of the crate docs. Errors only when a required mechanism is missing and
/// the policy does not allow unconfined mode; the message names the mechanism.
pub fn confine(policy: &Policy) -> Result<Confinement, String> {
    let pretend = |name: &str| policy.pretend_unavailable.iter().any(|p| p == name);
    let mut c = Confinement::default();
    let mut failures: Vec<String> = Vec::new();

    // 3. Network namespace (optional: the seccomp socket rule is what is required).
    let in_user_namespace = if pretend(NETWORK_NAMESPACE) {
        false
    } else {
        match network_namespace() {
            Ok(in_user_ns) => {
                c.active.push(NETWORK_NAMESPACE.into());
                in_user_ns
            }
            Err(e) => {
                tracing::debug!("no network namespace ({e}); relying on the seccomp socket rule");
                false
            }
        }
    };
    if !in_user_namespace && unsafe { libc::geteuid() } == 0 {
        drop_capabilities().map_err(|e| format!("could not drop root's capabilities: {e}"))?;
    }

    // 4. rlimits.
    match apply_rlimits(&policy.limits) {
        Ok(()) if !pretend(RLIMITS) => c.active.push(RLIMITS.into()),
        Ok(()) => failures.push(format!("{RLIMITS}: unavailable (pretend)")),
        Err(e) => failures.push(format!("{RLIMITS}: {e}")),
    }

    // 5. Landlock.
    if pretend(LANDLOCK) {
        failures.push(format!("{LANDLOCK}: unavailable (pretend)"));
    } else {
        match landlock(&policy.read_only, &policy.scratch) {
            Ok(()) => c.active.push(LANDLOCK.into()),
            Err(e) => failures.push(format!("{LANDLOCK}: {e}")),
        }
    }

    // 6. seccomp.
    if pretend(SECCOMP) {
        failures.push(format!("{SECCOMP}: unavailable (pretend)"));
    } else {
        match seccomp() {
            Ok(()) => c.active.push(SECCOMP.into()),
            Err(e) => failures.push(format!("{SECCOMP}: {e}")),
        }
    }

    if !failures.is_empty() {
        if !policy.allow_unconfined {
            return Err(format!(
                "the sandbox could not be built on this system ({}); refusing to run {} \
                 without it. Use the unconfined mode only if you trust the documents and the model.",
                failures.join("; "),
                policy.protects
            ));
        }
        c.missing = failures;
    }
    Ok(c)
}

/// `unshare(CLONE_NEWUSER | CLONE_NEWNET)`, or as root `CLONE_NEWNET` alone. Returns whether a
/// user namespace was created.
pub fn network_namespace() -> io::Result<bool> {
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } == 0 {
        return Ok(true);
    }
    let first = io::Error::last_os_error();
    if unsafe { libc::geteuid() } == 0 && unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
        return Ok(false);
    }
    Err(first)
}

/// Empties every capability set and the bounding set: root without a user namespace must not
/// keep `CAP_SYS_RESOURCE` (raise rlimits), `CAP_DAC_OVERRIDE`, `CAP_KILL` and friends.
pub fn drop_capabilities() -> io::Result<()> {
    for cap in 0..64 {
        // Stops at the first capability the kernel does not know (EINVAL).
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            break;
        }
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The hard CPU limit for the worker's whole life: the soft limit is re-armed per execution
/// ([`rearm_cpu_limit`]) and can only move below this.
const CPU_LIFETIME_SECONDS: u64 = 24 * 3600;

pub fn apply_rlimits(limits: &Limits) -> io::Result<()> {
    set_rlimit(libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes)?;
    set_rlimit(libc::RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes)?;
    set_rlimit(libc::RLIMIT_NOFILE, limits.open_files, limits.open_files)?;
    set_rlimit(libc::RLIMIT_CORE, 0, 0)?;
    let hard = CPU_LIFETIME_SECONDS.max(limits.cpu_seconds);
    set_rlimit(libc::RLIMIT_CPU, limits.cpu_seconds.min(hard), hard)?;
    // RLIMIT_FSIZE must produce EFBIG, not kill the worker (CPython also ignores it; this makes
    // it independent of the interpreter's signal setup).
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    Ok(())
}

/// Sets the soft CPU limit to the CPU already used plus one execution's allowance.
pub fn rearm_cpu_limit(seconds: u64) {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return;
    }
    let used = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) as u64 + 1;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    if unsafe { libc::getrlimit(libc::RLIMIT_CPU, &mut lim) } != 0 {
        return;
    }
    let soft = (used + seconds).min(lim.rlim_max);
    let _ = set_rlimit(libc::RLIMIT_CPU, soft, lim.rlim_max);
}

/// Directories shared libraries come from (libffi for ctypes, libssl, libpdfium's libc, ...).
pub const SYSTEM_LIBRARIES: &[&str] =
    &["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache"];
const DEVICES_READ: &[&str] = &["/dev/urandom", "/dev/random", "/dev/zero"];

/// Step 5: read-only `read_only` (plus [`SYSTEM_LIBRARIES`] and the random devices), read-write
/// `scratch` and `/dev/null`, nothing else.
pub fn landlock(read_only: &[PathBuf], scratch: &Path) -> Result<(), String> {
    // V5 covers every filesystem right this kernel generation knows (refer, truncate, ioctl on
    // devices); best effort downgrades on older kernels, and a kernel without Landlock at all is
    // reported as missing below.
    let abi = ABI::V5;
    let existing = |paths: Vec<PathBuf>| -> Vec<PathBuf> {
        paths.into_iter().filter(|p| p.is_absolute() && p.exists() && p != Path::new("/")).collect()
    };
    let read_only = existing(
        read_only
            .iter()
            .cloned()
            .chain(SYSTEM_LIBRARIES.iter().map(PathBuf::from))
            .chain(DEVICES_READ.iter().map(PathBuf::from))
            .collect(),
    );
    let read_write = existing(vec![scratch.to_path_buf(), PathBuf::from("/dev/null")]);
    if !read_write.iter().any(|p| p == scratch) {
        return Err(format!("the scratch directory {} does not exist", scratch.display()));
    }
    // `path_beneath_rules` gives a regular file only the file rights, so single input files
    // (`quarry extract FILE`) can be granted without their directory.
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.scope(Scope::from_all(ABI::V6)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&read_only, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&read_write, AccessFs::from_all(abi))))
        .map_err(|e| e.to_string())?;
    let status = ruleset.restrict_self().map_err(|e| e.to_string())?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(()),
        RulesetStatus::PartiallyEnforced => {
            tracing::warn!("Landlock is only partially enforced (old kernel ABI)");
            Ok(())
        }
        RulesetStatus::NotEnforced => Err("the kernel does not enforce Landlock".into()),
    }
}

/// Installs the filter described in the crate docs (step 6). Call it last: it denies the
/// syscalls the steps before it use.
pub fn seccomp() -> Result<(), String> {
    let arch: TargetArch = std::env::consts::ARCH.try_into().map_err(|e| format!("{e:?}"))?;
    let pid = std::process::id() as u64;
    let cond = |arg: u8, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string())
    };
    let rule = |conds: Vec<SeccompCondition>| SeccompRule::new(conds).map_err(|e| e.to_string());

    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // Denied outright (an empty rule list matches every call).
    let always: &[libc::c_long] = &[
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_socket,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_send_signal,
        libc::SYS_pidfd_getfd,
        libc::SYS_tkill,
        libc::SYS_kcmp,
        libc::SYS_get_robust_list,
        libc::SYS_migrate_pages,
        libc::SYS_move_pages,
        libc::SYS_process_madvise,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_fork,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_vfork,
    ];
    for &nr in always {
        deny.insert(nr, vec![]);
    }
    // A new process is a clone without CLONE_THREAD; threads stay allowed.
    deny.insert(libc::SYS_clone, vec![rule(vec![cond(0, SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64), 0)?])?]);
    // Only AF_UNIX pairs (asyncio's self-pipe): they connect to nothing outside.
    deny.insert(libc::SYS_socketpair, vec![rule(vec![cond(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64)?])?]);
    // Signals only to ourselves (pid argument equal to our own pid).
    for nr in [libc::SYS_kill, libc::SYS_tgkill, libc::SYS_rt_sigqueueinfo, libc::SYS_rt_tgsigqueueinfo] {
        deny.insert(nr, vec![rule(vec![cond(0, SeccompCmpOp::Ne, pid)?])?]);
    }
    // Limits and scheduling only of ourselves (0 or our pid): an ordinary user's worker could
    // otherwise shrink the host's RLIMIT_AS or starve it.
    for nr in [libc::SYS_prlimit64, libc::SYS_sched_setaffinity, libc::SYS_sched_setscheduler, libc::SYS_sched_setparam]
    {
        deny.insert(nr, vec![rule(vec![cond(0, SeccompCmpOp::Ne, 0)?, cond(0, SeccompCmpOp::Ne, pid)?])?]);
    }
    // setpriority(which, who, prio): `who` is argument 1.
    deny.insert(
        libc::SYS_setpriority,
        vec![rule(vec![cond(1, SeccompCmpOp::Ne, 0)?, cond(1, SeccompCmpOp::Ne, pid)?])?],
    );

    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let main: BpfProgram = SeccompFilter::new(deny, SeccompAction::Allow, eperm, arch)
        .and_then(BpfProgram::try_from)
        .map_err(|e| e.to_string())?;
    // clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes glibc fall
    // back to clone(2), whose flags the rule above checks. A second filter because one filter
    // has a single match action.
    let clone3: BpfProgram = SeccompFilter::new(
        [(libc::SYS_clone3, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| e.to_string())?;
    seccompiler::apply_filter(&main).map_err(|e| e.to_string())?;
    seccompiler::apply_filter(&clone3).map_err(|e| e.to_string())?;
    Ok(())
}
