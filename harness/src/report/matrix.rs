//! Several run reports as one picture: a column per target (its latest
//! run), a row per case id grouped by family, and, for a target given more
//! than once, what changed from each run to the next. Pure: built from
//! loaded reports alone, so it renders CI artifacts long after the run.

use std::collections::{BTreeMap, HashMap};

use super::load::{CaseReport, RunReport};

/// One target's column: its latest run.
pub struct Column<'a> {
    /// What identifies the target ([`RunReport::target_key`]).
    pub key: String,
    pub run: &'a RunReport,
    /// Earlier runs of the same target, oldest first.
    pub earlier: Vec<&'a RunReport>,
}

pub struct Row<'a> {
    pub id: &'a str,
    /// One cell per column; `None`: that run did not include the case.
    pub cells: Vec<Option<&'a CaseReport>>,
}

pub struct Family<'a> {
    pub name: &'a str,
    pub rows: Vec<Row<'a>>,
    /// Outcome counts per column.
    pub counts: Vec<BTreeMap<&'a str, usize>>,
}

/// How a case moved between two runs of one target.
pub struct Moved<'a> {
    pub id: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    /// The later run's reason (the earlier one's if the case is gone).
    pub reason: &'a str,
}

/// What changed from one run of a target to its next.
pub struct Change<'a> {
    pub key: String,
    pub from: &'a RunReport,
    pub to: &'a RunReport,
    pub newly_failing: Vec<Moved<'a>>,
    pub newly_passing: Vec<Moved<'a>>,
    /// Every other change of outcome, including cases only one run has.
    pub other: Vec<Moved<'a>>,
}

impl Change<'_> {
    pub fn is_empty(&self) -> bool {
        self.newly_failing.is_empty() && self.newly_passing.is_empty() && self.other.is_empty()
    }
}

pub struct Matrix<'a> {
    pub columns: Vec<Column<'a>>,
    pub families: Vec<Family<'a>>,
    pub changes: Vec<Change<'a>>,
}

/// Whether an outcome counts as passing or failing when comparing runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Passing,
    Failing,
    /// No verdict on the target (unsupported, not run, unknown outcomes).
    Neither,
}

fn side(outcome: &str) -> Side {
    match outcome {
        "pass" | "info" | "xpass" => Side::Passing,
        "fail" | "error" | "non-strict" | "xfail" => Side::Failing,
        _ => Side::Neither,
    }
}

/// Compares two runs of one target, case by case.
pub fn compare<'a>(key: &str, from: &'a RunReport, to: &'a RunReport) -> Change<'a> {
    let before: HashMap<&str, &CaseReport> =
        from.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let after: HashMap<&str, &CaseReport> = to.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut change = Change {
        key: key.to_string(),
        from,
        to,
        newly_failing: Vec::new(),
        newly_passing: Vec::new(),
        other: Vec::new(),
    };
    let ids = to
        .cases
        .iter()
        .map(|c| c.id.as_str())
        .chain(from.cases.iter().map(|c| c.id.as_str()));
    let mut seen = std::collections::HashSet::new();
    for id in ids.filter(|id| seen.insert(*id)) {
        let (b, a) = (before.get(id), after.get(id));
        let (bo, ao) = (b.map(|c| c.outcome.as_str()), a.map(|c| c.outcome.as_str()));
        if bo == ao {
            continue;
        }
        let moved = Moved {
            id,
            before: bo,
            after: ao,
            reason: a.or(b).map_or("", |c| c.reason.as_str()),
        };
        match (bo.map(side), ao.map(side)) {
            (Some(Side::Passing), Some(Side::Failing)) => change.newly_failing.push(moved),
            (Some(Side::Failing), Some(Side::Passing)) => change.newly_passing.push(moved),
            _ => change.other.push(moved),
        }
    }
    change
}

