//! Topic settings of `ramp worker`: `NAME[:assignee=PATH]`.

use std::fmt;

/// A topic the worker fetches, and where its forms' assignee comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    /// A dotted path into a JSON variable (`supplier.companyOwner`), if the topic's
    /// forms are assigned from the process's data.
    pub assignee_path: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic {0:?}: {1}")]
pub struct TopicError(pub String, pub &'static str);

impl Topic {
    pub fn parse(text: &str) -> Result<Self, TopicError> {
        let text = text.trim();
        let error = |problem| TopicError(text.to_owned(), problem);
        let (name, options) = match text.split_once(':') {
            Some((name, options)) => (name, Some(options)),
            None => (text, None),
        };
        if name.is_empty() {
            return Err(error("the topic name is empty"));
        }
        let assignee_path = match options {
            None => None,
            Some(options) => {
                let path = options
                    .strip_prefix("assignee=")
                    .ok_or_else(|| error("the only option is assignee=PATH"))?;
                let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
                if parts.iter().any(String::is_empty) {
                    return Err(error("the assignee path has an empty part"));
                }
                Some(parts)
            }
        };
        Ok(Self {
            name: name.to_owned(),
            assignee_path,
        })
    }

    /// Topics from a comma-separated list (`RAMP_WORKER_TOPICS`).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, TopicError> {
        text.split(',')
            .filter(|t| !t.trim().is_empty())
            .map(Self::parse)
            .collect()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.assignee_path {
            Some(path) => write!(f, "{}:assignee={}", self.name, path.join(".")),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_with_and_without_an_assignee_path() {
        assert_eq!(
            Topic::parse("submit_form").unwrap(),
            Topic {
                name: "submit_form".into(),
                assignee_path: None
            }
        );
        let topic =
            Topic::parse("risk_assessment_for_company_users:assignee=supplier.companyOwner")
                .unwrap();
        assert_eq!(topic.assignee_path.unwrap(), ["supplier", "companyOwner"]);
        assert_eq!(Topic::parse_list("a, b:assignee=x").unwrap().len(), 2);
        assert!(Topic::parse(":assignee=x").is_err());
        assert!(Topic::parse("a:owner=x").is_err());
        assert!(Topic::parse("a:assignee=x..y").is_err());
    }
}
