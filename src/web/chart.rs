//! Charts drawn on the server as SVG: stacked bars of the mail flow, lines
//! of levels over the same time (Exim's queue), and plain bars of a
//! distribution. Pure; colours come from the stylesheet
//! (classes, not `style=` attributes, which the Content-Security-Policy
//! forbids).

use maud::{Markup, html};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// Stacked bars: one per bucket, one layer per series (in `series`
/// order); each bar's tooltip names its bucket and counts.
pub fn stacked_bars(series: &[&str], labels: &[String], counts: &[Vec<u64>]) -> Markup {
    let totals: Vec<u64> = counts.iter().map(|c| c.iter().sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot_height = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / labels.len().max(1) as f64;
    let bar = (slot * 0.8).max(0.5);
    // About eight labels along the time axis, whatever the buckets.
    let label_every = labels.len().div_ceil(8).max(1);
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
            aria-label="Mail flow" xmlns="http://www.w3.org/2000/svg" {
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
            text x="4" y=(TOP + 10.0) { (max) }
            text x="4" y=(HEIGHT - BOTTOM) { "0" }
            @for (index, (label, layers)) in labels.iter().zip(counts).enumerate() {
                @let x = LEFT + index as f64 * slot + (slot - bar) / 2.0;
                g {
                    title { (label) ": " (tooltip(series, layers)) }
                    @for (layer, (name, y, height)) in stack(series, layers, max, plot_height).into_iter().enumerate() {
                        @if height > 0.0 {
                            rect class=(format!("s-{name}")) data-layer=(layer)
                                x=(format!("{x:.2}")) y=(format!("{y:.2}"))
                                width=(format!("{bar:.2}")) height=(format!("{height:.2}")) {}
                        }
                    }
                }
                @if index % label_every == 0 {
                    text x=(format!("{x:.1}")) y=(HEIGHT - 6.0) { (short(label)) }
                }
            }
        }
    }
}

/// Lines of levels over time: one per series (in `series` order), broken
/// where a bucket has no value; each point's tooltip names its bucket and
/// values. The time axis is the flow chart's, bucket for bucket.
pub fn levels(
    aria_label: &str,
    series: &[&str],
    labels: &[String],
    values: &[Vec<Option<u64>>],
) -> Markup {
    let max = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_height = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / labels.len().max(1) as f64;
    let x = |index: usize| LEFT + index as f64 * slot + slot / 2.0;
    let y = |value: u64| HEIGHT - BOTTOM - value as f64 / max as f64 * plot_height;
    let label_every = labels.len().div_ceil(8).max(1);
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
            aria-label=(aria_label) xmlns="http://www.w3.org/2000/svg" {
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
            text x="4" y=(TOP + 10.0) { (max) }
            text x="4" y=(HEIGHT - BOTTOM) { "0" }
            @for (layer, name) in series.iter().enumerate() {
                // A lone point is its circle alone.
                @for run in runs(values, layer).into_iter().filter(|run| run.len() > 1) {
                    polyline class=(format!("l-{name}")) points=(run.iter()
                        .map(|(index, value)| format!("{:.1},{:.1}", x(*index), y(*value)))
                        .collect::<Vec<_>>().join(" ")) {}
                }
            }
            @for (index, (label, row)) in labels.iter().zip(values).enumerate() {
                @for (layer, value) in row.iter().enumerate() {
                    @if let (Some(value), Some(name)) = (value, series.get(layer)) {
                        circle class=(format!("l-{name}")) cx=(format!("{:.1}", x(index)))
                            cy=(format!("{:.1}", y(*value))) r="2" {
                            title { (label) ": " (value) " " (name) }
                        }
                    }
                }
                @if index % label_every == 0 {
                    text x=(format!("{:.1}", x(index))) y=(HEIGHT - 6.0) { (short(label)) }
                }
            }
        }
    }
}

