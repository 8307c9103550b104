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

    pub fn code(&self) -> &'static str {
        self.lang.code()
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
                for (i, _) in text.match_indices(".t(\"") {
                    let rest = &text[i + 4..];
                    if let Some(end) = rest.find('"') {
                        let key = &rest[..end];
                        if !key.is_empty() && !f.contains_key(key) {
                            missing.push(format!("{}: {key}", path.display()));
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
    fn accept_language() {
        assert_eq!(Lang::from_accept_language("en-GB,en;q=0.9"), Lang::En);
        assert_eq!(Lang::from_accept_language("de-DE,fr;q=0.8"), Lang::Fr);
        assert_eq!(Lang::from_accept_language(""), Lang::Fr);
    }
}
