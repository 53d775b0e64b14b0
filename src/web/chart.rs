//! Charts drawn on the server as SVG: stacked bars of the mail flow, and
//! plain bars of a distribution. Pure; colours come from the stylesheet
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
