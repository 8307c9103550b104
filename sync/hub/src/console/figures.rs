//! What the console reads from a school's replica: its classes and enrolments, and per ISO
//! week the attendance (expected and missed pupil-hours), marks entered and lesson-log entries,
//! with bulletins issued. Computed from the replica rows the school sent (read-only), and drawn
//! as SVG or written as CSV. It never writes anything, and never shows a person's name: the
//! ministry sees counts and rates, not pupils.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::db::Conn;
use crate::store::{self, StoreError};

/// An ISO week: (ISO year, week number).
pub type Week = (i32, u8);

/// One week of one school.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeekFigures {
    /// Pupil-minutes of the lessons whose roll was taken.
    pub expected_min: i64,
    /// Minutes of absence and of lateness recorded.
    pub absent_min: i64,
    pub late_min: i64,
    pub roll_calls: i64,
    /// Marks entered (or last changed) that week, of any status.
    pub marks: i64,
    /// Lesson-log entries with something written, by the lesson's date.
    pub lesson_entries: i64,
    /// Use of the school's ENT (its `usage_daily` whole-ENT rows): people signed in, counted
    /// once a day and summed over the week's days (person-days), and the requests they made.
    pub usage_people: i64,
    pub usage_visits: i64,
}

impl WeekFigures {
    /// Attendance rate in per mille, when some roll was taken.
    pub fn attendance_permille(&self) -> Option<i64> {
        (self.expected_min > 0).then(|| {
            let present = (self.expected_min - self.absent_min).max(0);
            (present * 1000 / self.expected_min).clamp(0, 1000)
        })
    }

    pub fn add(&mut self, o: &WeekFigures) {
        self.expected_min += o.expected_min;
        self.absent_min += o.absent_min;
        self.late_min += o.late_min;
        self.roll_calls += o.roll_calls;
        self.marks += o.marks;
        self.lesson_entries += o.lesson_entries;
        self.usage_people += o.usage_people;
        self.usage_visits += o.usage_visits;
    }
}

/// A class as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassLine {
    pub name: String,
    pub level: String,
    pub serie: String,
    pub pupils: usize,
}

/// Everything the console shows of one school's data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchoolFigures {
    pub classes: Vec<ClassLine>,
    /// Pupils enrolled in a class (each counted once).
    pub pupils: usize,
    pub weeks: BTreeMap<Week, WeekFigures>,
    pub marks: i64,
    pub assessments: i64,
    /// Bulletins in force (a reissued one counts once).
    pub bulletins: i64,
    pub lesson_entries: i64,
    /// Replica rows held, per table.
    pub rows: BTreeMap<String, i64>,
}

fn text<'a>(r: &'a Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or("")
}

fn int(r: &Map<String, Value>, k: &str) -> i64 {
    r.get(k)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

/// The ISO week of `AAAA-MM-JJ`.
pub fn week_of_date(d: &str) -> Option<Week> {
    let mut parts = d.splitn(3, '-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.get(..2)?.parse().ok()?;
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, day).ok()?;
    let (iy, w, _) = date.to_iso_week_date();
    Some((iy, w))
}

/// The ISO week of a Unix time (UTC; Lomé is on UTC).
pub fn week_of_unix(t: i64) -> Option<Week> {
    let d = time::OffsetDateTime::from_unix_timestamp(t).ok()?.date();
    let (iy, w, _) = d.to_iso_week_date();
    Some((iy, w))
}

/// The Monday of a week, as `JJ/MM/AAAA`.
pub fn monday(w: Week) -> String {
    time::Date::from_iso_week_date(w.0, w.1, time::Weekday::Monday)
        .map(|d| format!("{:02}/{:02}/{}", d.day(), u8::from(d.month()), d.year()))
        .unwrap_or_default()
}

/// The `n` weeks ending with the one of `now`, oldest first.
pub fn last_weeks(now: i64, n: usize) -> Vec<Week> {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(now) else {
        return Vec::new();
    };
    let mut d = t.date();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (iy, w, _) = d.to_iso_week_date();
        out.push((iy, w));
        d = d.saturating_sub(time::Duration::days(7));
    }
    out.reverse();
    out
}

