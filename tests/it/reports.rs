//! Nightly reports through the real binary: exact figures on a scripted scenario, a report
//! of nothing, and the page opened in a real headless browser.

use crate::helpers::*;
use std::fs;
use std::path::Path;
use std::process::Command;

fn nhs(i: u64) -> String {
    test_nhs(999_500_000, i)
}

const HEADER: &str = "nhs_number,plan_type,start_date,end_date,la_code,edt_phone,office_phone,local_ref,expected_delivery_date";

fn config(dir: &Path) {
    fs::write(
        dir.join("config.toml"),
        "[gateway]\nroot = \"var\"\nsettle_ms = 0\nlocal_authorities = [\"919\", \"202\", \"330\"]\n[[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\n",
    )
    .unwrap();
}

fn ingest(dir: &Path, now: &str, mailbox: &str, name: &str, text: &str) {
    let file = dir.join(name);
    fs::write(&file, text).unwrap();
    let out = gateway(dir)
        .env("CPIS_GATEWAY_NOW", now)
        .args(["ingest", "--mailbox", mailbox])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.code().unwrap() < 2,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn row(i: u64, plan: &str, start: &str, end: &str, la: &str, edd: &str) -> String {
    format!(
        "{},{plan},{start},{end},{la},01632 960001,01632 960002,R{i},{edd}\n",
        nhs(i)
    )
}

/// 919: six children on day 1; day 2 ends one, drops one (closed by absence), rejects the
/// row of another (retained) and adds one. 202: one child also open in 919, and a UCPP
/// long past its expected delivery. 330 never sends anything. One flagged ED attendance.
fn scenario(dir: &Path) {
    config(dir);
    let mut day1 = format!("{HEADER}\n");
    for i in 1..=6 {
        day1.push_str(&row(i, "CPP", "2026-01-01", "", "919", ""));
    }
    ingest(
        dir,
        "2026-11-20T03:00:00Z",
        "LA919",
        "CPIS_EXTRACT_919_20261120T020000.csv",
        &day1,
    );
    let mut day2 = format!("{HEADER}\n");
    day2.push_str(&row(1, "CPP", "2026-01-01", "", "919", ""));
    day2.push_str(&row(2, "CPP", "2026-01-01", "2026-11-20", "919", ""));
    day2.push_str(&row(3, "CPP", "2026-02-30", "", "919", ""));
    day2.push_str(&row(5, "CPP", "2026-01-01", "", "919", ""));
    day2.push_str(&row(6, "CPP", "2026-01-01", "", "919", ""));
    day2.push_str(&row(7, "LAC", "2026-11-01", "", "919", ""));
    ingest(
        dir,
        "2026-11-21T03:00:00Z",
        "LA919",
        "CPIS_EXTRACT_919_20261121T020000.csv",
        &day2,
    );
    let camden = format!(
        "{HEADER}\n{}{}",
        row(1, "LAC", "2026-05-01", "", "202", ""),
        row(8, "UCPP", "2026-03-01", "", "202", "2026-09-01")
    );
    ingest(
        dir,
        "2026-11-21T04:00:00Z",
        "LA202",
        "CPIS_EXTRACT_202_20261121T020000.csv",
        &camden,
    );
    let attend = format!("nhs_number,attended_at,org_ods,org_name,setting,user_name,user_role\n{},2026-11-21T09:00:00Z,RWG,West Herts,ED,Dr A,Doctor\n", nhs(1));
    ingest(
        dir,
        "2026-11-21T10:00:00Z",
        "RWG",
        "CPIS_ATTEND_RWG_20261121T100000.csv",
        &attend,
    );
    let out = gateway(dir)
        .env("CPIS_GATEWAY_NOW", "2026-11-21T11:00:00Z")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_ok(&out);
}

fn report(dir: &Path, now: &str, date: &str) {
    let out = gateway(dir)
        .env("CPIS_GATEWAY_NOW", now)
        .args(["report", "--date", date])
        .output()
        .unwrap();
    assert_ok(&out);
}

#[test]
fn exact_figures_on_a_scripted_scenario() {
    let dir = temp();
    scenario(dir.path());
    report(dir.path(), "2026-11-22T02:00:00Z", "2026-11-22");
    let summary =
        fs::read_to_string(dir.path().join("var/reports/2026-11-22/summary.csv")).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines[0], "la_code,la_name,last_extract_at,age_hours,overdue,open_cpp,open_lac,open_ucpp,new,updated,unchanged,ended,reopened,closed_by_absence,retained,rows_rejected,quarantined_files,cross_la_conflicts,ucpp_past_edd,attendances,notifications_sent");
    //                      open CPP/LAC/UCPP | new upd unch end reop closed retained | rejected quar conflicts edd att notif
    assert_eq!(
        lines[1],
        "202,Camden,2026-11-21T02:00:00+00:00,24,false,0,1,1,2,0,0,0,0,0,0,0,0,1,1,1,1"
    );
    assert_eq!(
        lines[2],
        "330,Birmingham,,,true,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"
    );
    assert_eq!(
        lines[3],
        "919,Hertfordshire,2026-11-21T02:00:00+00:00,24,false,4,1,0,7,0,3,1,0,1,1,1,0,1,0,1,1"
    );

    let dq = fs::read_to_string(
        dir.path()
            .join("var/mailboxes/LA919/out/CPIS_DQ_919_2026-11-22.csv"),
    )
    .unwrap();
    let dq: Vec<&str> = dq.lines().collect();
    assert_eq!(
        dq[0],
        "kind,file,row,column,code,nhs_number,plan_type,detail"
    );
    assert!(
        dq[1].starts_with(
            "rejected_row,CPIS_EXTRACT_919_20261121T020000.csv,3,start_date,DATE_FORMAT,,,"
        ),
        "{}",
        dq[1]
    );
    assert!(
        dq[2].starts_with(&format!(
            "retained,CPIS_EXTRACT_919_20261121T020000.csv,,,,{},CPP,",
            nhs(3)
        )),
        "{}",
        dq[2]
    );
    assert_eq!(
        dq[3],
        format!("conflict,,,,,{},,also open with Camden", nhs(1))
    );
    assert_eq!(dq.len(), 4);
    let camden = fs::read_to_string(
        dir.path()
            .join("var/mailboxes/LA202/out/CPIS_DQ_202_2026-11-22.csv"),
    )
    .unwrap();
    assert!(
        camden.contains(&format!(
            "conflict,,,,,{},,also open with Hertfordshire",
            nhs(1)
        )),
        "{camden}"
    );
    assert!(
        camden.contains(&format!(
            "ucpp_past_edd,,,,,{},UCPP,expected delivery 2026-09-01",
            nhs(8)
        )),
        "{camden}"
    );
    assert!(
        !dir.path()
            .join("var/mailboxes/LA330/out/CPIS_DQ_330_2026-11-22.csv")
            .exists(),
        "nothing to say to 330"
    );

    let html = fs::read_to_string(dir.path().join("var/reports/2026-11-22/index.html")).unwrap();
    assert!(html.contains("never sent an extract") && html.contains("Birmingham"));
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "self-contained: no {external}");
    }

    // The next report counts only what happened since this one.
    report(dir.path(), "2026-11-23T02:00:00Z", "2026-11-23");
    let next = fs::read_to_string(dir.path().join("var/reports/2026-11-23/summary.csv")).unwrap();
    assert!(
        next.contains(
            "919,Hertfordshire,2026-11-21T02:00:00+00:00,48,true,4,1,0,0,0,0,0,0,0,0,0,0,1,0,0,0"
        ),
        "{next}"
    );
}

