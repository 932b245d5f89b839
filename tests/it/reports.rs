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
    // The nightly run at 02:00 writes the day before's report.
    report(dir.path(), "2026-11-22T02:00:00Z", "2026-11-21");
    let summary =
        fs::read_to_string(dir.path().join("var/reports/2026-11-21/summary.csv")).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines[0], "report_date,la_code,la_name,last_extract_at,age_hours,overdue,needs_action,open_cpp,open_lac,open_ucpp,new,updated,unchanged,ended,reopened,closed_by_absence,retained,files_accepted,files_partial,files_rejected,files_quarantined,rows_rejected,quarantined_pending,cross_la_conflicts,ucpp_past_edd,attendances,notifications_sent,notifications_pending");
    // Changes are those of the 21st only (919's first extract came on the 20th).
    //                                 open C/L/U | new upd unch end reop closed retained | files a/p/r/q | rejected quar conflicts edd att notif pending
    assert_eq!(
        lines[1],
        "2026-11-21,202,Camden,2026-11-21T02:00:00+00:00,22,false,UCPP past EDD,0,1,1,2,0,0,0,0,0,0,1,0,0,0,0,0,1,1,1,1,0"
    );
    assert_eq!(
        lines[2],
        "2026-11-21,330,Birmingham,,,true,never sent,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"
    );
    assert_eq!(
        lines[3],
        "2026-11-21,919,Hertfordshire,2026-11-21T02:00:00+00:00,22,false,conflict,4,1,0,1,0,3,1,0,1,1,0,1,0,0,1,0,1,0,1,1,0"
    );

    let dq = fs::read_to_string(
        dir.path()
            .join("var/mailboxes/LA919/out/CPIS_DQ_919_2026-11-21.csv"),
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
            .join("var/mailboxes/LA202/out/CPIS_DQ_202_2026-11-21.csv"),
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
    // 330 never sent: it is told so (no file would mean "all fine").
    let birmingham = fs::read_to_string(
        dir.path()
            .join("var/mailboxes/LA330/out/CPIS_DQ_330_2026-11-21.csv"),
    )
    .unwrap();
    assert!(
        birmingham.contains("overdue,,,,,,,no extract of yours has been applied yet"),
        "{birmingham}"
    );

    let html = fs::read_to_string(dir.path().join("var/reports/2026-11-21/index.html")).unwrap();
    assert!(html.contains("has never sent an extract") && html.contains("Birmingham"));
    for external in [
        "<script",
        "src=",
        "@import",
        "url(",
        "href=\"http",
        "href=\"//",
    ] {
        assert!(!html.contains(external), "self-contained: no {external}");
    }

    // The next day's report counts only what happened on that day.
    report(dir.path(), "2026-11-23T02:00:00Z", "2026-11-22");
    let next = fs::read_to_string(dir.path().join("var/reports/2026-11-22/summary.csv")).unwrap();
    assert!(
        next.contains(
            "2026-11-22,919,Hertfordshire,2026-11-21T02:00:00+00:00,46,true,late,4,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0"
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
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no gateway store at") || said.contains("no gateway root at"),
        "{said}"
    );
    assert!(said.contains("cpis-gateway init"), "{said}");
    assert!(!dir.path().join("var").exists(), "nothing created");
    gateway(dir.path()).arg("init").assert().success();
    report(dir.path(), "2026-11-22T02:00:00Z", "2026-11-21");
    let html = fs::read_to_string(dir.path().join("var/reports/2026-11-21/index.html")).unwrap();
    assert!(
        html.contains("there is nothing to report for this date"),
        "{html}"
    );
    assert!(html.contains("Needs action today (3)"), "{html}");
    let summary =
        fs::read_to_string(dir.path().join("var/reports/2026-11-21/summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 4);
    assert!(
        summary
            .lines()
            .skip(1)
            .all(|l| l.contains(",,,true,never sent,0,0,0,")),
        "{summary}"
    );
    // Not in service yet (no file ever arrived): nobody is sent an "overdue" file.
    assert!(!dir
        .path()
        .join("var/mailboxes/LA919/out/CPIS_DQ_919_2026-11-21.csv")
        .exists());
    gateway(dir.path())
        .args(["report", "--date", "2026-02-30"])
        .assert()
        .code(2);
}

/// Eight days, four LAs: 919 sends daily (an unborn child long past its expected date;
/// day 6's file would close most of its children and is quarantined); 202 sends daily and
/// every file is rejected; 330 sends on days 1 to 3 and then stops; 942 sends the same two
/// children daily, one of whom is also 919's. Each night at 02:00 the previous day is reported.
fn eight_days(dir: &Path) -> Vec<String> {
    fs::write(
        dir.join("config.toml"),
        "[gateway]\nroot = \"var\"\nsettle_ms = 0\nlocal_authorities = [\"919\", \"202\", \"330\", \"942\"]\n",
    )
    .unwrap();
    let mut dates = Vec::new();
    for day in 1..=8u32 {
        let date = format!("2026-11-{:02}", 9 + day);
        let stamp = format!("202611{:02}T020000", 9 + day);
        let at = format!("{date}T03:00:00Z");
        let mut h919 = format!("{HEADER}\n");
        let children: Vec<u64> = if day == 6 {
            vec![1, 2]
        } else {
            (1..=6).collect()
        };
        for i in children {
            h919.push_str(&row(i, "CPP", "2026-01-01", "", "919", ""));
        }
        h919.push_str(&row(8, "UCPP", "2026-03-01", "", "919", "2026-08-01"));
        ingest(
            dir,
            &at,
            "LA919",
            &format!("CPIS_EXTRACT_919_{stamp}.csv"),
            &h919,
        );
        let mut h202 = format!("{HEADER}\n");
        for i in 20..23 {
            h202.push_str(&row(i, "CPP", "2026-13-45", "", "202", ""));
        }
        ingest(
            dir,
            &at,
            "LA202",
            &format!("CPIS_EXTRACT_202_{stamp}.csv"),
            &h202,
        );
        if day <= 3 {
            let h330 = format!(
                "{HEADER}\n{}{}",
                row(30, "LAC", "2026-02-01", "", "330", ""),
                row(31, "CPP", "2026-02-01", "", "330", "")
            );
            ingest(
                dir,
                &at,
                "LA330",
                &format!("CPIS_EXTRACT_330_{stamp}.csv"),
                &h330,
            );
        }
        let h942 = format!(
            "{HEADER}\n{}{}",
            row(1, "LAC", "2026-04-01", "", "942", ""),
            row(41, "CPP", "2026-04-01", "", "942", "")
        );
        ingest(
            dir,
            &at,
            "LA942",
            &format!("CPIS_EXTRACT_942_{stamp}.csv"),
            &h942,
        );
        report(dir, &format!("2026-11-{:02}T02:00:00Z", 10 + day), &date);
        dates.push(date);
    }
    dates
}

/// The text of each item of the page's needs-action list.
fn needs_action(html: &str) -> Vec<String> {
    let list = html
        .split("<ol class=\"actions\">")
        .nth(1)
        .and_then(|rest| rest.split("</ol>").next())
        .unwrap_or("");
    list.split("<li")
        .skip(1)
        .map(|item| {
            let mut text = String::new();
            let mut tag = false;
            for c in item.split_once('>').map_or("", |(_, rest)| rest).chars() {
                match c {
                    '<' => tag = true,
                    '>' => tag = false,
                    c if !tag => text.push(c),
                    _ => {}
                }
            }
            text.replace("&amp;", "&")
                .replace("&#39;", "'")
                .replace("&quot;", "\"")
        })
        .collect()
}

/// Every `href` of every page under `reports` points at a file that exists.
fn assert_links_resolve(reports: &Path) -> usize {
    let mut checked = 0;
    for entry in walkdir::WalkDir::new(reports).into_iter().flatten() {
        if entry.path().extension().is_none_or(|e| e != "html") {
            continue;
        }
        let html = fs::read_to_string(entry.path()).unwrap();
        for link in html.split("href=\"").skip(1) {
            let target = link.split('"').next().unwrap();
            let path = entry.path().parent().unwrap().join(target);
            assert!(
                path.is_file(),
                "{} links to {target}, which does not exist",
                entry.path().display()
            );
            checked += 1;
        }
    }
    checked
}

fn without_generated(html: &str) -> String {
    html.split(" Generated ")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part.to_owned()
            } else {
                part.split_once('.')
                    .map_or(String::new(), |(_, rest)| rest.to_owned())
            }
        })
        .collect()
}

