//! Stream events for the caller's logger: kept in a small queue per stream (the progress hook
//! tells the caller to drain it), only at or above the stream's `log_level`.

use std::collections::VecDeque;

/// How much a stream reports. Ordered: `Error` < `Warn` < `Info` < `Debug`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct LogEvent {
    pub level: LogLevel,
    pub message: String,
}

/// Events not yet taken; the oldest are dropped (and counted) beyond [`LogQueue::CAP`].
#[derive(Default)]
pub(super) struct LogQueue {
    pub events: VecDeque<LogEvent>,
    pub dropped: u64,
}

impl LogQueue {
    const CAP: usize = 1000;

    pub fn push(&mut self, e: LogEvent) {
        self.events.push_back(e);
        self.trim();
    }

    /// Drops the oldest events beyond the cap.
    pub fn trim(&mut self) {
        while self.events.len() > Self::CAP {
            self.events.pop_front();
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_keeps_the_last_events_and_counts_the_dropped_ones() {
        let mut q = LogQueue::default();
        for i in 0..(LogQueue::CAP + 5) {
            q.push(LogEvent { level: LogLevel::Info, message: i.to_string() });
        }
        assert_eq!((q.events.len(), q.dropped), (LogQueue::CAP, 5));
        assert_eq!(q.events.front().unwrap().message, "5");
        assert!(LogLevel::Error < LogLevel::Warn && LogLevel::Info < LogLevel::Debug);
        assert_eq!(LogLevel::parse("WARNING"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("verbose"), None);
    }
}
