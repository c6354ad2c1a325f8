//! Inline SVG charts: no script, no external resource, colours from the stylesheet by class
//! (`s0`…`s5`), values in `<title>` tooltips. Every label is escaped; the geometry is pure
//! arithmetic on the values and is tested for staying inside the view box.

use crate::html::escape;
use crate::timefmt::axis_label;

/// View box width.
pub const WIDTH: f64 = 720.0;
/// View box height.
pub const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 24.0;
/// Series colours available in the stylesheet.
pub const PALETTE: usize = 6;
/// Up to this many buckets, every non-zero value gets a marker with a tooltip.
pub const MARKER_LIMIT: usize = 48;

/// One line of a line chart.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Legend text.
    pub label: &'a str,
    /// One value per bucket.
    pub values: &'a [f64],
}

/// The smallest "nice" number (1, 2, 2.5 or 5 times a power of ten) at or above `max`; 1 when
/// `max` is not positive.
pub fn nice_max(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// A short number for axes: `950`, `1.2k`, `3.4M`, `0.5`.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6).replace(".0M", "M")
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3).replace(".0k", "k")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.2}");
        text.trim_end_matches('0').to_string()
    }
}

fn x_of(i: usize, n: usize) -> f64 {
    let width = WIDTH - LEFT - RIGHT;
    if n <= 1 {
        LEFT + width / 2.0
    } else {
        LEFT + width * i as f64 / (n - 1) as f64
    }
}

fn y_of(v: f64, max: f64) -> f64 {
    let height = HEIGHT - TOP - BOTTOM;
    let v = if v.is_finite() {
        v.clamp(0.0, max)
    } else {
        0.0
    };
    TOP + height - height * v / max
}

fn frame(aria: &str, max: f64, unit: &str) -> String {
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        escape(aria)
    );
    for step in 0..=2 {
        let v = max * f64::from(step) / 2.0;
        let y = y_of(v, max);
        svg.push_str(&format!(
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            escape(&short_number(v))
        ));
    }
    if !unit.is_empty() {
        svg.push_str(&format!(
            "<text class=\"axis unit\" x=\"{LEFT}\" y=\"12\">{}</text>",
            escape(unit)
        ));
    }
    svg
}

fn x_ticks(svg: &mut String, n: usize, label: impl Fn(usize) -> String) {
    if n == 0 {
        return;
    }
    let every = n.div_ceil(6).max(1);
    for i in (0..n).step_by(every) {
        svg.push_str(&format!(
            "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x_of(i, n),
            HEIGHT - 6.0,
            escape(&label(i))
        ));
    }
}

