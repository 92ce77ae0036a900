//! CPU time per thread of this process, from /proc/self/task/*/stat (user +
//! system, in clock ticks of 1/100 s: Linux's USER_HZ on every platform the
//! harness runs on), so a phase can say how busy each thread was: above
//! all the store's writer, the one thread every slice passes through.

use std::collections::BTreeMap;

/// Linux reports per-thread CPU time in USER_HZ ticks, 100 per second.
const TICKS_PER_S: f64 = 100.0;

/// The writer's name as /proc shows it (thread names are cut to 15 bytes):
/// `booster-store-writer`.
pub const STORE_WRITER: &str = "booster-store-w";

/// CPU seconds per thread id, with the thread's name.
#[derive(Clone, Debug, Default)]
pub struct ThreadTimes(BTreeMap<u32, (String, f64)>);

/// Every thread of this process now.
pub fn snapshot() -> ThreadTimes {
    let mut times = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return ThreadTimes(times);
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(parsed) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            times.insert(tid, parsed);
        }
    }
    ThreadTimes(times)
}

/// (name, CPU seconds) from one `stat` line: the name sits in parentheses
/// and may hold spaces, so fields are counted from the last `)`;
/// utime and stime are fields 14 and 15.
pub fn parse_stat(line: &str) -> Option<(String, f64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_S))
}

/// Busy share in % of `wall_s` per thread name (threads of one name, such
/// as the workers, summed: two busy workers read 200%), for the CPU used
/// between `before` and `after`. Threads that ended in between are missed.
pub fn busy_percent(
    before: &ThreadTimes,
    after: &ThreadTimes,
    wall_s: f64,
) -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    for (tid, (name, cpu_after)) in &after.0 {
        let cpu_before = before.0.get(tid).map_or(0.0, |(_, c)| *c);
        let used = (cpu_after - cpu_before).max(0.0);
        *by_name.entry(name.clone()).or_insert(0.0) += 100.0 * used / wall_s.max(1e-9);
    }
    by_name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_the_name_and_user_plus_system_time() {
        let line =
            "4242 (booster-store-w) S 1 1 1 0 -1 4194368 10 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        let (name, cpu_s) = parse_stat(line).unwrap();
        assert_eq!(name, "booster-store-w");
        assert!((cpu_s - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_is_read_whole() {
        let line = "7 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0";
        let (name, cpu_s) = parse_stat(line).unwrap();
        assert_eq!(name, "a (b) c");
        assert!((cpu_s - 0.1).abs() < 1e-9);
    }

    #[test]
    fn cpu_used_between_snapshots_is_summed_per_name() {
        let t = |entries: &[(u32, &str, f64)]| {
            ThreadTimes(
                entries
                    .iter()
                    .map(|(tid, name, cpu)| (*tid, (name.to_string(), *cpu)))
                    .collect(),
            )
        };
        let before = t(&[(1, "booster-worker-", 1.0), (2, "booster-worker-", 1.0)]);
        let after = t(&[
            (1, "booster-worker-", 1.5),
            (2, "booster-worker-", 2.0),
            (3, STORE_WRITER, 0.25),
        ]);
        let busy = busy_percent(&before, &after, 1.0);
        assert!((busy["booster-worker-"] - 150.0).abs() < 1e-9);
        assert!((busy[STORE_WRITER] - 25.0).abs() < 1e-9);
    }

    #[test]
    fn this_process_has_at_least_its_own_thread() {
        assert!(!snapshot().0.is_empty());
    }
}
