//! Local mailbox `in/` folders: which files are complete and may be taken (SPEC 6).
//!
//! A file is taken only when complete: not hidden, not `.part` or `.tmp`, and either its
//! `<stem>.ctl` control file exists or its size and mtime have held for `settle`. Symbolic
//! links and anything that is not a regular file, and names the gateway does not take,
//! are refused without being read.

use crate::core::filename::parse_inbound_name;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What a scan found in an `in/` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Complete: take it (with its control file, if it has one).
    Ready {
        path: PathBuf,
        control: Option<PathBuf>,
    },
    /// Refuse it without reading it.
    Refuse { path: PathBuf, reason: String },
    /// Still being written (or not yet known to have stopped changing).
    Settling { path: PathBuf },
}

/// Remembers what each file looked like, to tell when it stopped changing.
#[derive(Debug, Default)]
pub struct Settler {
    seen: HashMap<PathBuf, (u64, Option<SystemTime>, Instant)>,
}

/// Names that are not (yet) files for the gateway: temporary or partial uploads, hidden
/// files (the gateway's own temporaries start with a dot) and control files.
fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".part")
        || name.ends_with(".tmp")
        || name.ends_with(".ctl")
}

impl Settler {
    /// Scans one `in/` folder. Returns what to take, refuse or wait for (in name order,
    /// which is extraction-time order for one sender) and how many files are still settling.
    pub fn scan(&mut self, inbox: &Path, settle: Duration) -> io::Result<(Vec<Found>, usize)> {
        let mut found = Vec::new();
        let mut settling = 0;
        let entries = match fs::read_dir(inbox) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((found, 0)),
            Err(e) => return Err(e),
        };
        let now = SystemTime::now();
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                found.push(Found::Refuse {
                    path,
                    reason: "the file name is not UTF-8 text".into(),
                });
                continue;
            };
            if ignored(&name) {
                continue;
            }
            let meta = fs::symlink_metadata(&path)?;
            if meta.file_type().is_symlink() {
                found.push(Found::Refuse {
                    path,
                    reason: format!("{name:?} is a symbolic link: mailboxes take only plain files"),
                });
                continue;
            }
            if !meta.is_file() {
                found.push(Found::Refuse {
                    path,
                    reason: format!("{name:?} is not a plain file"),
                });
                continue;
            }
            if let Err(reason) = parse_inbound_name(&name) {
                found.push(Found::Refuse { path, reason });
                continue;
            }
            let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
            let control = inbox.join(format!("{stem}.ctl"));
            match control_state(&control, settle, now) {
                Control::Absent => {}
                Control::Complete => {
                    self.seen.remove(&path);
                    found.push(Found::Ready {
                        path,
                        control: Some(control),
                    });
                    continue;
                }
                Control::Arriving => {
                    settling += 1;
                    found.push(Found::Settling { path });
                    continue;
                }
            }
            let (len, mtime) = (meta.len(), meta.modified().ok());
            let old_enough = mtime
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= settle);
            let entry = self
                .seen
                .entry(path.clone())
                .or_insert((len, mtime, Instant::now()));
            if entry.0 != len || entry.1 != mtime {
                *entry = (len, mtime, Instant::now());
            }
            let held = entry.2.elapsed() >= settle;
            if old_enough || held {
                self.seen.remove(&path);
                found.push(Found::Ready {
                    path,
                    control: None,
                });
            } else {
                settling += 1;
                found.push(Found::Settling { path });
            }
        }
        found.sort_by(|a, b| key(a).cmp(key(b)));
        Ok((found, settling))
    }

    /// Forgets files that are gone (so the map does not grow).
    pub fn forget(&mut self, path: &Path) {
        self.seen.remove(path);
    }
}

/// Where a data file's control file stands.
enum Control {
    Absent,
    /// Still being written: empty, or not yet a whole document and younger than `settle`.
    Arriving,
    /// There to be read (a broken one older than `settle` is judged, and refuses its file).
    Complete,
}

