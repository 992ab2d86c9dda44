//! One prover for the fault tables of both protocols.
//!
//! A fault test is data: an [`Entry`] names the fault injected into a
//! fixture, the families run against it, the profile they are judged
//! against, and the cases expected to `fail`, to be `non-strict` or `info`.
//! [`prove`] runs the entry and requires exactly those outcomes: every case
//! not listed must pass (`info` for `info` cases, or `unsupported` when it
//! needs a capability the profile does not declare), so a failure comes
//! from the fault and not from a fixture bug.
//!
//! The tables are also what the coverage rule (`tests/fault_coverage.rs`)
//! reads: since each entry is proven by a test of its own, the union of the
//! cases they list as failing is a truthful list of the cases that can fail.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;

use pushspec::case::{Case, Level};
use pushspec::outcome::{CaseResult, Outcome};
use pushspec::profile::Capabilities;

/// Which cases an expectation names.
#[derive(Clone, Copy, Debug)]
pub enum Sel {
    /// One case, by id.
    Id(&'static str),
    /// Every case whose id matches `pattern` (`*` stands for any run of
    /// characters) and none of `except`. `count`, when given, is how many
    /// cases that must be: a guard that the family did not change under
    /// the entry unnoticed.
    Glob {
        pattern: &'static str,
        except: &'static [&'static str],
        count: Option<usize>,
    },
    /// Every case of a named list (so lists can be shared and combined).
    All(&'static [Sel]),
}

/// One case by id.
pub const fn id(id: &'static str) -> Sel {
    Sel::Id(id)
}

/// The cases whose id matches `pattern` (`*`: any run of characters).
pub const fn glob(pattern: &'static str) -> Sel {
    Sel::Glob {
        pattern,
        except: &[],
        count: None,
    }
}

/// Every case of a named list.
pub const fn all(list: &'static [Sel]) -> Sel {
    Sel::All(list)
}

impl Sel {
    /// Without the cases matching one of `except` (patterns too).
    pub const fn except(self, except: &'static [&'static str]) -> Sel {
        match self {
            Sel::Glob { pattern, count, .. } => Sel::Glob {
                pattern,
                except,
                count,
            },
            Sel::Id(_) | Sel::All(_) => panic!("`except` applies to a pattern"),
        }
    }

    /// Requires the pattern to select exactly `n` cases.
    pub const fn count(self, n: usize) -> Sel {
        match self {
            Sel::Glob {
                pattern, except, ..
            } => Sel::Glob {
                pattern,
                except,
                count: Some(n),
            },
            Sel::Id(_) | Sel::All(_) => panic!("`count` applies to a pattern"),
        }
    }

    /// The ids of `cases` this selects, in case order. An id not among
    /// `cases`, or a pattern selecting a number of cases other than its
    /// `count` (or none at all), is an error: the table is out of date.
    pub fn resolve(&self, cases: &'static [Case]) -> Result<Vec<&'static str>, String> {
        match *self {
            Sel::Id(id) => cases
                .iter()
                .find(|c| c.id == id)
                .map(|c| vec![c.id.as_str()])
                .ok_or_else(|| format!("{id}: no such case")),
            Sel::All(list) => resolve_all(list, cases),
            Sel::Glob {
                pattern,
                except,
                count,
            } => {
                let v: Vec<&str> = cases
                    .iter()
                    .map(|c| c.id.as_str())
                    .filter(|id| matches(pattern, id) && !except.iter().any(|e| matches(e, id)))
                    .collect();
                match count {
                    Some(n) if v.len() != n => Err(format!(
                        "{pattern} selects {} cases, not {n}: {v:?}",
                        v.len()
                    )),
                    None if v.is_empty() => Err(format!("{pattern} selects no case")),
                    _ => Ok(v),
                }
            }
        }
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters (ids are ASCII; the pattern has few stars, so the simple
/// backtracking search is enough).
pub fn matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && matches(rest, &tail[i..]))
        }
    }
}

/// The ids every selector of `sels` names, each once.
pub fn resolve_all(sels: &[Sel], cases: &'static [Case]) -> Result<Vec<&'static str>, String> {
    let mut v: Vec<&'static str> = Vec::new();
    for s in sels {
        for id in s.resolve(cases)? {
            if !v.contains(&id) {
                v.push(id);
            }
        }
    }
    Ok(v)
}

/// One fault test: a fault, what it runs, and the outcomes it must give.
#[derive(Clone, Copy, Debug)]
pub struct Entry<F: 'static, P: 'static> {
    /// The test's name (the `#[test]` generated for the entry).
    pub name: &'static str,
    pub fault: F,
    /// The profile (capabilities) the families are judged against.
    pub profile: P,
    /// Full family names, e.g. `ws.handshake`.
    pub families: &'static [&'static str],
    /// Cases that must be `fail`.
    pub fail: &'static [Sel],
    /// Cases that must be `non-strict`.
    pub non_strict: &'static [Sel],
    /// Cases that must be `info` (a declared limit hit, say).
    pub info: &'static [Sel],
    /// Slug prefixes of cases not run: slow ones the fault cannot affect.
    pub skip: &'static [&'static str],
    /// Words every `fail` and `non-strict` case must give in its reason
    /// (say, a fault that breaks a prerequisite of every case).
    pub reason: Option<&'static str>,
    /// For an entry expecting no outcome but pass with a fault injected:
    /// why nothing fails (without it such an entry is taken for a typo).
    pub all_pass_because: Option<&'static str>,
}