/// The runs of buckets where series `layer` has a value: (bucket, value).
fn runs(values: &[Vec<Option<u64>>], layer: usize) -> Vec<Vec<(usize, u64)>> {
    let mut runs = vec![Vec::new()];
    for (index, row) in values.iter().enumerate() {
        match row.get(layer).copied().flatten() {
            Some(value) => runs
                .last_mut()
                .into_iter()
                .for_each(|run| run.push((index, value))),
            None if runs.last().is_some_and(|run| !run.is_empty()) => runs.push(Vec::new()),
            None => {}
        }
    }
    runs.retain(|run| !run.is_empty());
    runs
}

/// Each layer's series name, top and height, bottom up.
fn stack<'a>(
    series: &[&'a str],
    layers: &[u64],
    max: u64,
    plot_height: f64,
) -> Vec<(&'a str, f64, f64)> {
    let mut base = HEIGHT - BOTTOM;
    series
        .iter()
        .zip(layers)
        .map(|(name, count)| {
            let height = *count as f64 / max as f64 * plot_height;
            base -= height;
            (*name, base, height)
        })
        .collect()
}

fn tooltip(series: &[&str], layers: &[u64]) -> String {
    series
        .iter()
        .zip(layers)
        .map(|(name, count)| format!("{count} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bucket's label on the axis: its time of day, or date and time.
fn short(label: &str) -> &str {
    label.get(5..16).unwrap_or(label)
}

/// Horizontal bars of a distribution (name, count).
pub fn bars(rows: &[(String, u64)]) -> Markup {
    let max = rows.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1);
    let row_height = 20.0;
    let height = row_height * rows.len().max(1) as f64 + 4.0;
    html! {
        svg.chart viewBox=(format!("0 0 600 {height}")) role="img" xmlns="http://www.w3.org/2000/svg" {
            @for (index, (name, count)) in rows.iter().enumerate() {
                @let y = index as f64 * row_height + 2.0;
                text x="0" y=(format!("{:.1}", y + 14.0)) { (name) }
                rect.bar x="110" y=(format!("{y:.1}")) height="15"
                    width=(format!("{:.1}", *count as f64 / max as f64 * 430.0)) {
                    title { (name) ": " (count) }
                }
                text x=(format!("{:.1}", 115.0 + *count as f64 / max as f64 * 430.0)) y=(format!("{:.1}", y + 14.0)) { (count) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_line_breaks_where_a_bucket_has_no_value() {
        let values = vec![
            vec![Some(3), Some(1)],
            vec![Some(5), None],
            vec![None, None],
            vec![Some(4), Some(0)],
        ];
        assert_eq!(runs(&values, 0), [vec![(0, 3), (1, 5)], vec![(3, 4)]]);
        assert_eq!(runs(&values, 1), [vec![(0, 1)], vec![(3, 0)]]);
        let labels: Vec<String> = (0..4).map(|n| format!("2026-12-07 08:0{n}:00")).collect();
        let svg = levels("Queue", &["messages", "frozen"], &labels, &values).into_string();
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 5, "{svg}");
        assert!(
            svg.contains("<title>2026-12-07 08:01:00: 5 messages</title>"),
            "{svg}"
        );
        assert!(!svg.contains("style="));
    }

    #[test]
    fn bars_stack_bottom_up_and_scale_to_the_tallest() {
        let layers = stack(&["a", "b"], &[10, 30], 40, 100.0);
        assert_eq!(layers[0], ("a", HEIGHT - BOTTOM - 25.0, 25.0));
        assert_eq!(layers[1], ("b", HEIGHT - BOTTOM - 100.0, 75.0));
    }

    #[test]
    fn the_chart_has_a_tooltip_per_bucket_and_no_style_attribute() {
        let svg = stacked_bars(
            &["received", "delivered"],
            &[
                "2026-11-26 13:00:00".to_owned(),
                "2026-11-26 14:00:00".to_owned(),
            ],
            &[vec![3, 2], vec![0, 0]],
        )
        .into_string();
        assert!(
            svg.contains("<title>2026-11-26 13:00:00: 3 received, 2 delivered</title>"),
            "{svg}"
        );
        assert!(svg.contains("class=\"s-received\""));
        assert!(!svg.contains("style="));
        assert_eq!(svg.matches("<rect").count(), 2, "empty layers draw nothing");
    }
}
