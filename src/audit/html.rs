//! The HTML validation report: the gate's verdict and evidence, with plots,
//! for people (auditors, reviewers) rather than machines.
//!
//! The JSON report is the record; this page is how a person reads it. It is
//! one self-contained file (inline CSS and SVG, no scripts, no external
//! resources) so it can be archived next to the JSON report and opened
//! offline years later. Rendering is a pure function of the [`GateReport`]
//! and the tables the gate scored, so `resynth validate` and the engine
//! produce the same page; the caller decides where it is written.
//!
//! These are health data, so the page shows aggregates only: histograms,
//! category shares and correlation matrices, never rows, and it applies
//! small-cell suppression at `gate.small_cell_min` (k, 11 by default):
//! - categories held by 1 to k − 1 real (training or holdout) records are
//!   folded into "other", and when "other" itself would hold 1 to k − 1
//!   real records the smallest shown categories join it (complementary
//!   suppression: a share read off the other bars would give it back);
//! - a histogram bin holding 1 to k − 1 real values is drawn empty for that
//!   side (its values still count in the densities' denominator);
//! - missing and non-missing counts of 1 to k − 1 are written `<k`, and the
//!   other count of that side rounded to tens;
//! - no exact real extreme is shown: histogram ranges start from the
//!   1st/99th percentiles (winsorised: values beyond fall in the edge bins)
//!   and are rounded outward to a power of ten of at least a hundredth of
//!   their width, so no axis end or note is a real patient's value.
//!
//! Charts are drawn with plotters' SVG backend without fonts: plotters lays
//! text out with a naive width estimate (≈ 0.55 em per character) and the
//! browser draws the glyphs, so label areas are sized from character counts
//! and long labels are truncated.
//!
//! ```
//! # use resynth::audit::html::{render, HtmlContext};
//! # use resynth::gate::GateReport;
//! # use resynth::table::{Column, Table};
//! let t = Table::new(vec![Column::numeric("age", vec![31.0, 45.0, 52.0, 67.0])]);
//! let ctx = HtmlContext {
//!     title: "labs", meta: vec![], train: &t, holdout: None, synthetic: &t, min_cell: 11,
//! };
//! let html = render(&GateReport::new(vec![]), &ctx).unwrap();
//! assert!(html.contains("PASS") && html.contains("<svg"));
//! ```

use std::collections::HashMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use crate::gate::{GateReport, OperatorResult, PRIVACY_SKIPPED, QualityScores, cells, operator};
use crate::stats::{RankedColumn, quantile_sorted, sorted_finite, spearman_ranked};
use crate::table::{Column, ColumnValues, NULL_CODE, Table};

const TEMPLATE_NAME: &str = "report.html.j2";
const TEMPLATE: &str = include_str!("report.html.j2");

/// Enough bins to show shape at a few thousand rows without turning a
/// 200-row batch into noise.
const HIST_BINS: usize = 30;
/// Categories shown by name per chart; the rest are summed into "other".
const TOP_CATEGORIES: usize = 15;
/// Beyond this a matrix's labels become unreadable at page width.
const MAX_HEATMAP_COLUMNS: usize = 30;
/// Labels longer than this are cut with an ellipsis so the plot keeps room.
const MAX_LABEL_CHARS: usize = 28;
/// plotters writes `font-size = size / 1.24` into the SVG; 15 renders ≈ 12 px.
const LABEL_FONT: u32 = 15;
const AXIS_FONT: u32 = 16;
/// Width of one character at [`LABEL_FONT`]: plotters' naive estimate
/// (0.7 em at size / 1.24²) rounded up a little for real glyphs.
const CHAR_PX: f64 = 6.6;
/// Height of the legend strip above histograms and bar charts.
const LEGEND_PX: u32 = 24;

/// What the page is about besides the verdict: the run's identifiers and
/// the tables the gate scored, which are plotted as aggregates.
#[derive(Debug, Clone)]
pub struct HtmlContext<'a> {
    /// The page heading, e.g. the topology or the input file.
    pub title: &'a str,
    /// Shown under the title in this order, e.g. run id, topology, model
    /// version, rows per side.
    pub meta: Vec<(String, String)>,
    pub train: &'a Table,
    /// Drawn lighter: it shows how far fresh real data already sits from
    /// the training data, the yardstick for the synthetic gap.
    pub holdout: Option<&'a Table>,
    pub synthetic: &'a Table,
    /// Small-cell threshold k (`gate.small_cell_min`): no count of 1 to
    /// k − 1 real records is shown.
    pub min_cell: usize,
}

/// Why the page could not be produced (the data itself never is a reason).
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// plotters refused a chart's layout.
    #[error("drawing the chart of {chart}: {message}")]
    Plot { chart: String, message: String },
    /// The embedded template failed to compile or render.
    #[error("rendering the HTML report template: {0}")]
    Template(#[from] minijinja::Error),
}

/// Renders the whole report page. Pure: the caller writes the string.
pub fn render(report: &GateReport, ctx: &HtmlContext<'_>) -> Result<String, HtmlError> {
    let page = Page::build(report, ctx)?;
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // A typo in the template must fail loudly, not render an empty cell.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template(TEMPLATE_NAME, TEMPLATE)?;
    Ok(env.get_template(TEMPLATE_NAME)?.render(&page)?)
}

// ---------------------------------------------------------------------------
// The view the template renders: every number already formatted, so the
// template holds layout only.

#[derive(Serialize)]
struct Page {
    title: String,
    meta: Vec<MetaItem>,
    passed: bool,
    n_results: usize,
    n_failed: usize,
    n_reported: usize,
    failures: Vec<Row>,
    stages: Vec<StageRows>,
    reported: Vec<Row>,
    aggregates: Option<Aggregates>,
    privacy: Vec<Row>,
    /// Ungated privacy evidence, e.g. that the staged gate skipped privacy.
    privacy_reported: Vec<Row>,
    legend: Vec<LegendItem>,
    columns: Vec<ColumnPlot>,
    correlations: Correlations,
}

#[derive(Serialize)]
struct MetaItem {
    key: String,
    value: String,
}

#[derive(Serialize)]
struct Row {
    operator: String,
    columns: String,
    statistic: String,
    threshold: String,
    noise_floor: String,
    passed: bool,
    explanation: String,
}

