//! The report's charts as inline SVG: plotters for the national charts, a hand-drawn
//! polyline for the sparklines of the LA pages. Every chart has its figures in a table
//! beside it on the page.

use crate::core::dq::{Day, LaLine};
use anyhow::{anyhow, Result};
use plotters::prelude::*;

const BLUE: RGBColor = RGBColor(0, 94, 184);
const GREEN: RGBColor = RGBColor(0, 150, 57);
const AMBER: RGBColor = RGBColor(237, 139, 0);
const RED: RGBColor = RGBColor(218, 41, 28);
const PURPLE: RGBColor = RGBColor(51, 0, 114);
const GREY: RGBColor = RGBColor(66, 85, 99);
/// Colours for stacked codes, in turn.
const PALETTE: [RGBColor; 8] = [
    BLUE,
    RED,
    AMBER,
    GREEN,
    PURPLE,
    GREY,
    RGBColor(0, 169, 206),
    RGBColor(125, 85, 199),
];

fn chart_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("cannot draw a chart: {e}")
}

/// Draws a chart's legend (every chart here has one, boxed, at `position`).
fn legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error)
}

/// A line of a chart over days: its label, colour, and value on a day.
type Series<'a> = (&'a str, RGBColor, fn(&Day) -> u64);

/// Lines over the days of the trend, one per series.
fn day_lines(title: &str, trend: &[Day], series: &[Series<'_>]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let days = trend.len().max(2) as u32;
        let max = trend
            .iter()
            .flat_map(|d| series.iter().map(move |s| (s.2)(d)))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0u32..days - 1, 0u64..max + max / 10 + 1)
            .map_err(chart_error)?;
        let dates: Vec<String> = trend
            .iter()
            .map(|d| d.date.format("%d %b").to_string())
            .collect();
        chart
            .configure_mesh()
            .x_labels(10)
            .y_labels(5)
            .x_label_formatter(&|i| dates.get(*i as usize).cloned().unwrap_or_default())
            .draw()
            .map_err(chart_error)?;
        for (label, colour, value) in series {
            let colour = *colour;
            chart
                .draw_series(LineSeries::new(
                    trend.iter().enumerate().map(|(i, d)| (i as u32, value(d))),
                    colour.stroke_width(2),
                ))
                .map_err(chart_error)?
                .label(*label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Extract files per day by outcome, 30 days.
pub fn outcomes(trend: &[Day]) -> Result<String> {
    day_lines(
        "Extract files per day, by outcome",
        trend,
        &[
            ("accepted", GREEN, |d| d.files.accepted),
            ("partial", AMBER, |d| d.files.partial),
            ("rejected", RED, |d| d.files.rejected),
            ("quarantined", PURPLE, |d| d.files.quarantined),
        ],
    )
}

/// LAs overdue at the end of each day, 30 days.
pub fn overdue(trend: &[Day]) -> Result<String> {
    day_lines(
        "LAs overdue at the end of each day",
        trend,
        &[("overdue LAs", RED, |d| d.overdue)],
    )
}

/// The codes shown in the stacked chart (most rows first, at most 7, then "other").
pub fn top_codes(lines: &[&LaLine]) -> Vec<String> {
    let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
    for l in lines {
        for (code, n) in &l.figures.rejected_by_code {
            *totals.entry(code.to_string()).or_insert(0) += n;
        }
    }
    let mut codes: Vec<(String, u64)> = totals.into_iter().collect();
    codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    codes.into_iter().take(7).map(|(c, _)| c).collect()
}

/// A line's errors for each of `codes`, then all the others.
pub fn by_codes(line: &LaLine, codes: &[String]) -> Vec<u64> {
    let mut out: Vec<u64> = codes
        .iter()
        .map(|c| {
            line.figures
                .rejected_by_code
                .iter()
                .filter(|(k, _)| k.to_string() == *c)
                .map(|(_, n)| *n)
                .sum()
        })
        .collect();
    let shown: u64 = out.iter().sum();
    out.push(line.figures.rejected_by_code.values().sum::<u64>() - shown);
    out
}

/// Row errors by code, for the LAs with most rows rejected (stacked bars, one per LA).
pub fn codes_by_la(lines: &[&LaLine]) -> Result<String> {
    let codes = top_codes(lines);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let stacks: Vec<Vec<u64>> = lines.iter().map(|l| by_codes(l, &codes)).collect();
        let max = stacks
            .iter()
            .map(|s| s.iter().sum::<u64>())
            .max()
            .unwrap_or(0)
            .max(1);
        let n = lines.len().max(1) as u32;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Row errors by code, LAs with most rows rejected",
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d((0u32..n).into_segmented(), 0u64..max + max / 10 + 1)
            .map_err(chart_error)?;
        let labels: Vec<String> = lines.iter().map(|l| l.la.to_string()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(labels.len().max(1))
            .y_labels(5)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(chart_error)?;
        let names: Vec<String> = codes.iter().cloned().chain(["other".to_owned()]).collect();
        for (k, name) in names.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let bars = stacks.iter().enumerate().filter_map(|(i, s)| {
                let below: u64 = s[..k].iter().sum();
                (s[k] > 0).then(|| {
                    Rectangle::new(
                        [
                            (SegmentValue::Exact(i as u32), below),
                            (SegmentValue::Exact(i as u32 + 1), below + s[k]),
                        ],
                        colour.filled(),
                    )
                })
            });
            chart
                .draw_series(bars)
                .map_err(chart_error)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// A small line of `values` (oldest first), 120 × 24, its last point marked.
pub fn sparkline(values: &[u64]) -> String {
    let (w, h) = (120.0, 24.0);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        w / (values.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                h - 2.0 - (*v as f64 / max) * (h - 4.0)
            )
        })
        .collect();
    let last = points
        .last()
        .cloned()
        .unwrap_or_else(|| format!("0,{}", h - 2.0));
    let (lx, ly) = last.split_once(',').unwrap_or(("0", "0"));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"spark\" width=\"{w}\" height=\"{h}\" viewBox=\"-2 0 {} {h}\" aria-hidden=\"true\"><polyline fill=\"none\" stroke=\"#005eb8\" stroke-width=\"1.5\" points=\"{}\"/><circle cx=\"{lx}\" cy=\"{ly}\" r=\"2\" fill=\"#005eb8\"/></svg>",
        w + 4.0,
        points.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_spans_its_box_and_marks_the_last_day() {
        let svg = sparkline(&[0, 5, 10]);
        assert!(
            svg.contains("points=\"0.0,22.0 60.0,12.0 120.0,2.0\""),
            "{svg}"
        );
        assert!(svg.contains("cx=\"120.0\" cy=\"2.0\""), "{svg}");
        let flat = sparkline(&[0, 0]);
        assert!(flat.contains("points=\"0.0,22.0 120.0,22.0\""), "{flat}");
        assert!(sparkline(&[]).contains("<svg"));
    }
}
