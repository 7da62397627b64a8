//! `Email`: an email address, normalized once and checked for a plausible shape.
//! Identities, business keys and assignees are all emails.
//!
//! Two addresses that a person cannot tell apart must be one identity or refused, or a
//! token for a lookalike (`Kate@…` written with the Kelvin sign) acts as someone
//! else. The rule:
//!
//! 1. Surrounding whitespace goes.
//! 2. Refused: invisible characters (zero-width spaces and joiners, bidirectional
//!    controls, soft hyphens, variation selectors, fillers: Unicode's default
//!    ignorables), control characters, and any text that NFKC would change:
//!    compatibility forms (fullwidth letters, ligatures, superscripts, the long s),
//!    characters that stand for another (the Kelvin sign for `K`, the Ångström sign
//!    for `Å`), and letters written as a base and a combining mark instead of as one
//!    character. An address is thus one spelling, never silently rewritten into
//!    another.
//! 3. The domain is ASCII: letters, digits and hyphens in dot-separated labels. An
//!    internationalized domain is given in its ASCII (`xn--`) form, which no one
//!    mistakes for another.
//! 4. The local part is ASCII (`atext` and dots), or one of the accented Latin
//!    letters of Latin-1 and Latin Extended-A (`À`–`ž`), except those that look like
//!    another letter (`İ`, `ı`, `ĸ`, `Ð`, `ð`). Every other script is refused, so no
//!    label mixes scripts and no Cyrillic or Greek letter stands in for a Latin one.
//! 5. Letters are lowercased: ASCII ones, and the accepted Latin ones, whose lowercase
//!    is a single letter of the same accepted set. No other case mapping runs, so no
//!    character becomes an ASCII letter on the way (as `K`, the Kelvin sign, would
//!    become `k` under Unicode's rules).

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// The longest address SMTP allows (RFC 5321: 254 octets in a path).
pub const MAX_LEN: usize = 254;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("is not an email address")]
    Invalid,
    #[error("contains an invisible or control character ({})", code_point(*.0))]
    Invisible(char),
    #[error(
        "contains {}, a compatibility form of another character: write the plain character",
        code_point(*.0)
    )]
    Compatibility(char),
    #[error("is not in Unicode form NFKC: write each accented letter as one character")]
    NotNormalized,
    #[error(
        "contains {}, which addresses may not hold: the local part takes ASCII and the accented Latin letters of Latin-1 and Latin Extended-A, except lookalikes",
        code_point(*.0)
    )]
    NotAccepted(char),
    #[error("has a domain that is not ASCII: write an internationalized domain in its xn-- form")]
    DomainNotAscii,
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// Characters a person does not see: Unicode's Default_Ignorable_Code_Point set.
fn invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    ) || c.is_control()
}

/// The non-ASCII letters a local part may hold (rule 4). Those with compatibility
/// forms (`ĳ`, `ŀ`, `ŉ`, `ſ`) are in the ranges but refused by the NFKC check first.
fn accepted_latin(c: char) -> bool {
    matches!(c as u32, 0x00C0..=0x017F) && !matches!(c, '×' | '÷' | 'İ' | 'ı' | 'ĸ' | 'Ð' | 'ð')
}

/// Whether NFKC changes `text`: `Compatibility` naming the first character it
/// changes on its own, else `NotNormalized` (a base and a combining mark).
fn nfkc_problem(text: &str) -> Option<EmailError> {
    if text.nfkc().eq(text.chars()) {
        return None;
    }
    Some(
        text.chars()
            .find(|c| !std::iter::once(*c).nfkc().eq(std::iter::once(*c)))
            .map_or(EmailError::NotNormalized, EmailError::Compatibility),
    )
}