/// Builds the matrix from run reports in the order given; runs of one
/// target are ordered by start time.
pub fn build<'a>(runs: &[&'a RunReport]) -> Matrix<'a> {
    let mut keys: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, Vec<&'a RunReport>> = HashMap::new();
    for r in runs {
        let k = r.target_key();
        if !by_key.contains_key(&k) {
            keys.push(k.clone());
        }
        by_key.entry(k).or_default().push(r);
    }
    let mut columns = Vec::new();
    let mut changes = Vec::new();
    for key in keys {
        let mut list = by_key.remove(&key).unwrap_or_default();
        // RFC 3339 times of one format order as strings; the sort is stable.
        list.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        // One report given twice (or copied) is one run, not a change.
        list.dedup_by(|a, b| a.started_at == b.started_at && !a.started_at.is_empty());
        for pair in list.windows(2) {
            changes.push(compare(&key, pair[0], pair[1]));
        }
        let Some(run) = list.pop() else { continue };
        columns.push(Column {
            key,
            run,
            earlier: list,
        });
    }

    let mut families: Vec<Family<'a>> = Vec::new();
    let mut family_of: HashMap<&'a str, usize> = HashMap::new();
    let mut row_of: HashMap<&'a str, (usize, usize)> = HashMap::new();
    let n = columns.len();
    for (col, c) in columns.iter().enumerate() {
        for case in &c.run.cases {
            let fi = *family_of.entry(case.family()).or_insert_with(|| {
                families.push(Family {
                    name: case.family(),
                    rows: Vec::new(),
                    counts: vec![BTreeMap::new(); n],
                });
                families.len() - 1
            });
            let (f, r) = *row_of.entry(case.id.as_str()).or_insert_with(|| {
                families[fi].rows.push(Row {
                    id: case.id.as_str(),
                    cells: vec![None; n],
                });
                (fi, families[fi].rows.len() - 1)
            });
            // A report listing one id twice: the first entry stands.
            if families[f].rows[r].cells[col].is_none() {
                families[f].rows[r].cells[col] = Some(case);
                *families[f].counts[col]
                    .entry(case.outcome.as_str())
                    .or_default() += 1;
            }
        }
    }
    Matrix {
        columns,
        families,
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::{Loaded, parse};
    use super::*;

    fn run(target: &str, started: &str, cases: &[(&str, &str)]) -> RunReport {
        let cases: Vec<String> = cases
            .iter()
            .map(|(id, o)| format!(r#"{{"id": "{id}", "outcome": "{o}", "reason": "r"}}"#))
            .collect();
        let text = format!(
            r#"{{"schema_version": 1, "started_at": "{started}", "targets": {{"ws": "{target}"}}, "cases": [{}]}}"#,
            cases.join(",")
        );
        match parse("t", &text).unwrap() {
            Loaded::Run(r) => *r,
            Loaded::Bench(_) => unreachable!(),
        }
    }

    #[test]
    fn targets_side_by_side_and_runs_compared() {
        let a1 = run(
            "ws://a/",
            "2026-01-02T00:00:00Z",
            &[("ws.f.x", "pass"), ("ws.f.y", "fail"), ("ws.g.z", "pass")],
        );
        let a0 = run(
            "ws://a/",
            "2026-01-01T00:00:00Z",
            &[("ws.f.x", "fail"), ("ws.f.y", "pass"), ("ws.g.w", "pass")],
        );
        let b = run("ws://b/", "2026-01-01T00:00:00Z", &[("ws.g.z", "error")]);
        let m = build(&[&a1, &b, &a0, &a1]);
        assert_eq!(m.columns.len(), 2);
        assert_eq!(m.columns[0].run.started_at, "2026-01-02T00:00:00Z");
        assert_eq!(m.columns[0].earlier.len(), 1);
        let names: Vec<&str> = m.families.iter().map(|f| f.name).collect();
        assert_eq!(names, ["ws.f", "ws.g"]);
        let z = &m.families[1].rows[0];
        assert_eq!(z.id, "ws.g.z");
        assert_eq!(z.cells[1].map(|c| c.outcome.as_str()), Some("error"));
        assert_eq!(m.families[0].counts[0].get("fail"), Some(&1));
        assert!(m.families[0].counts[1].is_empty());

        assert_eq!(m.changes.len(), 1);
        let c = &m.changes[0];
        let ids = |v: &[Moved]| v.iter().map(|m| m.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&c.newly_failing), ["ws.f.y"]);
        assert_eq!(ids(&c.newly_passing), ["ws.f.x"]);
        assert_eq!(ids(&c.other), ["ws.g.z", "ws.g.w"]);
    }
}
