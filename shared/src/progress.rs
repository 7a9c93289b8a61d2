//! Progress of long runs (the bench's sweeps and repeats, a run's seconds,
//! chaos, the simulation's seeds, the model checker's states): a bar on a
//! terminal (`indicatif`, on stderr), plain lines otherwise, at most one per
//! [`PLAIN_LINE_EVERY`], so a log or CI output shows the run is alive
//! without a line per tick. Never in the processes or the wasm build (the
//! `progress` feature).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The least time between two plain progress lines.
pub const PLAIN_LINE_EVERY: Duration = Duration::from_secs(30);

pub struct Progress {
    label: String,
    /// None: a count with no end known (states found so far).
    total: Option<u64>,
    unit: &'static str,
    bar: Option<ProgressBar>,
    /// When the last plain line was printed (None: none yet), and how many.
    plain: Mutex<(Option<Instant>, u64)>,
}

impl Progress {
    /// Progress through `total` steps (runs, points), shown as `3/5`.
    pub fn steps(label: &str, total: u64) -> Progress {
        Progress::new(label, Some(total), "")
    }

    /// Progress through `total` seconds of a timed run.
    pub fn seconds(label: &str, total: u64) -> Progress {
        Progress::new(label, Some(total), " s")
    }

    /// A count with no known end, e.g. `unit` = " states".
    pub fn count(label: &str, unit: &'static str) -> Progress {
        Progress::new(label, None, unit)
    }

    fn new(label: &str, total: Option<u64>, unit: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let template = match total {
                Some(_) => format!(
                    "{{prefix}} [{{bar:30}}] {{pos}}/{{len}}{unit} {{msg}} ({{elapsed}}, about {{eta}} left)"
                ),
                None => format!("{{prefix}} {{spinner}} {{pos}}{unit} {{msg}} ({{elapsed}})"),
            };
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = match total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::no_length(),
            }
            .with_style(style);
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            label: label.to_string(),
            total,
            unit,
            bar,
            plain: Mutex::new((None, 0)),
        }
    }

    /// Whether a bar is drawn (stderr is a terminal).
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    /// Where the work is: `position` of the total, with what it is doing.
    /// Plain mode prints a line for the first call and then at most one
    /// per [`PLAIN_LINE_EVERY`], unless `always` (a step worth a line).
    pub fn set(&self, position: u64, message: &str, always: bool) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.clamp(position));
            bar.set_message(message.to_string());
            return;
        }
        let mut plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        let due = plain.0.is_none_or(|at| at.elapsed() >= PLAIN_LINE_EVERY);
        if always || due {
            *plain = (Some(Instant::now()), plain.1 + 1);
            let of = self.total.map_or(String::new(), |t| format!("/{t}"));
            eprintln!(
                "{} {}{of}{}{}{}",
                self.label,
                self.clamp(position),
                self.unit,
                if message.is_empty() { "" } else { ": " },
                message
            );
        }
    }

    fn clamp(&self, position: u64) -> u64 {
        self.total.map_or(position, |t| position.min(t))
    }

    /// Runs `f` (e.g. printing a finished run's result to stdout) with the
    /// bar hidden, so the two do not mix on the terminal.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar; plain mode prints nothing more.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mode_prints_the_first_line_then_waits() {
        let p = Progress {
            label: "[t]".into(),
            total: Some(10),
            unit: " s",
            bar: None,
            plain: Mutex::new((None, 0)),
        };
        let lines = || p.plain.lock().unwrap_or_else(|e| e.into_inner()).1;
        p.set(1, "one", false);
        assert_eq!(lines(), 1, "the first call prints");
        p.set(2, "two", false);
        assert_eq!(
            lines(),
            1,
            "a second line within {PLAIN_LINE_EVERY:?} is not printed"
        );
        p.set(3, "three", true);
        assert_eq!(lines(), 2, "a step worth a line is printed");
    }
}