#[test]
fn eight_days_of_four_las_needs_action_pages_links_and_honest_dates() {
    let dir = temp();
    let d = dir.path();
    let dates = eight_days(d);
    let reports = d.join("var/reports");
    let day8 = fs::read_to_string(reports.join("2026-11-17/index.html")).unwrap();
    assert_eq!(
        needs_action(&day8),
        [
            "LA 919 Hertfordshire: CPIS_EXTRACT_919_20261115T020000.csv is quarantined: the extract would close 4 of the LA's 7 open records by absence (57.1%, more than the 20% allowed) — decide it: cpis-gateway quarantine show Q1, then release or reject it".to_owned(),
            "LA 202 Camden: its latest file CPIS_EXTRACT_202_20261117T020000.csv was rejected (ERROR_RATE, DATE_FORMAT ×3) — tell the LA's data officer: the acknowledgement lists its problems".to_owned(),
            "LA 202 Camden: has never sent an extract that could be applied — chase the LA: its export may not be set up, or every file was rejected".to_owned(),
            "LA 330 Birmingham: no extract for 142 hours (last extracted 2026-11-12 02:00; 36 allowed) — chase the LA's data officer".to_owned(),
            "LA 919 Hertfordshire: 1 unborn-child plan(s) still open past the expected delivery date — the LA should end each or give the born child a plan of its own (listed in its CPIS_DQ file)".to_owned(),
            "LA 919 Hertfordshire: 1 record(s) of children also open with another LA — the LAs should agree which of them holds each plan (listed in their CPIS_DQ files)".to_owned(),
            "LA 942 Cumberland: 1 record(s) of children also open with another LA — the LAs should agree which of them holds each plan (listed in their CPIS_DQ files)".to_owned(),
        ]
    );
    assert!(day8.contains("audit verify passed"));
    // The LA table: needs action first.
    let table = day8
        .split("id=\"local-authorities\"")
        .nth(1)
        .and_then(|t| t.split("id=\"charts\"").next())
        .unwrap();
    let order: Vec<&str> = table
        .split("<td class=\"name\"><a href=\"la/")
        .skip(1)
        .map(|s| &s[..3])
        .collect();
    assert_eq!(order, ["919", "202", "330", "942"]);

    // 919's page: figures as at the end of the 17th, and its 30-day trend.
    let la919 = fs::read_to_string(reports.join("2026-11-17/la/919.html")).unwrap();
    for (id, value) in [
        ("status", "quarantined"),
        ("last-extract", "2026-11-17 02:00"),
        ("open", "6 / 0 / 1"),
        ("files", "1 / 0 / 0 / 0"),
        ("rows-rejected", "0"),
    ] {
        assert!(
            la919.contains(&format!("id=\"{id}\">{value}<")),
            "919 page: {id} = {value}"
        );
    }
    assert_eq!(la919.matches("<svg").count(), 5, "five sparklines");
    assert!(
        la919.contains("<td class=\"name\">quarantined</td>"),
        "day 6's file in the last 10"
    );
    assert!(la919.contains("ucpp_past_edd"), "its DQ items");
    assert!(!la919.contains(&nhs(8)), "NHS numbers masked on the page");
    let trend_rows = la919.split("<table id=\"days\">").nth(1).unwrap();
    assert!(
        trend_rows.contains(
            "<td class=\"name\">2026-11-17</td><td>1</td><td>0</td><td>6</td><td>0</td><td>1</td>"
        ),
        "the last day's figures in the table"
    );
    assert!(
        trend_rows.contains(
            "<td class=\"name\">2026-11-09</td><td>0</td><td>0</td><td>0</td><td>0</td><td>0</td>"
        ),
        "before the first file: nothing"
    );

    // Every link of every page resolves; the history lists every day.
    assert!(assert_links_resolve(&reports) > 8 * 5 * 4);
    let index = fs::read_to_string(reports.join("index.html")).unwrap();
    for date in &dates {
        assert!(
            index.contains(&format!("href=\"{date}/index.html\"")),
            "{date}"
        );
    }
    assert!(day8.contains("href=\"../2026-11-16/index.html\""));
    let day7 = fs::read_to_string(reports.join("2026-11-16/index.html")).unwrap();
    assert!(
        day7.contains("href=\"../2026-11-17/index.html\""),
        "the day before links forward"
    );

    // Overdue 330 was told so on the 17th; each LA got one DQ file per day at most.
    let dq_file = |la: &str, date: &str| {
        fs::read_to_string(d.join(format!("var/mailboxes/LA{la}/out/CPIS_DQ_{la}_{date}.csv")))
            .unwrap()
    };
    let dq330 = dq_file("330", "2026-11-17");
    assert!(
        dq330.contains("overdue,,,,,,,no extract applied for 142 hours"),
        "{dq330}"
    );
    assert!(
        !d.join("var/mailboxes/LA330/out/CPIS_DQ_330_2026-11-12.csv")
            .exists(),
        "fine on the 12th"
    );

    // Files rejected whole and quarantined are in the LA's file too.
    let dq202 = dq_file("202", "2026-11-17");
    assert!(
        dq202.contains("rejected_file,CPIS_EXTRACT_202_20261117T020000.csv,,,ERROR_RATE,,,"),
        "{dq202}"
    );
    let dq919 = dq_file("919", "2026-11-15");
    assert!(
        dq919.contains("quarantined,CPIS_EXTRACT_919_20261115T020000.csv,,,QUARANTINED,,,\"the extract would close 4"),
        "{dq919}"
    );

    // A past day rebuilt later says what the night's report said, and sends nothing again.
    let night = |date: &str, file: &str| fs::read_to_string(reports.join(date).join(file)).unwrap();
    let (summary14, page14, la14) = (
        night("2026-11-14", "summary.csv"),
        night("2026-11-14", "index.html"),
        night("2026-11-14", "la/919.html"),
    );
    let out = gateway(d)
        .env("CPIS_GATEWAY_NOW", "2026-11-20T09:00:00Z")
        .args(["report", "--date", "2026-11-14"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 data-quality file(s) sent"));
    assert_eq!(night("2026-11-14", "summary.csv"), summary14);
    assert_eq!(
        without_generated(&night("2026-11-14", "index.html")),
        without_generated(&page14)
    );
    assert_ne!(
        night("2026-11-14", "index.html"),
        page14,
        "only the generated time differs"
    );
    assert_eq!(night("2026-11-14", "la/919.html"), la14);

    // A future day is refused; so is today unless previewed, which sends nothing.
    let at = |now: &str, args: &[&str]| {
        gateway(d)
            .env("CPIS_GATEWAY_NOW", now)
            .arg("report")
            .args(args)
            .output()
            .unwrap()
    };
    let future = at("2026-11-18T09:00:00Z", &["--date", "2026-11-19"]);
    assert_eq!(future.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&future.stderr).contains("2026-11-19 is in the future"));
    let today = at("2026-11-18T09:00:00Z", &["--date", "2026-11-18"]);
    assert_eq!(today.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&today.stderr).contains("is not over yet"));
    let outboxes = || {
        walkdir::WalkDir::new(d.join("var/mailboxes"))
            .into_iter()
            .flatten()
            .count()
    };
    let before = outboxes();
    let preview = at("2026-11-18T09:00:00Z", &["--preview"]);
    assert_ok(&preview);
    assert!(reports.join("preview/2026-11-18/index.html").is_file());
    assert_eq!(outboxes(), before, "a preview sends nothing");
    assert!(
        !reports.join("2026-11-18").exists(),
        "nor takes the day's place"
    );
}