#[test]
fn a_report_with_no_data_says_so() {
    let dir = temp();
    config(dir.path());
    // No store yet: report creates none, and says where it looked.
    let out = gateway(dir.path())
        .args(["report", "--date", "2026-11-22"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no gateway store at"));
    assert!(!dir.path().join("var").exists(), "nothing created");
    gateway(dir.path()).arg("init").assert().success();
    report(dir.path(), "2026-11-22T02:00:00Z", "2026-11-22");
    let html = fs::read_to_string(dir.path().join("var/reports/2026-11-22/index.html")).unwrap();
    assert!(
        html.contains("there is nothing to report for this date"),
        "{html}"
    );
    assert!(html.contains("Overdue local authorities (3)"));
    let summary =
        fs::read_to_string(dir.path().join("var/reports/2026-11-22/summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 4);
    assert!(
        summary
            .lines()
            .skip(1)
            .all(|l| l.contains(",,,true,0,0,0,")),
        "{summary}"
    );
    gateway(dir.path())
        .args(["report", "--date", "2026-02-30"])
        .assert()
        .code(2);
}

#[test]
fn the_page_renders_in_a_real_browser() {
    let dir = temp();
    scenario(dir.path());
    report(dir.path(), "2026-11-22T02:00:00Z", "2026-11-22");
    let page = dir.path().join("var/reports/2026-11-22/index.html");
    let url = format!("file://{}", page.display());
    let profile = temp();
    let chromium = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
            ])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium is needed for this test: apt-get install chromium (.ci/run does)")
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(dom.status.success());
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("<table") && dom.contains("id=\"local-authorities\""),
        "tables rendered"
    );
    assert_eq!(dom.matches("<svg").count(), 3, "three charts rendered");
    assert!(dom.contains("Hertfordshire") && dom.contains("Camden"));
    // Keep a screenshot as a test artifact.
    let artifacts = repo().join("target/test-artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("national-report.png");
    let _ = fs::remove_file(&shot);
    let out = chromium(&[
        "--window-size=1300,2000",
        &format!("--screenshot={}", shot.display()),
    ]);
    assert!(out.status.success());
    assert!(
        fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "a screenshot of the page"
    );
}
