//! Togolese averages, ranks, appreciations and distinctions (DOMAIN.md, *Marks and averages*).
//!
//! Pure: no I/O, no clock, no database. The caller passes the marks of one class for one period
//! and the school's settings for that school year; everything that DOMAIN.md calls configurable
//! is a field of [`Settings`], whose `Default` is DOMAIN.md's default.
//!
//! **Every printed number is computed from printed numbers.** The class-mark average and the
//! composition are rounded to the school's decimals first, the period average is computed from
//! those, the points from the rounded period average, and the general average from the points.
//! A parent with a pencil who redoes the bulletin's sums finds the bulletin's figures.

use std::cmp::Ordering;

/// What an assessment is for the average: a class mark (interrogation or devoir) or the
/// period's composition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Class,
    Composition,
}

/// One pupil's result in one assessment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Entry {
    /// A mark `value` out of `scale` (e.g. 7 out of 10); brought to /20.
    Mark { value: f64, scale: f64 },
    /// Absent without excuse: counts as 0 when [`Settings::absent_counts_zero`], else ignored.
    Absent,
    /// Excused: not counted.
    Excused,
    /// Not assessed (arrived after the test, exempted): not counted.
    NotAssessed,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    pub kind: Kind,
    pub entry: Entry,
}

/// What the period average is when the composition is missing (or excused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingComposition {
    /// M = MC (DOMAIN.md's default).
    ClassAverage,
    /// The composition counts 0.
    Zero,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// 12.345 → 12.35 (DOMAIN.md's default).
    HalfUp,
    /// 12.345 → 12.34, 12.355 → 12.36 (banker's rounding).
    HalfEven,
    /// 12.349 → 12.34.
    Down,
}

/// A threshold and its label: "≥ 16 Très bien".
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub from: f64,
    pub label: String,
}

/// The school's dated settings for a school year (stored as data, never constants).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// wc: weight of the class-mark average in the period average.
    pub class_weight: f64,
    /// wk: weight of the composition.
    pub composition_weight: f64,
    pub missing_composition: MissingComposition,
    pub absent_counts_zero: bool,
    pub decimals: u32,
    pub rounding: Rounding,
    /// Appreciation bands, any order; below the lowest threshold the lowest label applies.
    pub bands: Vec<Band>,
    /// Distinctions (tableau d'honneur, encouragements, félicitations), any order.
    pub distinctions: Vec<Band>,
    /// Weight of each period in the annual average (index 0 = first period); missing = 1.
    pub annual_weights: Vec<f64>,
    /// What pupils and their families see before the bulletin (from published marks only).
    pub families_see: FamiliesSee,
}

/// The direction's choice of what pupils and their families see of the averages before the
/// bulletin: display only, never an input of the computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FamiliesSee {
    /// Their provisional general average.
    pub general: bool,
    /// The class's average per subject.
    pub class: bool,
}

fn band(from: f64, label: &str) -> Band {
    Band {
        from,
        label: label.to_string(),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            class_weight: 1.0,
            composition_weight: 1.0,
            missing_composition: MissingComposition::ClassAverage,
            absent_counts_zero: true,
            decimals: 2,
            rounding: Rounding::HalfUp,
            bands: vec![
                band(18.0, "Excellent"),
                band(16.0, "Très bien"),
                band(14.0, "Bien"),
                band(12.0, "Assez bien"),
                band(10.0, "Passable"),
                band(8.0, "Insuffisant"),
                band(6.0, "Très insuffisant"),
                band(0.0, "Médiocre"),
            ],
            distinctions: vec![
                band(12.0, "Tableau d'honneur"),
                band(14.0, "Encouragements"),
                band(16.0, "Félicitations"),
            ],
            annual_weights: Vec::new(),
            families_see: FamiliesSee::default(),
        }
    }
}

impl Settings {
    /// Round `x` by the school's rule. Floating-point noise below a millionth of the last
    /// decimal is removed first, so 12.345 (stored as 12.3449999…) rounds half up to 12.35.
    pub fn round(&self, x: f64) -> f64 {
        let f = 10f64.powi(self.decimals as i32);
        let y = (x * f * 1e6).round() / 1e6;
        let r = match self.rounding {
            Rounding::HalfUp => (y + 0.5).floor(),
            Rounding::Down => y.floor(),
            Rounding::HalfEven => {
                let fl = y.floor();
                let diff = y - fl;
                if diff > 0.5 || (diff == 0.5 && fl % 2.0 != 0.0) {
                    fl + 1.0
                } else {
                    fl
                }
            }
        };
        r / f
    }

