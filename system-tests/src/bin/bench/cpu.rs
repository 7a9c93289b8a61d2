//! CPU time (user + system) of processes, from `/proc/<pid>/stat`: what a
//! committed transfer costs each process, whatever else runs on the machine.

/// CPU ticks of each process (0 if it cannot be read).
pub fn times(procs: &[(String, u32)]) -> Vec<u64> {
    procs
        .iter()
        .map(|(_, pid)| ticks(*pid).unwrap_or(0))
        .collect()
}

/// (process, CPU microseconds per committed transfer) since `before`.
pub fn per_commit(procs: &[(String, u32)], before: &[u64], committed: u64) -> Vec<(String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let after = times(procs);
    procs
        .iter()
        .zip(before.iter().zip(after))
        .map(|((name, _), (b, a))| {
            let us = a.saturating_sub(*b) as f64 / ticks_per_s * 1e6;
            (name.clone(), us / committed.max(1) as f64)
        })
        .collect()
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
