//! The bulletin de notes (DOMAIN.md, *The bulletin*): the numbers behind it, as printed, and its
//! A4 layout. The numbers are frozen with the PDF when a bulletin is issued; rendering them again
//! gives the same document.

use serde::{Deserialize, Serialize};

use crate::grades::compute::{self, Rank};
use crate::grades::council::Results;
use crate::grades::show;
use crate::grades::store::{self as gs, DECISIONS};
use crate::pdf::{Align, Col, Doc, Row};

/// The school's identity on its documents (configuration `[bulletin]`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Header {
    pub ministry: String,
    pub directorate: String,
    pub inspection: String,
    pub school: String,
    pub address: String,
    /// The school's logo, printed at the top left (PNG or JPEG). Not in the frozen numbers:
    /// the frozen PDF carries it, and its hash says which one it was.
    #[serde(skip)]
    pub logo: Option<Logo>,
    #[serde(default)]
    pub logo_sha256: String,
}

/// A logo image, checked readable when loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Logo(pub crate::pdf::Picture);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubjectLine {
    pub subject: String,
    pub class_average: String,
    pub composition: String,
    pub average: String,
    pub coefficient: String,
    pub points: String,
    pub rank: String,
    pub appreciation: String,
    pub teacher: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub name: String,
    pub lines: Vec<SubjectLine>,
}

/// Everything printed on one bulletin, already formatted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bulletin {
    pub header: Header,
    pub title: String,
    pub year: String,
    pub pupil: String,
    pub born: String,
    /// Place of birth (older frozen bulletins have none).
    #[serde(default)]
    pub born_at: String,
    pub sex: String,
    pub matricule: String,
    pub class: String,
    pub class_size: usize,
    pub status: String,
    pub groups: Vec<Group>,
    pub total_coefficients: String,
    pub total_points: String,
    pub average: String,
    pub rank: String,
    pub earlier: Vec<(String, String, String)>,
    pub annual: Option<(String, String)>,
    pub decision: String,
    pub class_highest: String,
    pub class_lowest: String,
    pub class_mean: String,
    pub absences: String,
    pub lateness: String,
    pub sanctions: String,
    pub distinction: String,
    pub appreciation: String,
    pub remarks: String,
    pub principal: String,
}

