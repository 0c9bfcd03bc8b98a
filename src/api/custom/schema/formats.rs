//! String formats kube-apiserver validates (kube-openapi's `strfmt.Default`
//! registry, restricted to the formats apiextensions keeps).
//!
//! apiextensions strips every other format before validation, so unknown
//! formats are ignored rather than refused. Checks follow the Go validators
//! (govalidator regexes, `net.ParseIP`, `time.Parse`), including their
//! leniencies, because objects accepted upstream must be accepted here.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

const SUPPORTED: [&str; 26] = [
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

/// The format validation applies to a value of `type_`, after upstream's
/// stripping of unsupported formats: `Some(normalized name)` for string
/// formats, `None` if the format is dropped or numeric.
pub(crate) fn string_format(type_: Option<&str>, format: Option<&str>) -> Option<String> {
    let f = format?;
    match type_ {
        None | Some("string") => {
            let n = f.replace('-', "");
            SUPPORTED.contains(&n.as_str()).then_some(n)
        }
        _ => None,
    }
}

/// The numeric format kept for `type_` (int32/int64/float/double), if any.
pub(crate) fn numeric_format<'a>(type_: Option<&str>, format: Option<&'a str>) -> Option<&'a str> {
    match (type_, format) {
        (Some("integer"), Some(f @ ("int32" | "int64"))) => Some(f),
        (Some("number"), Some(f @ ("float" | "double"))) => Some(f),
        _ => None,
    }
}

/// Whether `s` satisfies the (normalized) string format.
pub(crate) fn check(normalized: &str, s: &str) -> bool {
    match normalized {
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "uri" => is_request_uri(s),
        "email" => is_email(s),
        "hostname" => is_hostname(s),
        "ipv4" => parse_ip_sloppy(s).is_some() && s.contains('.'),
        "ipv6" => parse_ip_sloppy(s).is_some() && s.contains(':'),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "uuid" => is_uuid(s, None),
        "uuid3" => is_uuid(s, Some('3')),
        "uuid4" => is_uuid(s, Some('4')),
        "uuid5" => is_uuid(s, Some('5')),
        "isbn" => is_isbn10(s) || is_isbn13(s),
        "isbn10" => is_isbn10(s),
        "isbn13" => is_isbn13(s),
        "creditcard" => is_credit_card(s),
        "ssn" => is_ssn(s),
        "hexcolor" => {
            let h = s.strip_prefix('#').unwrap_or(s);
            (h.len() == 3 || h.len() == 6) && h.bytes().all(|b| b.is_ascii_hexdigit())
        }
        "rgbcolor" => is_rgb(s),
        "byte" => is_base64(s),
        "password" => true,
        "date" => is_date(s),
        "duration" => is_duration(s),
        "datetime" => is_date_time(s),
        "k8sshortname" => s.len() <= 63 && is_dns_label(s),
        "k8slongname" => s.len() <= 253 && s.split('.').all(is_dns_label),
        _ => true,
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn regex(cell: &'static OnceLock<regex::Regex>, pattern: &str) -> &'static regex::Regex {
    cell.get_or_init(|| regex::Regex::new(pattern).expect("static pattern"))
}

// net/url.ParseRequestURI: an absolute URI or an absolute path; no control
// characters or spaces, valid percent-escapes, and a space-free host.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    let rest = if s.starts_with('/') {
        s
    } else {
        let Some(colon) = s.find(':') else {
            return false;
        };
        let scheme = &s[..colon];
        let mut sb = scheme.bytes();
        if !sb.next().is_some_and(|b| b.is_ascii_alphabetic())
            || !sb.all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        {
            return false;
        }
        &s[colon + 1..]
    };
    if let Some(auth) = rest.strip_prefix("//") {
        let host_end = auth.find(['/', '?', '#']).unwrap_or(auth.len());
        let host = &auth[..host_end];
        if host.contains(' ') {
            return false;
        }
    }
    let path_part = rest.split(['?', '#']).next().unwrap_or("");
    valid_escapes(path_part)
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

// net/mail.ParseAddress, restricted to the common forms: `local@domain` or
// `Display Name <local@domain>`, with dot-atom or quoted local parts.
fn is_email(s: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = regex(
        &RE,
        r#"^(?:[^<>@]*<)?(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*|"(?:[^"\\]|\\.)*")@(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*|\[[^\]\\]*\])>?$"#,
    );
    let t = s.trim();
    if !re.is_match(t) {
        return false;
    }
    // Angle brackets must pair up.
    t.contains('<') == t.ends_with('>')
}

fn is_hostname(s: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = regex(
        &RE,
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9\-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    );
    re.is_match(s) && s.len() <= 255 && s.split('.').all(|p| p.len() <= 63)
}

// netutils.ParseIPSloppy: IPv4 dotted quads may have leading zeros.
fn parse_ip_sloppy(s: &str) -> Option<()> {
    if s.contains(':') {
        return s.parse::<Ipv6Addr>().ok().map(|_| ());
    }
    parse_ipv4_sloppy(s).map(|_| ())
}

fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut o = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        o[i] = p.parse::<u16>().ok().filter(|v| *v <= 255)? as u8;
    }
    Some(Ipv4Addr::from(o))
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(n) = bits.parse::<u32>() else {
        return false;
    };
    if ip.contains(':') {
        ip.parse::<Ipv6Addr>().is_ok() && n <= 128
    } else {
        parse_ipv4_sloppy(ip).is_some() && n <= 32
    }
}

