//! Numbers in Grafana's units, Grafana's colors, axis ticks and escaping.

/// Grafana's classic palette, the series colors of `palette-classic`.
pub const PALETTE: [&str; 12] = [
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
    "#508642", "#CCA300", "#447EBC", "#C15C17",
];

/// A Grafana color name as CSS (names it does not know are passed on, escaped).
pub fn color(name: &str) -> String {
    match name {
        "green" => "#73BF69",
        "red" => "#F2495C",
        "orange" => "#FF9830",
        "yellow" => "#FADE2A",
        "blue" => "#5794F2",
        "purple" => "#B877D9",
        "dark-green" => "#37872D",
        "dark-red" => "#C4162A",
        "dark-orange" => "#FA6400",
        "dark-yellow" => "#E0B400",
        "text" => "#CCCCDC",
        other => return escape(other),
    }
    .to_string()
}

/// `value` in `unit` (the Grafana unit ids the dashboards use; others as a suffix).
pub fn value(value: f64, unit: &str) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    match unit {
        "s" => duration(value),
        "ms" => duration(value / 1000.0),
        "bytes" => scaled(value, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"]),
        "decbytes" => scaled(value, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"]),
        "percentunit" => format!("{}%", number(value * 100.0)),
        "percent" => format!("{}%", number(value)),
        "reqps" => format!("{} req/s", short(value)),
        "ops" => format!("{} ops/s", short(value)),
        "short" => short(value),
        "" | "none" => number(value),
        other => format!("{} {}", number(value), escape(other)),
    }
}

/// About three significant digits, no trailing zeros.
pub fn number(value: f64) -> String {
    let abs = value.abs();
    let decimals = match abs {
        a if a == a.trunc() || a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        a => (2.0 - a.log10().floor()).min(9.0) as usize,
    };
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if text == "-0" { "0" } else { text }.to_string()
}

fn short(value: f64) -> String {
    scaled(value, 1000.0, &["", "K", "Mil", "Bil", "Tri"])
        .trim_end()
        .to_string()
}

fn scaled(value: f64, base: f64, units: &[&str]) -> String {
    let mut value = value;
    let mut unit = 0;
    while value.abs() >= base && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    format!("{} {}", number(value), units[unit])
}

fn duration(seconds: f64) -> String {
    let abs = seconds.abs();
    let (divisor, unit) = match abs {
        a if a > 0.0 && a < 1.0 => (0.001, "ms"),
        a if a < 60.0 => (1.0, "s"),
        a if a < 3600.0 => (60.0, "min"),
        a if a < 86_400.0 => (3600.0, "hour"),
        a if a < 604_800.0 => (86_400.0, "day"),
        _ => (604_800.0, "week"),
    };
    format!("{} {unit}", number(seconds / divisor))
}

/// Round axis ticks covering `lo..hi`, about `count` of them. Seconds get steps of whole
/// minutes, hours and days, bytes of binary prefixes.
pub fn ticks(lo: f64, hi: f64, count: usize, unit: &str) -> Vec<f64> {
    if unit == "bytes" {
        // Round numbers of the largest binary prefix the values reach: 512 B, 1 KiB, 1.5 KiB.
        let largest = hi.abs().max(lo.abs()).max(1.0);
        let scale = 1024f64.powf(largest.log(1024.0).floor());
        let scaled = ticks(lo / scale, hi / scale, count, "");
        return scaled.into_iter().map(|t| t * scale).collect();
    }
    let raw = (hi - lo) / count.max(1) as f64;
    const SECONDS: [f64; 16] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        21_600.0, 86_400.0,
    ];
    let step = match SECONDS.iter().find(|s| **s >= raw) {
        Some(step) if unit == "s" && raw >= 1.0 => *step,
        _ => {
            let magnitude = 10f64.powf(raw.log10().floor());
            [1.0, 2.0, 2.5, 5.0, 10.0]
                .iter()
                .map(|m| m * magnitude)
                .find(|s| *s >= raw)
                .unwrap_or(10.0 * magnitude)
        }
    };
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Time ticks for `start..end` seconds, about `count`, on whole minutes or hours of `offset`
/// (the local time zone's offset from UTC, in seconds).
pub fn time_ticks(start: f64, end: f64, count: usize, offset: f64) -> Vec<f64> {
    let raw = (end - start) / count.max(1) as f64;
    let step = [
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10_800.0, 21_600.0, 43_200.0,
        86_400.0,
    ]
    .into_iter()
    .find(|s| *s >= raw)
    .unwrap_or(86_400.0 * (raw / 86_400.0).ceil());
    let first = ((start + offset) / step).ceil() as i64;
    let last = ((end + offset) / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step - offset).collect()
}

/// Text for XML and HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_as_grafana_writes_them() {
        assert_eq!(value(3.0, "short"), "3");
        assert_eq!(value(12_500.0, "short"), "12.5 K");
        assert_eq!(value(0.5, "percentunit"), "50%");
        assert_eq!(value(5400.0, "s"), "1.5 hour");
        assert_eq!(value(-90.0, "s"), "-1.5 min");
        assert_eq!(value(0.0042, "s"), "4.2 ms");
        assert_eq!(value(2048.0, "bytes"), "2 KiB");
        assert_eq!(value(0.25, "reqps"), "0.25 req/s");
        assert_eq!(value(f64::NAN, "s"), "NaN");
        assert_eq!(number(0.000123), "0.000123");
    }

    #[test]
    fn ticks_are_round_numbers_and_minutes() {
        assert_eq!(ticks(0.0, 9.0, 4, "short"), vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        assert_eq!(ticks(0.0, 250.0, 4, "s"), vec![0.0, 120.0, 240.0, 360.0]);
        assert_eq!(
            ticks(0.0, 1500.0, 3, "bytes"),
            vec![0.0, 512.0, 1024.0, 1536.0]
        );
        assert_eq!(
            time_ticks(100.0, 1900.0, 3, 0.0),
            vec![600.0, 1200.0, 1800.0]
        );
    }
}
