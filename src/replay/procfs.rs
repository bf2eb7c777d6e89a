//! What the load generator reads from `/proc` (Linux): a process's CPU time and memory, the
//! machine's busy time, and the kernel's counts of UDP datagrams dropped for want of socket
//! buffer space. Each answers `None` where `/proc` does not say.

/// A process's CPU time and memory, read from `/proc` (Linux).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// User + system CPU time, microseconds.
    pub cpu_us: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`, 100 on every Linux ABI in use).
const USER_HZ: u64 = 100;

/// Reads `/proc/PID/stat` (utime + stime) and `/proc/PID/status` (VmRSS); `pid` "self" works.
pub fn proc_sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name come field 3 (state) onwards: utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample {
        cpu_us: (utime + stime) * 1_000_000 / USER_HZ,
        rss_kib,
    })
}

/// CPU time the whole machine spent busy (user, nice, system, irq, softirq, steal) from
/// `/proc/stat`, microseconds: with the gateway's and the load generator's own share taken out,
/// it shows whether something else competed for the cores during a measurement.
pub fn machine_busy_us() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    Some(busy * 1_000_000 / USER_HZ)
}

/// Datagrams the kernel dropped on UDP sockets bound to any of `ports` on this machine (the
/// `drops` column of `/proc/net/udp` and `/proc/net/udp6`: receive-buffer overflows, counted
/// per socket since it was opened). `None` if neither file can be read.
pub fn udp_socket_drops(ports: &[u16]) -> Option<u64> {
    let mut total = None;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let sum = total.get_or_insert(0u64);
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ref
            // pointer drops
            let port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let drops = f.last().and_then(|d| d.parse::<u64>().ok());
            if let (Some(port), Some(drops), true) = (port, drops, f.len() >= 13) {
                if ports.contains(&port) {
                    *sum += drops;
                }
            }
        }
    }
    total
}

/// Machine-wide UDP `RcvbufErrors` + `SndbufErrors` from `/proc/net/snmp` (every socket of
/// every process in this network namespace).
pub fn udp_buffer_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some(get("RcvbufErrors")? + get("SndbufErrors").unwrap_or(0))
}