#[test]
fn the_page_renders_in_a_real_browser() {
    let dir = temp();
    eight_days(dir.path());
    let page = dir.path().join("var/reports/2026-11-17/index.html");
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
    for id in [
        "needs-action",
        "changes",
        "local-authorities",
        "charts",
        "trend",
        "rejections",
        "days",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id} rendered");
    }
    assert_eq!(dom.matches("<svg").count(), 3, "three charts rendered");
    assert_eq!(
        dom.matches("<li class=").count(),
        7,
        "seven needs-action lines"
    );
    assert!(dom.contains("Hertfordshire") && dom.contains("Camden"));
    // Keep a screenshot as a test artifact.
    let artifacts = repo().join("target/test-artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("morning-report.png");
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

/// LA 919's first file, one child, on the 20th: its text.
fn first_file_on_the_20th(d: &Path) -> String {
    let mut text = format!("{HEADER}\n");
    text.push_str(&row(1, "CPP", "2026-01-01", "", "919", ""));
    ingest(
        d,
        "2026-11-20T03:00:00Z",
        "LA919",
        "CPIS_EXTRACT_919_20261120T020000.csv",
        &text,
    );
    text
}

#[test]
fn a_daemon_that_was_down_at_report_time_writes_the_missed_days_when_it_starts() {
    let root = crate::daemon::Root::new(100);
    let d = root.path();
    // The first file arrives on the 20th; the daemon starts on the 22nd.
    first_file_on_the_20th(d);
    let daemon = root.start();
    let reports = d.join("var/reports");
    let written = crate::daemon::wait_until(std::time::Duration::from_secs(20), || {
        ["2026-11-20", "2026-11-21"]
            .iter()
            .all(|day| reports.join(day).join("index.html").is_file())
    });
    assert!(
        written.is_some(),
        "{}",
        fs::read_to_string(&daemon.log).unwrap()
    );
    assert!(
        !reports.join("2026-11-19").exists(),
        "nothing before the first file"
    );
    assert!(!reports.join("2026-11-22").exists(), "today is not over");
    let late =
        fs::read_to_string(d.join("var/mailboxes/LA330/out/CPIS_DQ_330_2026-11-21.csv")).unwrap();
    assert!(late.contains("overdue,"), "{late}");
}

#[test]
fn refused_files_are_counted_and_a_day_that_fails_stops_no_other() {
    let root = crate::daemon::Root::new(0);
    let d = root.path();
    let text = first_file_on_the_20th(d);
    // On the 21st: a readme in an LA's and a hospital's in/, and a spreadsheet, refused.
    fs::write(root.inbox("LA919").join("readme.txt"), "hello").unwrap();
    fs::write(root.inbox("RWG").join("readme.txt"), "hello").unwrap();
    fs::write(
        root.inbox("LA202")
            .join("CPIS_EXTRACT_202_20261121T020000.xlsx"),
        "PK",
    )
    .unwrap();
    // A hospital's attendance file with a broken header, and 919's extract dropped by 202.
    fs::write(
        root.inbox("RWG")
            .join("CPIS_ATTEND_RWG_20261121T100000.csv"),
        "nhs_number,when\n",
    )
    .unwrap();
    fs::write(
        root.inbox("LA202")
            .join("CPIS_EXTRACT_919_20261121T030000.csv"),
        &text,
    )
    .unwrap();
    let out = gateway(d)
        .env("CPIS_GATEWAY_NOW", "2026-11-21T10:00:00Z")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The 22nd's report folder cannot be made (a file stands in its way).
    let reports = d.join("var/reports");
    fs::create_dir_all(&reports).unwrap();
    fs::write(reports.join("2026-11-22"), "in the way").unwrap();
    // The daemon starts on the 24th: it writes every missed day it can.
    let daemon = root.start_at("2026-11-24T09:00:00Z");
    let written = crate::daemon::wait_until(std::time::Duration::from_secs(30), || {
        ["2026-11-20", "2026-11-21", "2026-11-23"]
            .iter()
            .all(|day| reports.join(day).join("index.html").is_file())
    });
    assert!(
        written.is_some(),
        "{}",
        fs::read_to_string(&daemon.log).unwrap()
    );
    daemon.wait_log("the report of this day could not be written");
    let page = fs::read_to_string(reports.join("2026-11-21/index.html")).unwrap();
    for line in [
        "RWG: its file readme.txt was rejected (FILE_NAME)",
        "RWG: its file CPIS_ATTEND_RWG_20261121T100000.csv was rejected (HEADER)",
    ] {
        assert!(page.contains(line), "{line}: {page}");
    }
    let summary = fs::read_to_string(reports.join("2026-11-21/summary.csv")).unwrap();
    let la = |code: &str| {
        let header: Vec<&str> = summary.lines().next().unwrap().split(',').collect();
        let line: Vec<&str> = summary
            .lines()
            .find(|l| l.split(',').nth(1) == Some(code))
            .unwrap()
            .split(',')
            .collect();
        let at = |name: &str| line[header.iter().position(|h| *h == name).unwrap()].to_owned();
        (at("files_rejected"), at("needs_action"))
    };
    assert_eq!(
        la("919").0,
        "1",
        "the readme in 919's in/ counts as its rejected file; 202's mistake does not"
    );
    assert_eq!(la("202"), ("2".to_owned(), "rejected".to_owned()));
    // status says which day could not be written, and how to write it.
    let out = gateway(d)
        .env("CPIS_GATEWAY_NOW", "2026-11-24T09:05:00Z")
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["failed_reports"][0]["date"], "2026-11-22",
        "{status}"
    );
    assert_schema("status.schema.json", &status);
    let text = gateway(d)
        .env("CPIS_GATEWAY_NOW", "2026-11-24T09:05:00Z")
        .arg("status")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout)
        .contains("the report of 2026-11-22 could not be written"));
    // Once the cause is gone, the day is written by hand and leaves status.
    drop(daemon);
    fs::remove_file(reports.join("2026-11-22")).unwrap();
    let out = gateway(d)
        .env("CPIS_GATEWAY_NOW", "2026-11-24T09:10:00Z")
        .args(["report", "--date", "2026-11-22"])
        .output()
        .unwrap();
    assert_ok(&out);
    let out = gateway(d)
        .env("CPIS_GATEWAY_NOW", "2026-11-24T09:10:00Z")
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["failed_reports"], serde_json::json!([]));
}