#[derive(Serialize)]
struct StageRows {
    title: &'static str,
    failed: usize,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Aggregates {
    summary: Vec<ScoreLine>,
    columns: Vec<ScoreLine>,
    pairs: Vec<ScoreLine>,
    note: String,
}

#[derive(Serialize)]
struct ScoreLine {
    name: String,
    metric: String,
    synthetic: String,
    holdout: String,
    association: String,
}

#[derive(Serialize)]
struct LegendItem {
    label: &'static str,
    colour: String,
}

#[derive(Serialize)]
struct ColumnPlot {
    name: String,
    kind: &'static str,
    svg: String,
    statistic: Option<StatNote>,
    sides: Vec<SideNote>,
    notes: Vec<String>,
}

/// The column's gate statistic, shown next to its chart.
#[derive(Serialize)]
struct StatNote {
    label: &'static str,
    value: String,
    threshold: String,
    noise_floor: String,
    passed: bool,
    gated: bool,
}

#[derive(Serialize)]
struct SideNote {
    side: &'static str,
    values: String,
    missing: String,
}

#[derive(Serialize)]
struct Correlations {
    charts: Vec<Figure>,
    note: String,
}

#[derive(Serialize)]
struct Figure {
    title: &'static str,
    svg: String,
}

impl Page {
    fn build(report: &GateReport, ctx: &HtmlContext<'_>) -> Result<Self, HtmlError> {
        let failures: Vec<Row> = report.failures().into_iter().map(Row::from).collect();
        // Never show PASS next to a failed row, even for a hand-edited report.
        let passed = report.passed && failures.is_empty();
        Ok(Page {
            title: ctx.title.to_string(),
            meta: ctx
                .meta
                .iter()
                .map(|(key, value)| MetaItem {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            passed,
            n_results: report.results.len(),
            n_failed: failures.len(),
            n_reported: report.reported.len(),
            failures,
            stages: stage_rows(&report.results),
            reported: report.reported.iter().map(Row::from).collect(),
            aggregates: report.aggregates.as_ref().map(Aggregates::from),
            privacy: privacy_rows(&report.results),
            privacy_reported: privacy_rows(&report.reported),
            legend: sides(ctx)
                .into_iter()
                .map(|(side, _)| LegendItem {
                    label: side.label(),
                    colour: side.css(),
                })
                .collect(),
            columns: column_plots(report, ctx)?,
            correlations: correlations(ctx)?,
        })
    }
}

impl From<&OperatorResult> for Row {
    fn from(r: &OperatorResult) -> Self {
        Row {
            operator: r.operator.clone(),
            columns: if r.columns.is_empty() {
                "(whole table)".to_string()
            } else {
                r.columns.join(", ")
            },
            statistic: fmt_num(r.statistic),
            threshold: fmt_num(r.threshold),
            noise_floor: fmt_opt(r.noise_floor),
            passed: r.passed,
            explanation: r.explanation.clone(),
        }
    }
}

impl From<&QualityScores> for Aggregates {
    fn from(q: &QualityScores) -> Self {
        let line = |name: &str, synthetic: Option<f64>, holdout: Option<f64>| ScoreLine {
            name: name.to_string(),
            metric: String::new(),
            synthetic: fmt_opt(synthetic),
            holdout: fmt_opt(holdout),
            association: String::new(),
        };
        let mut pairs: Vec<_> = q.pairs.iter().collect();
        // Worst first; undefined scores last.
        pairs.sort_by(|a, b| {
            let key = |s: Option<f64>| s.filter(|x| x.is_finite()).unwrap_or(f64::INFINITY);
            key(a.score).total_cmp(&key(b.score))
        });
        Aggregates {
            summary: vec![
                line("Column Shapes", q.column_shapes, q.holdout_column_shapes),
                line(
                    "Column Pair Trends",
                    q.column_pair_trends,
                    q.holdout_column_pair_trends,
                ),
                line(
                    "Column Pair Trends, associated pairs only",
                    q.column_pair_trends_associated,
                    None,
                ),
                line(
                    "DCR Overfitting Protection",
                    q.dcr_overfitting_protection.as_ref().map(|d| d.score),
                    None,
                ),
            ],
            columns: q
                .columns
                .iter()
                .map(|c| ScoreLine {
                    metric: c.metric.clone(),
                    ..line(&c.column, c.score, c.holdout)
                })
                .collect(),
            pairs: pairs
                .into_iter()
                .map(|p| ScoreLine {
                    metric: p.metric.clone(),
                    association: fmt_opt(p.real_association),
                    ..line(&p.columns.join(" × "), p.score, p.holdout)
                })
                .collect(),
            note: q.note.clone(),
        }
    }
}

// ---------------------------------------------------------------------------
// Stages: reviewers read fidelity, utility and privacy separately.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Fidelity,
    Utility,
    Privacy,
    Other,
}

impl Stage {
    const ALL: [Stage; 4] = [
        Stage::Fidelity,
        Stage::Utility,
        Stage::Privacy,
        Stage::Other,
    ];

    /// Unknown operators land in `Other` so a newer gate never loses rows.
    fn of(op: &str) -> Stage {
        match op {
            operator::KS
            | operator::TOTAL_VARIATION
            | operator::WASSERSTEIN_IQR
            | operator::SPEARMAN_DIFF
            | operator::CONTINGENCY_TV
            | operator::CONDITIONAL_KS => Stage::Fidelity,
            operator::EXACT_MATCH
            | operator::DCR_SHARE
            | operator::NNDR_SHARE
            | operator::OUTLIER_REPLICATION
            | PRIVACY_SKIPPED
            | operator::K_ANONYMITY_RISK
            | operator::L_DIVERSITY => Stage::Privacy,
            op if op.starts_with("utility_") => Stage::Utility,
            op if op.starts_with("mia_") || op.ends_with("_risk") => Stage::Privacy,
            _ => Stage::Other,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Stage::Fidelity => "Fidelity",
            Stage::Utility => "Utility",
            Stage::Privacy => "Privacy",
            Stage::Other => "Other",
        }
    }
}

fn privacy_rows(results: &[OperatorResult]) -> Vec<Row> {
    results
        .iter()
        .filter(|r| Stage::of(&r.operator) == Stage::Privacy)
        .map(Row::from)
        .collect()
}

fn stage_rows(results: &[OperatorResult]) -> Vec<StageRows> {
    Stage::ALL
        .into_iter()
        .filter_map(|stage| {
            let mine: Vec<&OperatorResult> = results
                .iter()
                .filter(|r| Stage::of(&r.operator) == stage)
                .collect();
            (!mine.is_empty()).then(|| StageRows {
                title: stage.title(),
                failed: mine.iter().filter(|r| !r.passed).count(),
                rows: mine.into_iter().map(Row::from).collect(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Number formatting: a report is read, so a few significant digits, and
// non-finite values named rather than hidden.

fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "∞" } else { "−∞" }.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    if (1e-3..1e5).contains(&x.abs()) {
        trim_zeros(format!("{x:.4}"))
    } else {
        format!("{x:.3e}")
    }
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_string(), fmt_num)
}

/// Axis ticks need fewer digits than table cells.
fn fmt_tick(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() {
        "0".to_string()
    } else if !(1e-2..1e5).contains(&a) {
        format!("{x:.1e}")
    } else {
        trim_zeros(format!("{x:.2}"))
    }
}

fn fmt_share(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn truncate(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut cut: String = label.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

// ---------------------------------------------------------------------------
// Sides: which table a sample comes from, and how it is drawn everywhere.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Training,
    Synthetic,
    Holdout,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Training => "training",
            Side::Synthetic => "synthetic",
            Side::Holdout => "holdout",
        }
    }

    fn colour(self) -> RGBColor {
        match self {
            Side::Training => RGBColor(31, 119, 180),
            Side::Synthetic => RGBColor(255, 127, 14),
            Side::Holdout => RGBColor(127, 127, 127),
        }
    }

    fn css(self) -> String {
        let RGBColor(r, g, b) = self.colour();
        format!("#{r:02x}{g:02x}{b:02x}")
    }

    /// Real data, whose small categories must not be named.
    fn is_real(self) -> bool {
        self != Side::Synthetic
    }
}

fn sides<'a>(ctx: &HtmlContext<'a>) -> Vec<(Side, &'a Table)> {
    let mut sides = vec![
        (Side::Training, ctx.train),
        (Side::Synthetic, ctx.synthetic),
    ];
    if let Some(h) = ctx.holdout {
        sides.push((Side::Holdout, h));
    }
    sides
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Numeric,
    Categorical,
}

impl Kind {
    fn of(column: &Column) -> Kind {
        match column.values {
            ColumnValues::Numeric(_) => Kind::Numeric,
            ColumnValues::Categorical { .. } => Kind::Categorical,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Numeric => "numeric",
            Kind::Categorical => "categorical",
        }
    }
}

/// Every column name of any side: training order first, then names only
/// the synthetic or holdout table has (a one-sided column is evidence too).
fn column_names<'a>(ctx: &HtmlContext<'a>) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for (_, table) in sides(ctx) {
        for c in &table.columns {
            if !names.contains(&c.name.as_str()) {
                names.push(&c.name);
            }
        }
    }
    names
}

/// One column's samples of the same kind, plus notes on the sides that
/// lack it or hold another kind.
struct Gathered<'a> {
    kind: Kind,
    present: Vec<(Side, &'a Column)>,
    notes: Vec<String>,
}

fn gather<'a>(ctx: &HtmlContext<'a>, name: &str) -> Gathered<'a> {
    let found: Vec<(Side, Option<&Column>)> = sides(ctx)
        .into_iter()
        .map(|(side, t)| (side, t.column(name)))
        .collect();
    let kind = found
        .iter()
        .find_map(|(_, c)| c.map(Kind::of))
        .unwrap_or(Kind::Numeric);
    let mut gathered = Gathered {
        kind,
        present: Vec::new(),
        notes: Vec::new(),
    };
    for (side, column) in found {
        match column {
            None => gathered
                .notes
                .push(format!("absent from the {} table", side.label())),
            Some(c) if Kind::of(c) != kind => gathered.notes.push(format!(
                "the {} table holds {} values here, not {}; not plotted",
                side.label(),
                Kind::of(c).name(),
                kind.name()
            )),
            Some(c) => gathered.present.push((side, c)),
        }
    }
    gathered
}

