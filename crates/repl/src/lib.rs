//! `quarry-repl`: the sandboxed Python REPL in which a root model's code runs over the user's
//! documents — a pyo3 worker process (`quarry worker repl`) speaking JSON lines, confined with
//! Landlock, a network namespace or seccomp, and rlimits, that the host can always kill.
//!
//! Nothing lives here yet: the REPL issue builds it. The crate exists now so the workspace has
//! the shape the design describes and later work has an obvious home.
