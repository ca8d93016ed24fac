//! How a chart's height follows the width it is given, in CSS pixels. A canvas is drawn at the
//! width its column gives it (a phone's 350 px or a laptop's 960), so text, lines and markers keep
//! their size and panels stack rather than shrink. Pure arithmetic, shared by the page (which sets
//! the canvas's height) and the charts (which place their panels and cells the same way).

use plotters::coord::Shift;
use plotters::prelude::*;

/// A chart's height for a width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// `width` x `height` scaled to the width given, never shorter than `min_height`.
    Aspect {
        width: u32,
        height: u32,
        min_height: u32,
    },
    /// `count` panels of proportions `width` x `height`, side by side where each gets at least
    /// `min_width`, else in fewer columns and more rows.
    Panels {
        count: u32,
        min_width: u32,
        width: u32,
        height: u32,
    },
    /// A grid of square images (`Grid`).
    Grid(Grid),
}

impl Fit {
    /// A square (a plane, a histogram beside it).
    pub const SQUARE: Fit = Fit::Aspect {
        width: 1,
        height: 1,
        min_height: 0,
    };

    /// A wide chart of `width` x `height` at a laptop's width, at least 300 px high on a phone.
    pub const fn wide(width: u32, height: u32) -> Fit {
        Fit::Aspect {
            width,
            height,
            min_height: 300,
        }
    }

    /// The height, in CSS pixels, for `width`.
    pub fn height(&self, width: u32) -> u32 {
        let scaled =
            |w: u32, (pw, ph): (u32, u32)| (w as u64 * ph as u64 / pw.max(1) as u64) as u32;
        match *self {
            Fit::Aspect {
                width: pw,
                height: ph,
                min_height,
            } => scaled(width, (pw, ph)).max(min_height),
            Fit::Panels {
                count,
                min_width,
                width: pw,
                height: ph,
            } => {
                let (columns, rows) = panel_grid(width, count, min_width);
                rows * scaled(width / columns, (pw, ph))
            }
            Fit::Grid(grid) => grid.layout(width).height,
        }
    }
}

/// Columns and rows of `count` panels at least `min_width` wide in `width`.
fn panel_grid(width: u32, count: u32, min_width: u32) -> (u32, u32) {
    let count = count.max(1);
    let columns = (width / min_width.max(1)).clamp(1, count);
    (columns, count.div_ceil(columns))
}

/// `area` cut into the panels of `fit` (`Fit::Panels`), in reading order; any other fit is one
/// panel.
pub fn panels<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fit: Fit,
) -> Vec<DrawingArea<DB, Shift>> {
    let Fit::Panels {
        count, min_width, ..
    } = fit
    else {
        return vec![area.clone()];
    };
    let (w, _) = area.dim_in_pixel();
    let (columns, rows) = panel_grid(w, count, min_width);
    let mut cells = area.split_evenly((rows as usize, columns as usize));
    cells.truncate(count as usize);
    cells
}

/// Rows of square images of `side` x `side` pixels, `columns` to a row, optionally with a header
/// over each column and a label over each row. A row too wide for the width given wraps onto
/// several lines of images (each image keeps its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub side: u32,
    pub columns: u32,
    pub rows: u32,
    pub headers: bool,
    pub labels: bool,
}

/// Where a grid's parts go for one width (all in CSS pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridLayout {
    /// Images on one line; a row takes `lines` lines.
    pub per_line: u32,
    pub lines: u32,
    pub cell_width: u32,
    /// Each image pixel is drawn `scale` x `scale`; an image is `image` pixels wide.
    pub scale: u32,
    pub image: u32,
    /// Lines of caption under an image.
    pub caption_lines: u32,
    pub height: u32,
}

/// The narrowest cell, the caption's line height, the header's and the label's heights.
const MIN_CELL: u32 = 72;
pub const CAPTION_LINE: u32 = 13;
pub const HEADER: u32 = 16;
pub const LABEL: u32 = 20;
/// Space around a line of images, and the grid's left and right margin.
const GAP: u32 = 6;
pub const MARGIN: u32 = 4;

