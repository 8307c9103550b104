//! Import benchmark (docs/BENCHMARKS.md): a 1,000-pupil file (CSV and XLSX) into a school with 24
//! classes, on a real SQLite file. Dry run, apply, re-import (every line unchanged) and the
//! matching parents file. Run with `cargo bench --bench imports`; `BENCH_PUPILS` changes the
//! size. Prints figures (time, and the process's peak memory during each step next to its
//! memory before it); asserts nothing about time.

mod common;

use std::time::Instant;

use common::{env_num, peak_mib, reset_peak, rss_mib};
use kekeli::imports::{self, Kind, Options};

/// Memory around a step: (resident before, peak during), in MiB.
struct Mem(f64, f64);

impl std::fmt::Display for Mem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peak {:>5.1} MiB (from {:>5.1})", self.1, self.0)
    }
}

fn opts(dry_run: bool) -> Options {
    Options {
        dry_run,
        confirm_departures: false,
        today: "2026-11-23".into(),
        country_code: "228".into(),
        actor: None,
        grantor: None,
        origin: "bench".into(),
        file_name: "bench.csv".into(),
    }
}

const SURNAMES: &[&str] = &[
    "AGBEKO",
    "AMEGAH",
    "ATSOU",
    "DOGBE",
    "GBEDEMAH",
    "KOFFI",
    "MENSAH",
    "LAWSON",
    "ADJOVI",
    "KPODAR",
    "AKAKPO",
    "EDOH",
    "SOSSOU",
    "TCHALLA",
    "BODJONA",
    "GNASSINGBE",
    "KODJO",
    "AWUKU",
];
const FIRST: &[&str] = &[
    "Akossiwa", "Kossi", "Yawa", "Komlan", "Essi", "Kodjo", "Afi", "Edem", "Mawuena", "Sélom",
    "Ama", "Yao", "Dela", "Kokou", "Abla", "Mawunyo", "Elom", "Enyonam",
];

fn main() {
    let pupils = env_num("BENCH_PUPILS", 1000) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kekeli::config::Config {
        data_dir: dir.path().join("data"),
        school_code: "BENCH".into(),
        ..Default::default()
    };
    let db = kekeli::init(&config).expect("init").db;
    // (time, peak memory during the step, memory before it, report)
    let run = |kind: Kind, bytes: &[u8], dry: bool| {
        let before = rss_mib();
        reset_peak();
        let t = Instant::now();
        let r = imports::import_blocking(&db, kind, bytes, &opts(dry)).expect("import");
        let elapsed = t.elapsed();
        let peak = peak_mib();
        assert!(r.errors.is_empty(), "{:?}", r.errors.first());
        (elapsed, Mem(before, peak), r)
    };
    let mut classes = String::from("Classe;Niveau;Série\n");
    let levels = [("2nde", "A4"), ("2nde", "CD"), ("1ère", "D"), ("Tle", "G2")];
    let mut names = Vec::new();
    for (level, serie) in levels {
        for n in 1..=6 {
            let name = format!("{level} {serie} {n}");
            classes.push_str(&format!("{name};{level};{serie}\n"));
            names.push(name);
        }
    }
    run(Kind::Classes, classes.as_bytes(), false);
    let mut csv = String::from("Matricule;Nom;Prénoms;Sexe;Date de naissance;Classe;Téléphone\n");
    let mut parents = String::from("Matricule de l'élève;Nom;Prénoms;Téléphone;Lien\n");
    let mut rows: Vec<Vec<String>> = Vec::new();
    for i in 0..pupils {
        let (s, f) = (SURNAMES[i % SURNAMES.len()], FIRST[(i / 3) % FIRST.len()]);
        let g = FIRST[(i / 7) % FIRST.len()];
        let m = format!("2026-{i:05}");
        let class = &names[i % names.len()];
        let birth = format!("{:02}/{:02}/20{:02}", 1 + i % 28, 1 + i % 12, 7 + i % 4);
        let phone = format!(
            "90 {:02} {:02} {:02}",
            i / 10000 % 100,
            i / 100 % 100,
            i % 100
        );
        csv.push_str(&format!(
            "{m};{s};{f} {g};{};{birth};{class};{phone}\n",
            if i % 2 == 0 { "F" } else { "M" }
        ));
        parents.push_str(&format!(
            "{m};{s};{g} {f};91 {:02} {:02} {:02};mère\n",
            i / 10000 % 100,
            i / 100 % 100,
            i % 100
        ));
        rows.push(vec![m, s.into(), format!("{f} {g}"), class.clone()]);
    }
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["Matricule", "Nom", "Prénoms", "Classe"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).expect("head");
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            sheet.write_string(r as u32 + 1, c as u16, v).expect("cell");
        }
    }
    let xlsx = book.save_to_buffer().expect("xlsx");

    println!(
        "imports: {pupils} pupils in {} classes ({} KB CSV, {} KB XLSX)",
        names.len(),
        csv.len() / 1024,
        xlsx.len() / 1024
    );
    let (t, m, r) = run(Kind::Pupils, csv.as_bytes(), true);
    println!(
        "  pupils dry run (preview)        {:>8.2} s  {m}  ({} to create)",
        t.as_secs_f64(),
        r.lines.len()
    );
    let (t, m, r) = run(Kind::Pupils, csv.as_bytes(), false);
    println!(
        "  pupils apply                    {:>8.2} s  {m}  ({})",
        t.as_secs_f64(),
        r.summary().render(Default::default())
    );
    let (t, m, r) = run(Kind::Pupils, csv.as_bytes(), false);
    println!(
        "  pupils re-import (unchanged)    {:>8.2} s  {m}  ({})",
        t.as_secs_f64(),
        r.summary().render(Default::default())
    );
    let (t, m, r) = run(Kind::Pupils, &xlsx, false);
    println!(
        "  pupils from XLSX (unchanged)    {:>8.2} s  {m}  ({})",
        t.as_secs_f64(),
        r.summary().render(Default::default())
    );
    let (t, m, r) = run(Kind::Parents, parents.as_bytes(), false);
    println!(
        "  parents apply                   {:>8.2} s  {m}  ({})",
        t.as_secs_f64(),
        r.summary().render(Default::default())
    );
    let (t, m, r) = run(Kind::Parents, parents.as_bytes(), false);
    println!(
        "  parents re-import (unchanged)   {:>8.2} s  {m}  ({})",
        t.as_secs_f64(),
        r.summary().render(Default::default())
    );
}
