//! SVG plots of the results, drawn with plotters: lines (a figure against a size, medians
//! with min–max whiskers) and grouped bars (one group per case, one bar per DUT). One colour
//! per DUT everywhere (Okabe–Ito, readable by colour-blind people).

use std::path::Path;

use plotters::prelude::*;

use super::BenchError;

/// (x, median, min, max).
pub type Point = (f64, f64, f64, f64);

/// One DUT's values.
#[derive(Debug, Clone)]
pub struct Series {
    /// The label (a DUT's name, maybe with a variant).
    pub label: String,
    /// (x, median, min, max).
    pub points: Vec<Point>,
}

/// The colour of a DUT, by the start of its label.
pub fn colour(label: &str) -> RGBColor {
    if label.starts_with("lbspeaker (") {
        RGBColor(86, 180, 233)
    } else if label.starts_with("lbspeaker") {
        RGBColor(0, 114, 178)
    } else if label.starts_with("gobgpd") {
        RGBColor(213, 94, 0)
    } else if label.starts_with("bird") {
        RGBColor(0, 158, 115)
    } else if label.starts_with("frr") {
        RGBColor(204, 121, 167)
    } else {
        RGBColor(100, 100, 100)
    }
}

fn err(e: impl std::fmt::Debug) -> BenchError {
    BenchError::Failed(format!("plot: {e:?}"))
}

fn bounds(series: &[Series], log: bool) -> (f64, f64) {
    let vals = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.2, p.3]))
        .filter(|v| v.is_finite() && (!log || *v > 0.0));
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        return (0.001, 1.0);
    }
    if log {
        (lo / 2.0, hi * 2.0)
    } else {
        (0.0, hi * 1.15)
    }
}

/// A log-log line chart: x the size, y the figure.
pub fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), BenchError> {
    let root = SVGBackend::new(path, (820, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (x0, x1) = if x0.is_finite() {
        (x0 / 1.5, x1 * 1.5)
    } else {
        (1.0, 10.0)
    };
    let (y0, y1) = bounds(series, true);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(err)?;
    for s in series {
        let c = colour(&s.label);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.1 > 0.0)
            .map(|p| (p.0, p.1))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
        chart
            .draw_series(
                s.points
                    .iter()
                    .filter(|p| p.2 > 0.0 && p.3 > 0.0)
                    .map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], c.stroke_width(1))),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Grouped bars: one group per entry of `groups`, one bar per series (its `points[i]` is
/// group `i`: x ignored, median, min, max), with min–max whiskers. `reference` draws a
/// dashed horizontal line (a goal or a timer).
pub fn bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[Series],
    reference: Option<(f64, &str)>,
) -> Result<(), BenchError> {
    let root = SVGBackend::new(path, (820, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (_, mut y1) = bounds(series, false);
    if let Some((r, _)) = reference {
        y1 = y1.max(r * 1.15);
    }
    let n = groups.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, 0f64..y1.max(1e-9))
        .map_err(err)?;
    let names = groups.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&move |v| {
            let i = v.floor();
            if (v - i - 0.5).abs() < 1e-6 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    let k = series.len().max(1) as f64;
    let width = 0.8 / k;
    for (j, s) in series.iter().enumerate() {
        let c = colour(&s.label);
        let left = |i: usize| i as f64 + 0.1 + j as f64 * width;
        let present: Vec<(usize, &Point)> = s
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.1.is_finite())
            .collect();
        chart
            .draw_series(present.iter().map(|(i, p)| {
                Rectangle::new([(left(*i), 0.0), (left(*i) + width * 0.9, p.1)], c.filled())
            }))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        chart
            .draw_series(
                present
                    .iter()
                    .filter(|(_, p)| p.2.is_finite())
                    .map(|(i, p)| {
                        let x = left(*i) + width * 0.45;
                        PathElement::new(vec![(x, p.2), (x, p.3)], BLACK.stroke_width(1))
                    }),
            )
            .map_err(err)?;
    }
    if let Some((r, label)) = reference {
        let style = BLACK.mix(0.6).stroke_width(1);
        let dashes: Vec<PathElement<(f64, f64)>> = (0..(n * 20.0) as usize)
            .step_by(2)
            .map(|i| {
                let a = i as f64 / 20.0;
                PathElement::new(vec![(a, r), (a + 0.05, r)], style)
            })
            .collect();
        chart
            .draw_series(dashes)
            .map_err(err)?
            .label(label.to_owned())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(crate::unique_prefix(tag));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn series(label: &str, points: Vec<Point>) -> Series {
        Series {
            label: label.to_owned(),
            points,
        }
    }

    #[test]
    fn a_line_chart_has_one_marker_per_point_a_legend_and_its_titles() {
        let d = scratch("plot");
        let f = d.join("lines.svg");
        let s = [
            series(
                "lbspeaker",
                vec![
                    (1.0, 0.26, 0.25, 0.27),
                    (10.0, 0.27, 0.26, 0.3),
                    (100.0, 0.3, 0.28, 0.31),
                ],
            ),
            series(
                "gobgpd",
                vec![(1.0, 0.07, 0.06, 0.08), (10.0, 0.08, 0.07, 0.09)],
            ),
        ];
        lines(&f, "Announce", "service /32s", "seconds", &s).unwrap();
        let svg = std::fs::read_to_string(&f).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        for text in ["Announce", "service /32s", "seconds", "lbspeaker", "gobgpd"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert_eq!(svg.matches("<circle").count(), 5, "one marker per point");
        // lbspeaker's colour is on its line and markers.
        assert!(svg.contains("#0072B2"), "no lbspeaker colour");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_bar_chart_draws_present_values_only_and_the_reference_line() {
        let d = scratch("plot");
        let f = d.join("bars.svg");
        let groups = vec!["link cut".to_owned(), "freeze".to_owned()];
        let s = [
            series("bird", vec![(0.0, 7.0, 6.5, 7.5), (1.0, 8.0, 7.0, 9.0)]),
            series(
                "frr",
                vec![(0.0, 8.5, 8.0, 9.0), (1.0, f64::NAN, f64::NAN, f64::NAN)],
            ),
        ];
        bars(
            &f,
            "Failure",
            "seconds",
            &groups,
            &s,
            Some((9.0, "hold time")),
        )
        .unwrap();
        let svg = std::fs::read_to_string(&f).unwrap();
        for text in ["Failure", "link cut", "freeze", "hold time", "bird", "frr"] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Three bars with values, in the series' colours (each also once in the legend).
        assert_eq!(svg.matches("#009E73").count() - 1, 2, "bird's bars");
        assert_eq!(svg.matches("#CC79A7").count() - 1, 1, "frr's one bar");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn colours_follow_the_dut_and_its_variant() {
        assert_eq!(colour("lbspeaker"), RGBColor(0, 114, 178));
        assert_eq!(colour("lbspeaker (LB-IPAM)"), RGBColor(86, 180, 233));
        assert_eq!(colour("gobgpd"), RGBColor(213, 94, 0));
        assert_eq!(colour("something else"), RGBColor(100, 100, 100));
    }
}
