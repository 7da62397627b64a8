//! `ramp deploy FILE|DIR...`: deploys BPMN models and Camunda Forms to the engine.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::camunda::{Camunda, CamundaError, DeployError};

/// The kinds of file the engine deploys (BPMN processes, DMN decisions, forms).
const DEPLOYABLE: [&str; 3] = ["bpmn", "dmn", "form"];

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{0}: no such file or folder")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a .bpmn, .dmn or .form file")]
    NotDeployable(PathBuf),
    #[error("two resources would both be named {0:?}; deploy their folder instead")]
    Collision(String),
    #[error("nothing to deploy")]
    Empty,
}

/// The resources to deploy, each named by its path relative to the argument that
/// found it (a file argument: its file name; a folder: the path inside it), with `/`
/// separators. The engine keys resources by name, so two `qualify_supplier.form` in
/// different folders stay two resources.
pub fn collect(arguments: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>, CollectError> {
    let mut resources: Vec<(String, Vec<u8>)> = Vec::new();
    for argument in arguments {
        if argument.is_dir() {
            let mut files = Vec::new();
            walk(argument, &mut files)?;
            files.sort();
            for file in files {
                let relative = file
                    .strip_prefix(argument)
                    .expect("walked below the argument");
                let name = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                push(&mut resources, name, &file)?;
            }
        } else if argument.is_file() {
            if !is_deployable(argument) {
                return Err(CollectError::NotDeployable(argument.clone()));
            }
            let name = argument
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            push(&mut resources, name, argument)?;
        } else {
            return Err(CollectError::Missing(argument.clone()));
        }
    }
    if resources.is_empty() {
        return Err(CollectError::Empty);
    }
    Ok(resources)
}

fn is_deployable(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| DEPLOYABLE.contains(&e))
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), CollectError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CollectError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| CollectError::Read {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if is_deployable(&path) {
            files.push(path);
        }
    }
    Ok(())
}

fn push(
    resources: &mut Vec<(String, Vec<u8>)>,
    name: String,
    file: &Path,
) -> Result<(), CollectError> {
    if resources.iter().any(|(n, _)| *n == name) {
        return Err(CollectError::Collision(name));
    }
    let content = std::fs::read(file).map_err(|source| CollectError::Read {
        path: file.to_owned(),
        source,
    })?;
    resources.push((name, content));
    Ok(())
}

/// What a deployment brought: one line per process definition, `KEY version N`.
/// A refusal names each file the engine refused and why.
pub async fn deploy(
    camunda: &Camunda,
    name: &str,
    arguments: &[PathBuf],
) -> anyhow::Result<Vec<String>> {
    let resources = collect(arguments)?;
    let deployment = match camunda.deploy(name, resources.clone(), true, None).await {
        Ok(deployment) => deployment,
        Err(error) => anyhow::bail!(refusal(&error, &resources)),
    };
    // With nothing new, the engine answers the earlier deployment without its
    // definitions: list them from the deployment itself.
    let definitions = camunda.deployment_definitions(&deployment.id).await?;
    let mut lines: Vec<String> = definitions
        .iter()
        .map(|d| format!("{} version {}", d.key, d.version))
        .collect();
    lines.sort();
    Ok(lines)
}

/// The text of a refused deployment: each file the engine refused, with the
/// engine's reason and, where ramp can see it in the file, the likely cause.
///
/// The engine answers a BPMN model it cannot use with a ParseException that lists
/// each problem with its place; anything else (a DMN decision, a form, XML it
/// cannot read) with one message naming the resource at most — for a decision table
/// only "ENGINE-22004 Unable to transform DMN resource 'x.dmn'", the cause being in
/// the engine's log alone. So ramp looks at the file itself.
fn refusal(error: &DeployError, resources: &[(String, Vec<u8>)]) -> String {
    let mut text = String::from("the engine refused the deployment:");
    match error {
        // The engine's message repeats the problems: each is given once, with its place.
        DeployError::Parse { problems, .. } if !problems.is_empty() => {
            for (resource, problem) in problems {
                text.push_str(&format!(
                    "\n  {resource}:{}:{}: {}",
                    problem.line.map_or("?".into(), |l| l.to_string()),
                    problem.column.map_or("?".into(), |c| c.to_string()),
                    explain(problem)
                ));
            }
        }
        DeployError::Parse { message, .. }
        | DeployError::Camunda(
            CamundaError::Engine { message, .. } | CamundaError::BadRequest { message, .. },
        ) => {
            let named: Vec<&(String, Vec<u8>)> = resources
                .iter()
                .filter(|(name, _)| names(message, name))
                .collect();
            if named.is_empty() {
                text.push_str(&format!(" {message}"));
                // Whatever ramp sees in any file may be why.
                for (name, content) in resources {
                    for cause in diagnose(name, content) {
                        text.push_str(&format!("\n  {name}: likely cause: {cause}"));
                    }
                }
            }
            for (name, content) in named {
                text.push_str(&format!("\n  {name}: {message}"));
                let causes = diagnose(name, content);
                if causes.is_empty() {
                    text.push_str(&format!(
                        "\n    ramp sees no likely cause in {name}; the engine's log has the details"
                    ));
                }
                for cause in causes {
                    text.push_str(&format!("\n    likely cause: {cause}"));
                }
            }
        }
        DeployError::Camunda(other) => text.push_str(&format!(" {other}")),
    }
    text
}