// net.ParseMAC: 6, 8 or 20 octets as xx:xx.., xx-xx.. or xxxx.xxxx..
fn is_mac(s: &str) -> bool {
    let ok_len = |n: usize| n == 6 || n == 8 || n == 20;
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    if s.len() < 14 {
        return false;
    }
    let b = s.as_bytes();
    if b[2] == b':' || b[2] == b'-' {
        let sep = b[2] as char;
        let parts: Vec<&str> = s.split(sep).collect();
        return ok_len(parts.len()) && parts.iter().all(|p| hex(p, 2));
    }
    if b[4] == b'.' {
        let parts: Vec<&str> = s.split('.').collect();
        return ok_len(parts.len() * 2) && parts.iter().all(|p| hex(p, 4));
    }
    false
}

// `(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?...$`: 32 hex digits, each of the four
// canonical dashes optional.
fn is_uuid(s: &str, version: Option<char>) -> bool {
    let lower = s.to_ascii_lowercase();
    let mut hex = String::with_capacity(32);
    let mut prev_dash = false;
    for c in lower.chars() {
        if c == '-' {
            if prev_dash || ![8, 12, 16, 20].contains(&hex.len()) {
                return false;
            }
            prev_dash = true;
        } else {
            hex.push(c);
            prev_dash = false;
        }
    }
    !prev_dash && hex.len() == 32 && check_uuid_hex(&hex, version)
}

fn check_uuid_hex(h: &str, version: Option<char>) -> bool {
    if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let b = h.as_bytes();
    match version {
        None => true,
        Some('3') => b[12] == b'3',
        Some(v) => b[12] == v as u8 && matches!(b[16], b'8' | b'9' | b'a' | b'b'),
    }
}

fn isbn_digits(s: &str) -> Vec<u8> {
    s.bytes().filter(|b| *b != b'-' && *b != b' ').collect()
}

fn is_isbn10(s: &str) -> bool {
    let d = isbn_digits(s);
    if d.len() != 10
        || !d[..9].iter().all(u8::is_ascii_digit)
        || !(d[9].is_ascii_digit() || d[9] == b'X')
    {
        return false;
    }
    let mut sum = 0u32;
    for (i, c) in d[..9].iter().enumerate() {
        sum += (i as u32 + 1) * u32::from(c - b'0');
    }
    let last = if d[9] == b'X' {
        10
    } else {
        u32::from(d[9] - b'0')
    };
    sum += 10 * last;
    sum.is_multiple_of(11)
}

fn is_isbn13(s: &str) -> bool {
    let d = isbn_digits(s);
    if d.len() != 13 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let factor = [1u32, 3];
    let mut sum = 0u32;
    for (i, c) in d[..12].iter().enumerate() {
        sum += factor[i % 2] * u32::from(c - b'0');
    }
    (10 - sum % 10) % 10 == u32::from(d[12] - b'0')
}

fn is_credit_card(s: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = regex(
        &RE,
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|(222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)[0-9]{12}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11}|6[27][0-9]{14})$",
    );
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if !re.is_match(&digits) {
        return false;
    }
    let mut sum = 0u32;
    let mut double = false;
    for c in digits.bytes().rev() {
        let mut d = u32::from(c - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum.is_multiple_of(10)
}

fn is_ssn(s: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = regex(&RE, r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$");
    s.len() == 11 && re.is_match(s)
}

fn is_rgb(s: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let c = r"\s*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])\s*";
    let pattern = format!(r"^rgb\({c},{c},{c}\)$");
    regex(&RE, &pattern).is_match(s)
}

// govalidator.IsBase64: standard alphabet, padded, non-empty.
fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return false;
    }
    let alpha = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    let (body, tail) = b.split_at(b.len() - 4);
    if !body.iter().all(alpha) {
        return false;
    }
    match tail {
        [a, b2, b'=', b'='] => alpha(a) && alpha(b2),
        [a, b2, c, b'='] => alpha(a) && alpha(b2) && alpha(c),
        t => t.iter().all(alpha),
    }
}

