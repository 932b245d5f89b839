//! `query` latency, warm, in process (SPEC 11: p99 under 1 ms): N look-ups of children from
//! an attendance file (flagged and not), each recorded as the CLI records it.
//!
//! `cargo run --release --example query_bench -- ROOT ATTENDANCE.csv [N]` (on PostgreSQL
//! with the store's URL in `CPIS_GATEWAY_STORE_URL`, as the gateway takes it)

use cpis_gateway::config::Config;
use cpis_gateway::core::attendance::{Attendance, Setting};
use cpis_gateway::core::nhs::NhsNumber;
use cpis_gateway::pipeline::ingest::Gateway;
use cpis_gateway::sys::clock::SystemClock;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: query_bench ROOT FILE [N]"))?,
    );
    let file = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: query_bench ROOT FILE [N]"))?;
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let root = std::path::absolute(&root)?;
    let mut text = format!(
        "[gateway]\nroot = {:?}\n[[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\n",
        root.display().to_string()
    );
    // The store the gateway would use: PostgreSQL if its URL is in the environment.
    if let Some(url) = std::env::var(cpis_gateway::config::STORE_URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        text.push_str(&format!("[store]\nurl = {url:?}\n"));
    }
    let config = Config::parse(&text, &root, "bench")?;
    let clock = SystemClock;
    let mut gateway = Gateway::open(&config, &clock)?;
    let mut reader = csv::Reader::from_path(&file)?;
    let numbers: Vec<NhsNumber> = reader
        .records()
        .filter_map(|r| r.ok())
        .filter_map(|r| NhsNumber::parse(&r[0]).ok())
        .take(n)
        .collect();
    let setting = Setting::parse("ED").ok_or_else(|| anyhow::anyhow!("ED"))?;
    let mut times = Vec::with_capacity(numbers.len());
    let mut flagged = 0;
    for (i, nhs) in numbers.iter().enumerate() {
        let a = Attendance {
            row: 0,
            nhs: *nhs,
            attended_at: clock_now(),
            org_ods: "RWG".into(),
            org_name: "West Herts".into(),
            setting,
            user_name: format!("Dr {}", i % 50),
            user_role: "Doctor".into(),
        };
        let start = Instant::now();
        let found = gateway.query(&a)?;
        times.push(start.elapsed());
        flagged += usize::from(found.flagged);
    }
    times.sort();
    let pick = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{} queries ({flagged} flagged): p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs (target p99 < 1000 µs)",
        times.len(),
        us(pick(0.5)),
        us(pick(0.99)),
        us(pick(1.0))
    );
    Ok(())
}

fn clock_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
