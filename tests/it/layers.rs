//! The house keeps its layers (issue 21): every module of `src/` belongs to a layer, and no
//! module uses one of a higher layer, nor do two files use each other (directly or round a
//! circle). Read from the source: every `crate::…`, `super::…` (and, in `main.rs`,
//! `cpis_gateway::…`) path outside comments, resolved to the file that defines it.
//!
//! `cargo test --test it layers -- --nocapture` prints every file's layer and what it uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The layers, lowest first: a module may use its own layer and those below.
const LAYERS: &[(&str, u8)] = &[
    // The pure domain: values, rules, formats; no I/O, no clock.
    ("core", 0),
    // The machine: files, hashing, clock, logs, progress bars, faults, ownership, where
    // things live, this process's name.
    ("sys", 1),
    // The store, SQLite or PostgreSQL, its leases and write turns.
    ("store", 2),
    // The configuration (it names the store).
    ("config", 3),
    // What happens to one file: checks, ingest, the health side, duplicates.
    ("pipeline", 4),
    // The morning report.
    ("reporting", 5),
    // Moving files to and from SFTP and MESH.
    ("transport", 6),
    // The FHIR API: HTTP in, look-ups through the health side.
    ("api", 6),
    // The long-running service: the daemon, mailboxes, retention, the cluster's node.
    ("service", 7),
    // One module per command.
    ("cli", 8),
    ("lib", 9),
    ("main", 9),
];

/// Module path (`store::db`) of a source file (`src/store/db.rs`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix("src").unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn layer_of(module: &str) -> Option<u8> {
    let top = module.split("::").next().unwrap_or("");
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, l)| *l)
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The paths a line names from `prefix` (`crate`, `super`): `a::b::c` for each, braces
/// expanded one level (`crate::x::{a, b::c}` → `x::a`, `x::b::c`).
fn paths_after(line: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let needle = format!("{prefix}::");
    let mut rest = line;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut base: Vec<String> = if prefix == "super" {
            vec!["super".into()]
        } else {
            Vec::new()
        };
        loop {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if word.is_empty() {
                break;
            }
            rest = &rest[word.len()..];
            base.push(word);
            match rest.strip_prefix("::") {
                Some(r) => rest = r,
                None => break,
            }
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let mut p = base.clone();
                p.extend(
                    item.trim()
                        .split("::")
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty() && s != "self"),
                );
                out.push(p);
            }
        } else {
            out.push(base);
        }
    }
    out
}

/// Every file's module and the modules (files) it uses.
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(root).unwrap()))
        .collect();
    let mut uses = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(root).unwrap();
        let module = module_of(rel);
        // `super` of a file is its parent module (of a mod.rs, the folder's parent).
        let here: Vec<&str> = module.split("::").collect();
        let parent = &here[..here.len().saturating_sub(1)];
        let text = fs::read_to_string(file).unwrap();
        let mut used = BTreeSet::new();
        // A file's unit tests (at its end) are not part of the house.
        for line in text.lines().take_while(|l| l.trim() != "#[cfg(test)]") {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let code = code.split("//").next().unwrap_or("");
            let mut paths = paths_after(code, "crate");
            if module == "main" {
                paths.extend(paths_after(code, "cpis_gateway"));
            }
            for p in paths_after(code, "super") {
                let mut full: Vec<String> = parent.iter().map(|s| s.to_string()).collect();
                let mut rest = p.into_iter().peekable();
                while rest.peek().is_some_and(|s| s == "super") {
                    rest.next();
                    if rest.peek().is_some_and(|s| s == "super") {
                        full.pop();
                    }
                }
                full.extend(rest);
                paths.push(full);
            }
            for p in paths {
                // The longest prefix that is a file of ours.
                let target = (1..=p.len())
                    .rev()
                    .map(|n| p[..n].join("::"))
                    .find(|m| modules.contains(m));
                if let Some(t) = target.filter(|t| *t != module && module != "lib") {
                    used.insert(t);
                }
            }
        }
        uses.insert(module, used);
    }
    uses
}

/// The circles: strongly connected groups of more than one file.
fn circles(uses: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for n in uses.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> = uses.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in uses.keys() {
        let group: Vec<String> = uses
            .keys()
            .filter(|n| (*n == m) || (reached[m].contains(*n) && reached[n].contains(m)))
            .cloned()
            .collect();
        if group.len() > 1 && !out.contains(&group) {
            out.push(group);
        }
    }
    out
}

#[test]
fn no_module_uses_a_higher_layer_and_no_files_go_round_in_a_circle() {
    let root = crate::helpers::repo();
    let uses = graph(&root);
    let mut problems = Vec::new();
    for (module, used) in &uses {
        let Some(mine) = layer_of(module) else {
            problems.push(format!("{module}: in no layer (add its folder to LAYERS)"));
            continue;
        };
        eprintln!(
            "{mine} {module} -> {}",
            used.iter().cloned().collect::<Vec<_>>().join(" ")
        );
        for u in used {
            match layer_of(u) {
                Some(theirs) if theirs > mine => {
                    problems.push(format!("{module} (layer {mine}) uses {u} (layer {theirs})"))
                }
                _ => {}
            }
        }
    }
    for group in circles(&uses) {
        problems.push(format!("circle: {}", group.join(" <-> ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn paths_are_read_as_the_compiler_reads_them() {
    assert_eq!(
        paths_after("use crate::store::{Inbound, db::Row};", "crate"),
        [vec!["store", "Inbound"], vec!["store", "db", "Row"]]
    );
    assert_eq!(
        paths_after(
            "let x = crate::fsutil::write_lock(&p)?; notcrate::y",
            "crate"
        ),
        [vec!["fsutil", "write_lock"]]
    );
    assert_eq!(
        paths_after("use super::super::db::Row;", "super"),
        [vec!["super", "super", "db", "Row"]]
    );
}