fn column_plots(report: &GateReport, ctx: &HtmlContext<'_>) -> Result<Vec<ColumnPlot>, HtmlError> {
    column_names(ctx)
        .into_iter()
        .map(|name| column_plot(report, ctx, name))
        .collect()
}

fn column_plot(
    report: &GateReport,
    ctx: &HtmlContext<'_>,
    name: &str,
) -> Result<ColumnPlot, HtmlError> {
    let gathered = gather(ctx, name);
    let (svg, sides, notes) = match gathered.kind {
        Kind::Numeric => numeric_chart(name, &gathered.present, ctx.min_cell)?,
        Kind::Categorical => categorical_chart(name, &gathered.present, ctx.min_cell)?,
    };
    Ok(ColumnPlot {
        name: name.to_string(),
        kind: gathered.kind.name(),
        svg,
        statistic: column_statistic(report, name, gathered.kind),
        sides,
        notes: gathered.notes.into_iter().chain(notes).collect(),
    })
}

/// The column's KS (numeric) or TV (categorical) result, gated or reported.
fn column_statistic(report: &GateReport, name: &str, kind: Kind) -> Option<StatNote> {
    let (op, label) = match kind {
        Kind::Numeric => (operator::KS, "KS D"),
        Kind::Categorical => (operator::TOTAL_VARIATION, "TV"),
    };
    let matches = |r: &&OperatorResult| r.operator == op && r.columns == [name];
    let gated = report.results.iter().find(matches);
    let found = gated.or_else(|| report.reported.iter().find(matches))?;
    Some(StatNote {
        label,
        value: fmt_num(found.statistic),
        threshold: fmt_num(found.threshold),
        noise_floor: fmt_opt(found.noise_floor),
        passed: found.passed,
        gated: gated.is_some(),
    })
}

/// Values and missing share of one side. On a real side a count of 1 to
/// k − 1 (either one) is written `<k` and the other rounded to tens, so
/// the row total does not give the small one back.
fn side_note(side: Side, values: usize, rows: usize, k: usize) -> SideNote {
    let missing = rows - values;
    let small = |c: usize| side.is_real() && cells::is_small(c, k);
    let tens = |c: usize| format!("≈{}", (c + 5) / 10 * 10);
    let values_text = if small(values) {
        format!("<{k}")
    } else if small(missing) {
        tens(values)
    } else {
        values.to_string()
    };
    SideNote {
        side: side.label(),
        values: values_text,
        missing: if rows == 0 {
            "no rows".to_string()
        } else if small(missing) {
            format!("<{k} missing")
        } else if small(values) {
            format!("{} missing", tens(missing))
        } else {
            format!("{} missing", fmt_share(missing as f64 / rows as f64))
        },
    }
}

type ChartParts = (String, Vec<SideNote>, Vec<String>);

// ---------------------------------------------------------------------------
// Numeric columns: overlaid density histograms on shared bins.

struct Histogram {
    lo: f64,
    width: f64,
    /// Density per bin (integrates to 1 before suppression), per side
    /// with values.
    series: Vec<(Side, Vec<f64>)>,
    /// Bins drawn empty on a real side because they held 1 to k − 1
    /// values.
    suppressed: usize,
}

impl Histogram {
    /// Bins over the 1st–99th percentiles of the first side with values
    /// (training when it has any), so a handful of extreme records neither
    /// squash the plot nor show where they sit. Values beyond fall into the
    /// edge bins, which keeps every density integrating to one.
    fn new(samples: &[(Side, Vec<f64>)], bins: usize, k: usize) -> Option<(Histogram, Side)> {
        let (reference, sorted) = samples.iter().find(|(_, s)| !s.is_empty())?;
        let (lo, hi) = bin_range(
            quantile_sorted(sorted, 0.01)?,
            quantile_sorted(sorted, 0.99)?,
        )?;
        let (lo, hi) = round_outward(lo, hi);
        let width = (hi - lo) / bins as f64;
        let mut suppressed = 0;
        let series = samples
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(side, s)| {
                let total = s.len() as f64 * width;
                let dens = bin_counts(s, lo, width, bins)
                    .into_iter()
                    .map(|c| {
                        if side.is_real() && cells::is_small(c as usize, k) {
                            suppressed += 1;
                            0.0
                        } else {
                            c as f64 / total
                        }
                    })
                    .collect();
                (*side, dens)
            })
            .collect();
        let hist = Histogram {
            lo,
            width,
            series,
            suppressed,
        };
        Some((hist, *reference))
    }

    fn bins(&self) -> usize {
        self.series.first().map_or(0, |(_, d)| d.len())
    }

    fn hi(&self) -> f64 {
        self.lo + self.width * self.bins() as f64
    }

    fn max_density(&self) -> f64 {
        self.series
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .fold(0.0, f64::max)
    }
}

/// Widens a degenerate range (a constant column) to a visible one; `None`
/// when the range cannot be put on an axis at all.
fn bin_range(lo: f64, hi: f64) -> Option<(f64, f64)> {
    let scale = lo.abs().max(hi.abs()).max(1.0);
    let (lo, hi) = if hi - lo <= 1e-9 * scale {
        let pad = (0.05 * lo.abs()).max(0.5);
        (lo - pad, hi + pad)
    } else {
        (lo, hi)
    };
    (lo.is_finite() && hi.is_finite() && (hi - lo).is_finite()).then_some((lo, hi))
}

/// `[lo, hi]` widened to multiples of a round step (the power of ten at
/// or above a hundredth of the width), so the axis ends and the note are
/// round numbers rather than percentiles that may equal a real value.
fn round_outward(lo: f64, hi: f64) -> (f64, f64) {
    let width = hi - lo;
    if !width.is_finite() || width <= 0.0 {
        return (lo, hi);
    }
    let step = 10f64.powf((width / 100.0).log10().ceil());
    let (a, b) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    if a.is_finite() && b.is_finite() && b > a {
        (a, b)
    } else {
        (lo, hi)
    }
}

fn bin_counts(values: &[f64], lo: f64, width: f64, bins: usize) -> Vec<u64> {
    let mut counts = vec![0u64; bins];
    for &x in values {
        let bin = ((x - lo) / width).floor();
        // Clamped: the tails beyond the percentile range sit in the edge bins.
        let bin = if bin.is_nan() {
            0
        } else {
            bin.clamp(0.0, (bins - 1) as f64) as usize
        };
        counts[bin] += 1;
    }
    counts
}

fn numeric_chart(
    name: &str,
    present: &[(Side, &Column)],
    k: usize,
) -> Result<ChartParts, HtmlError> {
    let samples: Vec<(Side, Vec<f64>, usize)> = present
        .iter()
        .filter_map(|(side, c)| match &c.values {
            ColumnValues::Numeric(v) => Some((*side, sorted_finite(v), v.len())),
            ColumnValues::Categorical { .. } => None,
        })
        .collect();
    let notes_by_side = samples
        .iter()
        .map(|(side, s, rows)| side_note(*side, s.len(), *rows, k))
        .collect();
    let sorted: Vec<(Side, Vec<f64>)> = samples.into_iter().map(|(s, v, _)| (s, v)).collect();
    let Some((hist, reference)) = Histogram::new(&sorted, HIST_BINS, k) else {
        let message = if sorted.iter().all(|(_, s)| s.is_empty()) {
            "no finite values on any side"
        } else {
            "values span too wide a range to plot"
        };
        let svg = message_chart(name, message)?;
        return Ok((svg, notes_by_side, Vec::new()));
    };
    let svg = svg_chart(name, (600, 340), |root| draw_histogram(root, &hist, name))?;
    let mut notes = vec![format!(
        "{HIST_BINS} bins over the {} 1st–99th percentiles rounded outward, [{}, {}]; values \
         beyond fall in the edge bins; densities, missing values excluded",
        reference.label(),
        fmt_num(hist.lo),
        fmt_num(hist.hi())
    )];
    if hist.suppressed > 0 {
        notes.push(format!(
            "{} real-data bins holding fewer than {k} values are drawn empty (small-cell \
             suppression)",
            hist.suppressed
        ));
    }
    Ok((svg, notes_by_side, notes))
}