impl Email {
    /// Normalizes and checks by the rule above: one `@`, a local part of at most 64
    /// characters, a domain of dot-separated ASCII labels.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(EmailError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        if let Some(c) = text.chars().find(|c| invisible(*c)) {
            return Err(EmailError::Invisible(c));
        }
        if let Some(problem) = nfkc_problem(text) {
            return Err(problem);
        }
        let (local, domain) = text.split_once('@').ok_or(EmailError::Invalid)?;
        if let Some(c) = local.chars().find(|c| !c.is_ascii() && !accepted_latin(*c)) {
            return Err(EmailError::NotAccepted(c));
        }
        if !domain.is_ascii() {
            return Err(EmailError::DomainNotAscii);
        }
        let local_ok = !local.is_empty()
            && local.chars().count() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| {
                c.is_ascii_alphanumeric() || accepted_latin(c) || "!#$%&'*+-/=?^_`{|}~.".contains(c)
            });
        let domain_ok = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(EmailError::Invalid);
        }
        // Each accepted letter lowercases to one accepted letter (rule 5).
        let lowered: String = text
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_ascii_lowercase()
                } else {
                    let mut lower = c.to_lowercase();
                    match (lower.next(), lower.next()) {
                        (Some(l), None) if accepted_latin(l) => l,
                        _ => c,
                    }
                }
            })
            .collect();
        Ok(Self(lowered))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        assert_eq!(
            Email::parse("  Ann.Lee@Example.COM ").unwrap().as_str(),
            "ann.lee@example.com"
        );
    }

    #[test]
    fn accepts_common_shapes() {
        for ok in [
            "a@b",
            "user+tag@example.com",
            "x_y@sub.example.co.uk",
            "jörg@example.de",
            "jörg@xn--mller-kva.de",
            "łukasz.żółć@example.pl",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_email() {
        for bad in [
            "",
            "   ",
            "no-at",
            "@example.com",
            "a@",
            "a@@b",
            "a b@c.d",
            "a@b..c",
            ".a@b",
            "a.@b",
            "a@-b.c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Email::parse(&format!("{}@b.c", "a".repeat(300))),
            Err(EmailError::TooLong)
        );
    }

    /// One spelling per address: an accented letter written as a base and a
    /// combining mark is refused, not merged; accepted Latin letters lowercase
    /// within the set.
    #[test]
    fn one_spelling_per_address() {
        let composed = Email::parse("j\u{f6}rg@example.de").unwrap();
        assert_eq!(
            Email::parse("jo\u{308}rg@example.de"),
            Err(EmailError::NotNormalized)
        );
        assert_eq!(Email::parse("JÖRG@Example.DE").unwrap(), composed);
    }

    #[test]
    fn the_kelvin_sign_is_refused_not_lowercased_into_k() {
        let kelvin = "\u{212A}ate@example.com";
        assert_eq!(
            Email::parse(kelvin),
            Err(EmailError::Compatibility('\u{212A}'))
        );
        assert_ne!(
            Email::parse(kelvin).ok(),
            Email::parse("kate@example.com").ok()
        );
        // The Ångström sign likewise (even NFC would turn it into Å).
        assert_eq!(
            Email::parse("\u{212B}sa@example.com"),
            Err(EmailError::Compatibility('\u{212B}'))
        );
    }

    #[test]
    fn dotted_and_dotless_i_are_refused() {
        for (bad, c) in [
            ("\u{130}van@example.com", '\u{130}'),
            ("\u{131}van@example.com", '\u{131}'),
        ] {
            assert_eq!(
                Email::parse(bad),
                Err(EmailError::NotAccepted(c)),
                "{bad:?}"
            );
        }
        // Nor written as I and a combining dot.
        assert!(Email::parse("I\u{307}van@example.com").is_err());
        // And in the domain.
        assert!(Email::parse("ivan@l\u{131}nk.com").is_err());
    }

    #[test]
    fn fullwidth_forms_are_refused() {
        for bad in [
            "\u{FF41}nn@example.com",
            "ann\u{FF20}example.com",
            "ann@example\u{FF0E}com",
            "ann@\u{FF45}xample.com",
        ] {
            assert!(
                matches!(Email::parse(bad), Err(EmailError::Compatibility(_))),
                "{bad:?}: {:?}",
                Email::parse(bad)
            );
        }
    }

    #[test]
    fn zero_width_and_other_invisible_characters_are_refused() {
        for (bad, c) in [
            ("an\u{200D}n@example.com", '\u{200D}'),
            ("an\u{200B}n@example.com", '\u{200B}'),
            ("an\u{200C}n@example.com", '\u{200C}'),
            ("ann@exa\u{2060}mple.com", '\u{2060}'),
            ("\u{FEFF}ann@example.com", '\u{FEFF}'),
            ("ann\u{AD}@example.com", '\u{AD}'),
            ("ann@example.com\u{202E}", '\u{202E}'),
            ("a\u{3164}nn@example.com", '\u{3164}'),
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Invisible(c)), "{bad:?}");
        }
    }

    #[test]
    fn mixed_scripts_and_other_scripts_are_refused() {
        // A Cyrillic а (U+0430) among Latin letters, in the local part and the domain.
        assert_eq!(
            Email::parse("p\u{430}ypal@example.com"),
            Err(EmailError::NotAccepted('\u{430}'))
        );
        assert_eq!(
            Email::parse("ann@p\u{430}ypal.com"),
            Err(EmailError::DomainNotAscii)
        );
        // A Greek ο (U+03BF), and a whole Cyrillic local part.
        assert!(Email::parse("b\u{3bf}b@example.com").is_err());
        assert!(Email::parse("\u{430}\u{441}\u{435}@example.com").is_err());
        // A lookalike of ASCII among the Latin letters: kra.
        assert!(Email::parse("\u{138}ate@example.com").is_err());
    }

    #[test]
    fn the_message_names_the_character() {
        let message = Email::parse("\u{212A}ate@example.com")
            .unwrap_err()
            .to_string();
        assert!(message.contains("U+212A"), "{message}");
    }
}
