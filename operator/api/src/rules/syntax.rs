//! Small syntax checks the rules share: names, dates, durations, URLs and age recipients.

use jiff::{SignedDuration, civil::Date};

/// Whether `s` is a DNS-1123 label (names of namespaces, ServiceAccounts; department codes).
pub(crate) fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let inner_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    !s.is_empty()
        && s.len() <= 63
        && bytes.iter().all(inner_ok)
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
}

/// Parses an ISO date `YYYY-MM-DD` that exists in the calendar (the CRD's pattern lets
/// `2026-02-30` through).
pub(crate) fn parse_date(s: &str) -> Result<Date, String> {
    if s.len() != 10 {
        return Err(format!("{s:?} is not a date YYYY-MM-DD"));
    }
    s.parse::<Date>()
        .map_err(|_| format!("{s:?} is not a date YYYY-MM-DD that exists"))
}

/// Parses a duration written as a whole number and a unit: `30m`, `26h`, `7d` (days of 24 h).
pub(crate) fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    let invalid = || format!("{s:?} is not a duration like 30m, 26h or 7d");
    let unit_at = s.len().checked_sub(1).ok_or_else(invalid)?;
    let (number, unit) = s.split_at(unit_at);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: i64 = number.parse().map_err(|_| invalid())?;
    let seconds_per_unit = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    let seconds = n.checked_mul(seconds_per_unit).ok_or_else(invalid)?;
    if seconds == 0 {
        return Err(format!("{s:?} is zero; give a positive duration"));
    }
    Ok(SignedDuration::from_secs(seconds))
}

/// Whether `url` is `https://`, or `http://` to a loopback host, where plain HTTP never leaves
/// the machine (SEC-2: secure transport).
pub(crate) fn is_secure_or_loopback(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `s` follows the S3 bucket naming rules: 3–63 lower-case letters, digits, dots and
/// dashes, starting and ending with a letter or digit, without `..`.
pub(crate) fn is_bucket_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&s.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && alnum(bytes.first())
        && alnum(bytes.last())
        && !s.contains("..")
}

const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn bech32_polymod(values: impl IntoIterator<Item = u8>) -> u32 {
    const GENERATOR: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for value in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(value);
        for (i, g) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// Checks an `age` X25519 recipient: Bech32 (BIP 173) with the human-readable part `age`, a
/// valid checksum, and a 32-byte key. The CRD's pattern only checks the alphabet and length,
/// so a typo in a copied key would otherwise surface only when the first backup is encrypted.
pub(crate) fn check_age_recipient(s: &str) -> Result<(), String> {
    let Some(data) = s.strip_prefix("age1") else {
        return Err("is not an age recipient: it must start with age1".into());
    };
    let values: Option<Vec<u8>> = data
        .bytes()
        .map(|c| {
            BECH32_CHARSET
                .iter()
                .position(|&x| x == c)
                .and_then(|p| u8::try_from(p).ok())
        })
        .collect();
    let Some(values) = values else {
        return Err(
            "is not an age recipient: it has characters outside the Bech32 alphabet".into(),
        );
    };
    if values.len() < 6 {
        return Err("is not an age recipient: it is too short".into());
    }
    let hrp = b"age";
    let expanded = hrp
        .iter()
        .map(|c| c >> 5)
        .chain([0])
        .chain(hrp.iter().map(|c| c & 31))
        .chain(values.iter().copied());
    if bech32_polymod(expanded) != 1 {
        return Err("is not an age recipient: its checksum does not match (a typo?)".into());
    }
    let payload = &values[..values.len() - 6];
    let bits = payload.len() * 5;
    let padding = bits % 8;
    let last_padding_zero = payload
        .last()
        .is_some_and(|last| padding == 0 || last & ((1 << padding) - 1) == 0);
    if bits / 8 != 32 || padding >= 5 || !last_padding_zero {
        return Err("is not an age X25519 recipient: the key is not 32 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_lower_case_alphanumerics_and_inner_dashes() {
        assert!(is_dns_label("tax-bureau"));
        assert!(is_dns_label("a1"));
        for bad in ["", "Tax", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
    }

    #[test]
    fn dates_must_exist_and_be_written_in_full() {
        assert!(parse_date("2026-02-28").is_ok());
        assert!(parse_date("2026-02-30").is_err());
        assert!(parse_date("2026-2-3").is_err());
    }

    #[test]
    fn durations_take_minutes_hours_and_days() {
        assert_eq!(parse_duration("30m"), Ok(SignedDuration::from_mins(30)));
        assert_eq!(parse_duration("26h"), Ok(SignedDuration::from_hours(26)));
        assert_eq!(parse_duration("7d"), Ok(SignedDuration::from_hours(168)));
        for bad in ["", "h", "0h", "1w", "-1h", "1.5h", "99999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plain_http_is_secure_only_on_loopback() {
        assert!(is_secure_or_loopback("https://s3.example.org"));
        assert!(is_secure_or_loopback("http://127.0.0.1:9000/bucket"));
        assert!(is_secure_or_loopback("http://localhost:9000"));
        assert!(is_secure_or_loopback("http://[::1]:9000"));
        assert!(!is_secure_or_loopback("http://s3.example.org"));
        assert!(!is_secure_or_loopback("http://127.0.0.1.evil.org"));
        assert!(!is_secure_or_loopback("ftp://127.0.0.1"));
    }

    #[test]
    fn bucket_names_follow_the_s3_rules() {
        assert!(is_bucket_name("gongshu-offsite"));
        assert!(is_bucket_name("a.b-c"));
        for bad in ["ab", "Upper", "-a-", "a..b", "a_b"] {
            assert!(!is_bucket_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn age_recipients_from_age_keygen_pass() {
        // Generated with age-keygen 1.1.1.
        for key in [
            "age1sqdtl4dvwcthrcj5cyd00et6r8qu29zlmjdd236aykeuxzswc4xsxfasn5",
            "age1lf8rw4jynhdfep9v64dwh4sdzumvz23h8wg5g72gyky4gjgjnd4qcj9xsc",
        ] {
            assert_eq!(check_age_recipient(key), Ok(()), "{key}");
        }
    }

    #[test]
    fn an_age_recipient_with_a_typo_fails_its_checksum() {
        let typo = "age1sqdtl4dvwcthrcj5cyd00et6r8qu29zlmjdd236aykeuxzswc4xsxfasn6";
        assert!(check_age_recipient(typo).unwrap_err().contains("checksum"));
        assert!(check_age_recipient("age1qqqq").is_err());
        assert!(check_age_recipient("AGE1SQDT").is_err());
        assert!(check_age_recipient("age1bio").is_err());
    }
}