/// Read a school's replica and count.
pub fn school_figures(c: &mut dyn Conn, code: &str) -> Result<SchoolFigures, StoreError> {
    let scope = format!("school:{code}");
    let mut f = SchoolFigures::default();
    for r in c.rows(
        "SELECT tbl, COUNT(*) FROM replica WHERE scope = $1 AND deleted = 0 GROUP BY tbl ORDER BY tbl",
        &[scope.as_str().into()],
    )? {
        f.rows.insert(r[0].text(), r[1].int());
    }
    let rows = |c: &mut dyn Conn, t: &str| store::replica_rows(c, &scope, t);

    // Who is in which class or group.
    let mut class_pupils: HashMap<String, usize> = HashMap::new();
    let mut pupils: HashSet<String> = HashSet::new();
    for m in rows(c, "class_members")? {
        if text(&m, "role") == "eleve" {
            *class_pupils
                .entry(text(&m, "class_id").to_string())
                .or_default() += 1;
            pupils.insert(text(&m, "person_id").to_string());
        }
    }
    f.pupils = pupils.len();
    let mut group_pupils: HashMap<String, usize> = HashMap::new();
    for m in rows(c, "group_members")? {
        *group_pupils
            .entry(text(&m, "group_id").to_string())
            .or_default() += 1;
    }
    for k in rows(c, "classes")? {
        f.classes.push(ClassLine {
            name: text(&k, "name").to_string(),
            level: text(&k, "level").to_string(),
            serie: text(&k, "serie").to_string(),
            pupils: class_pupils.get(text(&k, "id")).copied().unwrap_or(0),
        });
    }
    f.classes
        .sort_by(|a, b| (&a.level, &a.name).cmp(&(&b.level, &b.name)));

    for rc in rows(c, "roll_calls")? {
        let Some(w) = week_of_date(text(&rc, "on_date")) else {
            continue;
        };
        let size = match (rc.get("class_id"), rc.get("group_id")) {
            (Some(Value::String(k)), _) => class_pupils.get(k).copied().unwrap_or(0),
            (_, Some(Value::String(g))) => group_pupils.get(g).copied().unwrap_or(0),
            _ => 0,
        };
        let minutes = (int(&rc, "ends") - int(&rc, "starts")).max(0);
        let e = f.weeks.entry(w).or_default();
        e.roll_calls += 1;
        e.expected_min += minutes * size as i64;
    }
    for a in rows(c, "absences")? {
        let Some(w) = week_of_date(text(&a, "on_date")) else {
            continue;
        };
        let e = f.weeks.entry(w).or_default();
        match text(&a, "kind") {
            "absence" => e.absent_min += int(&a, "minutes"),
            "retard" => e.late_min += int(&a, "minutes"),
            _ => {}
        }
    }
    for m in rows(c, "marks")? {
        f.marks += 1;
        if let Some(w) = week_of_unix(int(&m, "updated_at")) {
            f.weeks.entry(w).or_default().marks += 1;
        }
    }
    f.assessments = f.rows.get("assessments").copied().unwrap_or(0);
    for e in rows(c, "lesson_entries")? {
        if text(&e, "content").trim().is_empty() {
            continue;
        }
        f.lesson_entries += 1;
        if let Some(w) = week_of_date(text(&e, "on_date")) {
            f.weeks.entry(w).or_default().lesson_entries += 1;
        }
    }
    // The whole-ENT rows only (`service = 'ent'`): a person counts once a day there, however
    // many services they used.
    for u in rows(c, "usage_daily")? {
        if text(&u, "service") != "ent" {
            continue;
        }
        if let Some(w) = week_of_date(text(&u, "day")) {
            let e = f.weeks.entry(w).or_default();
            e.usage_people += int(&u, "people").max(0);
            e.usage_visits += int(&u, "visits").max(0);
        }
    }
    f.bulletins = rows(c, "bulletins")?
        .iter()
        .filter(|b| b.get("replaced_at").is_none_or(Value::is_null))
        .count() as i64;
    Ok(f)
}

/// `0,0 %`-style French percentage of a per-mille figure.
pub fn percent(permille: i64) -> String {
    format!("{},{} %", permille / 10, permille % 10)
}

/// Hours with one decimal, French style.
pub fn hours(minutes: i64) -> String {
    let tenths = (minutes * 10 + 30) / 60;
    format!("{},{}", tenths / 10, tenths % 10)
}

/// Each week's label under its bar (its Monday, `JJ/MM`) and on hover.
pub fn week_labels(weeks: &[Week]) -> Vec<(String, String)> {
    weeks
        .iter()
        .map(|w| {
            let m = monday(*w);
            (
                m.get(..5).unwrap_or(&m).to_string(),
                format!("semaine du {m}"),
            )
        })
        .collect()
}

