//! `Email`: an email address, normalized once (trimmed, lowercased) and checked for
//! a plausible shape. Identities, business keys and assignees are all emails.

use std::fmt;

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
}

impl Email {
    /// Trims and lowercases, then checks: one `@`, a local part of at most 64
    /// characters, a domain of dot-separated labels (letters, digits, hyphens), no
    /// spaces or control characters.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let normalized = raw.trim().to_lowercase();
        if normalized.is_empty() {
            return Err(EmailError::Empty);
        }
        if normalized.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = normalized.split_once('@').ok_or(EmailError::Invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let domain_ok = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(EmailError::Invalid);
        }
        Ok(Self(normalized))
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
            "jörg@müller.de",
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
}