fn domain_label(d: &str) -> String {
    match d {
        "lettres" => "Lettres et langues".into(),
        "sciences" => "Sciences".into(),
        "techniques" | "technique" => "Matières techniques".into(),
        "eps" => "Éducation physique et sportive".into(),
        "" | "autres" => "Autres matières".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

fn hours_text(minutes: i64) -> String {
    crate::school::calendar::hours(minutes)
}

fn rank_text(r: Option<Rank>, feminine: bool) -> String {
    r.map(|r| r.french(feminine)).unwrap_or_else(|| "—".into())
}

/// The bulletins of a class's period, one per pupil, from its computed results.
pub fn of_class(r: &Results, header: &Header, year: &str, principal: &str) -> Vec<Bulletin> {
    let s = &r.data.settings;
    let d = s.decimals;
    let size = r.data.pupils.len();
    let period = &r.data.period;
    let title = format!("BULLETIN DE NOTES — {}", period.name);
    let stats = r.result.overall;
    let pick = |f: fn(&compute::Stats) -> f64| show(stats.as_ref().map(f), d);
    r.data
        .pupils
        .iter()
        .zip(&r.result.pupils)
        .enumerate()
        .map(|(i, (p, res))| {
            let feminine = p.sex.as_deref() == Some("F");
            let mut groups: Vec<Group> = Vec::new();
            for (k, subject) in r.data.subjects.iter().enumerate() {
                let name = domain_label(&subject.domain);
                let sr = res.subjects.get(k).and_then(|x| x.as_ref());
                let line = SubjectLine {
                    subject: subject.name.clone(),
                    class_average: show(sr.and_then(|x| x.class_average), d),
                    composition: show(sr.and_then(|x| x.composition), d),
                    average: show(sr.map(|x| x.average), d),
                    coefficient: gs::fmt_number(subject.coefficient),
                    points: sr
                        .map(|x| show(Some(x.points), d))
                        .unwrap_or_else(|| "—".into()),
                    rank: sr
                        .map(|x| rank_text(x.rank, feminine))
                        .unwrap_or_else(|| "—".into()),
                    appreciation: r
                        .council
                        .appreciations
                        .get(&(p.id, subject.id))
                        .cloned()
                        .or_else(|| sr.map(|x| s.appreciation(x.average).to_string()))
                        .unwrap_or_default(),
                    teacher: subject.teacher.clone(),
                };
                match groups.iter_mut().find(|g| g.name == name) {
                    Some(g) => g.lines.push(line),
                    None => groups.push(Group {
                        name,
                        lines: vec![line],
                    }),
                }
            }
            let (remarks, decision) = r.council.records.get(&p.id).cloned().unwrap_or_default();
            Bulletin {
                header: header.clone(),
                title: title.clone(),
                year: year.to_string(),
                pupil: p.name(),
                born: p
                    .birth_date
                    .as_deref()
                    .map(crate::people::french_date)
                    .unwrap_or_default(),
                born_at: p.birth_place.clone().unwrap_or_default(),
                sex: match p.sex.as_deref() {
                    Some("F") => "F".into(),
                    Some("M") => "M".into(),
                    _ => String::new(),
                },
                matricule: p.matricule.clone(),
                class: r.data.class_name.clone(),
                class_size: size,
                status: match (p.repeating, feminine) {
                    (true, true) => "Redoublante",
                    (true, false) => "Redoublant",
                    (false, true) => "Nouvelle",
                    (false, false) => "Nouveau",
                }
                .into(),
                groups,
                total_coefficients: gs::fmt_number(res.total_coefficients),
                total_points: show(Some(res.total_points), d),
                average: show(res.average, d),
                rank: rank_text(res.rank, feminine),
                earlier: r
                    .earlier
                    .iter()
                    .map(|(name, e)| (name.clone(), show(e[i].0, d), rank_text(e[i].1, feminine)))
                    .collect(),
                annual: r
                    .annual
                    .as_ref()
                    .map(|a| (show(a[i].0, d), rank_text(a[i].1, feminine))),
                decision: decision
                    .as_deref()
                    .map(|c| gs::label_fr(DECISIONS, c).to_string())
                    .unwrap_or_default(),
                class_highest: pick(|s| s.highest),
                class_lowest: pick(|s| s.lowest),
                class_mean: pick(|s| s.mean),
                absences: format!(
                    "{} (justifiées : {} ; non justifiées : {})",
                    hours_text(p.absence_minutes.0 + p.absence_minutes.1),
                    hours_text(p.absence_minutes.0),
                    hours_text(p.absence_minutes.1)
                ),
                lateness: format!(
                    "{} (justifiés : {} ; non justifiés : {})",
                    hours_text(p.late_minutes.0 + p.late_minutes.1),
                    hours_text(p.late_minutes.0),
                    hours_text(p.late_minutes.1)
                ),
                sanctions: if p.sanctions.is_empty() {
                    "Néant".into()
                } else {
                    p.sanctions.join(", ")
                },
                distinction: res.distinction.clone().unwrap_or_else(|| "—".into()),
                appreciation: res.appreciation.clone().unwrap_or_default(),
                remarks,
                principal: principal.to_string(),
            }
        })
        .collect()
}

/// Lay out one bulletin from the top of a new page of `doc`.
pub fn draw(doc: &mut Doc, b: &Bulletin) {
    let w = doc.width();
    let x = doc.margin;
    let half = w / 2.0;
    // Header: the ministry on the left, the Republic on the right.
    let top = doc.y;
    let left = [
        (b.header.ministry.as_str(), true),
        (b.header.directorate.as_str(), false),
        (b.header.inspection.as_str(), false),
        (b.header.school.as_str(), true),
        (b.header.address.as_str(), false),
    ];
    let mut y = top;
    // The logo, if any, at the far left; the ministry's lines centred beside it.
    let (lx, lw) = match &b.header.logo {
        Some(Logo(picture)) => {
            let side = 54.0;
            doc.picture(x, top, side, side, picture);
            (x + side + 6.0, half - 26.0 - side)
        }
        None => (x, half - 20.0),
    };
    for (text, bold) in left.iter().filter(|(t, _)| !t.is_empty()) {
        for line in crate::pdf::wrap(text, lw, 8.0, *bold) {
            y += 10.0;
            doc.text_in(lx, lw, y, 8.0, *bold, Align::Center, &line);
        }
    }
    if b.header.logo.is_some() {
        y = y.max(top + 54.0);
    }
    doc.text_in(
        x + half,
        half,
        top + 10.0,
        9.0,
        true,
        Align::Center,
        "RÉPUBLIQUE TOGOLAISE",
    );
    doc.text_in(
        x + half,
        half,
        top + 21.0,
        8.0,
        false,
        Align::Center,
        "Travail – Liberté – Patrie",
    );
    doc.text_in(
        x + half,
        half,
        top + 40.0,
        8.5,
        false,
        Align::Center,
        &format!("Année scolaire {}", b.year),
    );
    doc.y = y.max(top + 44.0) + 10.0;
    doc.paragraph(&b.title, 13.0, true, Align::Center);
    doc.space(6.0);

    // The pupil.
    let info = [
        Row::new(vec![
            "Nom et prénoms".into(),
            b.pupil.clone(),
            "Matricule".into(),
            b.matricule.clone(),
        ]),
        Row::new(vec![
            "Né(e) le".into(),
            match (b.born.is_empty(), b.born_at.is_empty()) {
                (_, true) => b.born.clone(),
                (true, false) => format!("à {}", b.born_at),
                (false, false) => format!("{} à {}", b.born, b.born_at),
            },
            "Sexe".into(),
            b.sex.clone(),
        ]),
        Row::new(vec![
            "Classe".into(),
            b.class.clone(),
            "Effectif".into(),
            b.class_size.to_string(),
        ]),
        Row::new(vec![
            "Statut".into(),
            b.status.clone(),
            String::new(),
            String::new(),
        ]),
    ];
    let cols = [
        Col {
            width: 90.0,
            align: Align::Left,
        },
        Col {
            width: w * 0.5 - 90.0,
            align: Align::Left,
        },
        Col {
            width: 70.0,
            align: Align::Left,
        },
        Col {
            width: w * 0.5 - 70.0,
            align: Align::Left,
        },
    ];
    doc.table(&cols, &[], &info, 8.5);
    doc.space(8.0);

    // The marks, grouped by domain, and the total.
    let cols = [
        Col {
            width: 112.0,
            align: Align::Left,
        },
        Col {
            width: 38.0,
            align: Align::Right,
        },
        Col {
            width: 38.0,
            align: Align::Right,
        },
        Col {
            width: 38.0,
            align: Align::Right,
        },
        Col {
            width: 28.0,
            align: Align::Right,
        },
        Col {
            width: 42.0,
            align: Align::Right,
        },
        Col {
            width: 56.0,
            align: Align::Center,
        },
        Col {
            width: 84.0,
            align: Align::Left,
        },
        Col {
            width: w - 436.0,
            align: Align::Left,
        },
    ];
    let header = [Row::new(
        [
            "Matière",
            "Moy. cl.",
            "Compo.",
            "Moy.",
            "Coef.",
            "Points",
            "Rang",
            "Appréciation",
            "Professeur",
        ]
        .map(String::from)
        .to_vec(),
    )
    .bold()
    .shaded()];
    let mut rows = Vec::new();
    for g in &b.groups {
        rows.push(Row::new(vec![g.name.clone()]).bold());
        for l in &g.lines {
            rows.push(Row::new(vec![
                l.subject.clone(),
                l.class_average.clone(),
                l.composition.clone(),
                l.average.clone(),
                l.coefficient.clone(),
                l.points.clone(),
                l.rank.clone(),
                l.appreciation.clone(),
                l.teacher.clone(),
            ]));
        }
    }
    rows.push(
        Row::new(vec![
            "TOTAL".into(),
            String::new(),
            String::new(),
            String::new(),
            b.total_coefficients.clone(),
            b.total_points.clone(),
        ])
        .bold()
        .shaded(),
    );
    doc.table(&cols, &header, &rows, 8.0);
    doc.space(8.0);

    // The summary.
    let mut summary = vec![
        Row::new(vec![
            "Moyenne de la période".into(),
            b.average.clone(),
            "Rang".into(),
            b.rank.clone(),
        ])
        .bold(),
    ];
    for (name, avg, rank) in &b.earlier {
        summary.push(Row::new(vec![
            format!("Moyenne du {name}"),
            avg.clone(),
            "Rang".into(),
            rank.clone(),
        ]));
    }
    if let Some((avg, rank)) = &b.annual {
        summary.push(
            Row::new(vec![
                "Moyenne annuelle".into(),
                avg.clone(),
                "Rang annuel".into(),
                rank.clone(),
            ])
            .bold(),
        );
    }
    summary.push(Row::new(vec![
        "Moyenne la plus haute".into(),
        b.class_highest.clone(),
        "la plus basse".into(),
        b.class_lowest.clone(),
    ]));
    summary.push(Row::new(vec![
        "Moyenne de la classe".into(),
        b.class_mean.clone(),
        "Appréciation".into(),
        b.appreciation.clone(),
    ]));
    summary.push(Row::new(vec![
        "Absences".into(),
        b.absences.clone(),
        "Retards".into(),
        b.lateness.clone(),
    ]));
    summary.push(Row::new(vec![
        "Sanctions".into(),
        b.sanctions.clone(),
        "Distinction".into(),
        b.distinction.clone(),
    ]));
    if !b.decision.is_empty() {
        summary.push(
            Row::new(vec![
                "Décision du conseil".into(),
                b.decision.clone(),
                String::new(),
                String::new(),
            ])
            .bold(),
        );
    }
    let cols = [
        Col {
            width: 120.0,
            align: Align::Left,
        },
        Col {
            width: w * 0.5 - 120.0,
            align: Align::Left,
        },
        Col {
            width: 80.0,
            align: Align::Left,
        },
        Col {
            width: w * 0.5 - 80.0,
            align: Align::Left,
        },
    ];
    doc.table(&cols, &[], &summary, 8.5);
    doc.space(6.0);
    doc.paragraph(
        &format!(
            "Observations du conseil de classe : {}",
            if b.remarks.is_empty() {
                "—"
            } else {
                &b.remarks
            }
        ),
        8.5,
        false,
        Align::Left,
    );
    doc.space(8.0);
    doc.ensure(60.0);
    let y = doc.y + 10.0;
    doc.text_in(
        x,
        half,
        y,
        8.5,
        true,
        Align::Center,
        "Le professeur principal",
    );
    doc.text_in(x + half, half, y, 8.5, true, Align::Center, "Le proviseur");
    doc.text_in(x, half, y + 12.0, 8.0, false, Align::Center, &b.principal);
    doc.y = y + 50.0;
    doc.paragraph(
        "Bulletin délivré en un seul exemplaire.",
        7.5,
        false,
        Align::Center,
    );
}

/// One bulletin as a PDF.
pub fn pdf(b: &Bulletin) -> Result<Vec<u8>, String> {
    let mut doc = Doc::new(&format!("{} — {}", b.title, b.pupil));
    draw(&mut doc, b);
    doc.finish()
}

/// Several bulletins in one PDF, each from a new page.
pub fn pdf_all(title: &str, bulletins: &[Bulletin]) -> Result<Vec<u8>, String> {
    let mut doc = Doc::new(title);
    for (i, b) in bulletins.iter().enumerate() {
        if i > 0 {
            doc.new_page();
        }
        draw(&mut doc, b);
    }
    doc.finish()
}