fn draw_histogram(root: &Area<'_>, hist: &Histogram, name: &str) -> DrawResult {
    root.fill(&WHITE)?;
    let (strip, body) = root.split_vertically(LEGEND_PX);
    let marks: Vec<Mark> = hist
        .series
        .iter()
        .map(|(s, _)| Mark::histogram(*s))
        .collect();
    draw_legend_strip(&strip, &marks, 64 + 12)?;
    let y_max = headroom(hist.max_density());
    let mut chart = ChartBuilder::on(&body)
        .margin(12)
        .margin_top(4)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(hist.lo..hist.hi(), 0.0..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_labels(7)
        .y_labels(5)
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .label_style(("sans-serif", LABEL_FONT))
        .axis_desc_style(("sans-serif", AXIS_FONT))
        .x_desc(truncate(name, 60))
        .y_desc("density")
        .draw()?;
    for ((_, dens), mark) in hist.series.iter().zip(&marks) {
        if mark.line {
            chart.draw_series(LineSeries::new(step_points(hist, dens), mark.style))?;
        } else {
            chart.draw_series(dens.iter().enumerate().map(|(i, &d)| {
                let x0 = hist.lo + hist.width * i as f64;
                Rectangle::new([(x0, 0.0), (x0 + hist.width, d)], mark.style)
            }))?;
        }
    }
    Ok(())
}

/// The outline of a histogram, for the side drawn as a line.
fn step_points(hist: &Histogram, dens: &[f64]) -> Vec<(f64, f64)> {
    let mut points = vec![(hist.lo, 0.0)];
    for (i, &d) in dens.iter().enumerate() {
        let x0 = hist.lo + hist.width * i as f64;
        points.push((x0, d));
        points.push((x0 + hist.width, d));
    }
    points.push((hist.hi(), 0.0));
    points
}

fn headroom(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * 1.12
    } else {
        1.0
    }
}

/// How one side is drawn, so the legend strip matches the plot exactly.
struct Mark {
    side: Side,
    style: ShapeStyle,
    line: bool,
}

impl Mark {
    /// Training and synthetic as translucent overlaid bars; holdout, the
    /// yardstick, as a grey outline that does not hide them.
    fn histogram(side: Side) -> Mark {
        let colour = side.colour();
        match side {
            Side::Holdout => Mark {
                side,
                style: colour.mix(0.9).stroke_width(2),
                line: true,
            },
            _ => Mark {
                side,
                style: colour.mix(0.45).filled(),
                line: false,
            },
        }
    }

    /// Side-by-side bars; holdout lighter.
    fn bar(side: Side) -> Mark {
        let alpha = if side == Side::Holdout { 0.45 } else { 0.85 };
        Mark {
            side,
            style: side.colour().mix(alpha).filled(),
            line: false,
        }
    }
}