    /// The appreciation for an average ("Assez bien").
    pub fn appreciation(&self, average: f64) -> &str {
        best_band(&self.bands, average)
            .or_else(|| {
                self.bands
                    .iter()
                    .min_by(|a, b| a.from.total_cmp(&b.from))
                    .map(|b| b.label.as_str())
            })
            .unwrap_or("")
    }

    /// The distinction earned by a general average; none after a sanction in the period.
    pub fn distinction(&self, average: f64, sanctioned: bool) -> Option<&str> {
        if sanctioned {
            None
        } else {
            best_band(&self.distinctions, average)
        }
    }

    /// The annual average from the period averages (index = period number − 1): the mean, or
    /// the weighted mean with [`Settings::annual_weights`], over the periods that have one.
    pub fn annual(&self, periods: &[Option<f64>]) -> Option<f64> {
        let (mut sum, mut weights) = (0.0, 0.0);
        for (i, p) in periods.iter().enumerate() {
            if let Some(v) = p {
                let w = self.annual_weights.get(i).copied().unwrap_or(1.0);
                sum += w * v;
                weights += w;
            }
        }
        (weights > 0.0).then(|| self.round(sum / weights))
    }

    /// A value as an integer number of the last decimal, for exact comparisons.
    fn key(&self, x: f64) -> i64 {
        (x * 10f64.powi(self.decimals as i32)).round() as i64
    }
}

fn best_band(bands: &[Band], v: f64) -> Option<&str> {
    bands
        .iter()
        .filter(|b| v + 1e-9 >= b.from)
        .max_by(|a, b| a.from.total_cmp(&b.from))
        .map(|b| b.label.as_str())
}

/// A place in a ranking: ties share the place, and the next place skips ("1er", "2e ex aequo",
/// "2e ex aequo", "4e").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    pub place: u32,
    pub ex_aequo: bool,
}

impl Rank {
    /// "1er", "1re" (feminine), "2e", "2e ex aequo".
    pub fn french(&self, feminine: bool) -> String {
        let ord = match (self.place, feminine) {
            (1, false) => "1er".to_string(),
            (1, true) => "1re".to_string(),
            (n, _) => format!("{n}e"),
        };
        if self.ex_aequo {
            format!("{ord} ex aequo")
        } else {
            ord
        }
    }
}

/// Rank values (higher is better); `None` has no rank. Ties are decided on the rounded value.
pub fn ranks(settings: &Settings, values: &[Option<f64>]) -> Vec<Option<Rank>> {
    let mut keys: Vec<i64> = values.iter().flatten().map(|v| settings.key(*v)).collect();
    keys.sort_unstable_by(|a, b| b.cmp(a));
    values
        .iter()
        .map(|v| {
            let k = settings.key((*v)?);
            let above = keys.partition_point(|x| *x > k);
            let equal = keys[above..].partition_point(|x| *x == k);
            Some(Rank {
                place: above as u32 + 1,
                ex_aequo: equal > 1,
            })
        })
        .collect()
}

/// Highest, lowest and mean of a set of averages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub highest: f64,
    pub lowest: f64,
    pub mean: f64,
    pub count: usize,
}

pub fn stats(settings: &Settings, values: impl IntoIterator<Item = f64>) -> Option<Stats> {
    let (mut hi, mut lo, mut sum, mut n) = (f64::MIN, f64::MAX, 0.0, 0usize);
    for v in values {
        hi = hi.max(v);
        lo = lo.min(v);
        sum += v;
        n += 1;
    }
    (n > 0).then(|| Stats {
        highest: hi,
        lowest: lo,
        mean: settings.round(sum / n as f64),
        count: n,
    })
}

/// One pupil's figures in one subject for the period.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectResult {
    /// MC: mean of the class marks on /20 (rounded); `None` without any counted class mark.
    pub class_average: Option<f64>,
    /// The composition on /20 (rounded); `None` when missing or excused.
    pub composition: Option<f64>,
    /// M: the period average (rounded).
    pub average: f64,
    pub coefficient: f64,
    /// M × coefficient (rounded).
    pub points: f64,
    pub rank: Option<Rank>,
}

