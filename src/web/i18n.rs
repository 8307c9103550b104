//! The i18n catalog: every user-facing string is looked up by key in `assets/locales/<lang>.toml`.
//! French is the reference; a key missing from another language falls back to French, never to the key.

use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Fr,
    En,
}

impl Lang {
    /// Does `n` take the singular? French: 0 and 1 (« 0 absence », « 1 compte »); English:
    /// only 1.
    pub fn singular(self, n: i64) -> bool {
        match self {
            Lang::Fr => n.abs() <= 1,
            Lang::En => n.abs() == 1,
        }
    }

    pub const ALL: [Lang; 2] = [Lang::Fr, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().get(..2)?.to_ascii_lowercase().as_str() {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first supported language of an `Accept-Language` header, French otherwise.
    pub fn from_accept_language(header: &str) -> Lang {
        header
            .split(',')
            .filter_map(|part| Lang::parse(part.split(';').next().unwrap_or("")))
            .next()
            .unwrap_or_default()
    }
}

type Catalog = HashMap<String, String>;

fn parse(source: &str) -> Catalog {
    // The catalogs are compiled in; a broken one is caught by the tests below.
    let table: toml::Table = toml::from_str(source).unwrap_or_default();
    let mut out = HashMap::new();
    flatten(&table, "", &mut out);
    out
}

fn flatten(t: &toml::Table, prefix: &str, out: &mut Catalog) {
    for (k, v) in t {
        let key = format!("{prefix}{k}");
        match v {
            toml::Value::Table(inner) => flatten(inner, &format!("{key}."), out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

static FR: LazyLock<Catalog> =
    LazyLock::new(|| parse(include_str!("../../assets/locales/fr.toml")));
static EN: LazyLock<Catalog> =
    LazyLock::new(|| parse(include_str!("../../assets/locales/en.toml")));

/// A translator for one language, handed to every template.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn new(lang: Lang) -> Tr {
        Tr { lang }
    }

    pub fn t(&self, key: &str) -> &'static str {
        let catalog: &'static Catalog = match self.lang {
            Lang::Fr => &FR,
            Lang::En => &EN,
        };
        catalog
            .get(key)
            .or_else(|| FR.get(key))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The catalog's `{key}.one` or `{key}.other` by this language's rule for `n` (French:
    /// 0 and 1 take the singular, « 1 compte », « 0 absence »; English: only 1), with `{n}`
    /// replaced by the number.
    pub fn n(&self, key: &str, n: impl std::borrow::Borrow<usize>) -> String {
        let n = *n.borrow();
        let one = self.lang.singular(n as i64);
        self.t(&format!("{key}.{}", if one { "one" } else { "other" }))
            .replace("{n}", &n.to_string())
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// `m` in this language: its catalog text with each `{name}` replaced by its value.
    pub fn msg(&self, m: &Msg) -> String {
        m.render(*self)
    }
}

/// A message for a person, named by its catalog key with the values it mentions, and put into
/// words only where the answer is made — in the reader's language. Errors, refusals and the
/// messages shown after a redirect are `Msg`s, so no handler writes a sentence in code.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    key: &'static str,
    args: Vec<(&'static str, Arg)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Text(String),
    Msg(Msg),
    List(Vec<Msg>),
}

impl Msg {
    pub fn new(key: &'static str) -> Msg {
        Msg {
            key,
            args: Vec::new(),
        }
    }

    /// The value that replaces `{name}` in the text (a name, a number, a date as written).
    pub fn arg(mut self, name: &'static str, value: impl std::fmt::Display) -> Msg {
        self.args.push((name, Arg::Text(value.to_string())));
        self
    }

    /// A message that replaces `{name}`, put into words in the same language as this one.
    pub fn part(mut self, name: &'static str, value: Msg) -> Msg {
        self.args.push((name, Arg::Msg(value)));
        self
    }

    /// Messages that replace `{name}`, one after the other, separated by « ; ».
    pub fn list(mut self, name: &'static str, values: Vec<Msg>) -> Msg {
        self.args.push((name, Arg::List(values)));
        self
    }

    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The text in `tr`'s language. One pass over the catalog text: a value that itself
    /// contains `{…}` (a name typed by someone) is never replaced again.
    pub fn render(&self, tr: Tr) -> String {
        let template = tr.t(self.key);
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            // `{name|one|other}`: the word for the number `name`, by the language's rule.
            let counted = after.find('}').and_then(|close| {
                let mut parts = after[..close].split('|');
                let (name, one, other) = (parts.next()?, parts.next()?, parts.next()?);
                let n = self
                    .args
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, v)| match v {
                        Arg::Text(s) => s.parse::<i64>().ok(),
                        _ => None,
                    })?;
                Some((close, if tr.lang.singular(n) { one } else { other }))
            });
            if let Some((close, word)) = counted {
                out.push_str(word);
                rest = &after[close + 1..];
                continue;
            }
            let value = after.find('}').and_then(|close| {
                let name = &after[..close];
                self.args
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (close, v))
            });
            match value {
                Some((close, Arg::Text(s))) => {
                    if tr.lang == Lang::Fr {
                        crate::text::push_after_de(&mut out, s);
                    } else {
                        out.push_str(s);
                    }
                    rest = &after[close + 1..];
                }
                Some((close, Arg::Msg(m))) => {
                    out.push_str(&m.render(tr));
                    rest = &after[close + 1..];
                }
                Some((close, Arg::List(ms))) => {
                    let parts: Vec<String> = ms.iter().map(|m| m.render(tr)).collect();
                    out.push_str(&parts.join(" ; "));
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_parse_and_have_the_same_keys() {
        let fr: toml::Table =
            toml::from_str(include_str!("../../assets/locales/fr.toml")).expect("fr");
        let en: toml::Table =
            toml::from_str(include_str!("../../assets/locales/en.toml")).expect("en");
        let (mut f, mut e) = (HashMap::new(), HashMap::new());
        flatten(&fr, "", &mut f);
        flatten(&en, "", &mut e);
        let mut missing_en: Vec<_> = f.keys().filter(|k| !e.contains_key(*k)).collect();
        let mut missing_fr: Vec<_> = e.keys().filter(|k| !f.contains_key(*k)).collect();
        missing_en.sort();
        missing_fr.sort();
        assert!(missing_en.is_empty(), "missing in en: {missing_en:?}");
        assert!(missing_fr.is_empty(), "missing in fr: {missing_fr:?}");
        assert!(f.values().all(|v| !v.is_empty()));
        // A value a message names must be named in every language.
        let names = |text: &str| {
            let mut out: Vec<String> = text
                .split('{')
                .skip(1)
                .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_string()))
                .filter(|n| {
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .collect();
            out.sort();
            out.dedup();
            out
        };
        let mut differ: Vec<&String> = f
            .iter()
            .filter(|(k, v)| e.get(*k).is_some_and(|en| names(en) != names(v)))
            .map(|(k, _)| k)
            .collect();
        differ.sort();
        assert!(
            differ.is_empty(),
            "placeholders differ between fr and en: {differ:?}"
        );
    }

    #[test]
    fn every_key_used_in_templates_and_code_exists() {
        let fr: toml::Table =
            toml::from_str(include_str!("../../assets/locales/fr.toml")).expect("fr");
        let mut f = HashMap::new();
        flatten(&fr, "", &mut f);
        let mut missing = Vec::new();
        for dir in ["assets/templates", "src"] {
            for path in walk(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)) {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let uses = text
                    .match_indices(".t(\"")
                    .map(|(i, _)| i + 4)
                    .chain(text.match_indices("Msg::new(\"").map(|(i, _)| i + 9))
                    .chain(text.match_indices("AppError::bad(\"").map(|(i, _)| i + 15))
                    .chain(
                        text.match_indices("AppError::conflict(\"")
                            .map(|(i, _)| i + 20),
                    )
                    // Keys handed around bare: "<feature>.msg.<name>", ".status.", ".field.".
                    .chain(
                        [".msg.", ".status.", ".field."]
                            .iter()
                            .flat_map(|m| text.match_indices(m).map(|(i, _)| i))
                            .filter_map(|i| text[..i].rfind('"').map(|q| q + 1))
                            .filter(|&q| {
                                text[q..]
                                    .split('"')
                                    .next()
                                    .filter(|k| k.starts_with(|c: char| c.is_ascii_lowercase()))
                                    .is_some_and(|k| {
                                        k.chars().all(|c| {
                                            c.is_ascii_lowercase()
                                                || c == '.'
                                                || c == '_'
                                                || c.is_ascii_digit()
                                        })
                                    })
                            }),
                    );
                for i in uses {
                    let rest = &text[i..];
                    if let Some(end) = rest.find('"') {
                        let key = &rest[..end];
                        if !key.is_empty() && !f.contains_key(key) {
                            missing.push(format!("{}: {key}", path.display()));
                        }
                    }
                }
                // Counted texts: both forms.
                for (i, _) in text.match_indices(".n(\"") {
                    let rest = &text[i + 4..];
                    if let Some(end) = rest.find('"') {
                        for form in ["one", "other"] {
                            let key = format!("{}.{form}", &rest[..end]);
                            if !f.contains_key(&key) {
                                missing.push(format!("{}: {key}", path.display()));
                            }
                        }
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys used but not in fr.toml: {missing:#?}"
        );
    }

    /// Where French may still be written in code, and exactly how much: documents the school
    /// prints in French (bulletins, procès-verbal, attestation), DOMAIN.md's reference lists
    /// (séries, appreciation bands, the competence framework), the command line, the
    /// SMS to families, the column titles of import files and a few notes of an import's lines,
    /// and internal errors. A handler's refusal or confirmation, an import's error
    /// on a line, is a [`Msg`]; a new sentence in code fails here — put it in the catalog (and a
    /// count that is too high fails too: lower it when a sentence moves to the catalog).
    const FRENCH_IN_CODE: &[(&str, usize, &str)] = &[
        ("main.rs", 72, "the command line (French only for now)"),
        (
            "sync/usb.rs",
            17,
            "the verdicts on USB bundles, on the command line (French only, like the sync's errors)",
        ),
        (
            "backup/check.rs",
            51,
            "the verdicts of kekeli verify and kekeli restore, on the command line",
        ),
        (
            "backup/make.rs",
            12,
            "why a backup failed: the command line, and the run's record on the technician's page",
        ),
        (
            "backup/key.rs",
            1,
            "a mistyped recovery key, on the command line",
        ),
        (
            "config.rs",
            6,
            "configuration errors at start, on the command line",
        ),
        (
            "bulletins/document.rs",
            20,
            "the bulletin, an official French document",
        ),
        (
            "bulletins/mod.rs",
            3,
            "start-up checks of the configured logo",
        ),
        (
            "competences/mod.rs",
            25,
            "the national framework (data) and its attestation (document)",
        ),
        (
            "grades/council.rs",
            12,
            "the procès-verbal (PDF and CSV), an official document",
        ),
        (
            "grades/compute.rs",
            2,
            "DOMAIN.md's default appreciation bands (school data)",
        ),
        ("grades/store.rs", 3, "typed codes of a mark, a log line"),
        (
            "grades/marks.rs",
            1,
            "the grid's label for a mark not given",
        ),
        ("grades/sheet.rs", 4, "the grid file's column titles"),
        ("grades/import.rs", 2, "the marks file's column titles"),
        (
            "people/import.rs",
            6,
            "the people files' column titles; a line's changes",
        ),
        (
            "school/import.rs",
            3,
            "column titles; a line's notes (room, subject created)",
        ),
        ("timetable/import.rs", 1, "a line's note (room created)"),
        ("school/mod.rs", 6, "DOMAIN.md's séries (school data)"),
        ("discipline/store.rs", 2, "the audit trail's lines"),
        (
            "attendance/store.rs",
            3,
            "the SMS to families, in the school's language",
        ),
        ("net/tls.rs", 1, "the local authority's certificate name"),
        ("files/mod.rs", 1, "an internal error"),
        ("db/registry.rs", 1, "a schema check at start"),
        (
            "sync/mod.rs",
            14,
            "the sync's errors, on the command line, in the runs' record and on the technician's page",
        ),
        (
            "sync/client.rs",
            12,
            "the link's errors, in the same record",
        ),
        (
            "sync/files.rs",
            1,
            "a file the hub gave back altered, in the same record",
        ),
        (
            "db/replica.rs",
            9,
            "why a received change was refused, kept in sync_refused for the technician",
        ),
        ("db/mod.rs", 1, "an internal error"),
        (
            "pdf/mod.rs",
            1,
            "a picture's decoding error, wrapped in a message",
        ),
    ];

    fn looks_french(lit: &str) -> bool {
        const ACCENTS: &str = "àâçéèêëîïôûùüÿœÀÂÇÉÈÊËÎÏÔÛÙÜŸ";
        const WORDS: &[&str] = &[
            "le",
            "la",
            "les",
            "des",
            "une",
            "un",
            "du",
            "pour",
            "est",
            "pas",
            "dans",
            "avec",
            "sur",
            "vous",
            "Choisissez",
            "Rien",
        ];
        let words: Vec<&str> = lit.split_whitespace().collect();
        if words.len() < 2 {
            return false;
        }
        if ["SELECT", "INSERT", "UPDATE", "DELETE", "WHERE", "FROM"]
            .iter()
            .any(|k| words.contains(k))
        {
            return false;
        }
        lit.chars().any(|c| ACCENTS.contains(c))
            || words.iter().any(|w| {
                let w = w.trim_matches(|c: char| !c.is_alphabetic());
                WORDS.contains(&w)
            })
    }

    #[test]
    fn handlers_write_no_sentence_in_code() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut over = Vec::new();
        for path in walk(root.clone()) {
            let rel = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if !rel.ends_with(".rs") || rel.starts_with("demo/") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let found: Vec<String> = crate::db::owners::rust_literals(&text)
                .into_iter()
                .filter(|(n, _)| {
                    // Words for logs and the developer, not for people.
                    let line = lines.get(n.saturating_sub(1)).copied().unwrap_or("");
                    !line.trim_start().starts_with("#[error")
                        && ![
                            "tracing::",
                            ".context(",
                            "Internal(",
                            "DbError::Schema(",
                            "panic!",
                        ]
                        .iter()
                        .any(|s| line.contains(s))
                })
                .map(|(_, lit)| lit)
                .filter(|l| looks_french(l))
                .collect();
            let allowed = FRENCH_IN_CODE
                .iter()
                .find(|(f, ..)| *f == rel)
                .map_or(0, |(_, n, _)| *n);
            if found.len() != allowed {
                over.push(format!(
                    "{rel}: {} found, {allowed} counted: {found:#?}",
                    found.len()
                ));
            }
        }
        assert!(
            over.is_empty(),
            "sentences written in code, not in assets/locales (or fewer than counted: lower \
             the count): {over:#?}"
        );
    }

    fn walk(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    out.extend(walk(p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    #[test]
    fn a_message_is_worded_in_the_readers_language_and_values_are_not_read_twice() {
        let m = Msg::new("error.form_unreadable");
        assert_eq!(
            m.render(Tr::new(Lang::Fr)),
            Tr::new(Lang::Fr).t("error.form_unreadable")
        );
        assert_ne!(m.render(Tr::new(Lang::En)), m.render(Tr::new(Lang::Fr)));
        let late = Msg::new("attendance.msg.late_minutes_missing").arg("name", "{name} Ama");
        let fr = late.render(Tr::new(Lang::Fr));
        assert!(fr.contains("{name} Ama"), "{fr}");
        assert!(!fr.contains("{name} Ama Ama"));
    }

    #[test]
    fn counted_texts_take_the_plural_by_the_languages_rule() {
        let (fr, en) = (Tr::new(Lang::Fr), Tr::new(Lang::En));
        assert_eq!(
            fr.n("portal.today.changes", 0),
            "0 changement dans l'emploi du temps"
        );
        assert_eq!(
            fr.n("portal.today.changes", 1),
            "1 changement dans l'emploi du temps"
        );
        assert_eq!(
            fr.n("portal.today.changes", 3),
            "3 changements dans l'emploi du temps"
        );
        assert_eq!(en.n("portal.today.changes", 1), "1 timetable change");
        assert_eq!(en.n("portal.today.changes", 0), "0 timetable changes");
        // In messages: `{name|one|other}` follows the number `name`.
        let saved = |a: i64, l: i64| {
            Msg::new("attendance.saved")
                .arg("absent", a)
                .arg("late", l)
                .render(fr)
        };
        assert_eq!(saved(1, 0), "Appel enregistré : 1 absent, 0 retard.");
        assert_eq!(saved(3, 2), "Appel enregistré : 3 absents, 2 retards.");
        let issued = Msg::new("bulletins.msg.issued")
            .arg("issued", 1)
            .arg("new", 2)
            .arg("unchanged", 0);
        assert_eq!(
            issued.render(en),
            "1 bulletin issued, 2 new versions, 0 unchanged."
        );
    }

    #[test]
    fn accept_language() {
        assert_eq!(Lang::from_accept_language("en-GB,en;q=0.9"), Lang::En);
        assert_eq!(Lang::from_accept_language("de-DE,fr;q=0.8"), Lang::Fr);
        assert_eq!(Lang::from_accept_language(""), Lang::Fr);
    }
}