const TTL_ADVICE: &str = "set \"History time to live\" in Camunda Modeler (History cleanup), \
     or give the engine a default as Camunda Run does";

/// One parse problem in words: the engine's text, but for a missing history time to
/// live (ENGINE-12018, whose text is long and says it twice) a line that says what
/// to do.
fn explain(problem: &crate::camunda::types::ParseProblem) -> String {
    if problem.message.contains("ENGINE-12018") {
        let process = problem
            .main_element_id
            .as_deref()
            .map_or(String::new(), |id| format!(" `{id}`"));
        return format!(
            "the process{process} has no historyTimeToLive and the engine sets no default: {TTL_ADVICE}"
        );
    }
    problem.message.clone()
}

/// Whether the engine's message names the resource (`'x.dmn'`, `resource x.form.`),
/// as a whole name rather than the end of a longer one.
fn names(message: &str, resource: &str) -> bool {
    let part_of_name = |c: char| c.is_alphanumeric() || "/_-".contains(c);
    message.match_indices(resource).any(|(at, _)| {
        let before = message[..at].chars().next_back();
        let after = message[at + resource.len()..].chars().next();
        !before.is_some_and(|c| part_of_name(c) || c == '.') && !after.is_some_and(part_of_name)
    })
}

/// What ramp can see in a file that an engine refuses: XML that is not
/// well-formed, a form that is not JSON, decisions or executable processes without
/// a history time to live.
fn diagnose(name: &str, content: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(content);
    if name.ends_with(".form") {
        return match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(_) => Vec::new(),
            Err(error) => vec![format!("it is not valid JSON: {error}")],
        };
    }
    if let Some(problem) = unbalanced_tag(&text) {
        return vec![format!("it is not well-formed XML: {problem}")];
    }
    let (element, what) = if name.ends_with(".dmn") {
        ("decision", "the decision")
    } else {
        ("process", "the process")
    };
    without_ttl(&text, element)
        .into_iter()
        .map(|id| {
            format!("{what} `{id}` has no historyTimeToLive and the engine sets no default: {TTL_ADVICE}")
        })
        .collect()
}

/// Start tags (with their attributes), end tags, and what to skip: comments,
/// CDATA, processing instructions, the doctype.
static TAGS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?s)<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|<!DOCTYPE[^>]*>|<(/?)([A-Za-z_][\w:.-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(/?)>"#,
    )
    .expect("a valid pattern")
});

/// The first tag that does not close where XML needs it to, with its line.
fn unbalanced_tag(xml: &str) -> Option<String> {
    let mut open: Vec<(&str, usize)> = Vec::new();
    let (mut line, mut counted) = (1, 0);
    for tag in TAGS.captures_iter(xml) {
        let Some(tag_name) = tag.get(2) else { continue };
        let at = tag.get(0).expect("the whole match").start();
        line += xml[counted..at].matches('\n').count();
        counted = at;
        let name = tag_name.as_str();
        if &tag[1] == "/" {
            match open.pop() {
                Some((opened, _)) if opened == name => {}
                Some((opened, since)) => {
                    return Some(format!(
                        "line {line}: </{name}> closes <{opened}> (opened at line {since})"
                    ));
                }
                None => return Some(format!("line {line}: </{name}> closes nothing")),
            }
        } else if &tag[4] != "/" {
            open.push((name, line));
        }
    }
    open.first()
        .map(|(name, since)| format!("<{name}> (line {since}) is never closed"))
}

