//! Time each process's threads spent runnable but waiting for a core, from
//! `/proc/<pid>/task/<tid>/schedstat` (run ns, run-queue wait ns, times
//! switched in): on a loaded two-core machine a transfer's latency is as
//! much this waiting as work, and every hop between threads or processes
//! (a message, a log force handed to the writer thread) adds one wake-up.

use std::collections::HashMap;
use std::time::Instant;

/// Per process: each thread's counters, by thread id.
pub struct Snapshot {
    at: Instant,
    procs: Vec<HashMap<u32, Counters>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    wait_ns: u64,
    switches: u64,
}

/// Takes a [`Snapshot`] (a process that cannot be read has no threads).
pub fn snapshot(procs: &[(String, u32)]) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        procs: procs.iter().map(|(_, pid)| threads(*pid)).collect(),
    }
}

/// One process's waiting between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub process: String,
    /// Milliseconds its threads together waited for a core, per second.
    pub wait_ms_per_s: f64,
    /// Times its threads were switched in (woke up or were resumed), per
    /// committed transfer.
    pub switches_per_commit: f64,
    /// The mean wait of one switch-in, in microseconds.
    pub wait_us_per_switch: f64,
}

/// What each process waited between two snapshots; None if no thread
/// could be read at both ends (a kernel without schedstats).
pub fn between(
    procs: &[(String, u32)],
    before: &Snapshot,
    after: &Snapshot,
    committed: u64,
) -> Option<Vec<Waiting>> {
    let secs = after.at.duration_since(before.at).as_secs_f64();
    let mut any = false;
    let waiting = procs
        .iter()
        .zip(before.procs.iter().zip(&after.procs))
        .map(|((name, _), (b, a))| {
            let (d, seen) = delta(b, a);
            any |= seen;
            Waiting {
                process: name.clone(),
                wait_ms_per_s: d.wait_ns as f64 / 1e6 / secs.max(1e-9),
                switches_per_commit: d.switches as f64 / committed.max(1) as f64,
                wait_us_per_switch: d.wait_ns as f64 / 1e3 / d.switches.max(1) as f64,
            }
        })
        .collect();
    any.then_some(waiting)
}

/// The sum over threads alive at both snapshots (a thread that started or
/// ended in between is left out rather than counted from zero), and
/// whether there was any.
fn delta(before: &HashMap<u32, Counters>, after: &HashMap<u32, Counters>) -> (Counters, bool) {
    let mut sum = Counters::default();
    let mut seen = false;
    for (tid, a) in after {
        if let Some(b) = before.get(tid) {
            seen = true;
            sum.wait_ns += a.wait_ns.saturating_sub(b.wait_ns);
            sum.switches += a.switches.saturating_sub(b.switches);
        }
    }
    (sum, seen)
}

fn threads(pid: u32) -> HashMap<u32, Counters> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid: u32 = task.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            Some((tid, parse(&text)?))
        })
        .collect()
}

/// `<run ns> <wait ns> <switches>`.
fn parse(text: &str) -> Option<Counters> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let _run_ns = fields.next()??;
    Some(Counters {
        wait_ns: fields.next()??,
        switches: fields.next()??,
    })
}

/// `coordinator 175 ms/s (0.31 per transfer, 34 us each), ...`
pub fn describe(waiting: &[Waiting]) -> String {
    waiting
        .iter()
        .map(|w| {
            format!(
                "{} {:.0} ms/s ({:.2} per transfer, {:.0} us each)",
                w.process, w.wait_ms_per_s, w.switches_per_commit, w.wait_us_per_switch
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedstat_line_is_run_wait_and_switches() {
        assert_eq!(
            parse("123456 7890 42\n"),
            Some(Counters {
                wait_ns: 7890,
                switches: 42
            })
        );
        assert_eq!(parse("1 2\n"), None, "too short");
        assert_eq!(parse("1 x 3\n"), None, "not a number");
    }

    #[test]
    fn only_threads_seen_at_both_ends_count() {
        let c = |wait_ns, switches| Counters { wait_ns, switches };
        let before = HashMap::from([(1, c(1_000, 10)), (2, c(5_000, 50))]);
        // Thread 2 ended, thread 3 started: neither is counted.
        let after = HashMap::from([(1, c(4_000, 13)), (3, c(9_000_000, 900))]);
        assert_eq!(delta(&before, &after), (c(3_000, 3), true));
        assert_eq!(delta(&HashMap::new(), &after), (c(0, 0), false));
    }

    #[test]
    fn this_process_can_be_read() {
        let me = [("bench".to_string(), std::process::id())];
        let before = snapshot(&me);
        // Joining a sleeping thread blocks this one: it is switched out,
        // and in again when the worker ends.
        let worker =
            std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(20)));
        let _ = worker.join();
        let waiting =
            between(&me, &before, &snapshot(&me), 1).expect("schedstat is readable on Linux here");
        assert_eq!(waiting.len(), 1);
        assert!(waiting[0].switches_per_commit >= 1.0, "{waiting:?}");
        assert!(describe(&waiting).starts_with("bench "));
    }
}
