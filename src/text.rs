//! Text folding shared by every feature: names and column titles compared, and logins made,
//! without case or accents, whatever the keyboard that typed them; long texts shortened for a
//! list; French elision before a name (« d'Ama », « de Kodjo »). Never decides anything else.

use unicode_normalization::UnicodeNormalization;

/// `s` in lower-case ASCII letters and digits only: accents removed by Unicode decomposition
/// (É, Ï, Ç, Ñ, Ø… all fold), the letters of Ewe and Kabiyè that have no decomposition mapped to
/// their nearest Latin letter (Ɛ → e, Ɔ → o, Ŋ → n, Ɖ → d, Ƒ → f, Ɣ → g, Ʋ → v), ligatures
/// spelled out (Œ → oe, Æ → ae, ß → ss); everything else (spaces, punctuation) dropped.
pub fn fold_alnum(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfd() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        let spelled = match c {
            'Ɛ' | 'ɛ' => "e",
            'Ɔ' | 'ɔ' => "o",
            'Ŋ' | 'ŋ' => "n",
            'Ɖ' | 'ɖ' | 'Đ' | 'đ' | 'Ð' | 'ð' => "d",
            'Ƒ' | 'ƒ' => "f",
            'Ɣ' | 'ɣ' => "g",
            'Ʋ' | 'ʋ' => "v",
            'Ø' | 'ø' => "o",
            'Ł' | 'ł' => "l",
            'ı' => "i",
            'Œ' | 'œ' => "oe",
            'Æ' | 'æ' => "ae",
            'ß' => "ss",
            _ => "",
        };
        out.push_str(spelled);
    }
    out
}

/// Append `name` to French text `out`, eliding a closing « de » before a vowel: « Notes de »
/// then « Ama » makes « Notes d'Ama », then « Kodjo » « Notes de Kodjo ». `y` and `h` are
/// left alone (« de Yawo »; « de Hélène » is not decided by spelling).
pub fn push_after_de(out: &mut String, name: &str) {
    let vowel = name.nfd().next().is_some_and(|c| {
        matches!(c.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u')
            || matches!(c, 'Ɛ' | 'ɛ' | 'Ɔ' | 'ɔ')
    });
    let ends_de = out.ends_with(" de ") || out == "de " || out == "De ";
    if vowel && ends_de {
        out.truncate(out.len() - 3);
        out.push_str(if out.is_empty() { "D'" } else { "d'" });
    }
    out.push_str(name);
}

/// `template` with `{name}` replaced by `name`, « de » elided before a vowel (French text).
pub fn with_name(template: &str, name: &str) -> String {
    let mut out = String::with_capacity(template.len() + name.len());
    let mut rest = template;
    while let Some(i) = rest.find("{name}") {
        out.push_str(&rest[..i]);
        push_after_de(&mut out, name);
        rest = &rest[i + "{name}".len()..];
    }
    out.push_str(rest);
    out
}

/// `s` on one line (runs of white space made one space), cut at `max` characters (not bytes:
/// never inside a letter) with an ellipsis when it was longer: a teaser on a list.
pub fn shorten(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

/// A cell a spreadsheet will not run: text that begins like a formula (`=`, `+`, `-`, `@`, a
/// tab or a carriage return — `=HYPERLINK(…)` in a pupil's name) gets a leading `'`, which
/// Excel and LibreOffice read as "this is text". Every CSV the box writes passes its cells here.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// What [`spreadsheet_safe`] did, undone when a file the box wrote comes back in an import.
pub fn unquote_spreadsheet(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

/// A CSV file as the school's spreadsheets open it directly: `;` between cells, UTF-8 with a
/// BOM (so Excel on Windows reads the accents), every cell [`spreadsheet_safe`].
pub fn csv<R, C>(rows: R) -> Vec<u8>
where
    R: IntoIterator<Item = C>,
    C: IntoIterator,
    C::Item: AsRef<str>,
{
    let mut w = ::csv::WriterBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    for row in rows {
        let cells: Vec<String> = row
            .into_iter()
            .map(|c| spreadsheet_safe(c.as_ref()).into_owned())
            .collect();
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&cells);
    }
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accent_folds_and_the_ewe_letters_too() {
        assert_eq!(fold_alnum("Ïboh"), "iboh");
        assert_eq!(fold_alnum("AGBÉKO"), "agbeko");
        assert_eq!(fold_alnum("Tchalla-Essö"), "tchallaesso");
        assert_eq!(fold_alnum("Ɛdem Ŋɔnɔ"), "edemnono");
        assert_eq!(fold_alnum("Ÿvonne Ñañez Çağla"), "yvonnenanezcagla");
        assert_eq!(fold_alnum("Œuvre d'Ævar"), "oeuvredaevar");
        assert_eq!(fold_alnum("Date de naissance"), "datedenaissance");
        assert_eq!(fold_alnum("N° matricule"), "nmatricule");
    }

    #[test]
    fn a_long_text_is_cut_between_letters_on_one_line() {
        assert_eq!(
            shorten("Exercices 3 et 4\n  page 12", 40),
            "Exercices 3 et 4 page 12"
        );
        assert_eq!(shorten("Éééééé", 6), "Éééééé");
        assert_eq!(shorten("Éééééé", 4), "Ééé…");
        assert_eq!(shorten("Lire le texte et répondre", 9), "Lire le…");
        assert_eq!(shorten("", 5), "");
    }

    #[test]
    fn no_cell_the_box_writes_is_a_formula() {
        let bytes = csv([
            vec!["Nom", "Note"],
            vec!["=HYPERLINK(\"http://x\";\"clic\")", "12,5"],
            vec!["+228 90 12 34 56", "-1"],
            vec!["@SUM(A1)", "\tx"],
            vec!["KOFFI Ama", "abs"],
        ]);
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(text.starts_with('\u{feff}'));
        for line in text.trim_start_matches('\u{feff}').lines() {
            for cell in line.split(';') {
                let cell = cell.trim_start_matches('"');
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t']),
                    "{cell:?} in {text}"
                );
            }
        }
        assert!(text.contains("KOFFI Ama;abs"));
        assert_eq!(unquote_spreadsheet("'=SOMME(A1)"), "=SOMME(A1)");
        assert_eq!(unquote_spreadsheet("'Ama"), "'Ama");
        assert_eq!(unquote_spreadsheet(&spreadsheet_safe("-3")), "-3");
    }

    proptest::proptest! {
        /// Whatever is typed: only lower-case ASCII letters and digits come out.
        #[test]
        fn the_fold_is_ascii(s in "\\PC{0,40}") {
            let f = fold_alnum(&s);
            proptest::prop_assert!(f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
    }

    #[test]
    fn de_is_elided_before_a_vowel_only() {
        assert_eq!(
            with_name("Notes de {name}", "Ama TCHALLA"),
            "Notes d'Ama TCHALLA"
        );
        assert_eq!(with_name("Notes de {name}", "Élodie"), "Notes d'Élodie");
        assert_eq!(with_name("Notes de {name}", "Kodjo"), "Notes de Kodjo");
        assert_eq!(with_name("Notes de {name}", "Yawo"), "Notes de Yawo");
        assert_eq!(with_name("{name}'s marks", "Ama"), "Ama's marks");
        assert_eq!(
            with_name("Retard de {name} : 5 min", "Ɔkɔ"),
            "Retard d'Ɔkɔ : 5 min"
        );
    }
}
