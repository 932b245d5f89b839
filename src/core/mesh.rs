//! The MESH API's rules that are pure (the transport, over HTTP, is `transport::mesh`):
//! the `NHSMESH` authorisation token, which workflow an outbound file goes under, how a
//! message is cut into chunks, which URLs may be used without TLS, which answers are worth
//! a retry, and how an error body (JSON, or SOAP XML from a proxy) is shown to a person.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::ops::Range;

/// `Authorization: NHSMESH {MAILBOX}:{nonce}:{count}:{yyyyMMddHHmm}:{hmac}`, the hmac being
/// HMAC-SHA256 keyed by the shared key over `MAILBOX:nonce:count:password:yyyyMMddHHmm`
/// (as NHS England's `mesh-client` makes it). The mailbox is upper-case; `at` is UTC.
pub fn auth_token(
    mailbox: &str,
    password: &str,
    shared_key: &str,
    nonce: &str,
    count: u64,
    at: DateTime<Utc>,
) -> String {
    let mailbox = mailbox.to_ascii_uppercase();
    let time = at.format("%Y%m%d%H%M");
    let mut mac = Hmac::<Sha256>::new_from_slice(shared_key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("{mailbox}:{nonce}:{count}:{password}:{time}").as_bytes());
    let digest = hex::encode(mac.finalize().into_bytes());
    format!("NHSMESH {mailbox}:{nonce}:{count}:{time}:{digest}")
}

/// The workflow an outbound file is sent under, by its kind (`None`: not a gateway file).
pub fn workflow(file_name: &str) -> Option<&'static str> {
    ["CPIS_ACK", "CPIS_NOTIFY", "CPIS_FLAGS", "CPIS_DQ"]
        .into_iter()
        .find(|w| {
            file_name
                .strip_prefix(w)
                .is_some_and(|rest| rest.starts_with('_'))
        })
}

/// The byte ranges of a message of `len` bytes sent in chunks of at most `chunk_bytes`
/// (always at least one chunk, even for an empty message).
pub fn chunks(len: u64, chunk_bytes: u64) -> Vec<Range<u64>> {
    let size = chunk_bytes.max(1);
    let n = len.div_ceil(size).max(1);
    (0..n)
        .map(|i| i * size..((i + 1) * size).min(len))
        .collect()
}

/// MESH refuses a chunk under 5 MiB unless it is a message's last (and any over 100 MiB).
pub const MIN_CHUNK: u64 = 5 * 1024 * 1024;
pub const MAX_CHUNK: u64 = 100 * 1024 * 1024;

/// The most chunks a message the gateway would take (at most `max_bytes` once unzipped)
/// can arrive in: every chunk but the last holds at least [`MIN_CHUNK`]. A message
/// announcing more is refused before any of it is fetched.
pub fn max_chunks(max_bytes: u64) -> u32 {
    u32::try_from(max_bytes.div_ceil(MIN_CHUNK) + 1).unwrap_or(u32::MAX)
}

/// The URL a listing's `links.next` leads to: a path on the mailbox's own origin, or an
/// absolute URL on that very origin (scheme, host and port). Anything else is refused, so
/// the mailbox's token is never sent to another server nor downgraded to plain HTTP.
pub fn next_link(base: &str, next: &str) -> Result<String, String> {
    let base_origin =
        origin(base).ok_or_else(|| format!("the mailbox URL {base:?} has no origin"))?;
    if next.starts_with('/') && !next.starts_with("//") {
        return Ok(format!(
            "{}{next}",
            base.trim_end_matches('/').split_at(base_origin.1).0
        ));
    }
    match origin(next) {
        Some((o, _)) if o == base_origin.0 => Ok(next.to_owned()),
        _ => Err(format!(
            "links.next {:?} leaves the mailbox's own server {}: not followed",
            excerpt(next),
            base_origin.0
        )),
    }
}

/// `scheme://host:port` of a URL, lower-cased, with the scheme's default port made
/// explicit; and where the origin ends in the URL.
fn origin(url: &str) -> Option<(String, usize)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            (&authority[..i], authority[i + 1..].parse().ok()?)
        }
        _ => (
            authority,
            match scheme.as_str() {
                "https" => 443u16,
                "http" => 80,
                _ => return None,
            },
        ),
    };
    Some((
        format!("{scheme}://{}:{port}", host.to_ascii_lowercase()),
        scheme.len() + 3 + end,
    ))
}

/// Parses `Mex-Chunk-Range: n:N` into (n, N), 1 ≤ n ≤ N.
pub fn chunk_range(header: &str) -> Option<(u32, u32)> {
    let (n, total) = header.trim().split_once(':')?;
    let (n, total) = (n.trim().parse().ok()?, total.trim().parse().ok()?);
    (1 <= n && n <= total).then_some((n, total))
}

