//! `url()` for CEL, following Go's `url.ParseRequestURI`, which upstream's
//! library uses: an absolute URI or an absolute path, nothing relative.

/// A parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Url {
    /// The input, for printing.
    pub raw: String,
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl Url {
    /// Parses `raw` as `url.ParseRequestURI` does, to the extent CEL exposes.
    pub(super) fn parse(raw: &str) -> Result<Url, String> {
        let invalid = || {
            format!(
                "URL parse error during conversion from string: parse {raw:?}: invalid URI for request"
            )
        };
        if raw.is_empty() || raw.chars().any(|c| c.is_control() || c == ' ') {
            return Err(invalid());
        }
        let (scheme, rest) = if raw.starts_with('/') {
            ("", raw)
        } else {
            let colon = raw.find(':').ok_or_else(invalid)?;
            let scheme = &raw[..colon];
            let valid = scheme.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || (i > 0 && (c.is_ascii_digit() || "+-.".contains(c)))
            });
            if scheme.is_empty() || !valid {
                return Err(invalid());
            }
            (scheme, &raw[colon + 1..])
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let (host, path) = if let Some(after) = rest.strip_prefix("//") {
            let end = after.find('/').unwrap_or(after.len());
            let authority = &after[..end];
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (host, &after[end..])
        } else if rest.starts_with('/') {
            ("", rest)
        } else {
            return Err(invalid());
        };
        if host.starts_with('[') && !host.contains(']') {
            return Err(invalid());
        }
        Ok(Url {
            raw: raw.to_string(),
            scheme: scheme.to_string(),
            host: host.to_string(),
            path: path.to_string(),
            query: query.to_string(),
        })
    }

    /// `getScheme()`.
    pub(super) fn scheme(&self) -> &str {
        &self.scheme
    }

    /// `getHost()`: host and port, IPv6 literals bracketed.
    pub(super) fn host(&self) -> &str {
        &self.host
    }

    fn split_host(&self) -> (&str, &str) {
        let h = self.host.as_str();
        if let Some(rest) = h.strip_prefix('[') {
            return match rest.split_once(']') {
                Some((ip, tail)) => (ip, tail.strip_prefix(':').unwrap_or("")),
                None => (rest, ""),
            };
        }
        match h.rsplit_once(':') {
            Some((name, port)) => (name, port),
            None => (h, ""),
        }
    }

    /// `getHostname()`: no port, no brackets.
    pub(super) fn hostname(&self) -> &str {
        self.split_host().0
    }

    /// `getPort()`: the port, empty when none.
    pub(super) fn port(&self) -> &str {
        self.split_host().1
    }

    /// `getEscapedPath()`.
    pub(super) fn escaped_path(&self) -> &str {
        &self.path
    }

    /// `getQuery()`: decoded keys to their values, in order.
    pub(super) fn query(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for pair in self.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(k), Some(v)) = (unescape(k), unescape(v)) else {
                // Go skips pairs that fail to decode.
                continue;
            };
            match out.iter_mut().find(|(key, _)| *key == k) {
                Some((_, values)) => values.push(v),
                None => out.push((k, vec![v])),
            }
        }
        out
    }
}

/// Query unescaping: `+` is a space, `%XX` a byte.
fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl cel::objects::Opaque for Url {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.URL"
    }
}