/// The ids of `element`s (decisions, executable processes) without a
/// `historyTimeToLive` attribute.
fn without_ttl(xml: &str, element: &str) -> Vec<String> {
    static ID: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"\bid\s*=\s*["']([^"']*)["']"#).expect("a valid pattern"));
    let mut ids = Vec::new();
    for tag in TAGS.captures_iter(xml) {
        let (Some(name), Some(attributes)) = (tag.get(2), tag.get(3)) else {
            continue;
        };
        let local = name.as_str().rsplit(':').next().unwrap_or_default();
        let attributes = attributes.as_str();
        if &tag[1] == "/" || local != element || attributes.contains("historyTimeToLive") {
            continue;
        }
        if element == "process" && !attributes.contains("isExecutable=\"true\"") {
            continue; // the engine deploys executable processes only
        }
        let id = ID
            .captures(attributes)
            .map_or_else(|| "?".to_owned(), |c| c[1].to_owned());
        ids.push(id);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_named_by_their_path_inside_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "a/qualify_supplier.form",
            "b/qualify_supplier.form",
            "VOE.bpmn",
            "notes.txt",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        let names: Vec<_> = collect(&[dir.path().to_owned()])
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "VOE.bpmn",
                "a/qualify_supplier.form",
                "b/qualify_supplier.form"
            ]
        );

        let same_name = collect(&[
            dir.path().join("a/qualify_supplier.form"),
            dir.path().join("b/qualify_supplier.form"),
        ]);
        assert!(matches!(same_name, Err(CollectError::Collision(_))));
        assert!(matches!(
            collect(&[dir.path().join("notes.txt")]),
            Err(CollectError::NotDeployable(_))
        ));
        assert!(matches!(
            collect(&[dir.path().join("nope")]),
            Err(CollectError::Missing(_))
        ));
    }

    /// A decision table as Camunda Modeler exports it: no historyTimeToLive.
    const MODELER_DMN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="Definitions_1" name="DRD" namespace="http://camunda.org/schema/1.0/dmn" exporter="Camunda Modeler" exporterVersion="5.31.0">
  <decision id="risk" name="Risk">
    <decisionTable id="DecisionTable_1">
      <input id="Input_1" label="Score">
        <inputExpression id="InputExpression_1" typeRef="integer"><text>score</text></inputExpression>
      </input>
      <output id="Output_1" label="Level" name="level" typeRef="string" />
      <rule id="Rule_1">
        <inputEntry id="UnaryTests_1"><text>&gt; 50</text></inputEntry>
        <outputEntry id="LiteralExpression_1"><text>"high"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
