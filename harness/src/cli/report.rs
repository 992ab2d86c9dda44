//! `pushspec report`: renders JSON reports (from `run --json` and `bench
//! --json`, of this run or CI artifacts of long ago) as one HTML page
//! and/or a Markdown summary. Every input is read and checked before
//! anything is written; a bad input is exit code 2.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::resolve::{Dest, check_destinations};
use super::{ConfigError, exit};
use crate::report::load::{self, BenchReport, Loaded, RunReport};
use crate::report::{html, markdown, matrix};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// JSON reports written by `pushspec run --json` or `pushspec bench
    /// --json`: several targets make one matrix, several runs of one
    /// target show what changed.
    #[arg(required = true, value_name = "RESULT.json")]
    pub files: Vec<PathBuf>,
    /// Write the HTML report here (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the Markdown summary here (`-`: standard output; the default
    /// when neither --html nor --markdown is given).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

fn dest(p: &Option<PathBuf>) -> Option<Dest> {
    p.as_ref().map(|p| {
        if p.as_os_str() == "-" {
            Dest::Stdout
        } else {
            Dest::File(p.clone())
        }
    })
}

/// Requirements by case id, from the built-in cases: reports written
/// before they carried requirements still show them.
fn requirements() -> HashMap<String, String> {
    crate::case::file::load_embedded()
        .map(|cases| {
            cases
                .into_iter()
                .filter_map(|c| Some((c.id, c.requirement?)))
                .collect()
        })
        .unwrap_or_default()
}

fn write(dest: &Dest, contents: &str, out: &mut dyn Write) -> Result<(), ConfigError> {
    let err = |file: String| move |source| ConfigError::Report { file, source };
    match dest {
        Dest::Stdout => out
            .write_all(contents.as_bytes())
            .and_then(|_| out.flush())
            .map_err(err("-".into())),
        Dest::File(p) => {
            crate::report::write_file(p, contents.as_bytes()).map_err(err(p.display().to_string()))
        }
    }
}

pub(super) fn report(args: ReportArgs, out: &mut dyn Write) -> Result<i32, ConfigError> {
    let (html_dest, mut md_dest) = (dest(&args.html), dest(&args.markdown));
    if html_dest.is_none() && md_dest.is_none() {
        md_dest = Some(Dest::Stdout);
    }
    check_destinations(&[("--html", &html_dest), ("--markdown", &md_dest)])?;

    let mut runs: Vec<RunReport> = Vec::new();
    let mut benches: Vec<BenchReport> = Vec::new();
    for f in &args.files {
        match load::load(f)? {
            Loaded::Run(r) => runs.push(*r),
            Loaded::Bench(b) => benches.push(*b),
        }
    }
    let reqs = requirements();
    for r in &mut runs {
        load::fill_requirements(r, &|id| reqs.get(id).cloned());
    }
    let run_refs: Vec<&RunReport> = runs.iter().collect();
    let bench_refs: Vec<&BenchReport> = benches.iter().collect();
    let m = matrix::build(&run_refs);
    if let Some(d) = &html_dest {
        write(d, &html::render(&m, &bench_refs), out)?;
    }
    if let Some(d) = &md_dest {
        write(d, &markdown::render(&m, &bench_refs), out)?;
    }
    Ok(exit::OK)
}
