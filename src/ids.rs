//! Ramp's own ids, as types (a form task's id is not a submission's), and the
//! macro that makes a closed set of stored words (a state, a reason) an enum.
//! The store maps both at its edge: what it reads is parsed once, there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id: a UUIDv7, so ids sort by their creation time.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A form task: one send task's form for one person.
    FormTaskId
);
uuid_id!(
    /// A submitted answer, and the delivery of it (an outbox row has its
    /// submission's id).
    SubmissionId
);
uuid_id!(
    /// A process started through ramp (not the engine's instance id).
    ProcessId
);

/// A closed set of words the database stores, as an enum: `as_str` is the stored
/// word, `parse` the way back (`None` for a word the set does not have: the store
/// reports it as a decode error, never guesses), and serde writes the same word.
macro_rules! stored_words {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The word stored for this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }

            /// The value a stored word names, if the set has it.
            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $($word => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_words;

#[cfg(test)]
mod tests {
    use super::*;

    stored_words!(
        /// A test set.
        Colour {
            Red = "red",
            Dark = "dark-blue",
        }
    );

    #[test]
    fn stored_words_round_trip_and_refuse_words_outside_the_set() {
        for colour in Colour::ALL {
            assert_eq!(Colour::parse(colour.as_str()), Some(*colour));
            assert_eq!(
                serde_json::to_value(colour).unwrap(),
                serde_json::json!(colour.as_str())
            );
        }
        assert_eq!(Colour::parse("Red"), None);
        assert_eq!(Colour::parse(""), None);
    }

    #[test]
    fn ids_read_and_write_as_their_uuid() {
        let id = FormTaskId::new();
        assert_eq!(id.to_string().parse::<FormTaskId>().unwrap(), id);
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!(id.as_uuid().to_string())
        );
    }
}
