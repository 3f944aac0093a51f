//! One thread owns a run's REPL from start to finish.
//!
//! Why not `spawn_blocking`: the worker sets `PR_SET_PDEATHSIG`, which Linux ties to the
//! *thread* that spawned it, not the process. A tokio blocking thread that started the worker
//! (or respawned it after a crash) exits after 10 idle seconds — easily reached while a small
//! model thinks — and the kernel then kills the worker mid-run ("Broken pipe" on the next
//! execution). A dedicated thread that lives as long as the run keeps the worker alive, and
//! every start, restart and execution happens on it.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use quarry_repl::{Context, Environment, HostFunctions, Repl, ReplResult, SandboxConfig};
use tokio::sync::oneshot;

use crate::{Error, Result};

type Job = Box<dyn FnOnce(&mut Repl) + Send>;

/// A REPL living on its own thread; dropping this ends the thread, which kills the worker.
pub struct ReplThread {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl ReplThread {
    /// Starts the worker on a new thread and loads `context` into it.
    pub async fn start(sandbox: SandboxConfig, host: Arc<dyn HostFunctions>, context: Context) -> Result<ReplThread> {
        let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("rlm-repl".into())
            .spawn(move || {
                let mut repl = match Repl::new(sandbox, host).and_then(|mut r| r.load_context(&context).map(|_| r)) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = job_rx.recv() {
                    job(&mut repl);
                }
            })
            .map_err(|e| Error::Worker(format!("could not start the REPL thread: {e}")))?;
        let this = ReplThread { jobs: Some(jobs), thread: Some(thread) };
        ready_rx.await.map_err(|_| Error::Worker("the REPL thread died while starting".into()))??;
        Ok(this)
    }

    /// Queues `code`; await the receiver for the result.
    pub fn execute(&self, code: String) -> Result<oneshot::Receiver<quarry_repl::Result<ReplResult>>> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |repl| {
            let _ = tx.send(repl.execute(&code));
        });
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| Error::Worker("the REPL thread is gone".into()))?;
        Ok(rx)
    }

    /// Ends the thread and waits for the worker to be gone.
    pub async fn shutdown(mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for ReplThread {
    fn drop(&mut self) {
        // Closing the channel is enough: the thread drops the REPL (killing the worker) and ends.
        self.jobs.take();
    }
}
