//! The coverage rule: every `must` and `should` case of the embedded suite
//! fails under at least one fault of the broken fixtures.
//!
//! The fault tables (`support/ws_table.rs`, `support/sse_table.rs`) list,
//! for each fault, the cases it must break, and every entry is proven by a
//! test of its own in `broken_ws.rs` / `broken_sse.rs` (each binary checks
//! that no entry lacks one). So the union of the cases they list as `fail`
//! (for `must` cases) or `non-strict` (for `should` cases) is a truthful
//! list of the cases a broken server can fail. A case outside it is a case
//! that might never fail on any server: this test names it, unless
//! [`EXEMPT`] says why no fixture fault breaks it.

mod support;

use std::collections::BTreeSet;

use pushspec::case::{Case, Level};
use support::prove::{Fixture, matches};
use support::sse_faults::Sse;
use support::ws_faults::Ws;

/// A case (or pattern of cases, `*` for any run of characters) that no
/// table entry breaks, and why.
struct Exemption {
    cases: &'static str,
    why: &'static str,
    /// A case checking the same rule the same way at another size, which
    /// an entry does break: required to stay covered.
    sibling: Option<&'static str>,
}

const EXEMPT: &[Exemption] = &[
    Exemption {
        cases: "ws.framing.text-16777216",
        why: "a 16 MiB echo, left out of the fixture runs for speed; the same \
              echo step with a 64-bit length fails at 64 KiB",
        sibling: Some("ws.framing.text-65536"),
    },
    Exemption {
        cases: "ws.framing.binary-16777216",
        why: "a 16 MiB echo, left out of the fixture runs for speed; the same \
              echo step with a 64-bit length fails at 64 KiB",
        sibling: Some("ws.framing.binary-65536"),
    },
    Exemption {
        cases: "ws.limits.text-8mib",
        why: "an echo of 8 MiB, left out of the fixture runs for speed; the \
              same echo above the fixture's 1 MiB limit fails at 4 MiB",
        sibling: Some("ws.limits.text-4mib"),
    },
    Exemption {
        cases: "ws.limits.text-16mib",
        why: "an echo of 16 MiB, left out of the fixture runs for speed; the \
              same echo above the fixture's 1 MiB limit fails at 4 MiB",
        sibling: Some("ws.limits.text-4mib"),
    },
    Exemption {
        cases: "ws.limits.binary-8mib",
        why: "an echo of 8 MiB, left out of the fixture runs for speed; the \
              same echo above the fixture's 1 MiB limit fails at 4 MiB",
        sibling: Some("ws.limits.binary-4mib"),
    },
    Exemption {
        cases: "ws.limits.binary-16mib",
        why: "an echo of 16 MiB, left out of the fixture runs for speed; the \
              same echo above the fixture's 1 MiB limit fails at 4 MiB",
        sibling: Some("ws.limits.binary-4mib"),
    },
];

/// The ids the entries of `X`'s table list as `fail`, and as `non-strict`.
fn listed<X: Fixture>(
    table: &[support::prove::EntryOf<X>],
) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let (mut fail, mut non_strict) = (BTreeSet::new(), BTreeSet::new());
    for e in table {
        let resolve = |sels| {
            support::prove::resolve_all(sels, X::cases())
                .unwrap_or_else(|err| panic!("{}: {err}", e.name))
        };
        fail.extend(resolve(e.fail));
        non_strict.extend(resolve(e.non_strict));
    }
    (fail, non_strict)
}

/// What the tables list as failing: `fail` and `non-strict` ids.
struct Listed {
    fail: BTreeSet<&'static str>,
    non_strict: BTreeSet<&'static str>,
}

impl Listed {
    /// Both tables.
    fn tables() -> Listed {
        let (mut fail, mut non_strict) = listed::<Ws>(support::ws_table::TABLE);
        let (sse_fail, sse_non_strict) = listed::<Sse>(support::sse_table::TABLE);
        fail.extend(sse_fail);
        non_strict.extend(sse_non_strict);
        Listed { fail, non_strict }
    }

    /// A `must` case must be listed as `fail`; a `should` case as `fail`
    /// or `non-strict`.
    fn covers(&self, c: &Case) -> bool {
        let id = c.id.as_str();
        match c.level {
            Level::Must => self.fail.contains(id),
            Level::Should => self.fail.contains(id) || self.non_strict.contains(id),
            Level::Info => true,
        }
    }
}