/// The per-subject figures from one pupil's marks; `None` when nothing counts (the subject then
/// stays out of the general average).
pub fn subject_average(
    settings: &Settings,
    marks: &[Mark],
    coefficient: f64,
) -> Option<SubjectResult> {
    let on20 = |e: &Entry| -> Option<f64> {
        match *e {
            Entry::Mark { value, scale } if scale > 0.0 => {
                Some((value / scale * 20.0).clamp(0.0, 20.0))
            }
            Entry::Absent if settings.absent_counts_zero => Some(0.0),
            _ => None,
        }
    };
    let mean = |kind: Kind| -> Option<f64> {
        let (mut sum, mut n) = (0.0, 0u32);
        for m in marks.iter().filter(|m| m.kind == kind) {
            if let Some(v) = on20(&m.entry) {
                sum += v;
                n += 1;
            }
        }
        (n > 0).then(|| settings.round(sum / f64::from(n)))
    };
    let class_average = mean(Kind::Class);
    let composition = mean(Kind::Composition);
    let (wc, wk) = (settings.class_weight, settings.composition_weight);
    let average = match (class_average, composition) {
        (Some(mc), Some(k)) if wc + wk > 0.0 => (wc * mc + wk * k) / (wc + wk),
        (Some(mc), None) => match settings.missing_composition {
            MissingComposition::ClassAverage => mc,
            MissingComposition::Zero if wc + wk > 0.0 => wc * mc / (wc + wk),
            MissingComposition::Zero => mc,
        },
        (None, Some(k)) => k,
        (Some(mc), Some(_)) => mc,
        (None, None) => return None,
    };
    let average = settings.round(average);
    Some(SubjectResult {
        class_average,
        composition,
        average,
        coefficient,
        points: settings.round(average * coefficient),
        rank: None,
    })
}

/// One subject of the class for the period.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub coefficient: f64,
}

/// One pupil of the class: marks per subject (same order as [`ClassPeriod::subjects`]) and
/// whether a disciplinary sanction was given in the period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pupil {
    pub marks: Vec<Vec<Mark>>,
    pub sanctioned: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassPeriod {
    pub subjects: Vec<Subject>,
    pub pupils: Vec<Pupil>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PupilResult {
    pub subjects: Vec<Option<SubjectResult>>,
    /// Σ coefficients of the subjects with a mark.
    pub total_coefficients: f64,
    /// Σ points.
    pub total_points: f64,
    /// MG: Σ points / Σ coefficients (rounded).
    pub average: Option<f64>,
    pub rank: Option<Rank>,
    pub appreciation: Option<String>,
    pub distinction: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassResult {
    pub pupils: Vec<PupilResult>,
    /// Per subject: highest, lowest and mean of the period averages.
    pub subject_stats: Vec<Option<Stats>>,
    /// Of the general averages.
    pub overall: Option<Stats>,
}

/// Everything the bulletins and the conseil de classe need for one class and one period.
pub fn class_period(settings: &Settings, input: &ClassPeriod) -> ClassResult {
    let mut pupils: Vec<PupilResult> = input
        .pupils
        .iter()
        .map(|p| {
            let subjects: Vec<Option<SubjectResult>> = input
                .subjects
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let marks = p.marks.get(i).map(Vec::as_slice).unwrap_or(&[]);
                    subject_average(settings, marks, s.coefficient)
                })
                .collect();
            let (mut coef, mut points) = (0.0, 0.0);
            for r in subjects.iter().flatten() {
                coef += r.coefficient;
                points += r.points;
            }
            let points = settings.round(points);
            let average = (coef > 0.0).then(|| settings.round(points / coef));
            PupilResult {
                subjects,
                total_coefficients: coef,
                total_points: points,
                average,
                rank: None,
                appreciation: average.map(|a| settings.appreciation(a).to_string()),
                distinction: average
                    .and_then(|a| settings.distinction(a, p.sanctioned))
                    .map(str::to_string),
            }
        })
        .collect();

    let mut subject_stats = Vec::with_capacity(input.subjects.len());
    for i in 0..input.subjects.len() {
        let values: Vec<Option<f64>> = pupils
            .iter()
            .map(|p| p.subjects[i].as_ref().map(|r| r.average))
            .collect();
        for (p, rank) in pupils.iter_mut().zip(ranks(settings, &values)) {
            if let Some(r) = p.subjects[i].as_mut() {
                r.rank = rank;
            }
        }
        subject_stats.push(stats(settings, values.into_iter().flatten()));
    }
    let overall_values: Vec<Option<f64>> = pupils.iter().map(|p| p.average).collect();
    for (p, rank) in pupils.iter_mut().zip(ranks(settings, &overall_values)) {
        p.rank = rank;
    }
    ClassResult {
        pupils,
        subject_stats,
        overall: stats(settings, overall_values.into_iter().flatten()),
    }
}

