//! The host's offset from UTC at a moment: the one call into the C
//! library's time-zone rules (std knows no time zones). Exim writes its log
//! in local time, so reading a journal entry's time as Exim would have
//! written it, and reading an operator's local date, both need it.

/// The host's offset from UTC, in seconds, at `utc_seconds` (0 when the C
/// library cannot tell: UTC rather than no time).
#[allow(unsafe_code)] // localtime_r(3): the C library knows the time zone
pub fn utc_offset_seconds(utc_seconds: i64) -> i64 {
    // time_t is i64 on every target the packages are built for.
    let seconds = utc_seconds as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value to overwrite, and
    // localtime_r writes only into the `tm` it is given, which lives on
    // our stack; both pointers are valid for the call, and its result is
    // checked before `tm` is read.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let converted = unsafe { libc::localtime_r(&seconds, &mut tm) };
    if converted.is_null() { 0 } else { tm.tm_gmtoff }
}

/// The host's offset from UTC at `utc_ms`, in ms: what turns a moment
/// into the clock Exim writes its lines in (local time, stored as if UTC).
pub fn utc_offset_ms(utc_ms: i64) -> i64 {
    utc_offset_seconds(utc_ms.div_euclid(1000)) * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_within_a_day_and_stable_for_one_moment() {
        let now = 1_733_500_000;
        let offset = utc_offset_seconds(now);
        assert!(offset.abs() <= 14 * 3600, "{offset}");
        assert_eq!(utc_offset_seconds(now), offset);
    }
}
