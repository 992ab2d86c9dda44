//! JUnit XML: one testsuite per family, one testcase per case, with the
//! run's timestamp and times; an interrupted run says so in a testcase of
//! its own, so a CI page shows it was cut short.

use std::collections::BTreeMap;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::RunInfo;
use crate::engine::Stop;
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
    if let Some(a) = &r.first_attempt {
        s.push_str(&format!(
            "confirmed: run again alone after a first attempt gave {}: {}\n",
            a.outcome, a.reason
        ));
    }
    if !r.transcript.is_empty() {
        s.push_str("transcript:\n");
        s.push_str(&render_transcript(&r.transcript, true));
    }
    s
}

fn status(r: &CaseResult, strict: bool) -> TestCaseStatus {
    match r.outcome {
        Outcome::Pass | Outcome::Info => TestCaseStatus::success(),
        Outcome::NonStrict if !strict => TestCaseStatus::success(),
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
        // Did not run: skipped, with the reason, never a failure.
        Outcome::Unsupported | Outcome::Xfail | Outcome::NotRun => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("{}: {}", r.outcome, r.reason));
            s
        }
    }
}

pub fn render(info: &RunInfo, results: &[CaseResult]) -> String {
    let mut report = Report::new(match &info.agent {
        Some(a) => format!("pushspec clients: {a}"),
        None => "pushspec".to_string(),
    });
    report.set_time(info.duration);
    let timestamp = chrono::DateTime::<chrono::Utc>::from(info.started).fixed_offset();
    report.set_timestamp(timestamp);
    let mut families: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for r in results {
        families.entry(r.family.as_str()).or_default().push(r);
    }
    for (family, rs) in families {
        let mut suite = TestSuite::new(family);
        suite.set_timestamp(timestamp);
        suite.set_time(rs.iter().map(|r| r.duration).sum::<Duration>());
        for r in rs {
            let mut tc = TestCase::new(r.id.as_str(), status(r, info.strict));
            tc.set_classname(family);
            tc.set_time(r.duration);
            if matches!(r.outcome, Outcome::Info | Outcome::NonStrict) && !info.strict {
                tc.set_system_out(format!("{}: {}", r.outcome, r.reason));
            }
            if r.flaky {
                tc.add_property(Property::new("flaky", "true"));
            }
            suite.add_test_case(tc);
        }
        report.add_test_suite(suite);
    }
    if let Some(stop) = info.stop {
        let why = match stop {
            Stop::Interrupted => "interrupted by SIGINT".to_string(),
            Stop::Terminated => "terminated by SIGTERM".to_string(),
            Stop::RunBudget(b) => format!("the run budget of {} ran out", crate::text::duration(b)),
        };
        let mut suite = TestSuite::new("pushspec");
        suite.set_timestamp(timestamp);
        suite.add_property(Property::new("interrupted", info.interrupted().to_string()));
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        s.set_message(format!(
            "the run was cut short ({why}); {} selected cases did not run",
            info.not_run.len()
        ));
        s.set_type("interrupted");
        s.set_description(info.not_run.join("\n"));
        suite.add_test_case(TestCase::new("run", s));
        report.add_test_suite(suite);
    }
    report.to_string().expect("JUnit report serialises")
}