/// Order for listing pupils by result: best general average first, no average last.
pub fn by_average(a: &PupilResult, b: &PupilResult) -> Ordering {
    match (a.average, b.average) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn class(v: f64) -> Mark {
        Mark {
            kind: Kind::Class,
            entry: Entry::Mark {
                value: v,
                scale: 20.0,
            },
        }
    }
    fn on(v: f64, scale: f64) -> Mark {
        Mark {
            kind: Kind::Class,
            entry: Entry::Mark { value: v, scale },
        }
    }
    fn compo(v: f64) -> Mark {
        Mark {
            kind: Kind::Composition,
            entry: Entry::Mark {
                value: v,
                scale: 20.0,
            },
        }
    }
    fn with(kind: Kind, entry: Entry) -> Mark {
        Mark { kind, entry }
    }

    #[test]
    fn rounding_rules() {
        let mut s = Settings::default();
        assert_eq!(s.round(12.345), 12.35);
        assert_eq!(s.round(12.344_999), 12.34);
        assert_eq!(s.round(37.0 / 3.0), 12.33);
        assert_eq!(s.round(2.675), 2.68, "2.675 is 2.67499… in binary");
        s.rounding = Rounding::Down;
        assert_eq!(s.round(12.349), 12.34);
        s.rounding = Rounding::HalfEven;
        assert_eq!(s.round(12.345), 12.34);
        assert_eq!(s.round(12.355), 12.36);
        s.decimals = 1;
        s.rounding = Rounding::HalfUp;
        assert_eq!(s.round(12.25), 12.3);
    }

    #[test]
    fn subject_average_by_hand() {
        let s = Settings::default();
        // Class marks 12, 7/10 (= 14), 15 → MC = 41/3 = 13.666… → 13.67; compo 11.
        // M = (13.67 + 11) / 2 = 12.335 → 12.34; coefficient 3 → 37.02 points.
        let r = subject_average(
            &s,
            &[class(12.0), on(7.0, 10.0), class(15.0), compo(11.0)],
            3.0,
        )
        .unwrap();
        assert_eq!(r.class_average, Some(13.67));
        assert_eq!(r.composition, Some(11.0));
        assert_eq!(r.average, 12.34);
        assert_eq!(r.points, 37.02);

        // The regional variant wc = 1, wk = 2: (13.67 + 2 × 11) / 3 = 11.89.
        let s2 = Settings {
            composition_weight: 2.0,
            ..Settings::default()
        };
        let r = subject_average(
            &s2,
            &[class(12.0), on(7.0, 10.0), class(15.0), compo(11.0)],
            3.0,
        )
        .unwrap();
        assert_eq!(r.average, 11.89);
    }

    #[test]
    fn excused_absent_and_not_assessed() {
        let s = Settings::default();
        // Excused and not-assessed marks are ignored; absent counts 0.
        let marks = [
            class(16.0),
            with(Kind::Class, Entry::Excused),
            with(Kind::Class, Entry::NotAssessed),
            compo(12.0),
        ];
        assert_eq!(subject_average(&s, &marks, 1.0).unwrap().average, 14.0);
        let marks = [class(16.0), with(Kind::Class, Entry::Absent), compo(12.0)];
        // MC = 8, M = 10.
        assert_eq!(subject_average(&s, &marks, 1.0).unwrap().average, 10.0);
        let lenient = Settings {
            absent_counts_zero: false,
            ..Settings::default()
        };
        assert_eq!(
            subject_average(&lenient, &marks, 1.0).unwrap().average,
            14.0
        );
        // Only excused marks: no average at all.
        assert_eq!(
            subject_average(&s, &[with(Kind::Class, Entry::Excused)], 2.0),
            None
        );
    }

    #[test]
    fn missing_composition_rule() {
        let mut s = Settings::default();
        let marks = [class(12.0), class(15.0)];
        // Default: M = MC.
        assert_eq!(subject_average(&s, &marks, 1.0).unwrap().average, 13.5);
        // An excused composition is a missing one.
        let excused = [
            class(12.0),
            class(15.0),
            with(Kind::Composition, Entry::Excused),
        ];
        assert_eq!(subject_average(&s, &excused, 1.0).unwrap().average, 13.5);
        // The composition counts 0: (13.5 + 0) / 2.
        s.missing_composition = MissingComposition::Zero;
        assert_eq!(subject_average(&s, &marks, 1.0).unwrap().average, 6.75);
        // Only a composition: M = composition.
        assert_eq!(
            subject_average(&s, &[compo(9.5)], 1.0).unwrap().average,
            9.5
        );
    }

    /// A hand-computed class of four pupils and three subjects, with a tie, a pupil without a
    /// mark in one subject and a sanctioned pupil.
    #[test]
    fn class_by_hand() {
        let s = Settings::default();
        let input = ClassPeriod {
            subjects: vec![
                Subject { coefficient: 4.0 }, // maths
                Subject { coefficient: 2.0 }, // français
                Subject { coefficient: 1.0 }, // EPS
            ],
            pupils: vec![
                // A: maths (14+16)/2=15, compo 17 → 16 ×4 = 64; fr 12 ×2 = 24; EPS 15 → 15.
                // Σ = 103 / 7 = 14.714… → 14.71.
                Pupil {
                    marks: vec![
                        vec![class(14.0), class(16.0), compo(17.0)],
                        vec![class(12.0), compo(12.0)],
                        vec![class(15.0)],
                    ],
                    sanctioned: false,
                },
                // B: maths 16 → 64; fr 12 → 24; EPS 15 → 15. Same 14.71: tie with A.
                Pupil {
                    marks: vec![
                        vec![class(16.0), compo(16.0)],
                        vec![class(10.0), compo(14.0)],
                        vec![compo(15.0)],
                    ],
                    sanctioned: true,
                },
                // C: maths 8 → 32; fr 11 → 22; no EPS. Σ = 54 / 6 = 9.
                Pupil {
                    marks: vec![vec![class(8.0), compo(8.0)], vec![compo(11.0)], vec![]],
                    sanctioned: false,
                },
                // D: nothing at all.
                Pupil {
                    marks: vec![vec![], vec![], vec![]],
                    sanctioned: false,
                },
            ],
        };
        let r = class_period(&s, &input);
        let a = &r.pupils[0];
        assert_eq!(a.total_coefficients, 7.0);
        assert_eq!(a.total_points, 103.0);
        assert_eq!(a.average, Some(14.71));
        assert_eq!(a.appreciation.as_deref(), Some("Bien"));
        assert_eq!(a.distinction.as_deref(), Some("Encouragements"));
        let b = &r.pupils[1];
        assert_eq!(b.average, Some(14.71));
        assert_eq!(b.distinction, None, "sanctioned in the period");
        assert_eq!(
            a.rank,
            Some(Rank {
                place: 1,
                ex_aequo: true
            })
        );
        assert_eq!(a.rank, b.rank);
        let c = &r.pupils[2];
        assert_eq!(c.total_coefficients, 6.0, "EPS without a mark is left out");
        assert_eq!(c.average, Some(9.0));
        assert_eq!(
            c.rank.map(|r| r.place),
            Some(3),
            "the place after a tie skips"
        );
        assert_eq!(c.appreciation.as_deref(), Some("Insuffisant"));
        assert_eq!(c.distinction, None);
        let d = &r.pupils[3];
        assert_eq!((d.average, d.rank), (None, None));

        // Maths ranks: A 16, B 16 (ex aequo 1er), C 8 → 3e.
        let maths: Vec<_> = r
            .pupils
            .iter()
            .map(|p| p.subjects[0].as_ref().and_then(|s| s.rank))
            .collect();
        assert_eq!(maths[0].map(|r| (r.place, r.ex_aequo)), Some((1, true)));
        assert_eq!(maths[2].map(|r| (r.place, r.ex_aequo)), Some((3, false)));
        assert_eq!(maths[3], None);
        let st = r.subject_stats[0].unwrap();
        assert_eq!(
            (st.highest, st.lowest, st.mean, st.count),
            (16.0, 8.0, 13.33, 3)
        );
        let all = r.overall.unwrap();
        assert_eq!((all.highest, all.lowest, all.mean), (14.71, 9.0, 12.81));
        assert_eq!(
            a.rank.unwrap().french(false),
            "1er ex aequo",
            "bulletins print the tie"
        );
        assert_eq!(c.rank.unwrap().french(true), "3e");
    }

    #[test]
    fn annual_average_and_bands() {
        let s = Settings::default();
        assert_eq!(s.annual(&[Some(11.0), Some(14.0)]), Some(12.5));
        assert_eq!(s.annual(&[Some(11.0), None]), Some(11.0));
        assert_eq!(s.annual(&[None, None]), None);
        let weighted = Settings {
            annual_weights: vec![1.0, 2.0],
            ..Settings::default()
        };
        // (11 + 2 × 14) / 3 = 13.
        assert_eq!(weighted.annual(&[Some(11.0), Some(14.0)]), Some(13.0));
        assert_eq!(s.appreciation(18.0), "Excellent");
        assert_eq!(s.appreciation(17.99), "Très bien");
        assert_eq!(s.appreciation(10.0), "Passable");
        assert_eq!(s.appreciation(5.99), "Médiocre");
        assert_eq!(s.distinction(11.99, false), None);
        assert_eq!(s.distinction(12.0, false), Some("Tableau d'honneur"));
        assert_eq!(s.distinction(16.5, false), Some("Félicitations"));
    }

    fn entry() -> impl Strategy<Value = Mark> {
        let e = prop_oneof![
            8 => (0u32..=400, prop_oneof![Just(10.0), Just(20.0), Just(40.0)])
                .prop_map(|(v, scale)| Entry::Mark { value: (f64::from(v) / 10.0).min(scale), scale }),
            1 => Just(Entry::Absent),
            1 => Just(Entry::Excused),
            1 => Just(Entry::NotAssessed),
        ];
        (prop::bool::weighted(0.2), e).prop_map(|(c, entry)| Mark {
            kind: if c { Kind::Composition } else { Kind::Class },
            entry,
        })
    }

    fn class_input() -> impl Strategy<Value = ClassPeriod> {
        (1usize..6).prop_flat_map(|n_subjects| {
            (
                prop::collection::vec(1u32..=8, n_subjects),
                prop::collection::vec(
                    (
                        prop::collection::vec(prop::collection::vec(entry(), 0..6), n_subjects),
                        any::<bool>(),
                    ),
                    1..30,
                ),
            )
                .prop_map(|(coefs, pupils)| ClassPeriod {
                    subjects: coefs
                        .into_iter()
                        .map(|c| Subject {
                            coefficient: f64::from(c),
                        })
                        .collect(),
                    pupils: pupils
                        .into_iter()
                        .map(|(marks, sanctioned)| Pupil { marks, sanctioned })
                        .collect(),
                })
        })
    }

    proptest! {
        #[test]
        fn averages_stay_within_0_and_20(input in class_input()) {
            let r = class_period(&Settings::default(), &input);
            for p in &r.pupils {
                for s in p.subjects.iter().flatten() {
                    prop_assert!((0.0..=20.0).contains(&s.average));
                }
                if let Some(a) = p.average {
                    prop_assert!((0.0..=20.0).contains(&a), "{a}");
                }
            }
        }

        #[test]
        fn result_does_not_depend_on_order(input in class_input(), seed in any::<u64>()) {
            let s = Settings::default();
            let r = class_period(&s, &input);
            // Reverse the pupils and rotate every pupil's marks within each subject.
            let mut shuffled = input.clone();
            shuffled.pupils.reverse();
            for p in &mut shuffled.pupils {
                for m in &mut p.marks {
                    if !m.is_empty() {
                        let k = (seed as usize) % m.len();
                        m.rotate_left(k);
                    }
                }
            }
            let r2 = class_period(&s, &shuffled);
            let n = input.pupils.len();
            for i in 0..n {
                prop_assert_eq!(&r.pupils[i], &r2.pupils[n - 1 - i]);
            }
            prop_assert_eq!(r.overall, r2.overall);
        }

        #[test]
        fn ties_share_a_rank_and_the_next_skips(values in prop::collection::vec(prop::option::of(0u32..=40), 0..40)) {
            let s = Settings::default();
            let values: Vec<Option<f64>> = values.into_iter().map(|v| v.map(|v| f64::from(v) / 2.0)).collect();
            let r = ranks(&s, &values);
            for (v, rank) in values.iter().zip(&r) {
                match (v, rank) {
                    (None, None) => {}
                    (Some(v), Some(rank)) => {
                        let better = values.iter().flatten().filter(|x| *x > v).count() as u32;
                        let same = values.iter().flatten().filter(|x| *x == v).count();
                        prop_assert_eq!(rank.place, better + 1);
                        prop_assert_eq!(rank.ex_aequo, same > 1);
                    }
                    _ => prop_assert!(false, "a rank without a value or the reverse"),
                }
            }
        }
    }
}
