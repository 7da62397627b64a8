//! Input limits and shapes, checked at the edge before any logic runs. Every problem
//! becomes a field violation (`google.rpc.BadRequest`) in one INVALID_ARGUMENT.

use prost::Message;
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::email::Email;
use crate::processes::RESERVED;

/// Longest id (ramp's UUIDs, the engine's ids, request ids).
pub const MAX_ID_LEN: usize = 128;
/// Longest key or name (definition keys, activity ids, form and message names).
pub const MAX_KEY_LEN: usize = 255;
/// Longest free text (a cancellation reason).
pub const MAX_TEXT_LEN: usize = 1_000;
/// Longest page token or stream cursor.
pub const MAX_TOKEN_LEN: usize = 1_024;
/// Largest page.
pub const MAX_PAGE_SIZE: i32 = 500;
/// Deepest nesting of objects and lists in variables and form data.
pub const MAX_STRUCT_DEPTH: usize = 16;
/// Most keys (at all levels together) in variables and form data.
pub const MAX_STRUCT_KEYS: usize = 2_000;
/// Largest variables or form data, encoded.
pub const MAX_STRUCT_BYTES: usize = 256 * 1024;
/// Page size when the client asks for none.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// A page a client asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// `DEFAULT_PAGE_SIZE` when the client gave none.
    pub size: usize,
    /// Where the previous page ended, if this is not the first.
    pub token: Option<String>,
}

/// `text`, unless it is empty (proto3's way of leaving a string out).
pub fn non_empty(text: String) -> Option<String> {
    Some(text).filter(|t| !t.is_empty())
}

/// The one field of a request that names one of ramp's ids (a process, a form task,
/// a delivery).
pub fn id_of<T: From<uuid::Uuid>>(field: &str, value: &str) -> Result<T, Status> {
    let mut v = Violations::new();
    let id = v.uuid(field, value);
    v.finish(id.map(T::from))
}