/// The rule: the must/should cases of `all` neither listed nor exempted
/// (with their level), and what is wrong with the exemptions.
fn audit(all: &[Case], listed: &Listed, exempt: &[Exemption]) -> (Vec<String>, Vec<String>) {
    let mut uncovered = Vec::new();
    let mut problems = Vec::new();
    for c in all {
        let x = exempt.iter().find(|x| matches(x.cases, &c.id));
        match (listed.covers(c), x) {
            (true, None) | (false, Some(_)) => {}
            (true, Some(x)) => problems.push(format!(
                "{}: exempted by {:?} but an entry breaks it: drop the exemption",
                c.id, x.cases
            )),
            (false, None) => uncovered.push(format!("{} ({})", c.id, c.level)),
        }
    }
    for x in exempt {
        if !all
            .iter()
            .any(|c| matches(x.cases, &c.id) && c.level != Level::Info)
        {
            problems.push(format!(
                "exemption {:?} matches no must/should case",
                x.cases
            ));
        }
        if let Some(s) = x.sibling
            && !all.iter().any(|c| c.id == s && listed.covers(c))
        {
            problems.push(format!(
                "exemption {:?}: its sibling {s} is not broken by any entry",
                x.cases
            ));
        }
        if x.why.trim().is_empty() {
            problems.push(format!("exemption {:?} without a reason", x.cases));
        }
    }
    (uncovered, problems)
}

/// The server cases: the rule is about the broken servers' fault tables.
/// Client cases (`client.*`) are proven by the broken client in
/// `tests/broken_client.rs`, which has no table yet.
fn embedded() -> Vec<Case> {
    pushspec::case::file::load_embedded()
        .expect("embedded cases load")
        .into_iter()
        .filter(|c| !c.id.starts_with("client."))
        .collect()
}

#[test]
fn every_must_and_should_case_fails_under_some_fault() {
    let (uncovered, problems) = audit(&embedded(), &Listed::tables(), EXEMPT);
    assert!(
        uncovered.is_empty() && problems.is_empty(),
        "{} must/should case(s) no fault breaks (add the case to the entry of a fault \
         that breaks it, add a fault to the fixture, or exempt it with the reason):\n  {}\n{}",
        uncovered.len(),
        uncovered.join("\n  "),
        problems.join("\n"),
    );
}

/// The rule can fail: a case no entry lists is named, and so are an
/// exemption of a listed case and one whose sibling is not listed.
#[test]
fn the_rule_names_a_case_no_fault_breaks() {
    let all = embedded();
    let mut listed = Listed::tables();
    assert!(listed.fail.remove("ws.origin.disallowed"));
    let (uncovered, problems) = audit(&all, &listed, EXEMPT);
    assert_eq!(uncovered, ["ws.origin.disallowed (must)"]);
    assert!(problems.is_empty(), "{problems:?}");

    let listed = Listed::tables();
    let stale = [Exemption {
        cases: "ws.origin.disallowed",
        why: "for the test",
        sibling: Some("ws.framing.text-16777216"),
    }];
    let (uncovered, problems) = audit(&all, &listed, &stale);
    // Without the real exemptions, the cases they name are uncovered.
    assert_eq!(uncovered.len(), EXEMPT.len(), "{uncovered:?}");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("drop the exemption"), "{problems:?}");
    assert!(
        problems[1].contains("sibling ws.framing.text-16777216"),
        "{problems:?}"
    );
}

/// The rule's own matcher, on the patterns the tables and exemptions use.
#[test]
fn patterns_match_as_documented() {
    assert!(matches("ws.utf8.invalid-*", "ws.utf8.invalid-"));
    assert!(!matches("ws.utf8.invalid-*", "ws.utf8.valid-greek"));
    assert!(matches(
        "ws.close.invalid-code-*",
        "ws.close.invalid-code-5000"
    ));
    assert!(matches("*-5000", "ws.close.invalid-code-5000"));
    assert!(!matches("*-16", "ws.deflate.params-ctx-w9-16384"));
    assert!(matches("ws.reserved.*", "ws.reserved.rsv-1-text"));
    assert!(!matches("ws.reserved.*", "ws.reservedx"));
}
