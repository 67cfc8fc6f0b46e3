//! A small line plot drawn straight into the frame's buffer: a y scale
//! (linear, or logarithmic when a limit would be squashed against zero),
//! Braille lines (2×4 dots a cell) and one-glyph-a-cell marks, so each
//! series keeps its own shape without colour.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

/// How values map to heights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// From 0 to `hi`.
    Linear { hi: f64 },
    /// From `lo` to `hi` by powers of ten; values at or below `lo` sit on the bottom row.
    Log { lo: f64, hi: f64 },
}

impl Scale {
    /// Where `value` sits, from 0 (bottom) to 1 (top), clamped.
    pub fn fraction(self, value: f64) -> f64 {
        let f = match self {
            Scale::Linear { hi } if hi > 0.0 => value / hi,
            Scale::Linear { .. } => 0.0,
            Scale::Log { lo, hi } if value > lo && hi > lo => {
                (value / lo).log10() / (hi / lo).log10()
            }
            Scale::Log { .. } => 0.0,
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    pub fn top(self) -> f64 {
        match self {
            Scale::Linear { hi } | Scale::Log { hi, .. } => hi,
        }
    }

    /// The value the bottom row stands for.
    pub fn bottom(self) -> f64 {
        match self {
            Scale::Linear { .. } => 0.0,
            Scale::Log { lo, .. } => lo,
        }
    }
}

/// Rounds up to 1, 2 or 5 times a power of ten, so axis labels read cleanly.
pub fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    let scaled = value / magnitude;
    let step = if scaled <= 1.0 {
        1.0
    } else if scaled <= 2.0 {
        2.0
    } else if scaled <= 5.0 {
        5.0
    } else {
        10.0
    };
    step * magnitude
}

/// The power of ten at or below `value`.
pub fn decade_floor(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    10f64.powf(value.log10().floor())
}

/// The y scale for these values on a plot `rows` high: linear from 0,
/// unless the lowest limit would sit within a row and a half of the bottom
/// (drawn over by the data there); then logarithmic from a decade under it.
pub fn choose_scale(values: &[f64], limits: &[f64], floor: f64, rows: u16) -> Scale {
    let highest = values
        .iter()
        .chain(limits)
        .copied()
        .filter(|v| v.is_finite())
        .fold(floor, f64::max);
    let hi = nice_ceiling(highest * 1.15);
    let lowest_limit = limits
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let clear = |fraction: f64| fraction * f64::from(rows) >= 1.5;
    if !lowest_limit.is_finite() || clear(lowest_limit / hi) {
        return Scale::Linear { hi };
    }
    // Lower the bottom a decade at a time (four at most) until the limit
    // stands clear of the bottom rows.
    let mut lo = decade_floor(lowest_limit / 4.0);
    for _ in 0..4 {
        if clear(Scale::Log { lo, hi }.fraction(lowest_limit)) {
            break;
        }
        lo /= 10.0;
    }
    Scale::Log { lo, hi }
}

/// A plot area and the ranges it shows.
#[derive(Debug, Clone, Copy)]
pub struct Plot {
    pub area: Rect,
    /// The x range shown, left to right.
    pub x: (f64, f64),
    pub y: Scale,
}

impl Plot {
    fn x_fraction(&self, x: f64) -> f64 {
        let (from, to) = self.x;
        if to > from {
            ((x - from) / (to - from)).clamp(0.0, 1.0)
        } else {
            1.0
        }
    }

    /// The row (from the top of the area) a value falls in.
    pub fn row_of(&self, value: f64) -> u16 {
        let h = f64::from(self.area.height.max(1));
        let from_bottom = (self.y.fraction(value) * h).floor().min(h - 1.0);
        self.area.height.saturating_sub(1) - from_bottom as u16
    }

    /// One glyph per column along the series, interpolated between samples
    /// (no glyph outside the samples' span); `points` sorted by x.
    pub fn marks(&self, buf: &mut Buffer, points: &[(f64, f64)], glyph: &str, style: Style) {
        let w = self.area.width;
        for col in 0..w {
            let Some(value) = self.value_at_column(points, col) else {
                continue;
            };
            let row = self.row_of(value);
            if let Some(cell) = buf.cell_mut((self.area.x + col, self.area.y + row)) {
                cell.set_symbol(glyph).set_style(style);
            }
        }
    }

    /// The series' value at a column's middle, if the column is within the
    /// samples' span (half a column of slack at each end).
    fn value_at_column(&self, points: &[(f64, f64)], col: u16) -> Option<f64> {
        let (from, to) = self.x;
        let w = f64::from(self.area.width.max(1));
        let span = (to - from) / w;
        let x = from + (f64::from(col) + 0.5) * span;
        let first = points.first()?;
        let last = points.last()?;
        if x < first.0 - span / 2.0 || x > last.0 + span / 2.0 {
            return None;
        }
        let after = points.iter().position(|p| p.0 >= x);
        Some(match after {
            None => last.1,
            Some(0) => first.1,
            Some(i) => {
                let (x0, y0) = points[i - 1];
                let (x1, y1) = points[i];
                if x1 > x0 {
                    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
                } else {
                    y1
                }
            }
        })
    }

