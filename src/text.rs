//! Text folding shared by every feature: names and column titles compared, and logins made,
//! without case or accents, whatever the keyboard that typed them. Never decides anything else.

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

    proptest::proptest! {
        /// Whatever is typed: only lower-case ASCII letters and digits come out.
        #[test]
        fn the_fold_is_ascii(s in "\\PC{0,40}") {
            let f = fold_alnum(&s);
            proptest::prop_assert!(f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
    }
}
