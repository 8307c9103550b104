//! A4 documents with real text (selectable, searchable) in the fonts shipped with Kekeli — the
//! box has no fonts to rely on. krilla writes the PDF (subsetting the fonts, so a bulletin stays
//! a few tens of kilobytes); this module only lays out what school documents need: lines of text,
//! wrapped paragraphs and ruled tables that continue on the next page with their header.
//!
//! Layout first, drawing last: every page is a list of [`Op`]s, rendered by [`Doc::finish`].

use std::sync::LazyLock;

use krilla::Document;
use krilla::color::luma;
use krilla::geom::{PathBuilder, Point};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use skrifa::MetadataProvider;
use skrifa::instance::{LocationRef, Size};

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/LiberationSans-Regular.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/LiberationSans-Bold.ttf");

/// Advance widths per character, as a fraction of the font size.
struct Metrics {
    widths: std::collections::HashMap<char, f32>,
    fallback: f32,
}

impl Metrics {
    fn load(data: &'static [u8]) -> Metrics {
        let mut widths = std::collections::HashMap::new();
        let mut fallback = 0.5;
        if let Ok(font) = skrifa::FontRef::new(data) {
            let charmap = font.charmap();
            let metrics = font.glyph_metrics(Size::new(1.0), LocationRef::default());
            for (code, gid) in charmap.mappings() {
                if let (Some(c), Some(w)) = (char::from_u32(code), metrics.advance_width(gid)) {
                    widths.insert(c, w);
                }
            }
            fallback = widths.get(&'n').copied().unwrap_or(0.5);
        }
        Metrics { widths, fallback }
    }

    fn width(&self, s: &str, size: f32) -> f32 {
        s.chars()
            .map(|c| self.widths.get(&c).copied().unwrap_or(self.fallback))
            .sum::<f32>()
            * size
    }
}

static METRICS: LazyLock<[Metrics; 2]> =
    LazyLock::new(|| [Metrics::load(REGULAR), Metrics::load(BOLD)]);

/// The width of `s` in points.
pub fn text_width(s: &str, size: f32, bold: bool) -> f32 {
    METRICS[bold as usize].width(s, size)
}

/// Break `s` into lines no wider than `width` (a word longer than the line is cut).
pub fn wrap(s: &str, width: f32, size: f32, bold: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for para in s.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if text_width(&candidate, size, bold) <= width || line.is_empty() {
                line = candidate;
            } else {
                lines.push(std::mem::take(&mut line));
                line = word.to_string();
            }
            // A single word too long for the line: cut it.
            while text_width(&line, size, bold) > width && line.chars().count() > 1 {
                let mut cut = line.clone();
                while text_width(&cut, size, bold) > width && cut.chars().count() > 1 {
                    cut.pop();
                }
                let rest: String = line.chars().skip(cut.chars().count()).collect();
                lines.push(cut);
                line = rest;
            }
        }
        lines.push(line);
    }
    lines
}

/// The size at which `s` wraps into `width` without cutting a word — `size`, or smaller down to
/// 70 % of it for a word too long ("Encouragements" in a narrow column) — and its lines. Below
/// that, the word is cut as [`wrap`] does.
pub fn fit(s: &str, width: f32, size: f32, bold: bool) -> (f32, Vec<String>) {
    let widest = s
        .split_whitespace()
        .map(|w| text_width(w, size, bold))
        .fold(0.0, f32::max);
    let size = if widest > width {
        // A hair under the exact ratio, so that rounding does not cut the last letter.
        (size * width / widest * 0.99).max(size * 0.7)
    } else {
        size
    };
    (size, wrap(s, width, size, bold))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

/// One drawing operation; y grows downwards from the top of the page, in points.
#[derive(Debug, Clone)]
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        text: String,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        width: f32,
    },
    Shade {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        gray: u8,
    },
    Picture {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        image: krilla::image::Image,
    },
}

/// An image to place on a page (a school's logo): PNG or JPEG.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    image: krilla::image::Image,
}