/// A one-line legend above the plot: plotters' in-plot legend box covers
/// bars, and there is no free corner that is safe for every column.
fn draw_legend_strip(strip: &Area<'_>, marks: &[Mark], left: i32) -> DrawResult {
    let y = LEGEND_PX as i32 / 2 + 2;
    let style = TextStyle::from(("sans-serif", LABEL_FONT).into_font())
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut x = left;
    for mark in marks {
        if mark.line {
            strip.draw(&PathElement::new(vec![(x, y), (x + 16, y)], mark.style))?;
        } else {
            strip.draw(&Rectangle::new([(x, y - 5), (x + 16, y + 5)], mark.style))?;
        }
        let label = mark.side.label();
        strip.draw(&Text::new(label, (x + 22, y), style.clone()))?;
        x += 22 + (label.len() as f64 * CHAR_PX).round() as i32 + 20;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Categorical columns: grouped horizontal bars of shares (horizontal, so
// category labels stay readable without rotation).

struct CategorySample<'a> {
    side: Side,
    counts: HashMap<&'a str, u64>,
    values: u64,
}

fn category_sample<'a>(side: Side, column: &'a Column, k: usize) -> (CategorySample<'a>, SideNote) {
    let mut sample = CategorySample {
        side,
        counts: HashMap::new(),
        values: 0,
    };
    let mut rows = 0;
    if let ColumnValues::Categorical { codes, dictionary } = &column.values {
        rows = codes.len();
        // A code outside the dictionary counts as missing rather than panicking.
        for label in codes
            .iter()
            .filter(|&&c| c != NULL_CODE)
            .filter_map(|&c| dictionary.get(c as usize))
        {
            *sample.counts.entry(label.as_str()).or_default() += 1;
            sample.values += 1;
        }
    }
    let note = side_note(side, sample.values as usize, rows, k);
    (sample, note)
}

struct Bars {
    labels: Vec<String>,
    series: Vec<(Side, Vec<f64>)>,
    folded: usize,
    suppressed: usize,
}

impl Bars {
    /// Top categories by the first side with values (training when it has
    /// any), small real categories and the tail summed into "other".
    fn new(samples: &[CategorySample<'_>], k: usize) -> Option<Bars> {
        let reference = samples.iter().find(|s| s.values > 0)?;
        let mut labels: Vec<&str> = Vec::new();
        for label in samples.iter().flat_map(|s| s.counts.keys()) {
            if !labels.contains(label) {
                labels.push(label);
            }
        }
        let count = |s: &CategorySample<'_>, l: &str| s.counts.get(l).copied().unwrap_or(0);
        labels.sort_by(|a, b| {
            count(reference, b)
                .cmp(&count(reference, a))
                .then_with(|| a.cmp(b))
        });
        let small = |l: &str| {
            samples
                .iter()
                .any(|s| s.side.is_real() && cells::is_small(count(s, l) as usize, k))
        };
        let suppressed = labels.iter().filter(|l| small(l)).count();
        let mut shown: Vec<&str> = labels
            .iter()
            .copied()
            .filter(|l| !small(l))
            .take(TOP_CATEGORIES)
            .collect();
        // Complementary suppression: "other" must not hold 1 to k − 1 real
        // records either, or the shown shares give it back.
        let other_small = |shown: &[&str]| {
            samples.iter().any(|s| {
                let rest: u64 = s
                    .counts
                    .iter()
                    .filter(|(l, _)| !shown.contains(l))
                    .map(|(_, c)| c)
                    .sum();
                s.side.is_real() && cells::is_small(rest as usize, k)
            })
        };
        while !shown.is_empty() && other_small(&shown) {
            shown.pop();
        }
        let folded = labels.len() - shown.len();
        let series = samples
            .iter()
            .map(|s| (s.side, shares(s, &shown, folded > 0)))
            .collect();
        let mut names: Vec<String> = shown.iter().map(|l| l.to_string()).collect();
        if folded > 0 {
            names.push(format!("other ({folded})"));
        }
        Some(Bars {
            labels: names,
            series,
            folded,
            suppressed,
        })
    }
}

/// Shares of non-missing values; the "other" share is summed from counts
/// so rounding never makes it negative.
fn shares(sample: &CategorySample<'_>, shown: &[&str], other: bool) -> Vec<f64> {
    let n = sample.values.max(1) as f64;
    let shown_count = |l: &str| sample.counts.get(l).copied().unwrap_or(0);
    let mut out: Vec<f64> = shown.iter().map(|l| shown_count(l) as f64 / n).collect();
    if other {
        let rest: u64 = sample
            .counts
            .iter()
            .filter(|(l, _)| !shown.contains(l))
            .map(|(_, c)| c)
            .sum();
        out.push(rest as f64 / n);
    }
    out
}

fn categorical_chart(
    name: &str,
    present: &[(Side, &Column)],
    k: usize,
) -> Result<ChartParts, HtmlError> {
    let (samples, side_notes): (Vec<_>, Vec<_>) = present
        .iter()
        .map(|(side, c)| category_sample(*side, c, k))
        .unzip();
    let Some(bars) = Bars::new(&samples, k) else {
        let svg = message_chart(name, "no non-missing values on any side")?;
        return Ok((svg, side_notes, Vec::new()));
    };
    let rows = bars.labels.len();
    let group = 8 * bars.series.len() as u32 + 8;
    let height = (rows as u32 * group + 90 + LEGEND_PX).max(180);
    let svg = svg_chart(name, (600, height), |root| draw_bars(root, &bars, name))?;
    let mut notes = vec!["shares of non-missing values".to_string()];
    if bars.folded > 0 {
        notes.push(format!(
            "\"other\" sums {} categories: those beyond the top {TOP_CATEGORIES}{}",
            bars.folded,
            if bars.suppressed > 0 {
                format!(
                    " and {} held by fewer than {k} real records",
                    bars.suppressed
                )
            } else {
                String::new()
            }
        ));
    }
    Ok((svg, side_notes, notes))
}

fn draw_bars(root: &Area<'_>, bars: &Bars, name: &str) -> DrawResult {
    root.fill(&WHITE)?;
    let rows = bars.labels.len();
    let x_max = headroom(
        bars.series
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .fold(0.0, f64::max),
    )
    .min(1.0);
    let label_chars = bars
        .labels
        .iter()
        .map(|l| l.chars().count().min(MAX_LABEL_CHARS))
        .max()
        .unwrap_or(4);
    let (strip, body) = root.split_vertically(LEGEND_PX);
    let marks: Vec<Mark> = bars.series.iter().map(|(s, _)| Mark::bar(*s)).collect();
    let label_px = label_area(label_chars);
    draw_legend_strip(&strip, &marks, label_px as i32 + 12)?;
    let mut chart = ChartBuilder::on(&body)
        .margin(12)
        .margin_top(4)
        .x_label_area_size(44)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0.0..x_max, FixedTicks::index(rows))?;
    // Row 0 is drawn at the top: the y value of row i is rows - 1 - i.
    let label_of = |y: &f64| {
        let row = rows as f64 - 1.0 - y.round();
        if row >= 0.0 && (row as usize) < rows {
            truncate(&bars.labels[row as usize], MAX_LABEL_CHARS)
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_labels(6)
        .x_label_formatter(&|v| fmt_share(*v))
        .y_label_formatter(&label_of)
        .label_style(("sans-serif", LABEL_FONT))
        .axis_desc_style(("sans-serif", AXIS_FONT))
        .x_desc(format!("share of {}", truncate(name, 50)))
        .draw()?;
    let thickness = 0.8 / bars.series.len() as f64;
    for (k, ((_, shares), mark)) in bars.series.iter().zip(&marks).enumerate() {
        chart.draw_series(shares.iter().enumerate().map(|(i, &s)| {
            let y_top = (rows - 1 - i) as f64 + 0.4 - thickness * k as f64;
            Rectangle::new([(0.0, y_top), (s, y_top - thickness)], mark.style)
        }))?;
    }
    Ok(())
}

/// Pixels for a label of `chars` characters at [`LABEL_FONT`], by the same
/// naive estimate plotters uses, plus room for ticks.
fn label_area(chars: usize) -> u32 {
    (chars as f64 * CHAR_PX + 16.0).round().clamp(40.0, 220.0) as u32
}

// ---------------------------------------------------------------------------
// Correlation heatmaps.

type Matrix = Vec<Vec<Option<f64>>>;

fn correlations(ctx: &HtmlContext<'_>) -> Result<Correlations, HtmlError> {
    let numeric: Vec<&str> = ctx
        .train
        .columns
        .iter()
        .filter(|c| Kind::of(c) == Kind::Numeric)
        .map(|c| c.name.as_str())
        .collect();
    if numeric.len() < 2 {
        return Ok(Correlations {
            charts: Vec::new(),
            note: "Fewer than two numeric training columns: no correlation matrix.".to_string(),
        });
    }
    let names = &numeric[..numeric.len().min(MAX_HEATMAP_COLUMNS)];
    let train = spearman_matrix(ctx.train, names);
    let synthetic = spearman_matrix(ctx.synthetic, names);
    let diff = abs_difference(&train, &synthetic);
    let panels = [
        ("Training", &train, Scale::Correlation),
        ("Synthetic", &synthetic, Scale::Correlation),
        ("|Training − Synthetic|", &diff, Scale::Difference),
    ];
    let charts = panels
        .into_iter()
        .map(|(title, cells, scale)| {
            let heatmap = Heatmap {
                names,
                cells,
                scale,
            };
            let svg = svg_chart(title, heatmap.size(), |root| heatmap.draw(root))?;
            Ok(Figure { title, svg })
        })
        .collect::<Result<_, HtmlError>>()?;
    let mut note = "Spearman rank correlation of numeric columns over pairwise-complete rows. \
                    Grey cells are undefined (a constant column, fewer than two complete rows, \
                    or a column the synthetic table lacks). The difference scale saturates at 0.5."
        .to_string();
    if numeric.len() > names.len() {
        note.push_str(&format!(
            " Showing the first {} of {} numeric columns.",
            names.len(),
            numeric.len()
        ));
    }
    Ok(Correlations { charts, note })
}

/// Ranks each column once, then correlates every pair (the diagonal too,
/// which is undefined for a constant column).
fn spearman_matrix(table: &Table, names: &[&str]) -> Matrix {
    let ranked: Vec<Option<RankedColumn<'_>>> = names
        .iter()
        .map(|n| match table.column(n).map(|c| &c.values) {
            Some(ColumnValues::Numeric(v)) => Some(RankedColumn::new(v)),
            _ => None,
        })
        .collect();
    let k = names.len();
    let mut m = vec![vec![None; k]; k];
    for i in 0..k {
        for j in i..k {
            if let (Some(a), Some(b)) = (&ranked[i], &ranked[j]) {
                let r = spearman_ranked(a, b).filter(|r| r.is_finite());
                m[i][j] = r;
                m[j][i] = r;
            }
        }
    }
    m
}

fn abs_difference(a: &Matrix, b: &Matrix) -> Matrix {
    a.iter()
        .zip(b)
        .map(|(ra, rb)| {
            ra.iter()
                .zip(rb)
                .map(|(x, y)| Some((x.as_ref()? - y.as_ref()?).abs()))
                .collect()
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Scale {
    /// −1 … 1, diverging around white so the sign reads at a glance.
    Correlation,
    /// 0 … 0.5, saturating: differences that matter (gate thresholds are
    /// ~0.1–0.2) must not look white on a 0…1 scale.
    Difference,
}

impl Scale {
    fn range(self) -> (f64, f64) {
        match self {
            Scale::Correlation => (-1.0, 1.0),
            Scale::Difference => (0.0, 0.5),
        }
    }

    fn colour(self, v: f64) -> RGBColor {
        let (lo, hi) = self.range();
        let v = if v.is_finite() { v.clamp(lo, hi) } else { lo };
        let map = match self {
            Scale::Correlation => DerivedColorMap::new(&[
                RGBColor(33, 102, 172),
                RGBColor(247, 247, 247),
                RGBColor(178, 24, 43),
            ]),
            Scale::Difference => DerivedColorMap::new(&[
                RGBColor(255, 255, 255),
                RGBColor(254, 178, 76),
                RGBColor(240, 59, 32),
                RGBColor(128, 0, 38),
            ]),
        };
        map.get_color_normalized(v, lo, hi)
    }

    fn ticks(self) -> Vec<f64> {
        match self {
            Scale::Correlation => vec![-1.0, -0.5, 0.0, 0.5, 1.0],
            Scale::Difference => vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        }
    }

    fn tick(self, v: f64) -> String {
        let (_, hi) = self.range();
        match self {
            Scale::Difference if v >= hi - 1e-9 => format!("≥{}", fmt_tick(v)),
            _ => fmt_tick(v),
        }
    }
}

const MUTED_TEXT: RGBColor = RGBColor(90, 90, 90);
/// Black or white text, whichever reads on `fill` (Rec. 601 luma).
fn ink_on(fill: RGBColor) -> &'static RGBColor {
    let RGBColor(r, g, b) = fill;
    let luma = 0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b);
    if luma < 140.0 { &WHITE } else { &BLACK }
}

const UNDEFINED_CELL: RGBColor = RGBColor(215, 215, 215);
const COLOUR_BAR_WIDTH: u32 = 84;
const HEATMAP_MARGIN: u32 = 8;

struct Heatmap<'a> {
    names: &'a [&'a str],
    cells: &'a Matrix,
    scale: Scale,
}

impl Heatmap<'_> {
    fn cell_px(&self) -> u32 {
        (440 / self.names.len().max(1) as u32).clamp(12, 56)
    }

    fn label_px(&self) -> u32 {
        let chars = self.names.iter().map(|n| n.chars().count()).max();
        label_area(chars.unwrap_or(4).min(MAX_LABEL_CHARS))
    }

    fn size(&self) -> (u32, u32) {
        let plot = self.cell_px() * self.names.len() as u32;
        let label = self.label_px();
        (
            label + plot + 2 * HEATMAP_MARGIN + COLOUR_BAR_WIDTH,
            label + plot + 2 * HEATMAP_MARGIN,
        )
    }

    fn draw(&self, root: &Area<'_>) -> DrawResult {
        root.fill(&WHITE)?;
        let (width, _) = self.size();
        let (main, bar) = root.split_horizontally(width - COLOUR_BAR_WIDTH);
        self.draw_cells(&main)?;
        self.draw_colour_bar(&bar)
    }

    fn draw_cells(&self, area: &Area<'_>) -> DrawResult {
        let k = self.names.len();
        let mut chart = ChartBuilder::on(area)
            .margin(HEATMAP_MARGIN)
            .x_label_area_size(self.label_px())
            .y_label_area_size(self.label_px())
            .build_cartesian_2d(FixedTicks::index(k), FixedTicks::index(k))?;
        // Row i is drawn at y = k - 1 - i so the matrix reads top-down.
        let row_label = |y: &f64| {
            let row = k as f64 - 1.0 - y.round();
            self.label(row)
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&row_label)
            .label_style(("sans-serif", LABEL_FONT))
            .draw()?;
        let cells = (0..k).flat_map(|i| (0..k).map(move |j| (i, j)));
        chart.draw_series(cells.map(|(i, j)| {
            let (x, y) = (j as f64, (k - 1 - i) as f64);
            let fill = self.cells[i][j].map_or(UNDEFINED_CELL, |v| self.scale.colour(v));
            Rectangle::new([(x - 0.48, y - 0.48), (x + 0.48, y + 0.48)], fill.filled())
        }))?;
        if self.cell_px() >= 34 {
            self.annotate(&mut chart)?;
        }
        // plotters centres x tick labels on the tick, so rotated names are
        // placed by hand: anchored at their end just below the axis.
        let style = TextStyle::from(("sans-serif", LABEL_FONT).into_font())
            .pos(Pos::new(HPos::Right, VPos::Center))
            .transform(FontTransform::Rotate270);
        for j in 0..k {
            let (px, py) = chart.backend_coord(&(j as f64, -0.5));
            area.draw(&Text::new(
                self.label(j as f64),
                (px, py + 6),
                style.clone(),
            ))?;
        }
        Ok(())
    }

    /// Cell values as text, where cells are large enough to hold them.
    fn annotate(
        &self,
        chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<FixedTicks, FixedTicks>>,
    ) -> DrawResult {
        let k = self.names.len();
        let style = TextStyle::from(("sans-serif", 13).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center));
        let mut texts = Vec::new();
        for (i, row) in self.cells.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let Some(v) = v else { continue };
                let colour = ink_on(self.scale.colour(*v));
                let y = (k - 1 - i) as f64;
                texts.push(Text::new(
                    format!("{v:.2}"),
                    (j as f64, y),
                    style.color(colour),
                ));
            }
        }
        chart.draw_series(texts)?;
        Ok(())
    }

    fn label(&self, index: f64) -> String {
        if index >= 0.0 && (index as usize) < self.names.len() {
            truncate(self.names[index as usize], MAX_LABEL_CHARS)
        } else {
            String::new()
        }
    }

    fn draw_colour_bar(&self, area: &Area<'_>) -> DrawResult {
        let (lo, hi) = self.scale.range();
        let mut chart = ChartBuilder::on(area)
            .margin(HEATMAP_MARGIN)
            .margin_right(12)
            .x_label_area_size(self.label_px())
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..1.0, FixedTicks::new(lo..hi, self.scale.ticks()))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .set_tick_mark_size(LabelAreaPosition::Left, 5)
            .y_label_formatter(&|v| self.scale.tick(*v))
            .label_style(("sans-serif", LABEL_FONT))
            .draw()?;
        let steps = 64;
        let step = (hi - lo) / steps as f64;
        chart.draw_series((0..steps).map(|s| {
            let y0 = lo + step * s as f64;
            let colour = self.scale.colour(y0 + step / 2.0);
            Rectangle::new([(0.0, y0), (1.0, y0 + step)], colour.filled())
        }))?;
        Ok(())
    }
}