/// A bar chart of `values` (`None` draws no bar), each labelled below and on hover by
/// `labels`. `max` fixes the scale (e.g. 1000 for a rate in per mille), else the largest
/// value. Plain SVG, no script; a `<title>` per bar gives the figure on hover.
pub fn bar_chart(
    title: &str,
    labels: &[(String, String)],
    values: &[Option<i64>],
    max: Option<i64>,
    fmt: &dyn Fn(i64) -> String,
) -> String {
    let (w, h, left, bottom, top) = (640.0_f64, 220.0_f64, 64.0_f64, 36.0_f64, 24.0_f64);
    let n = values.len().max(1) as f64;
    let top_value = max
        .unwrap_or_else(|| values.iter().flatten().copied().max().unwrap_or(0))
        .max(1) as f64;
    let slot = (w - left - 8.0) / n;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-label=\"{t}\" class=\"chart\"><title>{t}</title>",
        t = escape(title)
    );
    let plot_h = h - bottom - top;
    // Axis and its top label.
    s.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{y0}\" stroke=\"#888\"/>\
         <line x1=\"{left}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#888\"/>\
         <text x=\"{lx}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"end\">{tv}</text>\
         <text x=\"{lx}\" y=\"{y0}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        y0 = h - bottom,
        x1 = w - 4.0,
        lx = left - 4.0,
        ty = top + 4.0,
        tv = escape(&fmt(top_value as i64)),
    ));
    for (i, ((short, long), v)) in labels.iter().zip(values).enumerate() {
        let x = left + slot * i as f64 + slot * 0.15;
        let bw = slot * 0.7;
        if let Some(v) = v {
            let bh = (*v as f64 / top_value).clamp(0.0, 1.0) * plot_h;
            s.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"#2e6da4\">\
                 <title>{m} : {val}</title></rect>",
                y = h - bottom - bh,
                m = escape(long),
                val = escape(&fmt(*v)),
            ));
        }
        s.push_str(&format!(
            "<text x=\"{cx:.1}\" y=\"{ly}\" font-size=\"10\" text-anchor=\"middle\">{l}</text>",
            cx = x + bw / 2.0,
            ly = h - bottom + 14.0,
            l = escape(short),
        ));
    }
    s.push_str("</svg>");
    s
}

/// A small inline line of `values` (a school's weeks), 120 × 24.
pub fn sparkline(values: &[Option<i64>], max: Option<i64>) -> String {
    let top = max
        .unwrap_or_else(|| values.iter().flatten().copied().max().unwrap_or(0))
        .max(1) as f64;
    let n = values.len().max(2) as f64 - 1.0;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            v.map(|v| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 * 118.0 / n + 1.0,
                    23.0 - (v as f64 / top).clamp(0.0, 1.0) * 22.0
                )
            })
        })
        .collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 120 24\" width=\"120\" height=\"24\" aria-hidden=\"true\">\
         <polyline fill=\"none\" stroke=\"#2e6da4\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        points.join(" ")
    )
}

/// HTML/XML text escape for what goes into the SVG.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// One CSV cell that a spreadsheet will not take for a formula.
pub fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_are_iso_weeks() {
        assert_eq!(week_of_date("2026-12-01"), Some((2026, 49)));
        assert_eq!(week_of_date("2027-01-01"), Some((2026, 53)));
        assert_eq!(week_of_date("n'importe"), None);
        assert_eq!(monday((2026, 49)), "30/11/2026");
        let w = last_weeks(1_796_083_200, 3); // 2026-12-01
        assert_eq!(w, vec![(2026, 47), (2026, 48), (2026, 49)]);
    }

    #[test]
    fn rates_and_hours_read_in_french() {
        let f = WeekFigures {
            expected_min: 6000,
            absent_min: 300,
            ..Default::default()
        };
        assert_eq!(f.attendance_permille(), Some(950));
        assert_eq!(percent(950), "95,0 %");
        assert_eq!(hours(90), "1,5");
        assert_eq!(WeekFigures::default().attendance_permille(), None);
    }

    #[test]
    fn charts_escape_and_spreadsheets_get_no_formula() {
        let svg = bar_chart("<a>", &week_labels(&[(2026, 49)]), &[Some(5)], None, &|v| {
            v.to_string()
        });
        assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"));
        assert_eq!(cell("=SOMME(A1)"), "'=SOMME(A1)");
        assert_eq!(cell("Lycée"), "Lycée");
    }
}
