//! `GeneralizedTime` as RFC 3161 uses it: `YYYYMMDDhhmmss[.f{1,9}]Z`.
//!
//! der's `GeneralizedTime` rejects the fractional part, which RFC 3161
//! §2.4.2 explicitly allows ("genTime ... MAY include fractions of seconds").
//! The value is always UTC (`Z`); local times and offsets are rejected, as
//! RFC 5280 requires for DER.

use jiff::Timestamp;

/// Parses the content octets of a `GeneralizedTime` into a timestamp.
pub(crate) fn parse(value: &[u8]) -> Result<Timestamp, String> {
    let text = std::str::from_utf8(value).map_err(|_| "genTime is not ASCII".to_string())?;
    let body = text
        .strip_suffix('Z')
        .ok_or_else(|| format!("genTime {text:?} does not end in Z (UTC)"))?;
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("genTime {text:?} is not YYYYMMDDhhmmss"));
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
            // Right-pad to nanoseconds: ".611" is 611_000_000 ns.
            let digits: i32 = f
                .parse()
                .map_err(|_| format!("genTime {text:?} has a bad fraction"))?;
            digits * 10_i32.pow(9 - f.len() as u32)
        }
        Some(_) => return Err(format!("genTime {text:?} has a bad fraction")),
    };
    let num = |range: std::ops::Range<usize>| -> Result<i16, String> {
        whole[range]
            .parse::<i16>()
            .map_err(|_| format!("genTime {text:?} is not numeric"))
    };
    let datetime = jiff::civil::DateTime::new(
        num(0..4)?,
        num(4..6)? as i8,
        num(6..8)? as i8,
        num(8..10)? as i8,
        num(10..12)? as i8,
        num(12..14)? as i8,
        nanos,
    )
    .map_err(|e| format!("genTime {text:?} is not a valid date: {e}"))?;
    datetime
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| format!("genTime {text:?} is out of range: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn accepts_whole_seconds() {
        let t = parse(b"20261125180834Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T18:08:34Z");
    }

    #[test]
    fn accepts_fractions_of_one_to_nine_digits() {
        assert_eq!(
            parse(b"20261125180834.611Z").unwrap().to_string(),
            "2026-11-25T18:08:34.611Z"
        );
        assert_eq!(
            parse(b"20261125180834.5Z").unwrap().subsec_nanosecond(),
            500_000_000
        );
        assert_eq!(
            parse(b"20261125180834.123456789Z")
                .unwrap()
                .subsec_nanosecond(),
            123_456_789
        );
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            &b"20261125180834"[..],
            b"20261125180834.Z",
            b"20261125180834.1234567890Z",
            b"2026112518083Z",
            b"20261125180834+0100",
            b"20261325180834Z",
            b"2026112518083aZ",
            b"20261125180834.-1Z",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
