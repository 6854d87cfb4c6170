//! `perago config <target> [--json]`: the resolved configuration, secrets redacted.

use super::{CliError, CommandResult, exit_code, load_config};
use crate::config::ConfigOverrides;

pub(crate) fn run(target: &str, json: bool) -> CommandResult {
    let config = load_config(target, &ConfigOverrides::default())?;
    if json {
        let text = serde_json::to_string_pretty(&config.to_json())
            .map_err(|err| CliError::Message(format!("failed to encode config: {err}")))?;
        println!("{text}");
    } else {
        print!("{}", config.render_text());
    }
    Ok(exit_code::OK)
}