fn control_state(control: &Path, settle: Duration, now: SystemTime) -> Control {
    let Ok(meta) = fs::symlink_metadata(control) else {
        return Control::Absent;
    };
    if meta.is_file() && meta.len() == 0 {
        return Control::Arriving;
    }
    let young = meta
        .modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .is_none_or(|age| age < settle);
    let whole = || {
        crate::sys::fsutil::open_inbound(control)
            .ok()
            .and_then(Result::ok)
            .and_then(|mut o| {
                crate::sys::fsutil::read_at_most(
                    &mut o.file,
                    crate::core::control::MAX_CONTROL_BYTES,
                )
                .ok()
            })
            .flatten()
            .is_some_and(|bytes| crate::core::control::parse_control(&bytes).is_ok())
    };
    if meta.is_file() && young && !whole() {
        Control::Arriving
    } else {
        Control::Complete
    }
}

fn key(f: &Found) -> &Path {
    match f {
        Found::Ready { path, .. } | Found::Refuse { path, .. } | Found::Settling { path } => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "CPIS_EXTRACT_919_20261121T020000.csv";

    fn ready(found: &[Found]) -> Vec<String> {
        found
            .iter()
            .filter_map(|f| match f {
                Found::Ready { path, .. } => {
                    Some(path.file_name().unwrap().to_string_lossy().into_owned())
                }
                Found::Refuse { .. } | Found::Settling { .. } => None,
            })
            .collect()
    }

    #[test]
    fn partial_hidden_and_fresh_files_wait() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(format!("{NAME}.part")), "x").unwrap();
        fs::write(dir.path().join(format!(".{NAME}.tmp")), "x").unwrap();
        fs::write(dir.path().join(NAME), "x").unwrap();
        let mut s = Settler::default();
        let (found, settling) = s.scan(dir.path(), Duration::from_secs(60)).unwrap();
        assert!(ready(&found).is_empty(), "{found:?}");
        assert_eq!(settling, 1);
        assert!(matches!(&found[..], [Found::Settling { .. }]), "{found:?}");
        let (found, _) = s.scan(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(ready(&found), [NAME]);
    }

    #[test]
    fn a_control_file_completes_at_once_and_odd_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NAME), "x").unwrap();
        fs::write(
            dir.path().join("CPIS_EXTRACT_919_20261121T020000.ctl"),
            "<DTSControl><From_DTS>LA919</From_DTS></DTSControl>",
        )
        .unwrap();
        fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink(
            "/etc/passwd",
            dir.path().join("CPIS_EXTRACT_919_20261122T020000.csv"),
        )
        .unwrap();
        fs::create_dir(dir.path().join("CPIS_EXTRACT_919_20261123T020000.csv")).unwrap();
        let (found, settling) = Settler::default()
            .scan(dir.path(), Duration::from_secs(60))
            .unwrap();
        assert_eq!(settling, 0);
        assert_eq!(ready(&found), [NAME]);
        assert!(matches!(
            &found[0],
            Found::Ready {
                control: Some(_),
                ..
            }
        ));
        let refused: Vec<&str> = found
            .iter()
            .filter_map(|f| match f {
                Found::Refuse { reason, .. } => Some(reason.as_str()),
                Found::Ready { .. } | Found::Settling { .. } => None,
            })
            .collect();
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused.iter().any(|r| r.contains("symbolic link")));
    }

    #[test]
    fn a_control_file_still_being_written_holds_its_data_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NAME), "x").unwrap();
        let ctl = dir.path().join("CPIS_EXTRACT_919_20261121T020000.ctl");
        fs::write(&ctl, "").unwrap();
        let mut s = Settler::default();
        let (found, settling) = s.scan(dir.path(), Duration::from_secs(60)).unwrap();
        assert_eq!(
            (ready(&found).len(), settling),
            (0, 1),
            "empty: still arriving"
        );
        fs::write(&ctl, "<DTSControl><From_DTS>LA9").unwrap();
        let (found, _) = s.scan(dir.path(), Duration::from_secs(60)).unwrap();
        assert!(
            ready(&found).is_empty(),
            "half a document, young: still arriving"
        );
        let (found, _) = s.scan(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(
            ready(&found),
            [NAME],
            "old enough: judged (and refused) as it is"
        );
        fs::write(&ctl, "<DTSControl><From_DTS>LA919</From_DTS></DTSControl>").unwrap();
        let (found, _) = s.scan(dir.path(), Duration::from_secs(60)).unwrap();
        assert_eq!(ready(&found), [NAME]);
    }
}