impl Picture {
    /// Reads a PNG or JPEG and checks it decodes (krilla decodes lazily, when the PDF is written;
    /// a broken file must be refused when it is given, not when bulletins are issued).
    pub fn new(bytes: Vec<u8>) -> Result<Picture, String> {
        let image = if bytes.starts_with(b"\x89PNG") {
            krilla::image::Image::from_png(bytes.into(), true)
        } else if bytes.starts_with(&[0xFF, 0xD8]) {
            krilla::image::Image::from_jpeg(bytes.into(), true)
        } else {
            return Err("l'image doit être au format PNG ou JPEG".into());
        }
        .map_err(|e| format!("image illisible ({e})"))?;
        let (w, h) = image.size();
        if w == 0 || h == 0 || w > 4000 || h > 4000 {
            return Err(format!(
                "image de {w} × {h} pixels : elle doit faire au plus 4000 × 4000"
            ));
        }
        let picture = Picture { image };
        let mut probe = Doc::new("");
        probe.picture(0.0, 0.0, 10.0, 10.0, &picture);
        probe
            .finish()
            .map_err(|e| format!("image illisible ({e})"))?;
        Ok(picture)
    }
}

pub const A4: (f32, f32) = (595.28, 841.89);

/// A table column: width in points and alignment of its cells.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub width: f32,
    pub align: Align,
}

/// A table row: its cells, in bold, on a gray background.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub cells: Vec<String>,
    pub bold: bool,
    pub shade: bool,
}

impl Row {
    pub fn new(cells: Vec<String>) -> Row {
        Row {
            cells,
            ..Row::default()
        }
    }
    pub fn bold(mut self) -> Row {
        self.bold = true;
        self
    }
    pub fn shaded(mut self) -> Row {
        self.shade = true;
        self
    }
}

/// A document being laid out: pages of operations and a cursor.
pub struct Doc {
    pages: Vec<Vec<Op>>,
    pub margin: f32,
    /// Distance from the top of the page to the next line's top.
    pub y: f32,
    title: String,
    /// Width and height of the page in points.
    size: (f32, f32),
}

impl Doc {
    pub fn new(title: &str) -> Doc {
        Doc {
            pages: vec![Vec::new()],
            margin: 34.0,
            y: 34.0,
            title: title.to_string(),
            size: A4,
        }
    }

    /// An A4 document turned sideways, for wide tables.
    pub fn landscape(title: &str) -> Doc {
        Doc {
            size: (A4.1, A4.0),
            margin: 24.0,
            y: 24.0,
            ..Doc::new(title)
        }
    }

    pub fn width(&self) -> f32 {
        self.size.0 - 2.0 * self.margin
    }

    fn bottom(&self) -> f32 {
        self.size.1 - self.margin
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    pub fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = self.margin;
    }

    /// Room left on the page for `h` points; else a new page.
    pub fn ensure(&mut self, h: f32) {
        if self.y + h > self.bottom() {
            self.new_page();
        }
    }

    /// Text at an absolute place (x from the left edge, baseline y from the top).
    pub fn text_at(&mut self, x: f32, y: f32, size: f32, bold: bool, text: &str) {
        if text.is_empty() {
            return;
        }
        self.ops().push(Op::Text {
            x,
            y,
            size,
            bold,
            text: text.to_string(),
        });
    }

    /// One line of text in the box [x, x + w], aligned, at baseline y.
    #[allow(clippy::too_many_arguments)]
    pub fn text_in(
        &mut self,
        x: f32,
        w: f32,
        y: f32,
        size: f32,
        bold: bool,
        align: Align,
        text: &str,
    ) {
        let tw = text_width(text, size, bold);
        let x = match align {
            Align::Left => x,
            Align::Center => x + (w - tw) / 2.0,
            Align::Right => x + w - tw,
        };
        self.text_at(x, y, size, bold, text);
    }

    /// A picture fitted in the box (x, y top-left, w × h), keeping its proportions, centred.
    pub fn picture(&mut self, x: f32, y: f32, w: f32, h: f32, p: &Picture) {
        let (pw, ph) = p.image.size();
        let scale = (w / pw as f32).min(h / ph as f32);
        let (dw, dh) = (pw as f32 * scale, ph as f32 * scale);
        self.ops().push(Op::Picture {
            x: x + (w - dw) / 2.0,
            y: y + (h - dh) / 2.0,
            w: dw,
            h: dh,
            image: p.image.clone(),
        });
    }