#[test]
fn row_errors_beyond_those_listed_are_counted_in_the_report() {
    let dir = temp();
    config(dir.path());
    ingest(
        dir.path(),
        "2026-11-20T03:00:00Z",
        "LA919",
        "CPIS_EXTRACT_919_20261120T020000.csv",
        &format!("{HEADER}\n{}", row(1, "CPP", "2026-01-01", "", "919", "")),
    );
    // Rows 1 and 2 repeat a key; 10,005 rows have a bad NHS number: 10,000 problems are
    // listed in the acknowledgement, the rest only counted.
    let mut text = format!("{HEADER}\n");
    text.push_str(&row(1, "CPP", "2026-01-01", "", "919", "").repeat(2));
    for i in 0..10_005 {
        text.push_str(&format!(
            "12345,CPP,2026-01-01,,919,01632 960001,01632 960002,R{i},\n"
        ));
    }
    ingest(
        dir.path(),
        "2026-11-21T03:00:00Z",
        "LA919",
        "CPIS_EXTRACT_919_20261121T020000.csv",
        &text,
    );
    report(dir.path(), "2026-11-22T02:00:00Z", "2026-11-21");
    let page = fs::read_to_string(dir.path().join("var/reports/2026-11-21/la/919.html")).unwrap();
    assert!(
        page.contains("ERROR_RATE, NHS_FORMAT ×10005, DUPLICATE ×2"),
        "{page}"
    );
    // The LA's data-quality file lists the first 10,000 and counts the rest by code.
    let dq = fs::read_to_string(
        dir.path()
            .join("var/mailboxes/LA919/out/CPIS_DQ_919_2026-11-21.csv"),
    )
    .unwrap();
    assert_eq!(
        dq.lines()
            .filter(|l| l.starts_with("rejected_row,"))
            .count(),
        10_000
    );
    let unlisted: Vec<&str> = dq
        .lines()
        .filter(|l| l.starts_with("rejected_rows_unlisted,"))
        .collect();
    assert_eq!(unlisted.len(), 1, "{unlisted:?}");
    assert!(
        unlisted[0].starts_with(
            "rejected_rows_unlisted,CPIS_EXTRACT_919_20261121T020000.csv,,,NHS_FORMAT,,,\"7 more row errors"
        ),
        "{}",
        unlisted[0]
    );
    let national =
        fs::read_to_string(dir.path().join("var/reports/2026-11-21/index.html")).unwrap();
    assert!(
        national.contains("<th scope=\"col\">NHS_FORMAT</th><th scope=\"col\">DUPLICATE</th><th scope=\"col\">other</th><th scope=\"col\">Rows rejected</th></tr></thead><tbody><tr><td class=\"name\"><a href=\"la/919.html\">919 Hertfordshire</a></td><td>10005</td><td>2</td><td>0</td><td>10007</td>"),
        "{national}"
    );
}
