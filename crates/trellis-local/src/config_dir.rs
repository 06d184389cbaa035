//! `trellis apply` / `trellis delete`: files in the control plane's config directory, which
//! it watches. A file is validated by Istio's rules (trellis-config) before it is copied in,
//! so an invalid object never reaches the store; it is written atomically (the watcher never
//! sees half a file).

use std::path::{Path, PathBuf};

use trellis_config::store::files::is_config_file;
use trellis_config::store::read_sources;
use trellis_config::validate::{Level, validate};

use crate::error::{Error, Result};
use crate::state::StateDir;

/// The config directory of the control plane `trellis up` started.
pub fn of(state: &StateDir) -> Result<PathBuf> {
    state
        .load()?
        .control_plane
        .map(|c| c.config_dir)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "no control plane recorded in {}: `trellis up --config DIR` first",
                state.path().display()
            ))
        })
}

/// Validates `file` (objects without a namespace go to `namespace`) and copies it into
/// `config_dir` under its own name; returns the objects it holds and the warnings.
pub fn apply(
    config_dir: &Path,
    file: &Path,
    namespace: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let name = file_name(file)?;
    let (objects, warnings) = check(file, namespace)?;
    let bytes =
        std::fs::read(file).map_err(Error::io(format!("cannot read {}", file.display())))?;
    let staging = config_dir.join(format!(".{name}.tmp"));
    std::fs::write(&staging, bytes)
        .map_err(Error::io(format!("cannot write {}", staging.display())))?;
    std::fs::rename(&staging, config_dir.join(&name)).map_err(Error::io(format!(
        "cannot write into {}",
        config_dir.display()
    )))?;
    Ok((objects, warnings))
}

/// Removes the file named like `file` from `config_dir`; returns its path.
pub fn delete(config_dir: &Path, file: &Path) -> Result<PathBuf> {
    let target = config_dir.join(file_name(file)?);
    match std::fs::remove_file(&target) {
        Ok(()) => Ok(target),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Invalid(format!(
            "{} was not applied (no {} in the config directory)",
            file.display(),
            target.display()
        ))),
        Err(e) => Err(Error::Io {
            what: format!("cannot remove {}", target.display()),
            source: e,
        }),
    }
}

fn file_name(file: &Path) -> Result<String> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|_| is_config_file(file))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{}: expected a .yaml, .yml or .json file",
                file.display()
            ))
        })?;
    Ok(name.to_string())
}

/// The objects of `file` and its warnings; any decoding or validation error is an error
/// listing them all.
fn check(file: &Path, namespace: &str) -> Result<(Vec<String>, Vec<String>)> {
    let (sources, problems) = read_sources(&[file.to_path_buf()], namespace);
    let mut errors: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let mut warnings = Vec::new();
    let mut objects = Vec::new();
    for source in &sources {
        errors.extend(source.decoded.errors.iter().map(ToString::to_string));
        for resource in &source.decoded.resources {
            objects.push(resource.display_name());
            for finding in validate(resource) {
                let line = format!(
                    "{}: {}: {}: {}",
                    resource.origin,
                    resource.display_name(),
                    finding.path,
                    finding.message
                );
                match finding.level {
                    Level::Error => errors.push(line),
                    Level::Warning => warnings.push(line),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(format!(
            "{} not applied:\n{}",
            file.display(),
            errors.join("\n")
        )));
    }
    if objects.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no mesh objects in it, nothing applied",
            file.display()
        )));
    }
    Ok((objects, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  selector: {app: reviews}\n  ports:\n  - {name: http, port: 9080}\n";

    #[test]
    fn valid_files_are_copied_in_and_deleted_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let file = dir.path().join("reviews.yaml");
        std::fs::write(&file, SERVICE).unwrap();
        let (objects, _) = apply(&config, &file, "default").unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(
            std::fs::read_to_string(config.join("reviews.yaml")).unwrap(),
            SERVICE
        );
        delete(&config, &file).unwrap();
        assert!(!config.join("reviews.yaml").exists());
        assert!(delete(&config, &file).is_err());
    }

    #[test]
    fn invalid_files_never_reach_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(
            &file,
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: -5\n",
        )
        .unwrap();
        let error = apply(&config, &file, "default").unwrap_err().to_string();
        assert!(error.contains("not applied"), "{error}");
        assert!(!config.join("bad.yaml").exists());
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        assert!(apply(&config, &text, "default").is_err());
    }
}
