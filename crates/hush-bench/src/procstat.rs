//! CPU time and resident memory of a process, from `/proc` (Linux).

use std::time::Duration;

/// A process's resource use at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Sample {
    /// User + system CPU time.
    pub cpu: Duration,
    /// Resident set size in bytes.
    pub rss: u64,
}

/// Clock ticks per second used by `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: u64 = 100;

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` if unavailable.
pub fn sample(pid: Option<u32>) -> Option<Sample> {
    let base = pid.map_or_else(|| "/proc/self".to_owned(), |p| format!("/proc/{p}"));
    let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after ')'.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("{base}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ticks = utime + stime;
    Some(Sample {
        cpu: Duration::from_millis(ticks * 1000 / TICKS_PER_SEC),
        rss: rss_kb * 1024,
    })
}

/// The sum of several processes' samples; `None` when there are none or one
/// is unreadable.
pub fn sample_all(pids: &[u32]) -> Option<Sample> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(Sample::default(), |acc, p| {
        let s = sample(Some(*p))?;
        Some(Sample {
            cpu: acc.cpu + s.cpu,
            rss: acc.rss + s.rss,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let s = sample(None).expect("/proc/self is readable on Linux");
        assert!(s.rss > 0);
        assert!(sample(Some(u32::MAX)).is_none());
    }
}