    /// A Braille line through the points (sorted by x), over whatever is there.
    pub fn braille(&self, buf: &mut Buffer, points: &[(f64, f64)], style: Style) {
        let (w, h) = (usize::from(self.area.width), usize::from(self.area.height));
        if w == 0 || h == 0 || points.is_empty() {
            return;
        }
        let (gw, gh) = (w * 2, h * 4);
        let mut dots = vec![0u8; w * h];
        let grid = |(x, y): (f64, f64)| {
            let gx = (self.x_fraction(x) * (gw - 1) as f64).round() as usize;
            let gy = (self.y.fraction(y) * (gh - 1) as f64).round() as usize;
            (gx.min(gw - 1), gy.min(gh - 1))
        };
        let mut set = |gx: usize, gy: usize| {
            let (col, sub_x) = (gx / 2, gx % 2);
            let row = h - 1 - gy / 4;
            let sub_y = 3 - gy % 4;
            const BITS: [[u8; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];
            dots[row * w + col] |= BITS[sub_x][sub_y];
        };
        let mut previous = grid(points[0]);
        set(previous.0, previous.1);
        for point in &points[1..] {
            let (x1, y1) = grid(*point);
            let (x0, y0) = previous;
            let steps = x1.saturating_sub(x0).max(1);
            let mut last_y = y0;
            for step in 0..=steps {
                let gx = (x0 + step).min(x1.max(x0));
                let t = step as f64 / steps as f64;
                let gy = (y0 as f64 + (y1 as f64 - y0 as f64) * t).round() as usize;
                // Fill the vertical gap so steep segments stay joined.
                let (a, b) = (last_y.min(gy), last_y.max(gy));
                for y in a..=b {
                    set(gx, y);
                }
                last_y = gy;
            }
            previous = (x1, y1);
        }
        for (i, bits) in dots.iter().enumerate() {
            if *bits == 0 {
                continue;
            }
            let (col, row) = (i % w, i / w);
            let glyph = char::from_u32(0x2800 + u32::from(*bits)).unwrap_or('•');
            let position = (self.area.x + col as u16, self.area.y + row as u16);
            if let Some(cell) = buf.cell_mut(position) {
                cell.set_char(glyph).set_style(style);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_round_up_to_1_2_5() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(600.0), 1000.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn the_scale_includes_the_data_and_the_limit() {
        // 7 ms against a 21 ms limit: linear, room for both.
        let scale = choose_scale(&[7.0, 7.5], &[21.0], 1.0, 5);
        assert_eq!(scale, Scale::Linear { hi: 50.0 });
        // 800 ms against 21 ms: a linear axis would put the limit on the
        // zero row, so the axis is logarithmic and the limit stands clear.
        let scale = choose_scale(&[7.0, 800.0], &[21.0], 1.0, 5);
        assert_eq!(
            scale,
            Scale::Log {
                lo: 1.0,
                hi: 1000.0
            }
        );
        assert!(scale.fraction(21.0) > 0.4);
        assert!(scale.fraction(800.0) > scale.fraction(21.0) + 0.4);
        // 50% errors against a 0.5% limit on four rows: the bottom goes
        // down until the limit has a row and a half under it.
        let scale = choose_scale(&[0.0, 0.46], &[0.005], 0.001, 4);
        assert!(matches!(scale, Scale::Log { .. }), "{scale:?}");
        assert!(scale.fraction(0.005) * 4.0 >= 1.5, "{scale:?}");
        // A tall plot gives the same limit rows of its own: linear.
        assert_eq!(
            choose_scale(&[7.0, 800.0], &[21.0], 1.0, 80),
            Scale::Linear { hi: 1000.0 }
        );
        // No data, no limit: the floor.
        assert_eq!(
            choose_scale(&[], &[], 0.001, 5),
            Scale::Linear { hi: 0.002 }
        );
    }

    #[test]
    fn rows_count_from_the_top() {
        let plot = Plot {
            area: Rect::new(0, 0, 10, 5),
            x: (-60.0, 0.0),
            y: Scale::Linear { hi: 10.0 },
        };
        assert_eq!(plot.row_of(0.0), 4);
        assert_eq!(plot.row_of(10.0), 0);
        assert_eq!(plot.row_of(5.0), 2);
    }

    #[test]
    fn a_braille_line_joins_its_points_and_marks_fill_columns() {
        let area = Rect::new(0, 0, 4, 2);
        let plot = Plot {
            area,
            x: (0.0, 3.0),
            y: Scale::Linear { hi: 1.0 },
        };
        let mut buf = Buffer::empty(area);
        plot.braille(&mut buf, &[(0.0, 0.0), (3.0, 1.0)], Style::new());
        let drawn = buf.content().iter().filter(|c| c.symbol() != " ").count();
        assert!(drawn >= 4, "{buf:?}");
        let mut buf = Buffer::empty(area);
        plot.marks(&mut buf, &[(0.0, 0.5), (3.0, 0.5)], "•", Style::new());
        assert_eq!(
            buf.content().iter().filter(|c| c.symbol() == "•").count(),
            4
        );
    }
}
