//! The API's own figures for operators, as Prometheus text (`/metrics`): requests by
//! endpoint and status, their latency, look-ups that found a flag and those that did not,
//! and store errors. Labels are fixed words: never a path, a query or a person.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The endpoint a path is, as a label.
pub fn endpoint(path: &str, base: &str) -> &'static str {
    match path.strip_prefix(base) {
        Some("/metadata") => "metadata",
        Some("/CareTeam") => "CareTeam",
        Some("/AuditEvent") => "AuditEvent",
        _ if path == "/healthz" => "healthz",
        _ if path == "/metrics" => "metrics",
        _ => "other",
    }
}

#[derive(Default)]
pub struct Metrics {
    /// (endpoint, status) → requests.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Requests whose latency was at most each bucket's bound, then all, and their sum.
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    flagged: AtomicU64,
    not_flagged: AtomicU64,
    store_errors: AtomicU64,
}

impl Metrics {
    pub fn request(&self, endpoint: &'static str, status: u16, took: Duration) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((endpoint, status)).or_insert(0) += 1;
        }
        let seconds = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// A CareTeam search answered: whether the child was flagged.
    pub fn looked_up(&self, flagged: bool) {
        let counter = if flagged {
            &self.flagged
        } else {
            &self.not_flagged
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn text(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP cpis_api_requests_total API requests by endpoint and HTTP status.\n# TYPE cpis_api_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for ((endpoint, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "cpis_api_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP cpis_api_request_seconds Time to answer an API request.\n# TYPE cpis_api_request_seconds histogram\n");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "cpis_api_request_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "cpis_api_request_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "cpis_api_request_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "cpis_api_request_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP cpis_api_lookups_total CareTeam searches answered, by whether a plan flagged the child.\n# TYPE cpis_api_lookups_total counter\n\
             cpis_api_lookups_total{{flagged=\"true\"}} {}\ncpis_api_lookups_total{{flagged=\"false\"}} {}",
            self.flagged.load(Ordering::Relaxed),
            self.not_flagged.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cpis_api_store_errors_total Look-ups the store could not answer.\n# TYPE cpis_api_store_errors_total counter\n\
             cpis_api_store_errors_total {}",
            self.store_errors.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_by_fixed_labels_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("CareTeam", 200, Duration::from_millis(3));
        m.request("CareTeam", 200, Duration::from_millis(30));
        m.request("other", 404, Duration::from_micros(500));
        m.looked_up(true);
        m.looked_up(false);
        m.looked_up(false);
        let text = m.text();
        assert!(text.contains("cpis_api_requests_total{endpoint=\"CareTeam\",status=\"200\"} 2"));
        assert!(text.contains("cpis_api_requests_total{endpoint=\"other\",status=\"404\"} 1"));
        assert!(text.contains("cpis_api_request_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("cpis_api_request_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("cpis_api_request_seconds_bucket{le=\"0.05\"} 3\n"));
        assert!(text.contains("cpis_api_request_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("cpis_api_lookups_total{flagged=\"false\"} 2"));
        assert_eq!(
            endpoint("/cpis/FHIR/R4/CareTeam", "/cpis/FHIR/R4"),
            "CareTeam"
        );
        assert_eq!(
            endpoint("/cpis/FHIR/R4/Patient/9990000018", "/cpis/FHIR/R4"),
            "other"
        );
    }
}
