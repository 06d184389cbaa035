//! The binaries' tracing subscriber: `TRELLIS_LOG` (default `warn`) on stderr, with the
//! filter behind tracing-subscriber's reload layer so that the proxy's admin `/logging`
//! can change it at run time.

use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The installed filter and the handle that replaces it.
#[derive(Debug)]
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
}

/// Installs the process's subscriber; call once, first thing.
pub fn init() -> Arc<LogLevel> {
    let directives = std::env::var("TRELLIS_LOG")
        .ok()
        .filter(|d| EnvFilter::try_new(d).is_ok())
        .unwrap_or_else(|| "warn".to_string());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&directives));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    Arc::new(LogLevel {
        handle,
        current: Mutex::new(directives),
    })
}

impl trellis_proxy::telemetry::logging::LogLevel for LogLevel {
    fn get(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, directives: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = directives.to_string();
        Ok(())
    }
}