/// Collects the problems of one request.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// INVALID_ARGUMENT listing every violation, or nothing when there is none.
    pub fn check(self) -> Result<(), Status> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(self.into_status())
    }

    /// INVALID_ARGUMENT listing every violation.
    pub fn into_status(self) -> Status {
        let summary = self
            .0
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ");
        Status::with_error_details(
            Code::InvalidArgument,
            summary,
            ErrorDetails::with_bad_request(self.0),
        )
    }

    /// `parsed` when no field was violated, else INVALID_ARGUMENT listing the
    /// violations. A parser that gives `None` for a required field has recorded why,
    /// so `None` comes with a violation; should one ever come alone, that is this
    /// server's mistake (INTERNAL), not the client's.
    pub fn finish<T>(self, parsed: Option<T>) -> Result<T, Status> {
        self.check()?;
        parsed.ok_or_else(|| {
            tracing::error!("a request failed to parse without a field violation");
            Status::internal("internal error")
        })
    }

    fn text(&mut self, field: &str, value: &str, max: usize, required: bool) -> bool {
        if value.is_empty() {
            if required {
                self.add(field, "is required");
            }
            return false;
        }
        if value.chars().count() > max {
            self.add(field, format!("is longer than {max} characters"));
            return false;
        }
        if value.chars().any(char::is_control) {
            self.add(field, "contains control characters");
            return false;
        }
        true
    }

    /// An id of the engine's or a client's: at most `MAX_ID_LEN`, no control characters.
    pub fn id(&mut self, field: &str, value: &str, required: bool) {
        self.text(field, value, MAX_ID_LEN, required);
    }

    /// A key or name: at most `MAX_KEY_LEN`, no control characters.
    pub fn key(&mut self, field: &str, value: &str, required: bool) {
        self.text(field, value, MAX_KEY_LEN, required);
    }

    /// A BPMN id (a process definition key, an activity id): an XML NCName, which is
    /// what the engine's parser takes: a letter or `_` first, then letters, digits,
    /// `-`, `_` and `.`. Anything else (`../../deployment`) names nothing the engine
    /// could hold, and would otherwise reach its REST paths.
    pub fn bpmn_id(&mut self, field: &str, value: &str, required: bool) {
        if !self.text(field, value, MAX_KEY_LEN, required) {
            return;
        }
        let mut chars = value.chars();
        let first = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
        if !first || !chars.all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            self.add(
                field,
                "is not a BPMN id: a letter or _ first, then letters, digits, -, _ and .",
            );
        }
    }

    /// Free text up to `MAX_TEXT_LEN`.
    pub fn free_text(&mut self, field: &str, value: &str) {
        self.text(field, value, MAX_TEXT_LEN, false);
    }

    /// One of ramp's ids: a UUID.
    pub fn uuid(&mut self, field: &str, value: &str) -> Option<uuid::Uuid> {
        if value.is_empty() {
            self.add(field, "is required");
            return None;
        }
        match uuid::Uuid::try_parse(value) {
            Ok(id) => Some(id),
            Err(_) => {
                self.add(field, "is not a valid id");
                None
            }
        }
    }

    pub fn email(&mut self, field: &str, value: &str, required: bool) -> Option<Email> {
        if value.is_empty() {
            if required {
                self.add(field, "is required");
            }
            return None;
        }
        match Email::parse(value) {
            Ok(email) => Some(email),
            Err(problem) => {
                self.add(field, problem.to_string());
                None
            }
        }
    }

    /// `page_size` and `page_token` of a list request.
    pub fn page(&mut self, page_size: i32, page_token: &str) -> Page {
        if !(0..=MAX_PAGE_SIZE).contains(&page_size) {
            self.add(
                "page_size",
                format!("must be between 0 and {MAX_PAGE_SIZE}"),
            );
        }
        self.text("page_token", page_token, MAX_TOKEN_LEN, false);
        Page {
            size: usize::try_from(page_size)
                .ok()
                .filter(|&size| size > 0)
                .unwrap_or(DEFAULT_PAGE_SIZE),
            token: non_empty(page_token.to_owned()),
        }
    }

    /// A cursor or token up to `MAX_TOKEN_LEN`.
    pub fn token(&mut self, field: &str, value: &str) {
        self.text(field, value, MAX_TOKEN_LEN, false);
    }

    /// Enum values that this server knows (a newer client may send more).
    pub fn known_enum<E: TryFrom<i32>>(&mut self, field: &str, values: &[i32]) {
        for value in values {
            if *value == 0 || E::try_from(*value).is_err() {
                self.add(field, format!("{value} is not a known value"));
            }
        }
    }

    /// Variables or form data as JSON (empty when absent); a value JSON cannot hold
    /// is a violation of `field`. Check its bounds with [`Violations::structure`].
    pub fn json(
        &mut self,
        field: &str,
        value: Option<&Struct>,
    ) -> serde_json::Map<String, serde_json::Value> {
        match value.map(crate::json::struct_to_json).transpose() {
            Ok(value) => value.unwrap_or_default(),
            Err(problem) => {
                self.add(field, problem);
                Default::default()
            }
        }
    }

    /// Names ramp keeps for its own variables (`RESERVED`) among the keys of
    /// variables or form data: each a violation of `field.name`.
    pub fn reserved(&mut self, field: &str, value: &serde_json::Map<String, serde_json::Value>) {
        for name in RESERVED {
            if value.contains_key(name) {
                self.add(
                    &format!("{field}.{name}"),
                    "is a name ramp keeps for its own variable",
                );
            }
        }
    }

    /// Variables or form data: bounded in size, depth and key count, and storable.
    pub fn structure(&mut self, field: &str, value: Option<&Struct>) {
        let Some(value) = value else { return };
        let size = value.encoded_len();
        if size > MAX_STRUCT_BYTES {
            self.add(
                field,
                format!("is {size} bytes, more than {MAX_STRUCT_BYTES}"),
            );
            return;
        }
        let mut walk = Walk::default();
        walk.fields(value, 1);
        if walk.deepest > MAX_STRUCT_DEPTH {
            self.add(
                field,
                format!("nests deeper than {MAX_STRUCT_DEPTH} levels"),
            );
        }
        if walk.keys > MAX_STRUCT_KEYS {
            self.add(field, format!("has more than {MAX_STRUCT_KEYS} keys"));
        }
        if walk.long_key {
            self.add(
                field,
                format!("has a key longer than {MAX_KEY_LEN} characters"),
            );
        }
        if walk.nul {
            // PostgreSQL stores no U+0000 in text or jsonb.
            self.add(field, "contains a NUL character (U+0000)");
        }
    }
}

