//! Small words for messages people read: durations rounded the way a
//! person writes them, and counts with the right plural.

use std::time::Duration;

/// `850ms`, `2s`, `4.001s`, `2m30s`: milliseconds at most, never the
/// nanosecond tail of a measured duration.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let s = ms / 1000;
        let frac = ms % 1000;
        return if frac == 0 {
            format!("{s}s")
        } else {
            let f = format!("{frac:03}");
            format!("{s}.{}s", f.trim_end_matches('0'))
        };
    }
    let secs = (ms + 500) / 1000;
    let (m, s) = (secs / 60, secs % 60);
    if s == 0 {
        format!("{m}m")
    } else {
        format!("{m}m{s}s")
    }
}

/// `1 case`, `2 cases`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `1 byte`, `125 bytes`.
pub fn bytes(n: usize) -> String {
    count(n, "byte", "bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_rounded_to_milliseconds() {
        assert_eq!(duration(Duration::from_nanos(4_001_090_366)), "4.001s");
        assert_eq!(duration(Duration::from_millis(2000)), "2s");
        assert_eq!(duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(duration(Duration::from_micros(850_400)), "850ms");
        assert_eq!(duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(duration(Duration::from_secs(300)), "5m");
        assert_eq!(count(1, "case", "cases"), "1 case");
        assert_eq!(count(0, "case", "cases"), "0 cases");
        assert_eq!(bytes(1), "1 byte");
        assert_eq!(bytes(125), "125 bytes");
    }
}
