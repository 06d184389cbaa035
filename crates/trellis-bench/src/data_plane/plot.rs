//! Small SVG charts written by hand (a line chart and grouped bars): enough to see the
//! shape of the figures in a browser or on GitHub without a plotting dependency.

use std::fmt::Write as _;

use super::Figures;
use super::report::{find, spread};
use super::topology::DataPlane;

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 50.0;
const TOP: f64 = 40.0;
/// One bar: its data plane, colour and value.
type Bar = (DataPlane, &'static str, f64);
/// Bars side by side under one label.
type Group = (&'static str, Vec<Bar>);

const PLANES: [(DataPlane, &str); 3] = [
    (DataPlane::None, "#888888"),
    (DataPlane::Envoy, "#d9534f"),
    (DataPlane::Trellis, "#2a7ab0"),
];

/// p99 latency against offered rate, one line per data plane (log-scaled latency).
pub fn sweep_latency(f: &Figures) -> String {
    let rates = &f.params.sweep_rps;
    let max_rate = rates.iter().copied().fold(1.0, f64::max);
    let mut series = Vec::new();
    for (plane, color) in PLANES {
        let points: Vec<(f64, f64)> = rates
            .iter()
            .filter_map(|r| {
                let case = find(f, &format!("sweep-{r}"), plane)?;
                Some((*r, spread(case, |x| x.latency_us.p99).median.max(1.0)))
            })
            .collect();
        if !points.is_empty() {
            series.push((plane, color, points));
        }
    }
    let max_lat = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(10.0, f64::max);
    let (lo, hi) = (1.0f64.log10(), max_lat.log10().ceil().max(1.0));
    let x = |r: f64| LEFT + (r / max_rate) * (W - LEFT - 20.0);
    let y = |l: f64| H - BOTTOM - (l.log10() - lo) / (hi - lo) * (H - BOTTOM - TOP);
    let mut svg = header("p99 latency (µs, log scale) against offered HTTP/1.1 req/s");
    for decade in 0..=(hi as i32) {
        let v = 10f64.powi(decade);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{y:.1}" font-size="11" text-anchor="end">{v}</text>"##,
            W - 20.0,
            LEFT - 5.0,
            y = y(v)
        );
    }
    for r in rates {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{r}</text>"#,
            x(*r),
            H - BOTTOM + 15.0
        );
    }
    for (i, (plane, color, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|(r, l)| format!("{:.1},{:.1}", x(*r), y(*l)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        legend(&mut svg, i, plane.name(), color);
    }
    svg + "</svg>\n"
}

/// CPU seconds per 1000 requests in the headline scenarios, bars per data plane.
pub fn cpu_per_1000(f: &Figures) -> String {
    let groups: Vec<Group> = [
        ("HTTP/1.1 4 conn", "http1-4conn"),
        ("HTTP/1.1 16 conn", "http1-16conn"),
        ("HTTP/2", "http2-4conn"),
        ("gRPC", "grpc-4conn"),
    ]
    .into_iter()
    .map(|(label, scenario)| {
        let bars = PLANES[1..]
            .iter()
            .filter_map(|(plane, color)| {
                let case = find(f, scenario, *plane)?;
                Some((*plane, *color, spread(case, |r| r.cpu_s_per_1000()).median))
            })
            .collect();
        (label, bars)
    })
    .collect();
    bars("CPU seconds per 1000 requests (both sidecars)", &groups)
}

/// Steady RSS under the headline load and idle with the large mesh.
pub fn memory(f: &Figures) -> String {
    let headline = PLANES[1..]
        .iter()
        .filter_map(|(plane, color)| {
            let case = find(f, "http1-16conn", *plane)?;
            Some((
                *plane,
                *color,
                spread(case, |r| r.max_rss_kib() as f64).median / 1024.0,
            ))
        })
        .collect();
    let idle = f
        .idle
        .iter()
        .filter_map(|i| {
            let color = PLANES.iter().find(|p| p.0 == i.plane)?.1;
            Some((i.plane, color, i.rss_kib as f64 / 1024.0))
        })
        .collect();
    bars(
        "RSS in MiB: under 1000 req/s, and idle with the large mesh",
        &[("1000 req/s", headline), ("idle, large mesh", idle)],
    )
}

fn bars(title: &str, groups: &[Group]) -> String {
    let max = groups
        .iter()
        .flat_map(|g| g.1.iter().map(|b| b.2))
        .fold(f64::MIN_POSITIVE, f64::max);
    let mut svg = header(title);
    let group_w = (W - LEFT - 20.0) / groups.len().max(1) as f64;
    let mut seen = Vec::new();
    for (gi, (label, bars)) in groups.iter().enumerate() {
        let x0 = LEFT + gi as f64 * group_w;
        let bar_w = group_w * 0.8 / bars.len().max(1) as f64;
        for (bi, (plane, color, value)) in bars.iter().enumerate() {
            let h = value / max * (H - BOTTOM - TOP);
            let x = x0 + group_w * 0.1 + bi as f64 * bar_w;
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{value:.3}</text>"#,
                H - BOTTOM - h,
                bar_w * 0.9,
                x + bar_w * 0.45,
                H - BOTTOM - h - 3.0
            );
            if !seen.contains(plane) {
                legend(&mut svg, seen.len(), plane.name(), color);
                seen.push(*plane);
            }
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{label}</text>"#,
            x0 + group_w / 2.0,
            H - BOTTOM + 15.0
        );
    }
    svg + "</svg>\n"
}

fn header(title: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" font-size="14" text-anchor="middle">{title}</text>
<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="#333"/>
<line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#333"/>
"##,
        W / 2.0,
        H - BOTTOM,
        W - 20.0,
        H - BOTTOM,
        H - BOTTOM
    )
}

fn legend(svg: &mut String, i: usize, name: &str, color: &str) {
    let y = TOP + 5.0 + i as f64 * 16.0;
    let _ = writeln!(
        svg,
        r#"<rect x="{}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{}" y="{:.1}" font-size="11">{name}</text>"#,
        W - 120.0,
        y,
        W - 105.0,
        y + 9.0
    );
}
