//! Drop-to-acknowledgement latency of the daemon (SPEC 11: median under 50 ms).
//!
//! `cargo run --release --example latency_bench -- [FILES]` starts the release daemon on a
//! temporary root, drops FILES (default 200) small extracts one at a time, each with its
//! `.ctl` control file (so settling is not waited for), and times each from the moment its
//! control file appears to the moment its acknowledgement exists.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let bin = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("cpis-gateway"))
        .ok_or_else(|| anyhow::anyhow!("cannot find the binary"))?;
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    fs::write(
        root.join("config.toml"),
        "[gateway]\nroot = \"var\"\nsettle_ms = 60000\nlocal_authorities = [\"919\"]\n",
    )?;
    let src = root.join("src");
    for i in 0..n {
        let stamp = format!("20261121T{:02}{:02}{:02}", i / 3600, i / 60 % 60, i % 60);
        let status = Command::new(&bin)
            .args(["gen", "extract", "--la", "919", "--rows", "20", "--seed"])
            .arg(i.to_string())
            .args(["--at", &stamp, "--out"])
            .arg(&src)
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "gen failed");
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&src)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let mut daemon = Command::new(&bin)
        .current_dir(root)
        .arg("run")
        .stderr(Stdio::null())
        .spawn()?;
    let inbox = root.join("var/mailboxes/LA919/in");
    let out = root.join("var/mailboxes/LA919/out");
    let ready = Instant::now();
    while !inbox.is_dir() && ready.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut latencies = Vec::with_capacity(n);
    for f in &files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let stem = name.trim_end_matches(".csv");
        // The data file arrives whole (temporary name, then rename), then its control file.
        fs::copy(f, inbox.join(format!("{name}.part")))?;
        fs::rename(inbox.join(format!("{name}.part")), inbox.join(&name))?;
        fs::write(
            inbox.join(format!("{stem}.ctl.tmp")),
            "<DTSControl><From_DTS>LA919</From_DTS></DTSControl>",
        )?;
        let ack = out.join(format!("CPIS_ACK_{stem}.json"));
        let start = Instant::now();
        fs::rename(
            inbox.join(format!("{stem}.ctl.tmp")),
            inbox.join(format!("{stem}.ctl")),
        )?;
        while !ack.exists() {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(10),
                "{name} was never acknowledged"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies.push(start.elapsed());
    }
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{} files with control files: median {:.1} ms, p95 {:.1} ms, max {:.1} ms (target: median < 50 ms)",
        latencies.len(),
        ms(pick(0.5)),
        ms(pick(0.95)),
        ms(pick(1.0))
    );
    Ok(())
}
