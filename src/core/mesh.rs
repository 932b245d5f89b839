//! The MESH API's rules that are pure (the transport itself, over HTTP, is not built yet):
//! the `NHSMESH` authorisation token, which workflow an outbound file goes under, and how a
//! message is cut into chunks.

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

/// Parses `Mex-Chunk-Range: n:N` into (n, N), 1 ≤ n ≤ N.
pub fn chunk_range(header: &str) -> Option<(u32, u32)> {
    let (n, total) = header.trim().split_once(':')?;
    let (n, total) = (n.trim().parse().ok()?, total.trim().parse().ok()?);
    (1 <= n && n <= total).then_some((n, total))
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
}
