//! CPU time (user + system) of processes, from `/proc/<pid>/stat`: what a
//! committed transfer costs each process, whatever else runs on the machine.
//! And the whole machine's, from `/proc/stat`: how busy the cores were, and
//! how much of that was not this benchmark (other work on a shared host,
//! which the figures of a run depend on).

/// CPU ticks of each process and of the machine at one moment.
pub struct Snapshot {
    procs: Vec<u64>,
    machine: Option<Machine>,
    sched: crate::sched::Snapshot,
}

/// Takes a [`Snapshot`] (a process that cannot be read counts 0 ticks).
pub fn snapshot(procs: &[(String, u32)]) -> Snapshot {
    Snapshot {
        procs: procs
            .iter()
            .map(|(_, pid)| ticks(*pid).unwrap_or(0))
            .collect(),
        machine: std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| parse_machine(&stat)),
        sched: crate::sched::snapshot(procs),
    }
}

/// How the cores were used between two snapshots, in % of all of them
/// (100 = every core busy all the time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Host {
    pub busy_pct: f64,
    /// The benchmark's own processes (the cluster and the load generator).
    pub ours_pct: f64,
    /// Everything else on the machine (steal not included).
    pub others_pct: f64,
    /// Time the hypervisor gave to other guests.
    pub steal_pct: f64,
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cores {:.0} % busy (this benchmark's processes {:.0} %, everything else {:.0} %), steal {:.1} %",
            self.busy_pct, self.ours_pct, self.others_pct, self.steal_pct
        )
    }
}

/// What the processes and the machine used since `before`.
pub struct Usage {
    /// (process, CPU microseconds per committed transfer)
    pub per_commit_us: Vec<(String, f64)>,
    /// None if `/proc/stat` could not be read.
    pub host: Option<Host>,
    /// Each process's waiting for a core (None without schedstats).
    pub waiting: Option<Vec<crate::sched::Waiting>>,
}

pub fn since(procs: &[(String, u32)], before: &Snapshot, committed: u64) -> Usage {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let after = snapshot(procs);
    let waiting = crate::sched::between(procs, &before.sched, &after.sched, committed);
    let deltas: Vec<u64> = before
        .procs
        .iter()
        .zip(&after.procs)
        .map(|(b, a)| a.saturating_sub(*b))
        .collect();
    let per_commit_us = procs
        .iter()
        .zip(&deltas)
        .map(|((name, _), d)| {
            let us = *d as f64 / ticks_per_s * 1e6;
            (name.clone(), us / committed.max(1) as f64)
        })
        .collect();
    let host = match (before.machine, after.machine) {
        (Some(b), Some(a)) => host(b, a, deltas.iter().sum()),
        _ => None,
    };
    Usage {
        per_commit_us,
        host,
        waiting,
    }
}

/// The machine's busy, steal and total ticks (over all cores).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Machine {
    busy: u64,
    steal: u64,
    total: u64,
}

/// The `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq
/// steal (guest time is already counted in user). Idle and iowait are not
/// busy; steal is (the core did no work for this machine).
fn parse_machine(stat: &str) -> Option<Machine> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    let idle = at(3) + at(4);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    Some(Machine {
        busy,
        steal: at(7),
        total: busy + idle,
    })
}

fn host(before: Machine, after: Machine, ours_ticks: u64) -> Option<Host> {
    let total = after.total.checked_sub(before.total)?;
    if total == 0 {
        return None;
    }
    let pct = |ticks: u64| 100.0 * ticks as f64 / total as f64;
    let busy_pct = pct(after.busy.saturating_sub(before.busy));
    let steal_pct = pct(after.steal.saturating_sub(before.steal));
    // Busy counts steal; the processes on this machine do not run in it.
    let here_pct = (busy_pct - steal_pct).max(0.0);
    let ours_pct = pct(ours_ticks).min(here_pct);
    Some(Host {
        busy_pct,
        ours_pct,
        others_pct: here_pct - ours_pct,
        steal_pct,
    })
}

/// utime + stime of a process, in clock ticks (all its threads; fields 14
/// and 15 of `/proc/<pid>/stat`, counted after the parenthesised name).
fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // after_name starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_line_splits_into_busy_steal_and_idle() {
        let stat = "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 50 2 25 400 10 1 1 5 0 0\nintr 1 2 3\n";
        let m = parse_machine(stat).expect("parses");
        assert_eq!(
            m,
            Machine {
                busy: 100 + 5 + 50 + 3 + 2 + 10,
                steal: 10,
                total: 170 + 820,
            }
        );
        assert_eq!(parse_machine("cpu0 1 2 3\n"), None, "no total line");
        assert_eq!(parse_machine("cpu  1 x 3\n"), None, "not a number");
    }

    #[test]
    fn others_are_what_the_benchmark_did_not_use() {
        let before = Machine {
            busy: 1_000,
            steal: 10,
            total: 2_000,
        };
        let after = Machine {
            busy: 1_150,
            steal: 12,
            total: 2_200,
        };
        let h = host(before, after, 120).expect("time passed");
        assert!((h.busy_pct - 75.0).abs() < 1e-9, "{h:?}");
        assert!((h.ours_pct - 60.0).abs() < 1e-9, "{h:?}");
        assert!(
            (h.others_pct - 14.0).abs() < 1e-9,
            "steal is not other load: {h:?}"
        );
        assert!((h.steal_pct - 1.0).abs() < 1e-9, "{h:?}");
        assert_eq!(host(before, before, 0), None, "no time passed");
        let h = host(before, after, 500).expect("time passed");
        assert_eq!(h.others_pct, 0.0, "ours never counts above busy: {h:?}");
        assert!((h.ours_pct - 74.0).abs() < 1e-9, "nor into steal: {h:?}");
    }
}
