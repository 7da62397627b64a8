//! `ramp deploy FILE|DIR...`: deploys BPMN models and Camunda Forms to the engine.

use std::path::{Path, PathBuf};

use crate::camunda::{Camunda, DeployError};

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
pub async fn deploy(
    camunda: &Camunda,
    name: &str,
    arguments: &[PathBuf],
) -> anyhow::Result<Vec<String>> {
    let resources = collect(arguments)?;
    let deployment = match camunda.deploy(name, resources, true, None).await {
        Ok(deployment) => deployment,
        Err(DeployError::Parse { message, problems }) => {
            let mut text = format!("the engine rejected the deployment: {message}");
            for (resource, problem) in problems {
                text.push_str(&format!(
                    "\n  {resource}:{}:{}: {}",
                    problem.line.map_or("?".into(), |l| l.to_string()),
                    problem.column.map_or("?".into(), |c| c.to_string()),
                    problem.message
                ));
            }
            anyhow::bail!(text);
        }
        Err(DeployError::Camunda(error)) => return Err(error.into()),
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
}