/// A linear axis with ticks exactly where asked: one per bar-chart row or
/// heatmap cell (labelled through a formatter), or a colour bar's round
/// values. (plotters' `with_key_points` loses the label formatting that
/// `configure_mesh` needs, hence this small axis.)
#[derive(Clone)]
struct FixedTicks {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl FixedTicks {
    fn new(range: std::ops::Range<f64>, ticks: Vec<f64>) -> Self {
        FixedTicks {
            inner: range.into(),
            ticks,
        }
    }

    /// −0.5 … n − 0.5 with a tick on every integer.
    fn index(n: usize) -> Self {
        FixedTicks::new(-0.5..n as f64 - 0.5, (0..n).map(|i| i as f64).collect())
    }
}

impl Ranged for FixedTicks {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

// ---------------------------------------------------------------------------
// SVG plumbing.

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Draws into a fresh SVG string; `chart` names the chart in errors.
fn svg_chart<F>(chart: &str, size: (u32, u32), draw: F) -> Result<String, HtmlError>
where
    F: for<'b> FnOnce(&Area<'b>) -> DrawResult,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root)
            .and_then(|()| root.present().map_err(Into::into))
            .map_err(|e| HtmlError::Plot {
                chart: chart.to_string(),
                message: e.to_string(),
            })?;
    }
    Ok(inline_svg(&svg))
}

/// Inline SVG in HTML needs no namespace declaration; dropping it keeps the
/// page free of any URL.
fn inline_svg(svg: &str) -> String {
    svg.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1)
}