/// What a walk through variables or form data found.
#[derive(Default)]
struct Walk {
    keys: usize,
    deepest: usize,
    long_key: bool,
    nul: bool,
}

impl Walk {
    fn fields(&mut self, value: &Struct, depth: usize) {
        self.deepest = self.deepest.max(depth);
        for (key, value) in &value.fields {
            self.keys += 1;
            self.long_key |= key.chars().count() > MAX_KEY_LEN;
            self.nul |= key.contains('\0');
            self.value(value, depth);
        }
    }

    fn value(&mut self, value: &Value, depth: usize) {
        // Deep nesting is refused by the decoder (prost's recursion limit) before
        // this runs; this bound is the product's own, lower one.
        match &value.kind {
            Some(Kind::StructValue(inner)) => self.fields(inner, depth + 1),
            Some(Kind::ListValue(list)) => {
                self.deepest = self.deepest.max(depth + 1);
                for item in &list.values {
                    self.value(item, depth + 1);
                }
            }
            Some(Kind::StringValue(text)) => self.nul |= text.contains('\0'),
            _ => {}
        }
    }
}

/// The fields a status's violations name, in order.
#[cfg(test)]
pub(super) fn fields(status: Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .expect("field violations")
        .field_violations
        .iter()
        .map(|f| f.field.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn nested(depth: usize) -> Struct {
        let mut inner = Struct::default();
        for _ in 1..depth {
            inner = Struct {
                fields: BTreeMap::from([(
                    "a".to_owned(),
                    Value {
                        kind: Some(Kind::StructValue(inner)),
                    },
                )]),
            };
        }
        inner
    }

    #[test]
    fn a_value_missing_without_a_violation_is_this_servers_mistake() {
        assert_eq!(Violations::new().finish(Some(1)).unwrap(), 1);
        let status = Violations::new().finish(None::<i32>).unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        let mut v = Violations::new();
        v.add("id", "is required");
        assert_eq!(fields(v.finish(None::<i32>).unwrap_err()), ["id"]);
    }

    #[test]
    fn depth_is_bounded() {
        let mut v = Violations::new();
        v.structure("data", Some(&nested(MAX_STRUCT_DEPTH)));
        assert!(v.check().is_ok());
        let mut v = Violations::new();
        v.structure("data", Some(&nested(MAX_STRUCT_DEPTH + 1)));
        assert!(v.check().is_err());
    }

    #[test]
    fn ramps_own_names_and_nul_characters_are_refused() {
        let data = serde_json::json!({"rampSubmissionId": "x", "note": "a\u{0}b"});
        let mut v = Violations::new();
        v.structure(
            "data",
            Some(&crate::json::json_to_struct(data.as_object().unwrap())),
        );
        v.reserved("data", data.as_object().unwrap());
        assert_eq!(
            fields(v.check().unwrap_err()),
            ["data", "data.rampSubmissionId"]
        );
    }

    #[test]
    fn bpmn_ids_are_ncnames() {
        for ok in ["VOE", "VOE_RISK", "_x", "Process_1.v-2", "prüfung"] {
            let mut v = Violations::new();
            v.bpmn_id("definition_key", ok, true);
            assert!(v.check().is_ok(), "{ok}");
        }
        for bad in [
            "../../deployment",
            "a/b",
            "1abc",
            "-x",
            ".x",
            "a b",
            "a%2Fb",
            "a:b",
            "key?x=1",
        ] {
            let mut v = Violations::new();
            v.bpmn_id("definition_key", bad, true);
            let status = v.check().expect_err(bad);
            assert!(status.message().contains("BPMN id"), "{bad}: {status:?}");
        }
    }

    #[test]
    fn every_violation_is_reported_with_its_field() {
        let mut v = Violations::new();
        v.key("definition_key", "", true);
        v.email("business_key", "not-an-email", true);
        v.page(-1, "");
        let status = v.check().unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            fields(status),
            ["definition_key", "business_key", "page_size"]
        );
    }
}