impl Grid {
    pub fn layout(&self, width: u32) -> GridLayout {
        let columns = self.columns.max(1);
        let inner = width.saturating_sub(2 * MARGIN).max(1);
        let fit = (inner / MIN_CELL).clamp(1, columns);
        let lines = columns.div_ceil(fit);
        let per_line = columns.div_ceil(lines);
        let cell_width = inner / per_line;
        let scale = (cell_width.saturating_sub(GAP) / self.side.max(1)).clamp(1, 4);
        let image = scale * self.side;
        let caption_lines = if cell_width >= 110 { 1 } else { 2 };
        let height = self.rows * self.row_height(lines, image, caption_lines) + MARGIN;
        GridLayout {
            per_line,
            lines,
            cell_width,
            scale,
            image,
            caption_lines,
            height,
        }
    }

    /// One line of images: its header, the images, their captions and a gap.
    fn line_height(&self, image: u32, caption_lines: u32) -> u32 {
        let header = if self.headers { HEADER } else { 0 };
        header + image + 2 + caption_lines * CAPTION_LINE + GAP
    }

    fn row_height(&self, lines: u32, image: u32, caption_lines: u32) -> u32 {
        let label = if self.labels { LABEL } else { 0 };
        label + lines * self.line_height(image, caption_lines)
    }
}

impl GridLayout {
    /// The top-left corner of the image in `row` and `column`, and the top of its header (the
    /// row's label, if any, is at `label_top(row)`).
    pub fn cell(&self, grid: &Grid, row: u32, column: u32) -> ((i32, i32), i32) {
        let line = column / self.per_line;
        let at = column % self.per_line;
        let x =
            MARGIN + at * self.cell_width + (self.cell_width - self.image.min(self.cell_width)) / 2;
        let top = self.label_top(grid, row)
            + if grid.labels { LABEL } else { 0 }
            + line * grid.line_height(self.image, self.caption_lines);
        let image_top = top + if grid.headers { HEADER } else { 0 };
        ((x as i32, image_top as i32), top as i32)
    }

    /// The top of `row`, where its label goes.
    pub fn label_top(&self, grid: &Grid, row: u32) -> u32 {
        row * grid.row_height(self.lines, self.image, self.caption_lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGITS: Grid = Grid {
        side: 28,
        columns: 8,
        rows: 4,
        headers: false,
        labels: true,
    };

    #[test]
    fn aspect_scales_and_keeps_a_floor() {
        assert_eq!(Fit::SQUARE.height(351), 351);
        let wide = Fit::wide(960, 360);
        assert_eq!(wide.height(960), 360);
        assert_eq!(wide.height(351), 300);
    }

    #[test]
    fn panels_stack_when_narrow() {
        let two = Fit::Panels {
            count: 2,
            min_width: 300,
            width: 4,
            height: 3,
        };
        assert_eq!(panel_grid(960, 2, 300), (2, 1));
        assert_eq!(two.height(960), 360);
        assert_eq!(panel_grid(351, 2, 300), (1, 2));
        assert_eq!(two.height(351), 2 * 263);
    }

    #[test]
    fn a_grid_wraps_its_rows_on_a_phone_and_not_on_a_laptop() {
        let laptop = DIGITS.layout(960);
        assert_eq!((laptop.per_line, laptop.lines, laptop.scale), (8, 1, 4));
        assert_eq!(laptop.caption_lines, 1);
        let phone = DIGITS.layout(349);
        assert_eq!((phone.per_line, phone.lines, phone.scale), (4, 2, 2));
        assert_eq!(phone.caption_lines, 2);
        // Seven columns on a phone: four, then three.
        let seven = Grid {
            columns: 7,
            ..DIGITS
        }
        .layout(349);
        assert_eq!((seven.per_line, seven.lines), (4, 2));
        // Every image inside the width, and the last row's captions inside the height.
        for layout in [laptop, phone] {
            let width = if layout.per_line == 8 { 960 } else { 349 };
            for column in 0..8 {
                let ((x, y), _) = layout.cell(&DIGITS, 3, column);
                assert!(
                    x >= 0 && (x as u32 + layout.image) <= width,
                    "{layout:?} {column}"
                );
                let bottom = y as u32 + layout.image + 2 + layout.caption_lines * CAPTION_LINE;
                assert!(bottom <= layout.height, "{layout:?} {column}: {bottom}");
            }
        }
    }
}
