//! Latency percentiles of bench runs as an inline SVG: one line per run
//! over p50 .. max, on a logarithmic axis (tails span decades). Drawn
//! here, not by script, so the plot shows with scripts off too.

use std::fmt::Write as _;

use super::escape::escape;
use super::load::BenchReport;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 36.0;

/// Line colours; runs also differ in dash pattern and are named in the
/// legend, so colour is never the only cue.
const COLOURS: [&str; 6] = [
    "#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#57606a",
];
const DASHES: [&str; 4] = ["", "6 3", "2 3", "8 3 2 3"];

fn unit(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// The plot for `runs`, each named by `names` (same order).
pub fn latency(runs: &[&BenchReport], names: &[String]) -> String {
    let max = runs
        .iter()
        .map(|r| r.results.latency_us.max)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    // Decades from 1 µs up to the first power of ten above the largest value.
    let top_decade = max.log10().ceil().max(1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |us: u64| TOP + plot_h * (1.0 - (us.max(1) as f64).log10() / top_decade);
    let points = 5.0;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / points;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="plot-title" xmlns="http://www.w3.org/2000/svg"><title id="plot-title">Latency percentiles (µs, logarithmic) per bench run</title>"#
    );
    for d in 0..=(top_decade as u32) {
        let v = 10f64.powi(d as i32);
        let yy = y(v as u64);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            escape(&unit(v))
        );
    }
    if let Some(first) = runs.first() {
        for (i, (name, _)) in first.results.latency_us.points().iter().enumerate() {
            let _ = write!(
                s,
                r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{name}</text>"#,
                x(i),
                HEIGHT - BOTTOM + 18.0
            );
        }
    }
    for (k, (r, name)) in runs.iter().zip(names).enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let dash = DASHES[k % DASHES.len()];
        let pts: Vec<String> = r
            .results
            .latency_us
            .points()
            .iter()
            .enumerate()
            .map(|(i, (_, v))| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            s,
            r#"<g class="series"><polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
            pts.join(" ")
        );
        for (i, (p, v)) in r.results.latency_us.points().iter().enumerate() {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{}: {p} {v} µs</title></circle>"#,
                x(i),
                y(*v),
                escape(name)
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s.push_str(r#"<ul class="legend">"#);
    for (k, name) in names.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let dash = DASHES[k % DASHES.len()];
        let _ = write!(
            s,
            r#"<li><svg width="32" height="10" aria-hidden="true"><line x1="0" x2="32" y1="5" y2="5" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/></svg> {}</li>"#,
            escape(name)
        );
    }
    s.push_str("</ul>");
    s
}
