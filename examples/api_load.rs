//! Load on the FHIR API (issue 24, `bench/api.sh`): CLIENTS threads, each with its own
//! keep-alive HTTPS connection trusting CA, search CareTeam for the NHS numbers of an
//! attendance file in turn (its share of children on the list decides the flagged share),
//! unscheduled, for SECONDS; prints look-ups per second and p50/p99/max latency.
//!
//! `cargo run --release --example api_load -- BASE_URL CA.pem TOKEN ATTENDANCE.csv CLIENTS SECONDS`

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, ca, token, file, clients, seconds] = args.as_slice() else {
        anyhow::bail!("usage: api_load BASE_URL CA.pem TOKEN ATTENDANCE.csv CLIENTS SECONDS");
    };
    let clients: usize = clients.parse()?;
    let seconds: u64 = seconds.parse()?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let mut reader = csv::Reader::from_path(file)?;
    let numbers: Arc<Vec<String>> = Arc::new(
        reader
            .records()
            .filter_map(|r| r.ok())
            .map(|r| r[0].to_owned())
            .collect(),
    );
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let results: Vec<(Vec<Duration>, usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (tls, numbers) = (Arc::clone(&tls), Arc::clone(&numbers));
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new().tls_config(tls).build();
                    let (mut times, mut flagged, mut failed) = (Vec::new(), 0, 0);
                    let mut i = c;
                    while Instant::now() < until {
                        let nhs = &numbers[i % numbers.len()];
                        i += clients;
                        let url = format!(
                            "{base}/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{nhs}"
                        );
                        let start = Instant::now();
                        let answer = agent
                            .get(&url)
                            .set("Authorization", &format!("Bearer {token}"))
                            .set("NHSD-End-User-Name", &format!("Load {c}"))
                            .set("NHSD-End-User-Role", "Doctor")
                            .set("NHSD-Care-Setting", "ED")
                            .call();
                        match answer.map(|r| r.into_string()) {
                            Ok(Ok(body)) => {
                                times.push(start.elapsed());
                                flagged += usize::from(!body.contains("\"total\":0"));
                            }
                            _ => failed += 1,
                        }
                    }
                    (times, flagged, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut times: Vec<Duration> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let flagged: usize = results.iter().map(|r| r.1).sum();
    let failed: usize = results.iter().map(|r| r.2).sum();
    times.sort();
    anyhow::ensure!(!times.is_empty(), "no look-up succeeded ({failed} failed)");
    let pick = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{} look-ups ({flagged} flagged, {failed} failed) by {clients} clients in {elapsed:.1} s: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times.len(),
        times.len() as f64 / elapsed,
        ms(pick(0.5)),
        ms(pick(0.99)),
        ms(pick(1.0))
    );
    Ok(())
}
