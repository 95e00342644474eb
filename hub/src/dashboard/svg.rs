//! Inline SVG charts drawn on the server: horizontal bars and trend lines.
//! No script runs in the browser; labels are escaped like the rest of the
//! page. A count hidden by the small-cell rule gets no bar, only its label,
//! so the chart never reveals what the table masks.

use std::fmt::Write as _;

use clps_model::stats;

use super::pages::escape;

const WIDTH: f64 = 760.0;
const COLOURS: [&str; 4] = ["#124e66", "#d9822b", "#5b8e2d", "#8e3b8e"];

/// One bar: its label, its length (`None` when masked) and the text shown.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: Option<u64>,
    pub shown: String,
}

impl Bar {
    pub fn exact(label: String, value: u64) -> Bar {
        Bar {
            label,
            value: Some(value),
            shown: value.to_string(),
        }
    }

    /// A per-centre count under the small-cell rule.
    pub fn masked(label: String, value: u64, small_cells: Option<u64>) -> Bar {
        let shown = stats::shown(value, small_cells);
        Bar {
            label,
            value: (shown == value.to_string()).then_some(value),
            shown,
        }
    }
}

/// Horizontal bars, one per item, scaled to the largest.
pub fn bars(items: &[Bar]) -> String {
    let row = 22.0;
    let label_width = 260.0;
    let plot = WIDTH - label_width - 70.0;
    let height = row * items.len() as f64 + 10.0;
    let max = items
        .iter()
        .filter_map(|b| b.value)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\">"
    );
    for (i, bar) in items.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let length = bar.value.map_or(0.0, |v| plot * v as f64 / max);
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
<rect x=\"{label_width}\" y=\"{}\" width=\"{length:.1}\" height=\"{}\" fill=\"{}\"/>\
<text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{}</text>",
            label_width - 6.0,
            y + 14.0,
            escape(&truncate(&bar.label, 40)),
            y + 2.0,
            row - 6.0,
            COLOURS[0],
            label_width + length + 5.0,
            y + 14.0,
            escape(&bar.shown)
        );
    }
    out.push_str("</svg>");
    out
}

/// A named series of counts, one per x label.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<u64>,
}

/// Lines over shared x labels, with a y axis from zero and a legend.
pub fn lines(x_labels: &[String], series: &[Series]) -> String {
    let (left, right, top, bottom) = (60.0, 20.0, 20.0, 50.0);
    let height = 280.0;
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = if x_labels.len() > 1 {
        plot_w / (x_labels.len() - 1) as f64
    } else {
        0.0
    };
    let x = |i: usize| {
        if x_labels.len() > 1 {
            left + step * i as f64
        } else {
            left + plot_w / 2.0
        }
    };
    let y = |v: u64| top + plot_h - plot_h * v as f64 / max;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\">"
    );
    for k in 0..=4u64 {
        let v = (max * k as f64 / 4.0).round() as u64;
        let yy = y(v);
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#d5dbe1\"/>\
<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v}</text>",
            left + plot_w,
            left - 6.0,
            yy + 4.0
        );
    }
    for (i, label) in x_labels.iter().enumerate() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            x(i),
            top + plot_h + 16.0,
            escape(label)
        );
    }
    for (s, colour) in series.iter().zip(COLOURS.iter().cycle()) {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for (i, v) in s.values.iter().enumerate() {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}</title></circle>",
                x(i),
                y(*v),
                v
            );
        }
    }
    for (i, (s, colour)) in series.iter().zip(COLOURS.iter().cycle()).enumerate() {
        let lx = left + 110.0 * i as f64;
        let ly = height - 12.0;
        let _ = write!(
            out,
            "<rect x=\"{lx}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{colour}\"/>\
<text x=\"{}\" y=\"{ly}\" font-size=\"12\">{}</text>",
            ly - 5.0,
            lx + 18.0,
            escape(&s.name)
        );
    }
    out.push_str("</svg>");
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_bars_have_no_length() {
        let svg = bars(&[
            Bar::masked("A <b>".into(), 3, Some(5)),
            Bar::masked("B".into(), 50, Some(5)),
        ]);
        assert!(svg.contains("A &lt;b&gt;"));
        assert!(svg.contains("width=\"0.0\""), "{svg}");
        assert!(svg.contains("&lt; 5"));
        let chart = lines(
            &["2020".into(), "2021".into()],
            &[Series {
                name: "réseau".into(),
                values: vec![10, 20],
            }],
        );
        assert!(chart.contains("<polyline"));
    }
}