/// What [`prove`] needs from a protocol's fixture.
pub trait Fixture {
    type Fault: Copy + Debug + PartialEq + 'static;
    type Profile: Copy + Debug + 'static;
    /// The fault under which the fixture is correct.
    const NO_FAULT: Self::Fault;
    /// The embedded cases of the protocol the tests may run (by id).
    fn cases() -> &'static [Case];
    fn capabilities(profile: Self::Profile) -> Capabilities;
    /// Starts the fixture with `fault` and runs every case of `families`
    /// but those whose slug starts with one of `skip`. Results by case id.
    fn run(
        fault: Self::Fault,
        caps: &Capabilities,
        families: &[&str],
        skip: &[&str],
    ) -> impl Future<Output = BTreeMap<String, CaseResult>>;
}

pub type EntryOf<X> = Entry<<X as Fixture>::Fault, <X as Fixture>::Profile>;

/// Runs `entry` and requires exactly its outcomes (see the module doc).
pub async fn prove<X: Fixture>(entry: &EntryOf<X>) {
    let expects_something =
        !(entry.fail.is_empty() && entry.non_strict.is_empty() && entry.info.is_empty());
    assert!(
        entry.fault == X::NO_FAULT || expects_something || entry.all_pass_because.is_some(),
        "{}: a fault test must expect at least one outcome other than pass",
        entry.name
    );
    assert!(
        expects_something || entry.all_pass_because.is_none() || entry.fault != X::NO_FAULT,
        "{}: all_pass_because is for a fault",
        entry.name
    );
    let caps = X::capabilities(entry.profile);
    let results = X::run(entry.fault, &caps, entry.families, entry.skip).await;
    check::<X>(entry, &results, &caps);
}

/// Requires exactly the outcomes of `entry` in `results`.
pub fn check<X: Fixture>(
    entry: &EntryOf<X>,
    results: &BTreeMap<String, CaseResult>,
    caps: &Capabilities,
) {
    let cases = X::cases();
    let resolve =
        |sels: &[Sel]| resolve_all(sels, cases).unwrap_or_else(|e| panic!("{}: {e}", entry.name));
    let lists = [
        (resolve(entry.fail), Outcome::Fail),
        (resolve(entry.non_strict), Outcome::NonStrict),
        (resolve(entry.info), Outcome::Info),
    ];
    let mut problems = Vec::new();
    for (ids, outcome) in &lists {
        for id in ids {
            match results.get(*id) {
                None => problems.push(format!("{id}: no such case in {:?}", entry.families)),
                Some(r) if r.outcome != *outcome => {
                    problems.push(format!("should be {outcome} but is not: {}", describe(r)));
                }
                Some(r)
                    if *outcome != Outcome::Info
                        && entry.reason.is_some_and(|w| !r.reason.contains(w)) =>
                {
                    problems.push(format!(
                        "should say {:?} but does not: {}",
                        entry.reason.unwrap_or_default(),
                        describe(r)
                    ));
                }
                Some(_) => {}
            }
        }
    }
    for (id, r) in results {
        let listed = lists.iter().any(|(ids, _)| ids.contains(&id.as_str()));
        if !listed && !passing(r, cases, caps) {
            problems.push(format!("should pass but did not: {}", describe(r)));
        }
    }
    assert!(
        problems.is_empty(),
        "{}: Fault::{:?} on {:?}: {} problem(s):\n  {}",
        entry.name,
        entry.fault,
        entry.families,
        problems.len(),
        problems.join("\n  ")
    );
}

/// What a case that does not check the broken rule must report: pass
/// (`info` for info cases), or `unsupported` when it needs something the
/// profile does not declare.
pub fn passing(r: &CaseResult, cases: &[Case], caps: &Capabilities) -> bool {
    let case = cases
        .iter()
        .find(|c| c.id == r.id)
        .expect("result of a known case");
    let wanted = match r.level {
        Level::Info => Outcome::Info,
        Level::Must | Level::Should => Outcome::Pass,
    };
    r.outcome == wanted
        || (r.outcome == Outcome::Unsupported
            && case.requires.iter().any(|c| caps.missing(*c).is_some()))
}

pub fn describe(r: &CaseResult) -> String {
    format!(
        "{} -> {}: {} (expected: {}; actual: {})",
        r.id,
        r.outcome,
        r.reason,
        r.expected.as_deref().unwrap_or("-"),
        r.actual.as_deref().unwrap_or("-").replace('\n', " | "),
    )
}

/// Whether `case` belongs to `family` (a full family name).
pub fn in_family(case: &Case, family: &str) -> bool {
    case.id
        .strip_prefix(family)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The slug of a case id: what follows `<protocol>.<family>.`.
pub fn slug(id: &str) -> &str {
    let rest = id.split_once('.').map_or("", |(_, r)| r);
    rest.split_once('.').map_or("", |(_, r)| r)
}

/// One `#[tokio::test]` per table entry, named after it, and a test that
/// every entry of the table has one (so the coverage rule only counts
/// proven entries).
#[macro_export]
macro_rules! fault_tests {
    ($fixture:ty, $table:expr, [$($name:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let entry = $table
                    .iter()
                    .find(|e| e.name == stringify!($name))
                    .expect(concat!("no table entry ", stringify!($name)));
                $crate::support::prove::prove::<$fixture>(entry).await;
            }
        )*

        #[test]
        fn every_table_entry_has_its_own_test() {
            let tested = [$(stringify!($name)),*];
            let mut names: Vec<&str> = $table.iter().map(|e| e.name).collect();
            let untested: Vec<&str> =
                names.iter().copied().filter(|n| !tested.contains(n)).collect();
            assert!(untested.is_empty(), "entries without a test: {untested:?}");
            names.sort();
            let before = names.len();
            names.dedup();
            assert_eq!(names.len(), before, "two entries share a name");
        }
    };
}
