//! Leadership for the operator role (LB-IPAM, per-node BGP configs): exactly one process
//! runs it at a time.
//!
//! In directory mode several `lbspeaker run` processes (one per node namespace in the lab)
//! share one manifest directory. The leader holds an exclusive `flock` on
//! `DIR/status/.operator.lock`; the kernel drops the lock when the holder exits or dies, and
//! the next process to try takes over. The holder writes its identity into the file for
//! `lbspeaker status`. On Kubernetes a Lease does the same job behind the same [`Leadership`]
//! shape (a `watch` of "am I the leader").

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The lock file inside a manifest directory.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join("status").join(".operator.lock")
}

/// "Am I the leader", as it changes.
pub trait Leadership: Send + Sync {
    /// `true` while this process leads.
    fn subscribe(&self) -> watch::Receiver<bool>;
}

/// A file lock taken without blocking.
#[derive(Debug)]
pub struct DirectoryLeader {
    path: PathBuf,
    identity: String,
    held: Option<Flock<File>>,
}

impl DirectoryLeader {
    /// A contender for the lock of `dir` that will say it is `identity` (e.g. `node1 pid 42`).
    pub fn new(dir: &Path, identity: impl Into<String>) -> Self {
        DirectoryLeader {
            path: lock_path(dir),
            identity: identity.into(),
            held: None,
        }
    }

    /// Takes the lock if nobody holds it. `Ok(true)`: this contender leads (now or already).
    pub fn try_acquire(&mut self) -> std::io::Result<bool> {
        if self.held.is_some() {
            return Ok(true);
        }
        if let Some(parent) = self.path.parent() {
            // `status/` only: a manifest directory that is gone is not made again.
            match std::fs::create_dir(parent) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                lock.set_len(0)?;
                lock.seek(SeekFrom::Start(0))?;
                writeln!(lock, "{}", self.identity)?;
                lock.flush()?;
                self.held = Some(lock);
                Ok(true)
            }
            Err((_, Errno::EWOULDBLOCK)) => Ok(false),
            Err((_, e)) => Err(std::io::Error::from(e)),
        }
    }

    /// Whether this contender holds the lock.
    pub fn is_leader(&self) -> bool {
        self.held.is_some()
    }

    /// Lets the lock go (also done on drop and, by the kernel, on exit).
    pub fn release(&mut self) {
        self.held = None;
    }

    /// Who holds the lock of `dir`, as written by the holder, if anyone wrote.
    pub fn holder(dir: &Path) -> Option<String> {
        let mut s = String::new();
        File::open(lock_path(dir))
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    }

    /// Keeps trying every `retry` until it leads, then holds on; the receiver says which.
    /// Dropping the handle aborts the task and lets the lock go.
    pub fn spawn(mut self, retry: Duration) -> LeaderHandle {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(retry);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let was = self.is_leader();
                match self.try_acquire() {
                    Ok(now) => {
                        if now && !was {
                            tracing::info!(lock = %self.path.display(), identity = %self.identity, "became operator leader");
                        }
                        tx.send_if_modified(|v| std::mem::replace(v, now) != now);
                    }
                    Err(e) => {
                        tracing::warn!(lock = %self.path.display(), error = %e, "cannot take the operator lock; retrying");
                    }
                }
            }
        });
        LeaderHandle { rx, task }
    }
}

/// A running [`DirectoryLeader`].
#[derive(Debug)]
pub struct LeaderHandle {
    rx: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Leadership for LeaderHandle {
    fn subscribe(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

impl Drop for LeaderHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Always the leader: for a process that is alone by construction (tests, single node).
#[derive(Debug)]
pub struct AlwaysLeader(watch::Sender<bool>);

impl Default for AlwaysLeader {
    fn default() -> Self {
        AlwaysLeader(watch::channel(true).0)
    }
}

impl Leadership for AlwaysLeader {
    fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_contender_holds_the_lock_and_the_next_takes_over_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = DirectoryLeader::new(dir.path(), "node1 pid 1");
        let mut b = DirectoryLeader::new(dir.path(), "node2 pid 2");
        assert!(a.try_acquire().unwrap());
        assert!(!b.try_acquire().unwrap());
        assert_eq!(
            DirectoryLeader::holder(dir.path()).as_deref(),
            Some("node1 pid 1")
        );
        assert!(a.try_acquire().unwrap(), "re-acquiring is a no-op");
        drop(a);
        assert!(b.try_acquire().unwrap());
        assert_eq!(
            DirectoryLeader::holder(dir.path()).as_deref(),
            Some("node2 pid 2")
        );
        b.release();
        assert!(!b.is_leader());
    }

    #[test]
    fn a_lock_held_by_a_process_that_died_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // A child process takes the lock with flock(1) semantics and is killed.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec 9>>{} && flock -x 9 && echo locked && exec sleep 30",
                path.display()
            ))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        let mut me = DirectoryLeader::new(dir.path(), "me");
        assert!(!me.try_acquire().unwrap(), "the child holds it");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(me.try_acquire().unwrap());
    }

    #[tokio::test]
    async fn the_spawned_contender_reports_leadership_when_it_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = DirectoryLeader::new(dir.path(), "first");
        assert!(first.try_acquire().unwrap());
        let handle = DirectoryLeader::new(dir.path(), "second").spawn(Duration::from_millis(20));
        let mut rx = handle.subscribe();
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!*rx.borrow());
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| *v))
            .await
            .unwrap()
            .unwrap();
    }
}