/// A line chart over time buckets starting at `starts` (ms; hourly labels when `hourly`), one
/// line per series. Buckets without data must hold 0.
pub fn line_chart(
    aria: &str,
    starts: &[i64],
    hourly: bool,
    series: &[Series],
    unit: &str,
) -> String {
    let n = starts.len();
    let max = nice_max(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let mut svg = frame(aria, max, unit);
    x_ticks(&mut svg, n, |i| axis_label(starts[i], hourly));
    for (k, s) in series.iter().enumerate() {
        let class = format!("s{}", k % PALETTE);
        let points: Vec<String> = (0..n)
            .map(|i| {
                let v = s.values.get(i).copied().unwrap_or(0.0);
                format!("{:.1},{:.1}", x_of(i, n), y_of(v, max))
            })
            .collect();
        svg.push_str(&format!(
            "<polyline class=\"line {class}\" points=\"{}\"><title>{}</title></polyline>",
            points.join(" "),
            escape(s.label)
        ));
        if n <= MARKER_LIMIT {
            for (i, start) in starts.iter().enumerate() {
                let v = s.values.get(i).copied().unwrap_or(0.0);
                if v > 0.0 && v.is_finite() {
                    svg.push_str(&format!(
                        "<circle class=\"point {class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{} {}: {}</title></circle>",
                        x_of(i, n),
                        y_of(v, max),
                        escape(s.label),
                        escape(&axis_label(*start, hourly)),
                        escape(&short_number(v))
                    ));
                }
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A bar chart: one bar per label.
pub fn bar_chart(aria: &str, labels: &[String], values: &[f64], unit: &str) -> String {
    let n = labels.len();
    let max = nice_max(
        values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let mut svg = frame(aria, max, unit);
    let width = WIDTH - LEFT - RIGHT;
    let slot = if n == 0 { width } else { width / n as f64 };
    let bar = (slot * 0.7).clamp(1.0, 48.0);
    for (i, label) in labels.iter().enumerate() {
        let v = values.get(i).copied().unwrap_or(0.0);
        let y = y_of(v, max);
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        svg.push_str(&format!(
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{:.1}\"><title>{}: {}</title></rect>",
            HEIGHT - BOTTOM - y,
            escape(label),
            escape(&short_number(v))
        ));
    }
    let every = n.div_ceil(8).max(1);
    for i in (0..n).step_by(every) {
        svg.push_str(&format!(
            "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            LEFT + slot * (i as f64 + 0.5),
            HEIGHT - 6.0,
            escape(&labels[i])
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(svg: &str, attr: &str) -> Vec<f64> {
        svg.split(&format!(" {attr}=\""))
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .filter_map(|v| v.parse().ok())
            .collect()
    }

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(-3.0), 1.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
        assert_eq!(nice_max(1.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(21.0), 25.0);
        assert_eq!(nice_max(101.0), 200.0);
        assert_eq!(short_number(1500.0), "1.5k");
        assert_eq!(short_number(2000.0), "2k");
        assert_eq!(short_number(2_500_000.0), "2.5M");
        assert_eq!(short_number(12.0), "12");
        assert_eq!(short_number(0.5), "0.5");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(12.5), "12.5");
    }

    #[test]
    fn lines_stay_inside_the_view_box() {
        let starts: Vec<i64> = (0..24).map(|h| h * 3_600_000).collect();
        let a: Vec<f64> = (0..24).map(|h| f64::from(h % 5)).collect();
        let b = vec![f64::NAN, -4.0, f64::INFINITY];
        let svg = line_chart(
            "events",
            &starts,
            true,
            &[
                Series {
                    label: "update",
                    values: &a,
                },
                Series {
                    label: "<b>",
                    values: &b,
                },
            ],
            "per hour",
        );
        let points: Vec<(f64, f64)> = svg
            .split("points=\"")
            .skip(1)
            .flat_map(|rest| {
                rest.split('"')
                    .next()
                    .unwrap()
                    .split(' ')
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse::<f64>().unwrap(), y.parse::<f64>().unwrap())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(points.len(), 48);
        for (x, y) in points {
            assert!(
                (0.0..=WIDTH).contains(&x) && (0.0..=HEIGHT).contains(&y),
                "{x},{y}"
            );
        }
        // One marker per non-zero value, tooltips escaped.
        assert_eq!(
            svg.matches("<circle").count(),
            a.iter().filter(|v| **v > 0.0).count()
        );
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        for v in numbers(&svg, "cy") {
            assert!((TOP..=HEIGHT - BOTTOM).contains(&v));
        }
    }

    #[test]
    fn many_buckets_get_no_markers_and_empty_charts_render() {
        let starts: Vec<i64> = (0..720).map(|h| h * 3_600_000).collect();
        let values = vec![1.0; 720];
        let svg = line_chart(
            "x",
            &starts,
            false,
            &[Series {
                label: "a",
                values: &values,
            }],
            "",
        );
        assert_eq!(svg.matches("<circle").count(), 0);
        let empty = line_chart("x", &[], true, &[], "");
        assert!(empty.starts_with("<svg") && empty.ends_with("</svg>"));
        let bars = bar_chart(
            "users",
            &["11-24".into(), "11-25".into()],
            &[3.0, 0.0],
            "users",
        );
        assert_eq!(bars.matches("<rect").count(), 2);
        for h in numbers(&bars, "height") {
            assert!((0.0..=HEIGHT).contains(&h));
        }
        assert!(bar_chart("none", &[], &[], "").ends_with("</svg>"));
    }
}
