//! `--fsync-probe`: what one forced log write costs on this machine's disk.
//!
//! Appends 200-byte records to a file, each followed by `fdatasync` (as the
//! logs do), first from one writer and then from three at once (the
//! coordinator and two participants). For comparison, the same from three
//! writers that overwrite a preallocated file instead of appending: on
//! ext4 an append changes the file size, so each fdatasync must also commit
//! the filesystem journal, which every writer on the disk shares.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use shared::limits::{FSYNC_PROBE_RECORD_BYTES, FSYNC_PROBE_SYNCS_PER_WRITER};

pub fn run(dir: &Path) -> anyhow::Result<()> {
    println!("fdatasync after each {FSYNC_PROBE_RECORD_BYTES}-byte record, {FSYNC_PROBE_SYNCS_PER_WRITER} records per writer, in {}:", dir.display());
    for (writers, preallocated) in [(1, false), (3, false), (3, true)] {
        let start = Instant::now();
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let path = dir.join(format!("probe-{writers}-{preallocated}-{w}"));
                std::thread::spawn(move || probe_one(&path, preallocated))
            })
            .collect();
        let mut all_us = Vec::new();
        for handle in handles {
            all_us.extend(
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a probe thread panicked"))??,
            );
        }
        let elapsed = start.elapsed().as_secs_f64();
        all_us.sort_unstable();
        let at = |p: f64| all_us[((p / 100.0) * all_us.len() as f64) as usize];
        let mean = all_us.iter().sum::<u64>() as f64 / all_us.len() as f64;
        println!(
            "  {writers} writer(s), {}: p50 {} us, p99 {} us, mean {mean:.0} us, {:.0} fdatasyncs/s in all",
            if preallocated { "overwriting a preallocated file" } else { "appending" },
            at(50.0),
            at(99.0),
            all_us.len() as f64 / elapsed
        );
    }
    Ok(())
}

/// Microseconds of each fdatasync.
fn probe_one(path: &Path, preallocated: bool) -> anyhow::Result<Vec<u64>> {
    let mut file: File = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    if preallocated {
        file.write_all(&vec![
            0u8;
            FSYNC_PROBE_RECORD_BYTES * FSYNC_PROBE_SYNCS_PER_WRITER
        ])?;
        file.sync_all()?;
        file.seek(SeekFrom::Start(0))?;
    }
    let record = [b'x'; FSYNC_PROBE_RECORD_BYTES];
    let mut times_us = Vec::with_capacity(FSYNC_PROBE_SYNCS_PER_WRITER);
    for _ in 0..FSYNC_PROBE_SYNCS_PER_WRITER {
        file.write_all(&record)?;
        let start = Instant::now();
        file.sync_data()?;
        times_us.push(start.elapsed().as_micros() as u64);
    }
    drop(file);
    std::fs::remove_file(path)?;
    Ok(times_us)
}