// time.Parse("2006-01-02"): fixed widths and real calendar days.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let p = &s[r];
        p.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| p.parse().ok())?
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    if !(1..=12).contains(&m) || d < 1 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= days
}

fn is_date_time(s: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = regex(
        &RE,
        r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$",
    );
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    let Some(c) = re.captures(parts[1]) else {
        return false;
    };
    &c[1] <= "23" && &c[2] <= "59" && &c[3] <= "59"
}

fn is_duration(s: &str) -> bool {
    if go_parse_duration(s) {
        return true;
    }
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = regex(&RE, r"(([0-9]+)\s*([A-Za-zµ]+))");
    const UNITS: [&[&str]; 8] = [
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    let mut ok = false;
    for c in re.captures_iter(s) {
        // strconv.Atoi fails on overflow, which fails the whole parse.
        if c[2].parse::<i64>().is_err() {
            return false;
        }
        let unit = c[3].trim().to_lowercase();
        for variants in UNITS {
            let last = variants.len() - 1;
            for (i, v) in variants.iter().enumerate() {
                if (i == last && unit.starts_with(v)) || v.eq_ignore_ascii_case(&unit) {
                    ok = true;
                }
            }
        }
    }
    ok
}

// time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or "0".
fn go_parse_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, r) = rest.split_at(int_len);
        rest = r;
        let mut frac_len = 0;
        if let Some(r2) = rest.strip_prefix('.') {
            frac_len = r2.bytes().take_while(u8::is_ascii_digit).count();
            rest = &r2[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return false;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, r) = rest.split_at(unit_len);
        rest = r;
        let nanos: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 6e10,
            "h" => 3.6e12,
            _ => return false,
        };
        let v: f64 = int_part.parse().unwrap_or(0.0);
        total += v * nanos;
    }
    // Durations beyond int64 nanoseconds overflow in Go.
    total <= 9.223_372_036_854_776e18
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn formats_accept_and_refuse() {
        let cases: &[(&str, &str, bool)] = &[
            ("int", "x", true),
            ("byte", "aGVsbG8=", true),
            ("byte", "aGVsbG8", false),
            ("byte", "", false),
            ("date", "2024-02-29", true),
            ("date", "2023-02-29", false),
            ("datetime", "2024-01-02T03:04:05Z", true),
            ("datetime", "2024-01-02T03:04:05.123+02:00", true),
            ("datetime", "2024-01-02 03:04:05", false),
            ("duration", "1h30m", true),
            ("duration", "3 days", true),
            ("duration", "soon", false),
            ("uuid", "0F8FAD5B-D9CB-469F-A165-70867728950E", true),
            ("uuid", "0f8fad5bd9cb469fa16570867728950e", true),
            ("uuid", "0f8fad5b-d9cb-469f-a165-70867728950", false),
            ("uuid4", "0f8fad5b-d9cb-469f-a165-70867728950e", true),
            ("uuid3", "0f8fad5b-d9cb-469f-a165-70867728950e", false),
            ("email", "a.b@example.com", true),
            ("email", "Joe <joe@example.com>", true),
            ("email", "not-an-email", false),
            ("hostname", "example.com", true),
            ("hostname", "-bad-.com", false),
            ("ipv4", "10.0.0.1", true),
            ("ipv4", "010.0.0.1", true),
            ("ipv4", "10.0.0.256", false),
            ("ipv6", "::1", true),
            ("ipv6", "10.0.0.1", false),
            ("cidr", "10.0.0.0/8", true),
            ("cidr", "fd00::/129", false),
            ("uri", "https://example.com/a?b=c", true),
            ("uri", "/just/a/path", true),
            ("uri", "relative/path", false),
            ("mac", "00:11:22:33:44:55", true),
            ("mac", "0011.2233.4455", true),
            ("mac", "00:11:22:33:44", false),
            ("password", "anything", true),
            ("k8sshortname", "my-name", true),
            ("k8sshortname", "My-name", false),
            ("k8slongname", "a.b-c.d", true),
            ("hexcolor", "#ffF", true),
            ("rgbcolor", "rgb(255, 0,10)", true),
            ("isbn10", "0321751043", true),
            ("isbn13", "978-0321751041", true),
            ("ssn", "123-45-6789", true),
            ("creditcard", "4111 1111 1111 1111", true),
            ("bsonobjectid", "507f1f77bcf86cd799439011", true),
        ];
        for (f, v, want) in cases {
            assert_eq!(check(f, v), *want, "{f} {v}");
        }
    }
}
