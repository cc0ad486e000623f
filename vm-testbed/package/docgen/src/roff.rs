//! Just enough roff (man(7)) for text written for a terminal.

/// `text` safe as roff: backslashes and hyphens escaped, and a line that would start with
/// a control character (`.` or `'`) protected with `\&`.
pub fn escape(text: &str) -> String {
    let body = text.replace('\\', "\\e").replace('-', "\\-");
    body.lines()
        .map(|l| if l.starts_with('.') || l.starts_with('\'') { format!("\\&{l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The page date: `SOURCE_DATE_EPOCH` as YYYY-MM-DD (UTC), or empty when it is unset or
/// not a number (man then prints no date, and the build stays reproducible).
pub fn date_from_env() -> String {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(civil_date)
        .unwrap_or_default()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil_from_days).
fn civil_date(epoch_seconds: i64) -> String {
    let z = epoch_seconds.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hyphens_backslashes_and_control_lines() {
        assert_eq!(escape("--api URL"), "\\-\\-api URL");
        assert_eq!(escape("a\\b"), "a\\eb");
        assert_eq!(escape(".TH\n'x"), "\\&.TH\n\\&'x");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(1_764_806_400), "2025-12-04");
    }
}
