//! JUnit XML: one testsuite per family, one testcase per case.

use std::collections::BTreeMap;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::RunInfo;
use crate::outcome::{CaseResult, Outcome};
use crate::transcript::render as render_transcript;

fn details(r: &CaseResult) -> String {
    let mut s = format!("{}\nspec: {}\nlevel: {}\n", r.title, r.spec, r.level);
    if let Some(e) = &r.expected {
        s.push_str(&format!("expected: {e}\n"));
    }
    if let Some(a) = &r.actual {
        s.push_str(&format!("actual:   {a}\n"));
    }
    if !r.transcript.is_empty() {
        s.push_str("transcript:\n");
        s.push_str(&render_transcript(&r.transcript, true));
    }
    s
}

pub fn render(info: &RunInfo, results: &[CaseResult]) -> String {
    let mut report = Report::new("pushspec");
    report.set_time(info.duration);
    let mut families: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for r in results {
        families.entry(r.family.as_str()).or_default().push(r);
    }
    for (family, rs) in families {
        let mut suite = TestSuite::new(family);
        for r in rs {
            let status = match r.outcome {
                Outcome::Pass => TestCaseStatus::success(),
                Outcome::Info => TestCaseStatus::success(),
                Outcome::NonStrict if !info.strict => TestCaseStatus::success(),
                Outcome::Fail | Outcome::NonStrict | Outcome::Xpass => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(format!("{}: {}", r.outcome, r.reason));
                    s.set_type(r.outcome.as_str());
                    s.set_description(details(r));
                    s
                }
                Outcome::Error => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(r.reason.clone());
                    s.set_type("error");
                    s.set_description(details(r));
                    s
                }
                Outcome::Unsupported | Outcome::Xfail => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(format!("{}: {}", r.outcome, r.reason));
                    s
                }
            };
            let mut tc = TestCase::new(r.id.as_str(), status);
            tc.set_classname(family);
            tc.set_time(r.duration);
            if matches!(r.outcome, Outcome::Info | Outcome::NonStrict) && !info.strict {
                tc.set_system_out(format!("{}: {}", r.outcome, r.reason));
            }
            suite.add_test_case(tc);
        }
        report.add_test_suite(suite);
    }
    report.to_string().expect("JUnit report serialises")
}
