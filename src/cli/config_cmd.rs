//! `perago config <target> [--json]`: the resolved configuration, secrets redacted.

use super::{CliError, CommandResult, Outcome, load_config};
use crate::config::ConfigOverrides;

pub(crate) fn run(target: &str, json: bool) -> CommandResult {
    let config = load_config(target, &ConfigOverrides::default())?;
    if json {
        let text =
            serde_json::to_string_pretty(&config.to_json()).map_err(|source| CliError::Encode {
                what: "config",
                source,
            })?;
        println!("{text}");
    } else {
        print!("{}", config.render_text());
    }
    Ok(Outcome::Success)
}