    /// A paragraph across the page width, wrapped, moving the cursor down.
    pub fn paragraph(&mut self, text: &str, size: f32, bold: bool, align: Align) {
        let leading = size * 1.25;
        let (x, w) = (self.margin, self.width());
        for line in wrap(text, w, size, bold) {
            self.ensure(leading);
            self.y += leading;
            let y = self.y - leading * 0.25;
            self.text_in(x, w, y, size, bold, align, &line);
        }
    }

    pub fn space(&mut self, h: f32) {
        self.y += h;
    }

    pub fn hline(&mut self, x1: f32, x2: f32, y: f32, width: f32) {
        self.ops().push(Op::Line {
            x1,
            y1: y,
            x2,
            y2: y,
            width,
        });
    }

    pub fn vline(&mut self, x: f32, y1: f32, y2: f32, width: f32) {
        self.ops().push(Op::Line {
            x1: x,
            y1,
            x2: x,
            y2,
            width,
        });
    }

    /// A ruled table at the cursor; `header` rows repeat at the top of each new page.
    pub fn table(&mut self, cols: &[Col], header: &[Row], rows: &[Row], size: f32) {
        let pad = 2.5;
        let leading = size * 1.2;
        let total: f32 = cols.iter().map(|c| c.width).sum();
        let x0 = self.margin + (self.width() - total).max(0.0) / 2.0;
        let layout = |row: &Row| -> (Vec<(f32, Vec<String>)>, f32) {
            let cells: Vec<(f32, Vec<String>)> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let cell = row.cells.get(i).map(String::as_str).unwrap_or("");
                    fit(cell, c.width - 2.0 * pad, size, row.bold)
                })
                .collect();
            let n = cells.iter().map(|(_, l)| l.len()).max().unwrap_or(1).max(1);
            (cells, n as f32 * leading + 2.0 * pad)
        };
        let draw = |doc: &mut Doc, row: &Row| {
            let (lines, h) = layout(row);
            let top = doc.y;
            if row.shade {
                doc.ops().push(Op::Shade {
                    x: x0,
                    y: top,
                    w: total,
                    h,
                    gray: 225,
                });
            }
            let mut x = x0;
            for (c, (cell_size, cell)) in cols.iter().zip(&lines) {
                for (k, line) in cell.iter().enumerate() {
                    let baseline = top + pad + (k as f32 + 1.0) * leading - leading * 0.22;
                    doc.text_in(
                        x + pad,
                        c.width - 2.0 * pad,
                        baseline,
                        *cell_size,
                        row.bold,
                        c.align,
                        line,
                    );
                }
                doc.vline(x, top, top + h, 0.5);
                x += c.width;
            }
            doc.vline(x, top, top + h, 0.5);
            doc.hline(x0, x0 + total, top, 0.5);
            doc.hline(x0, x0 + total, top + h, 0.5);
            doc.y = top + h;
        };
        let header_height: f32 = header.iter().map(|r| layout(r).1).sum();
        self.ensure(header_height + leading * 2.0);
        for r in header {
            draw(self, r);
        }
        for r in rows {
            let (_, h) = layout(r);
            if self.y + h > self.bottom() {
                self.new_page();
                for hr in header {
                    draw(self, hr);
                }
            }
            draw(self, r);
        }
    }

    /// Write the PDF.
    pub fn finish(self) -> Result<Vec<u8>, String> {
        let regular = Font::new(REGULAR.into(), 0).ok_or("police illisible")?;
        let bold = Font::new(BOLD.into(), 0).ok_or("police illisible")?;
        let mut document = Document::new();
        document.set_metadata(
            krilla::metadata::Metadata::new()
                .title(self.title.clone())
                .creator("Kekeli".into())
                .language("fr".into()),
        );
        let settings = PageSettings::from_wh(self.size.0, self.size.1).ok_or("format de page")?;
        for ops in &self.pages {
            let mut page = document.start_page_with(settings.clone());
            let mut surface = page.surface();
            for op in ops {
                match op {
                    Op::Shade { x, y, w, h, gray } => {
                        let mut pb = PathBuilder::new();
                        pb.move_to(*x, *y);
                        pb.line_to(x + w, *y);
                        pb.line_to(x + w, y + h);
                        pb.line_to(*x, y + h);
                        pb.close();
                        if let Some(path) = pb.finish() {
                            surface.set_stroke(None);
                            surface.set_fill(Some(Fill {
                                paint: luma::Color::new(*gray).into(),
                                ..Fill::default()
                            }));
                            surface.draw_path(&path);
                        }
                    }
                    Op::Picture { x, y, w, h, image } => {
                        if let Some(size) = krilla::geom::Size::from_wh(*w, *h) {
                            surface
                                .push_transform(&krilla::geom::Transform::from_translate(*x, *y));
                            surface.draw_image(image.clone(), size);
                            surface.pop();
                        }
                    }
                    Op::Line {
                        x1,
                        y1,
                        x2,
                        y2,
                        width,
                    } => {
                        let mut pb = PathBuilder::new();
                        pb.move_to(*x1, *y1);
                        pb.line_to(*x2, *y2);
                        if let Some(path) = pb.finish() {
                            surface.set_fill(None);
                            surface.set_stroke(Some(Stroke {
                                width: *width,
                                ..Stroke::default()
                            }));
                            surface.draw_path(&path);
                        }
                    }
                    Op::Text {
                        x,
                        y,
                        size,
                        bold: b,
                        text,
                    } => {
                        surface.set_stroke(None);
                        surface.set_fill(Some(Fill::default()));
                        surface.draw_text(
                            Point::from_xy(*x, *y),
                            if *b { bold.clone() } else { regular.clone() },
                            *size,
                            text,
                            false,
                            TextDirection::Auto,
                        );
                    }
                }
            }
            surface.finish();
            page.finish();
        }
        document.finish().map_err(|e| format!("{e:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_and_wraps() {
        let w = text_width("Mathématiques", 10.0, false);
        assert!(w > 50.0 && w < 80.0, "{w}");
        assert!(text_width("Mathématiques", 10.0, true) > w);
        let lines = wrap(
            "Très bon trimestre, continuez ainsi avec sérieux",
            80.0,
            10.0,
            false,
        );
        assert!(lines.len() >= 2);
        assert!(lines.iter().all(|l| text_width(l, 10.0, false) <= 80.0));
    }

    #[test]
    fn a_word_too_long_for_its_column_is_made_smaller_not_cut() {
        let word = "Encouragements";
        let width = text_width(word, 6.0, false) * 0.85;
        let (size, lines) = fit(word, width, 6.0, false);
        assert_eq!(lines, vec![word.to_string()], "one line, whole");
        assert!((4.2..6.0).contains(&size), "{size}");
        // Short words keep the size; a word far too long is cut at 70 %.
        assert_eq!(fit("Bien", width, 6.0, false), (6.0, vec!["Bien".into()]));
        let (size, lines) = fit(word, width / 3.0, 6.0, false);
        assert!((size - 4.2).abs() < 1e-4, "{size}");
        assert!(lines.len() > 1);
    }

    #[test]
    fn a_long_table_continues_on_the_next_page() {
        let mut d = Doc::new("essai");
        let cols = [
            Col {
                width: 300.0,
                align: Align::Left,
            },
            Col {
                width: 100.0,
                align: Align::Right,
            },
        ];
        let header = [Row::new(vec!["Élève".into(), "Moyenne".into()])
            .bold()
            .shaded()];
        let rows: Vec<Row> = (0..80)
            .map(|i| Row::new(vec![format!("Élève {i}"), format!("{i},00")]))
            .collect();
        d.table(&cols, &header, &rows, 9.0);
        assert!(d.pages.len() >= 2);
        let pdf = d.finish().expect("pdf");
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf.len() < 120_000, "fonts are subset: {} bytes", pdf.len());
    }
}
