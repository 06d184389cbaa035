//! Where access log lines go: `/dev/stdout`, `/dev/stderr` or a file (opened for append,
//! created if missing). Each destination is opened once and shared by every logger that
//! names it, buffered, and flushed by [`Sinks::flush`] — every
//! [`super::access_log::FLUSH_INTERVAL`] from the proxy's run loop, at exit, and on drop.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// An access log's destination (`FileAccessLog.path`, or the stream loggers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Stdout,
    Stderr,
    File(String),
}

impl Target {
    /// `FileAccessLog.path`: the standard streams by their device names, as Istio writes them.
    pub fn from_path(path: &str) -> Target {
        match path {
            "/dev/stdout" => Target::Stdout,
            "/dev/stderr" => Target::Stderr,
            other => Target::File(other.to_string()),
        }
    }
}

type Writer = Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>;

/// The open destinations; one per proxy.
#[derive(Default)]
pub struct Sinks {
    /// `None`: the file could not be opened (warned once; its lines are dropped).
    open: Mutex<HashMap<Target, Option<Writer>>>,
}

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinks").finish_non_exhaustive()
    }
}

impl Sinks {
    /// Appends one rendered line (which carries its own newline).
    pub fn write(&self, target: &Target, line: &[u8]) {
        let Some(writer) = self.writer(target) else {
            return;
        };
        let mut w = writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = w.write_all(line) {
            tracing::debug!(?target, error = %e, "access log line lost");
        }
    }

    /// Pushes buffered lines out.
    pub fn flush(&self) {
        let writers: Vec<Writer> = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .flatten()
            .cloned()
            .collect();
        for w in writers {
            let _ = w.lock().unwrap_or_else(PoisonError::into_inner).flush();
        }
    }

    fn writer(&self, target: &Target) -> Option<Writer> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = open.get(target) {
            return w.clone();
        }
        let made = match open_target(target) {
            Ok(out) => Some(Arc::new(Mutex::new(BufWriter::with_capacity(
                64 * 1024,
                out,
            )))),
            Err(e) => {
                tracing::warn!(?target, error = %e, "cannot open the access log: its lines are dropped");
                None
            }
        };
        open.insert(target.clone(), made.clone());
        made
    }
}

fn open_target(target: &Target) -> std::io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        Target::Stdout => Box::new(std::io::stdout()),
        Target::Stderr => Box::new(std::io::stderr()),
        Target::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
    })
}
