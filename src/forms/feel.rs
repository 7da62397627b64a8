//! The subset of FEEL that Camunda Forms use in `conditional.hide`: literals, field
//! names (dotted paths), comparisons, `not(...)`, `and`, `or`, parentheses. An
//! expression outside the subset evaluates to `None` — unknown — and callers then
//! treat the field as possibly hidden, so no field the user could not see is ever
//! required.

use serde_json::{Map, Value};

/// Evaluates `expression` (with or without its leading `=`) against the form data.
pub fn evaluate(expression: &str, data: &Map<String, Value>) -> Option<Value> {
    let source = expression
        .trim()
        .strip_prefix('=')
        .unwrap_or(expression.trim());
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        data,
    };
    let value = parser.or()?;
    (parser.at == parser.tokens.len()).then_some(value)
}

/// Whether a condition holds: `Some(true)`, `Some(false)`, or `None` when unknown.
pub fn truth(expression: &str, data: &Map<String, Value>) -> Option<bool> {
    match evaluate(expression, data)? {
        Value::Bool(b) => Some(b),
        // FEEL's null in a condition is not true.
        Value::Null => Some(false),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Str(String),
    Num(f64),
    Name(String),
    Op(&'static str),
    Open,
    Close,
}

fn tokenize(source: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut text = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                text.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return None;
            }
            i += 1;
            tokens.push(Token::Str(text));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token::Num(
                chars[start..i].iter().collect::<String>().parse().ok()?,
            ));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            tokens.push(Token::Name(chars[start..i].iter().collect()));
        } else if c == '(' {
            tokens.push(Token::Open);
            i += 1;
        } else if c == ')' {
            tokens.push(Token::Close);
            i += 1;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = match two.as_str() {
                "!=" => "!=",
                "<=" => "<=",
                ">=" => ">=",
                _ => match c {
                    '=' => "=",
                    '<' => "<",
                    '>' => ">",
                    _ => return None,
                },
            };
            i += op.len();
            tokens.push(Token::Op(op));
        }
    }
    Some(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    data: &'a Map<String, Value>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Name(n)) if n == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Option<Value> {
        let mut left = self.and()?;
        while self.keyword("or") {
            let right = self.and()?;
            left = Value::Bool(left == Value::Bool(true) || right == Value::Bool(true));
        }
        Some(left)
    }

    fn and(&mut self) -> Option<Value> {
        let mut left = self.comparison()?;
        while self.keyword("and") {
            let right = self.comparison()?;
            left = Value::Bool(left == Value::Bool(true) && right == Value::Bool(true));
        }
        Some(left)
    }

    fn comparison(&mut self) -> Option<Value> {
        let left = self.primary()?;
        let Some(Token::Op(op)) = self.peek().cloned() else {
            return Some(left);
        };
        self.at += 1;
        let right = self.primary()?;
        let number = |v: &Value| v.as_f64();
        Some(Value::Bool(match op {
            "=" => equal(&left, &right),
            "!=" => !equal(&left, &right),
            _ => {
                // Ordering comparisons with null or mixed types are unknown in FEEL.
                let (Some(l), Some(r)) = (number(&left), number(&right)) else {
                    return Some(Value::Null);
                };
                match op {
                    "<" => l < r,
                    "<=" => l <= r,
                    ">" => l > r,
                    _ => l >= r,
                }
            }
        }))
    }

    fn primary(&mut self) -> Option<Value> {
        let token = self.peek()?.clone();
        self.at += 1;
        match token {
            Token::Str(s) => Some(Value::String(s)),
            Token::Num(n) => serde_json::Number::from_f64(n).map(Value::Number),
            Token::Open => {
                let inner = self.or()?;
                (self.peek() == Some(&Token::Close)).then(|| self.at += 1)?;
                Some(inner)
            }
            Token::Name(name) => match name.as_str() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                "null" => Some(Value::Null),
                "not" => {
                    (self.peek() == Some(&Token::Open)).then(|| self.at += 1)?;
                    let inner = self.or()?;
                    (self.peek() == Some(&Token::Close)).then(|| self.at += 1)?;
                    match inner {
                        Value::Bool(b) => Some(Value::Bool(!b)),
                        _ => Some(Value::Null),
                    }
                }
                path => {
                    let mut parts = path.split('.');
                    let mut value = self.data.get(parts.next()?).cloned().unwrap_or(Value::Null);
                    for part in parts {
                        value = value.get(part).cloned().unwrap_or(Value::Null);
                    }
                    Some(value)
                }
            },
            Token::Op(_) | Token::Close => None,
        }
    }
}

fn equal(left: &Value, right: &Value) -> bool {
    match (left.as_f64(), right.as_f64()) {
        (Some(l), Some(r)) => l == r,
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Map<String, Value> {
        json!({"supplierType": "critical", "hasIso": false, "score": 3, "address": {"country": "DE"}})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn the_conditions_real_forms_use() {
        let d = data();
        assert_eq!(truth(r#"=supplierType != "critical""#, &d), Some(false));
        assert_eq!(truth(r#"=supplierType = "critical""#, &d), Some(true));
        assert_eq!(truth("=hasIso != true", &d), Some(true));
        assert_eq!(truth("=not(hasIso)", &d), Some(true));
        assert_eq!(truth("=score >= 3 and score < 5", &d), Some(true));
        assert_eq!(
            truth(r#"=address.country = "FR" or score > 4"#, &d),
            Some(false)
        );
        assert_eq!(truth("=missing = null", &d), Some(true));
        assert_eq!(truth("=(score = 3)", &d), Some(true));
    }

    #[test]
    fn what_is_outside_the_subset_is_unknown() {
        let d = data();
        assert_eq!(truth("=count(items) > 2", &d), None);
        assert_eq!(truth("=score +", &d), None);
        assert_eq!(truth(r#"=contains(supplierType, "crit")"#, &d), None);
    }
}