/// Whether a MESH URL is `https` (TLS) or plain `http` to a loopback address; anything
/// else is refused. Returns `true` for TLS.
pub fn uses_tls(url: &str) -> Result<bool, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL (expected https://host[:port])"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(true),
        "http" if is_loopback(host) => Ok(false),
        "http" => Err(format!(
            "{url:?}: plain http is allowed only to a loopback address (tests); use https"
        )),
        other => Err(format!("{url:?}: scheme {other:?} is not http or https")),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether an HTTP status is worth trying again after a pause (rate limit, timeout, a
/// server or proxy error); any other refusal will be the same next time.
pub fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// A short, single-line account of an error body for a log line: JSON as it is, XML or
/// HTML (a SOAP fault from a proxy) with its tags taken out; at most 200 characters.
pub fn excerpt(body: &str) -> String {
    let mut text = String::with_capacity(body.len().min(400));
    let mut in_tag = false;
    let trimmed = body.trim_start();
    let markup = trimmed.starts_with('<');
    for c in body.chars() {
        match c {
            '<' if markup => {
                in_tag = true;
                text.push(' ');
            }
            '>' if markup && in_tag => in_tag = false,
            _ if in_tag => {}
            c if c.is_control() || c.is_whitespace() => text.push(' '),
            c => text.push(c),
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut line = words.join(" ");
    if line.chars().count() > 200 {
        line = line.chars().take(199).collect::<String>() + "…";
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_the_one_mesh_client_makes() {
        // Expected digest: Python's hmac over the same text, as mesh-client computes it.
        let at = "2026-11-23T09:05:59Z".parse().unwrap();
        let token = auth_token(
            "x26la919",
            "password",
            "TestKey",
            "6a4f4ad6-8b8a-4f4c-9d1c-6f2b7c8e9a01",
            3,
            at,
        );
        assert_eq!(
            token,
            "NHSMESH X26LA919:6a4f4ad6-8b8a-4f4c-9d1c-6f2b7c8e9a01:3:202611230905:d63742aca16058ecb6f4de8d0559e7baf704004143653080b4dfa3b3f050302c"
        );
    }

    #[test]
    fn workflows_by_kind() {
        assert_eq!(
            workflow("CPIS_ACK_CPIS_EXTRACT_919_20261121T020000.json"),
            Some("CPIS_ACK")
        );
        assert_eq!(
            workflow("CPIS_NOTIFY_919_20261121T020000.csv"),
            Some("CPIS_NOTIFY")
        );
        assert_eq!(
            workflow("CPIS_FLAGS_CPIS_ATTEND_RWG_20261121T101500.json"),
            Some("CPIS_FLAGS")
        );
        assert_eq!(workflow("CPIS_DQ_919_2026-11-22.csv"), Some("CPIS_DQ"));
        assert_eq!(workflow("CPIS_DQX_919.csv"), None);
        assert_eq!(workflow("notes.txt"), None);
    }

    #[test]
    fn chunks_cover_the_message_once() {
        assert_eq!(chunks(0, 10), vec![0..0]);
        assert_eq!(chunks(10, 10), vec![0..10]);
        assert_eq!(chunks(25, 10), vec![0..10, 10..20, 20..25]);
        assert_eq!(chunk_range("2:3"), Some((2, 3)));
        assert_eq!(chunk_range("4:3"), None);
        assert_eq!(chunk_range("0:3"), None);
        assert_eq!(chunk_range("x"), None);
    }

    #[test]
    fn links_are_followed_on_the_mailbox_server_only() {
        let base = "https://mesh.example:8443";
        assert_eq!(
            next_link(base, "/messageexchange/X/inbox?continue_from=a").unwrap(),
            "https://mesh.example:8443/messageexchange/X/inbox?continue_from=a"
        );
        assert_eq!(
            next_link(base, "https://MESH.example:8443/messageexchange/X/inbox").unwrap(),
            "https://MESH.example:8443/messageexchange/X/inbox"
        );
        assert_eq!(
            next_link("https://mesh.example/", "https://mesh.example:443/x").unwrap(),
            "https://mesh.example:443/x"
        );
        for other in [
            "http://mesh.example:8443/x",
            "https://mesh.example:9443/x",
            "https://evil.example:8443/x",
            "https://mesh.example:8443@evil.example/x",
            "//evil.example/x",
            "http://127.0.0.1:1/x",
        ] {
            assert!(next_link(base, other).is_err(), "{other}");
        }
        assert_eq!(max_chunks(512 * 1024 * 1024), 104);
        assert_eq!(max_chunks(1024 * 1024), 2);
        assert_eq!(max_chunks(u64::MAX), u32::MAX);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert_eq!(uses_tls("https://mesh.spine2.ncrs.nhs.uk"), Ok(true));
        assert_eq!(uses_tls("http://127.0.0.1:8700"), Ok(false));
        assert_eq!(uses_tls("http://localhost:8700/"), Ok(false));
        assert_eq!(uses_tls("http://[::1]:8700"), Ok(false));
        assert!(uses_tls("http://10.0.0.1:8700").is_err());
        assert!(uses_tls("http://127.0.0.1.example.com").is_err());
        assert!(uses_tls("ftp://127.0.0.1").is_err());
        assert!(uses_tls("mesh.example").is_err());
        assert!(uses_tls("https://").is_err());
    }

    #[test]
    fn error_bodies_read_as_one_line() {
        let soap = "<?xml version=\"1.0\"?>\n<soap:Envelope><soap:Body><soap:Fault>\n<faultstring>Service  Unavailable</faultstring></soap:Fault></soap:Body></soap:Envelope>";
        assert_eq!(excerpt(soap), "Service Unavailable");
        assert_eq!(
            excerpt("{\"errorDescription\": \"Unregistered\nrecipient\"}"),
            "{\"errorDescription\": \"Unregistered recipient\"}"
        );
        assert_eq!(excerpt(&"x".repeat(500)).chars().count(), 200);
        assert!(retryable(503) && retryable(429) && !retryable(403) && !retryable(417));
    }
}