</definitions>
"#;

    fn engine_answer(status: u16, body: &str) -> DeployError {
        DeployError::Camunda(CamundaError::from_response(status, body))
    }

    #[test]
    fn a_decision_table_the_engine_cannot_transform_is_named_with_its_likely_cause() {
        // Camunda 7.24's whole answer to a DMN without historyTimeToLive on an engine
        // without a default (HTTP 500).
        let error = engine_answer(
            500,
            r#"{"type":"ProcessEngineException","message":"ENGINE-22004 Unable to transform DMN resource 'rules/risk.dmn'.","code":0}"#,
        );
        let resources = vec![
            ("rules/risk.dmn".to_owned(), MODELER_DMN.as_bytes().to_vec()),
            ("VOE.bpmn".to_owned(), b"<x/>".to_vec()),
        ];
        let text = refusal(&error, &resources);
        assert!(
            text.contains("rules/risk.dmn: ENGINE-22004 Unable to transform DMN resource"),
            "{text}"
        );
        assert!(
            text.contains(
                "likely cause: the decision `risk` has no historyTimeToLive and the engine sets no default"
            ),
            "{text}"
        );
        assert!(!text.contains("VOE.bpmn"), "only the refused file: {text}");

        // The same file with a TTL and broken XML: the XML is the cause.
        let broken = MODELER_DMN
            .replace(
                r#"<decision id="risk""#,
                r#"<decision id="risk" camunda:historyTimeToLive="P30D""#,
            )
            .replace("</decisionTable>", "");
        let text = refusal(
            &error,
            &[("rules/risk.dmn".to_owned(), broken.into_bytes())],
        );
        assert!(
            text.contains(
                "likely cause: it is not well-formed XML: line 14: </decision> closes <decisionTable> (opened at line 4)"
            ),
            "{text}"
        );

        // Nothing ramp can see: it says so, and where to look.
        let fine = MODELER_DMN.replace("<decision id", r#"<decision historyTimeToLive="1" id"#);
        let text = refusal(&error, &[("rules/risk.dmn".to_owned(), fine.into_bytes())]);
        assert!(
            text.contains("ramp sees no likely cause in rules/risk.dmn"),
            "{text}"
        );
    }

    #[test]
    fn a_process_without_history_time_to_live_is_named_with_its_place_and_what_to_do() {
        // Camunda 7.24's answer to a BPMN process without historyTimeToLive (HTTP
        // 400), its long message shortened here as the engine repeats it.
        let body = r#"{"type":"ParseException","message":"ENGINE-09005 Could not parse BPMN process. Errors: ...","code":0,"details":{"nottl.bpmn":{"errors":[{"message":"ENGINE-12018 History Time To Live (TTL) cannot be null. TTL is necessary for the History Cleanup to work. The following options are possible:\n* Set historyTimeToLive in the model\n* Set a default historyTimeToLive as a global process engine configuration\n* (Not recommended) Deactivate the enforceTTL config to disable this check: ENGINE-12018 History Time To Live (TTL) cannot be null.","line":3,"column":48,"mainElementId":"p_h18","elementIds":["p_h18"]}],"warnings":[]}}}"#;
        let answer: serde_json::Value = serde_json::from_str(body).unwrap();
        let problem: crate::camunda::types::ParseProblem =
            serde_json::from_value(answer["details"]["nottl.bpmn"]["errors"][0].clone()).unwrap();
        let error = DeployError::Parse {
            message: answer["message"].as_str().unwrap().to_owned(),
            problems: vec![("nottl.bpmn".to_owned(), problem)],
        };
        let text = refusal(&error, &[]);
        assert_eq!(
            text,
            "the engine refused the deployment:\n  nottl.bpmn:3:48: the process `p_h18` has no \
             historyTimeToLive and the engine sets no default: set \"History time to live\" in \
             Camunda Modeler (History cleanup), or give the engine a default as Camunda Run does"
        );
    }

    #[test]
    fn a_form_named_in_the_engine_answer_is_checked_as_json() {
        let error = engine_answer(
            500,
            r#"{"type":"ProcessEngineException","message":"ENGINE-09033 Could not parse Camunda Form resource forms/a.form. Cause: java.io.EOFException: End of input at line 2 column 1 path $.components[0]","code":0}"#,
        );
        let resources = vec![
            (
                "forms/a.form".to_owned(),
                br#"{"id":"x", "components": ["#.to_vec(),
            ),
            ("forms/ba.form".to_owned(), b"{}".to_vec()),
        ];
        let text = refusal(&error, &resources);
        assert!(text.contains("\n  forms/a.form: ENGINE-09033"), "{text}");
        assert!(
            text.contains("likely cause: it is not valid JSON"),
            "{text}"
        );
        assert!(!text.contains("forms/ba.form"), "{text}");
    }

    #[test]
    fn what_ramp_sees_in_a_file() {
        assert_eq!(unbalanced_tag(MODELER_DMN), None);
        assert_eq!(
            unbalanced_tag("<a>\n<b x=\"1>2\">\n</a>"),
            Some("line 3: </a> closes <b> (opened at line 2)".into())
        );
        assert_eq!(
            unbalanced_tag("<?xml version=\"1.0\"?>\n<!-- <c> -->\n<a><![CDATA[<d>]]><e/>"),
            Some("<a> (line 3) is never closed".into())
        );
        let bpmn = r#"<bpmn:definitions><bpmn:process id="a" isExecutable="true"/>
            <bpmn:process id="b" isExecutable="false"/>
            <bpmn:process id="c" isExecutable="true" camunda:historyTimeToLive="P1D"/>
            <bpmn:processType/></bpmn:definitions>"#;
        assert_eq!(without_ttl(bpmn, "process"), ["a"]);
        assert_eq!(without_ttl(MODELER_DMN, "decision"), ["risk"]);
        assert!(names("resource 'x.dmn'.", "x.dmn"));
        assert!(names(
            "Could not parse Camunda Form resource a.form. Cause",
            "a.form"
        ));
        assert!(!names("resource 'ba.form'", "a.form"));
        assert!(!names("resource 'dir/a.form'", "a.form"));
    }
}