/// A placeholder chart, so every column still gets one.
fn message_chart(name: &str, message: &str) -> Result<String, HtmlError> {
    svg_chart(name, (600, 120), |root| {
        root.fill(&WHITE)?;
        let style = TextStyle::from(("sans-serif", AXIS_FONT).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center))
            .color(&MUTED_TEXT);
        root.draw(&Text::new(message.to_string(), (300, 60), style))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{ColumnScore, PairScore};

    fn result(op: &str, columns: &[&str], statistic: f64, passed: bool) -> OperatorResult {
        OperatorResult {
            operator: op.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            statistic,
            threshold: 0.1,
            effect_limit: 0.1,
            noise_allowance: None,
            interval: None,
            noise_floor: Some(0.02),
            passed,
            explanation: format!("{op} explanation"),
        }
    }

    fn labels(pattern: &[(&str, usize)]) -> Vec<Option<String>> {
        pattern
            .iter()
            .flat_map(|(l, n)| std::iter::repeat_n(Some(l.to_string()), *n))
            .collect()
    }

    /// 200 rows: age (numeric), bmi (numeric, correlated with age, some
    /// missing) and sex (categorical, with a `<script>` category).
    fn table(shift: f64) -> Table {
        let age: Vec<f64> = (0..200).map(|i| 20.0 + (i % 60) as f64 + shift).collect();
        let bmi: Vec<f64> = age
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if i % 10 == 0 {
                    f64::NAN
                } else {
                    18.0 + a / 5.0
                }
            })
            .collect();
        let sex = labels(&[("F", 100), ("M", 88), ("<script>", 12)]);
        Table::new(vec![
            Column::numeric("age", age),
            Column::numeric("bmi", bmi),
            Column::categorical("sex", &sex),
        ])
    }

    fn mixed_report() -> GateReport {
        GateReport::new(vec![
            result(operator::KS, &["age"], 0.04, true),
            result(operator::KS, &["bmi"], 0.31, false),
            result(operator::TOTAL_VARIATION, &["sex"], 0.02, true),
            result(operator::SPEARMAN_DIFF, &["age", "bmi"], 0.01, true),
            result(operator::UTILITY_AUROC_GAP, &[], 0.03, true),
            result(operator::EXACT_MATCH, &[], 0.0, true),
            result(operator::DCR_SHARE, &[], 0.52, true),
            result(operator::MIA_NEAREST_RECORD, &[], 0.2, false),
            result(operator::INFERENCE_RISK, &["sex"], 0.01, true),
            result("brand_new_operator", &[], 0.5, true),
        ])
    }

    fn render_tables(report: &GateReport, train: &Table, holdout: &Table, synth: &Table) -> String {
        let ctx = HtmlContext {
            title: "labs & vitals <v2>",
            meta: vec![("run id".into(), "r-42".into())],
            train,
            holdout: Some(holdout),
            synthetic: synth,
            min_cell: 11,
        };
        render(report, &ctx).unwrap()
    }

    fn section<'a>(html: &'a str, id: &str) -> &'a str {
        let start = html.find(&format!("<section id=\"{id}\"")).unwrap();
        let end = html[start..].find("</section>").unwrap();
        &html[start..start + end]
    }

    #[test]
    fn renders_verdict_every_operator_and_one_chart_per_column() {
        let (train, holdout, synth) = (table(0.0), table(0.5), table(3.0));
        let html = render_tables(&mixed_report(), &train, &holdout, &synth);
        assert!(html.contains(r#"<div class="verdict fail">FAIL</div>"#));
        assert!(html.contains("10 gated results"));
        assert!(html.contains("2 failed"));
        let verdicts = section(&html, "verdicts");
        for r in &mixed_report().results {
            assert!(verdicts.contains(&format!("<td class=\"op\">{}</td>", r.operator)));
        }
        let failures = section(&html, "failures");
        assert!(failures.contains(">ks<") && failures.contains(">mia_nearest_record<"));
        assert!(!failures.contains(">dcr_share<"));
        let distributions = section(&html, "distributions");
        let figures: Vec<&str> = distributions
            .split("<figure class=\"plot\"")
            .skip(1)
            .collect();
        assert_eq!(figures.len(), 3);
        for (figure, name) in figures.iter().zip(["age", "bmi", "sex"]) {
            assert!(figure.contains("<svg"), "{name} has no chart");
            assert!(figure.contains(&format!("<strong>{name}</strong>")));
            // Text inside the chart survives without a font backend.
            assert!(figure.contains("<text"), "{name} chart has no text");
        }
        // Every category is a labelled row of the bar chart.
        for label in ["F", "M", "&lt;script&gt;"] {
            assert!(
                figures[2].contains(&format!(">\n{label}\n</text>")),
                "{label}"
            );
        }
        assert!(figures[1].contains("KS D 0.31"));
        assert!(figures[1].contains("10.0% missing"));
        assert_eq!(section(&html, "correlations").matches("<svg").count(), 3);
        let privacy = section(&html, "privacy");
        assert!(privacy.contains("mia_nearest_record") && privacy.contains("inference_risk"));
        assert!(!privacy.contains(">ks<"));
    }

    #[test]
    fn passing_report_shows_pass_and_no_failure_section() {
        let t = table(0.0);
        let report = GateReport::new(vec![result(operator::KS, &["age"], 0.01, true)]);
        let html = render_tables(&report, &t, &t, &t);
        assert!(html.contains(r#"<div class="verdict pass">PASS</div>"#));
        assert!(!html.contains("id=\"failures\""));
        assert!(!html.contains(">FAIL<"));
    }

    #[test]
    fn groups_stages_in_order_and_keeps_unknown_operators() {
        let t = table(0.0);
        let html = render_tables(&mixed_report(), &t, &t, &t);
        let verdicts = section(&html, "verdicts");
        let at = |title: &str| verdicts.find(&format!("<h3>{title}")).unwrap();
        assert!(at("Fidelity") < at("Utility"));
        assert!(at("Utility") < at("Privacy"));
        assert!(at("Privacy") < at("Other"));
        assert!(verdicts[at("Other")..].contains("brand_new_operator"));
        assert!(verdicts[at("Privacy")..at("Other")].contains("inference_risk"));
        assert_eq!(Stage::of("l_diversity"), Stage::Privacy);
        assert_eq!(Stage::of(operator::NNDR_SHARE), Stage::Privacy);
        assert_eq!(Stage::of(operator::OUTLIER_REPLICATION), Stage::Privacy);
        assert_eq!(Stage::of("utility_subgroup_gap"), Stage::Utility);
        assert_eq!(Stage::of("conditional_ks"), Stage::Fidelity);
    }

    #[test]
    fn privacy_section_says_when_the_staged_gate_skipped_privacy() {
        let t = table(0.0);
        let mut skipped = result(PRIVACY_SKIPPED, &[], 0.0, false);
        skipped.explanation = "reported, not gated: the privacy gate did not run".into();
        let report = GateReport::new(vec![result(operator::KS, &["age"], 0.4, false)])
            .with_evidence(vec![skipped], None);
        let html = render_tables(&report, &t, &t, &t);
        let privacy = section(&html, "privacy");
        assert!(privacy.contains("No privacy operator was gated"));
        assert!(privacy.contains("privacy gate did not run"));
    }

    #[test]
    fn escapes_everything_from_data() {
        let t = table(0.0);
        let mut report = mixed_report();
        report.results[0].explanation = "age <b>shifted</b> & \"quoted\"".into();
        let html = render_tables(&report, &t, &t, &t);
        assert!(!html.contains("<script"), "a data label became markup");
        assert!(!html.contains("<b>shifted"));
        assert!(
            html.contains("&lt;script&gt;"),
            "the category label is missing"
        );
        assert!(html.contains("labs &amp; vitals &lt;v2&gt;"));
        assert!(html.contains("age &lt;b&gt;shifted&lt;&#x2f;b&gt; &amp; &quot;quoted&quot;"));
        assert!(!html.contains("&amp;lt;"), "double escaping");
    }

    #[test]
    fn page_is_self_contained() {
        let t = table(0.0);
        let html = render_tables(&mixed_report(), &t, &t, &t);
        assert!(html.starts_with("<!DOCTYPE html>"));
        for forbidden in ["http:", "https:", "<script", "<link", "src=", "<img"] {
            assert!(!html.contains(forbidden), "found {forbidden}");
        }
    }

    #[test]
    fn survives_empty_null_constant_one_sided_and_nan() {
        let train = Table::new(vec![
            Column::numeric("all_null", vec![f64::NAN; 50]),
            Column::numeric("constant", vec![7.0; 50]),
            Column::categorical::<&str>("no_labels", &[None; 50]),
            Column::numeric("kind_clash", (0..50).map(f64::from).collect()),
            Column::numeric("huge", [f64::MAX, -f64::MAX, 0.0].repeat(17)[..50].to_vec()),
            Column::numeric("vast", [-1e300, 1e300, 0.0, 1.0, 2.0].repeat(10)),
        ]);
        let synth = Table::new(vec![
            Column::numeric("constant", vec![7.0; 40]),
            Column::categorical("kind_clash", &labels(&[("a", 40)])),
            Column::numeric("synthetic_only", (0..40).map(f64::from).collect()),
        ]);
        let empty = Table::default();
        let mut report =
            GateReport::new(vec![result(operator::KS, &["constant"], f64::NAN, false)]);
        report.reported = vec![result(
            operator::CONTINGENCY_TV,
            &["x", "y"],
            f64::INFINITY,
            false,
        )];
        let html = render_tables(&report, &train, &empty, &synth);
        assert_eq!(html.matches("<figure class=\"plot\"").count(), 7);
        assert!(html.contains("no finite values on any side"));
        assert!(html.contains("no non-missing values on any side"));
        assert!(html.contains("values span too wide a range to plot"));
        assert!(html.contains("absent from the training table"));
        assert!(html.contains("holds categorical values here, not numeric"));
        assert!(html.contains("KS D NaN"));
        assert!(html.contains(">∞<"));
        // Fully empty tables on every side.
        let html = render_tables(&GateReport::new(vec![]), &empty, &empty, &empty);
        assert!(html.contains("PASS") && html.contains("Fewer than two numeric"));
        // Zero-row columns.
        let zero = Table::new(vec![
            Column::numeric("x", vec![]),
            Column::categorical::<&str>("c", &[]),
        ]);
        let html = render_tables(&GateReport::new(vec![]), &zero, &zero, &zero);
        assert!(html.contains("no rows"));
    }

    #[test]
    fn histogram_densities_integrate_to_one_with_tails_in_edge_bins() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let samples = vec![
            (Side::Training, values.clone()),
            (Side::Synthetic, vec![-1e6, 500.0, 1e6]),
        ];
        let (hist, reference) = Histogram::new(&samples, 30, 1).unwrap();
        assert_eq!(reference, Side::Training);
        // numpy.percentile(range(1000), [1, 99]) = [9.99, 989.01], rounded
        // outward to the step 10 (width 979.02 / 100 = 9.79 → 10).
        assert!((hist.lo - 0.0).abs() < 1e-9 && (hist.hi() - 990.0).abs() < 1e-9);
        for (_, d) in &hist.series {
            let mass: f64 = d.iter().map(|x| x * hist.width).sum();
            assert!((mass - 1.0).abs() < 1e-9);
        }
        let synthetic = &hist.series[1].1;
        let third = 1.0 / 3.0 / hist.width;
        assert!((synthetic[0] - third).abs() < 1e-12 && (synthetic[29] - third).abs() < 1e-12);
        // A constant column gets a visible range around its value.
        let (flat, _) = Histogram::new(&[(Side::Training, vec![7.0; 10])], 30, 11).unwrap();
        assert!(flat.lo < 7.0 && flat.hi() > 7.0);
        assert!(Histogram::new(&[(Side::Training, vec![])], 30, 11).is_none());
    }

    #[test]
    fn folds_small_and_tail_categories_into_other() {
        let mut pattern: Vec<(String, usize)> =
            (0..20).map(|i| (format!("c{i:02}"), 30 - i)).collect();
        pattern.push(("rare".into(), 2));
        let borrowed: Vec<(&str, usize)> = pattern.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        let train = Column::categorical("dx", &labels(&borrowed));
        let synth = Column::categorical("dx", &labels(&[("c00", 5), ("invented", 1)]));
        let samples: Vec<CategorySample<'_>> =
            [(Side::Training, &train), (Side::Synthetic, &synth)]
                .into_iter()
                .map(|(s, c)| category_sample(s, c, 5).0)
                .collect();
        let bars = Bars::new(&samples, 5).unwrap();
        assert_eq!(bars.labels.len(), TOP_CATEGORIES + 1);
        assert_eq!(bars.labels[0], "c00");
        assert!(!bars.labels.iter().any(|l| l == "rare"));
        assert_eq!(bars.suppressed, 1);
        // c15..c19, rare and the synthetic-only "invented".
        assert_eq!(bars.folded, 7);
        assert_eq!(bars.labels.last().unwrap(), "other (7)");
        for (_, shares) in &bars.series {
            assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        assert!((bars.series[1].1[TOP_CATEGORIES] - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn spearman_matrix_and_difference() {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let t = Table::new(vec![
            Column::numeric("x", x.clone()),
            Column::numeric("down", x.iter().map(|v| -v * v).collect()),
            Column::numeric("flat", vec![1.0; 20]),
        ]);
        let m = spearman_matrix(&t, &["x", "down", "flat", "missing"]);
        assert_eq!(m[0][0], Some(1.0));
        assert!((m[0][1].unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(m[1][0], m[0][1]);
        assert_eq!(m[2][2], None);
        assert_eq!(m[3][0], None);
        let other = spearman_matrix(&t.take(&(0..20).rev().collect::<Vec<_>>()), &["x", "down"]);
        let d = abs_difference(&m, &other);
        assert_eq!(d[0][1], Some(0.0));
    }

    #[test]
    fn caps_heatmaps_and_skips_without_two_numeric_columns() {
        let wide = Table::new(
            (0..35)
                .map(|i| {
                    Column::numeric(
                        format!("lab_{i}"),
                        (0..30).map(|r| f64::from(r * i)).collect(),
                    )
                })
                .collect(),
        );
        let ctx = HtmlContext {
            title: "wide",
            meta: vec![],
            train: &wide,
            holdout: None,
            synthetic: &wide,
            min_cell: 11,
        };
        let c = correlations(&ctx).unwrap();
        assert_eq!(c.charts.len(), 3);
        assert!(c.note.contains("first 30 of 35"));
        assert!(c.charts[0].svg.contains("lab_29") && !c.charts[0].svg.contains("lab_30"));
        let narrow = Table::new(vec![Column::numeric("x", vec![1.0, 2.0])]);
        let ctx = HtmlContext {
            train: &narrow,
            synthetic: &narrow,
            ..ctx
        };
        assert!(correlations(&ctx).unwrap().charts.is_empty());
    }

    #[test]
    fn renders_aggregates_worst_pair_first() {
        let t = table(0.0);
        let scores = QualityScores {
            column_shapes: Some(0.91),
            column_pair_trends: Some(0.8),
            column_pair_trends_associated: None,
            holdout_column_shapes: Some(0.95),
            holdout_column_pair_trends: None,
            dcr_overfitting_protection: None,
            columns: vec![ColumnScore {
                column: "age".into(),
                metric: "KSComplement".into(),
                score: Some(0.9),
                holdout: Some(0.97),
            }],
            pairs: vec![
                PairScore {
                    columns: ["age".into(), "bmi".into()],
                    metric: "CorrelationSimilarity".into(),
                    score: Some(0.99),
                    holdout: None,
                    real_association: Some(0.7),
                },
                PairScore {
                    columns: ["age".into(), "sex".into()],
                    metric: "ContingencySimilarity".into(),
                    score: Some(0.42),
                    holdout: None,
                    real_association: None,
                },
            ],
            note: "reported, not gated".into(),
        };
        let report = GateReport::new(vec![]).with_evidence(vec![], Some(scores));
        let html = render_tables(&report, &t, &t, &t);
        let aggregates = section(&html, "aggregates");
        assert!(aggregates.contains("0.91") && aggregates.contains("0.95"));
        assert!(aggregates.contains("KSComplement"));
        assert!(aggregates.find("age × sex").unwrap() < aggregates.find("age × bmi").unwrap());
        assert!(!render_tables(&GateReport::new(vec![]), &t, &t, &t).contains("id=\"aggregates\""));
    }

    #[test]
    fn formats_numbers_for_reading() {
        assert_eq!(fmt_num(0.1), "0.1");
        assert_eq!(fmt_num(0.12345), "0.1235");
        assert_eq!(fmt_num(1.5e-5), "1.500e-5");
        assert_eq!(fmt_num(f64::NAN), "NaN");
        assert_eq!(fmt_num(f64::NEG_INFINITY), "−∞");
        assert_eq!(fmt_opt(None), "—");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
