//! Envoy's access loggers as the xDS configures them (`access_log` on the HTTP connection
//! manager, `tcp_proxy` and the listener): where each line goes, its format
//! ([`super::format`]) and the filter that decides whether a request is logged. Lines are
//! rendered into one reusable buffer per thread and written through [`super::sink`].

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use super::format::{Context, Format};
use super::sink::{Sinks, Target};
use crate::flags::Flags;

/// One configured access logger.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    pub target: Target,
    pub format: Format,
    pub filter: Option<Filter>,
}

#[cfg(test)]
impl AccessLog {
    /// A text-format log appended to `path`, as tests across the crate need one.
    pub fn text_file(path: &std::path::Path, format: &str, filter: Option<Filter>) -> Self {
        AccessLog {
            target: Target::File(path.to_string_lossy().into()),
            format: Format {
                kind: super::format::Kind::Text(
                    super::format::Template::parse(format).expect("test format parses"),
                ),
                omit_empty: false,
            },
            filter,
        }
    }
}

/// Envoy's `ComparisonFilter` operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Eq,
    Ge,
    Le,
    Ne,
}

impl Compare {
    fn holds(self, value: u64, against: u64) -> bool {
        match self {
            Compare::Eq => value == against,
            Compare::Ge => value >= against,
            Compare::Le => value <= against,
            Compare::Ne => value != against,
        }
    }
}

/// The access-log filters the proxy evaluates (others are dropped with a warning at
/// config time, so that their logger logs everything).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    StatusCode(Compare, u64),
    /// Milliseconds.
    Duration(Compare, u64),
    /// The listed flags; empty: any flag.
    ResponseFlags(Flags),
    /// The proxy runs no health checks: every request passes.
    NotHealthCheck,
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

impl Filter {
    /// Whether the request or connection is logged.
    pub fn admits(&self, ctx: &Context<'_>) -> bool {
        match self {
            Filter::StatusCode(op, v) => op.holds(u64::from(ctx.response_code), *v),
            Filter::Duration(op, v) => op.holds(ctx.duration.as_millis() as u64, *v),
            Filter::ResponseFlags(wanted) if wanted.is_empty() => !ctx.flags.is_empty(),
            Filter::ResponseFlags(wanted) => ctx.flags.intersects(*wanted),
            Filter::NotHealthCheck => true,
            Filter::And(all) => all.iter().all(|f| f.admits(ctx)),
            Filter::Or(any) => any.iter().any(|f| f.admits(ctx)),
        }
    }
}

thread_local! {
    /// The line being rendered: one buffer per worker thread, reused for every line.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Renders `ctx` for each logger whose filter admits it and writes the line.
pub fn write(logs: &[Arc<AccessLog>], ctx: &Context<'_>, sinks: &Sinks) {
    LINE.with(|line| {
        let Ok(mut line) = line.try_borrow_mut() else {
            return;
        };
        for log in logs {
            if log.filter.as_ref().is_some_and(|f| !f.admits(ctx)) {
                continue;
            }
            line.clear();
            log.format.render(ctx, &mut line);
            sinks.write(&log.target, line.as_bytes());
        }
        // A freak long line should not pin its memory on the thread for ever.
        if line.capacity() > 64 * 1024 {
            *line = String::new();
        }
    });
}

/// Envoy's `access_log_flush_interval` default.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::Flag;

    fn ctx(code: u16, flags: Flags) -> Context<'static> {
        Context {
            response_code: code,
            flags,
            duration: Duration::from_millis(20),
            ..Context::default()
        }
    }

    #[test]
    fn filters_are_envoys() {
        let mut uh = Flags::default();
        uh.insert(Flag::NoHealthyUpstream);
        let mut nr = Flags::default();
        nr.insert(Flag::NoRoute);
        assert!(Filter::ResponseFlags(nr).admits(&ctx(0, nr)));
        assert!(!Filter::ResponseFlags(nr).admits(&ctx(503, uh)));
        assert!(Filter::ResponseFlags(Flags::default()).admits(&ctx(503, uh)));
        assert!(!Filter::ResponseFlags(Flags::default()).admits(&ctx(200, Flags::default())));
        assert!(Filter::StatusCode(Compare::Ge, 500).admits(&ctx(503, uh)));
        assert!(!Filter::StatusCode(Compare::Ge, 500).admits(&ctx(200, uh)));
        let both = Filter::And(vec![
            Filter::StatusCode(Compare::Ne, 200),
            Filter::Duration(Compare::Le, 10),
        ]);
        assert!(!both.admits(&ctx(503, uh)));
        let either = Filter::Or(vec![
            Filter::StatusCode(Compare::Eq, 200),
            Filter::Duration(Compare::Ge, 10),
        ]);
        assert!(either.admits(&ctx(503, uh)));
    }

    #[test]
    fn lines_go_to_their_file_through_their_filter() {
        let dir = std::env::temp_dir().join(format!("trellis-al-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        let log = |filter| {
            Arc::new(AccessLog::text_file(
                &path,
                "%RESPONSE_CODE% %RESPONSE_FLAGS%\n",
                filter,
            ))
        };
        let mut nr = Flags::default();
        nr.insert(Flag::NoRoute);
        let logs = [log(None), log(Some(Filter::ResponseFlags(nr)))];
        let sinks = Sinks::default();
        write(&logs, &ctx(200, Flags::default()), &sinks);
        write(&logs, &ctx(404, nr), &sinks);
        sinks.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, "200 -\n404 NR\n404 NR\n");
    }
}
