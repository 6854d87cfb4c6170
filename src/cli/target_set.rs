//! Several targets on one command line (SPEC §17): `start <target>[=N]...`, `check
//! <target>...`, `config <target>...`.
//!
//! A command given several targets serves (or checks) them as one **target set** whose name
//! is the targets joined with `+` in command-line order (`examples.echo+examples.catalog_read`).
//! The set's name is what a single target's name is everywhere else: the configuration is
//! loaded for it (so the default worker id prefix is derived from it), log records carry it as
//! `target`, and the log directory is its safe form (`<log_root>/examples.echo_examples.catalog_read/`).
//! One target is a set of one whose name is the target itself, so nothing changes for it.

use std::str::FromStr;

use super::CliError;

/// One `start` argument: a target, with its own worker count when written `target=N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetSpec {
    /// The target name.
    pub(crate) target: String,
    /// `target=N`'s N; `None` means `-j`.
    pub(crate) jobs: Option<usize>,
}

/// A `target=N` whose N is not a whole number.
#[derive(Debug, thiserror::Error)]
#[error("worker count in '{spec}' must be a whole number, as in <target>=4")]
pub(crate) struct TargetSpecError {
    spec: String,
}

impl FromStr for TargetSpec {
    type Err = TargetSpecError;

    fn from_str(spec: &str) -> Result<TargetSpec, TargetSpecError> {
        match spec.rsplit_once('=') {
            None => Ok(TargetSpec {
                target: spec.to_owned(),
                jobs: None,
            }),
            Some((target, count)) => match count.trim().parse::<usize>() {
                Ok(jobs) if !target.is_empty() => Ok(TargetSpec {
                    target: target.to_owned(),
                    jobs: Some(jobs),
                }),
                _ => Err(TargetSpecError {
                    spec: spec.to_owned(),
                }),
            },
        }
    }
}

/// The name of the target set `targets` (see the [module docs](self)).
pub(crate) fn set_name<S: AsRef<str>>(targets: &[S]) -> String {
    targets
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("+")
}

/// Refuses a target given twice.
pub(crate) fn distinct<S: AsRef<str>>(targets: &[S]) -> Result<(), CliError> {
    for (index, target) in targets.iter().enumerate() {
        if targets[..index]
            .iter()
            .any(|seen| seen.as_ref() == target.as_ref())
        {
            return Err(CliError::RepeatedTarget {
                target: target.as_ref().to_owned(),
            });
        }
    }
    Ok(())
}

/// Each target with its worker count: its own `=N`, else its entry in `defaults` (`-j`, or
/// its task's `thread_count` setting, or 1); every count at least 1 (`worker process count
/// must be at least 1`).
pub(crate) fn worker_counts(
    specs: &[TargetSpec],
    defaults: &[usize],
) -> Result<Vec<(String, usize)>, CliError> {
    let names: Vec<&str> = specs.iter().map(|spec| spec.target.as_str()).collect();
    distinct(&names)?;
    specs
        .iter()
        .zip(defaults.iter().copied().chain(std::iter::repeat(1)))
        .map(|(spec, default)| {
            let count = spec.jobs.unwrap_or(default);
            if count < 1 {
                return Err(CliError::NoWorkers);
            }
            Ok((spec.target.clone(), count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<TargetSpec, String> {
        text.parse::<TargetSpec>().map_err(|e| e.to_string())
    }

    #[test]
    fn a_spec_is_a_target_with_an_optional_count() {
        assert_eq!(
            spec("examples.echo"),
            Ok(TargetSpec {
                target: "examples.echo".into(),
                jobs: None
            })
        );
        assert_eq!(
            spec("examples.echo=4"),
            Ok(TargetSpec {
                target: "examples.echo".into(),
                jobs: Some(4)
            })
        );
        assert_eq!(
            spec("examples.echo=0").map(|s| s.jobs),
            Ok(Some(0)),
            "0 is refused later, with the -j 0 message"
        );
        for bad in ["examples.echo=x", "examples.echo=", "=3", "a=-1"] {
            assert_eq!(
                spec(bad),
                Err(format!(
                    "worker count in '{bad}' must be a whole number, as in <target>=4"
                ))
            );
        }
    }

    #[test]
    fn counts_default_to_jobs_and_must_be_positive_and_targets_distinct() {
        let specs = [spec("a").unwrap(), spec("b=3").unwrap()];
        assert_eq!(
            worker_counts(&specs, &[2, 2]).unwrap(),
            [("a".to_owned(), 2), ("b".to_owned(), 3)]
        );
        assert!(matches!(
            worker_counts(&specs, &[0, 0]),
            Err(CliError::NoWorkers)
        ));
        let twice = [spec("a").unwrap(), spec("a=2").unwrap()];
        match worker_counts(&twice, &[1, 1]) {
            Err(CliError::RepeatedTarget { target }) => assert_eq!(target, "a"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_set_name_of_one_target_is_the_target() {
        assert_eq!(set_name(&["examples.echo"]), "examples.echo");
        assert_eq!(set_name(&["a.b", "c"]), "a.b+c");
    }
}
