//! A team's own worker binary: one task of its own, served with perago's CLI under the
//! team's own name, version and about text (no `demo`, no `dev-server`).
//!
//! ```sh
//! cargo run --example custom_cli -- check app.word_count
//! cargo run --example custom_cli -- extract app.word_count -o generated/word.count.json
//! echo '{"params": {"text": "to be or not to be"}}' \
//!   | cargo run --example custom_cli -- run app.word_count --input -
//! ```

use std::process::ExitCode;

use perago::Targets;
use perago::cli::App;
use perago::{DeclarationError, Task, TaskContext, TaskError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Params: the text to count.
#[derive(Deserialize, JsonSchema)]
struct Params {
    #[schemars(length(min = 1))]
    text: String,
}

/// Result: the number of words and of distinct words.
#[derive(Serialize, JsonSchema)]
struct Counts {
    words: u64,
    distinct: u64,
}

fn count_words(ctx: &TaskContext, params: Params) -> Result<Counts, TaskError> {
    ctx.log().info("counting words");
    let words: Vec<&str> = params.text.split_whitespace().collect();
    let distinct: std::collections::BTreeSet<&str> = words.iter().copied().collect();
    Ok(Counts {
        words: words.len() as u64,
        distinct: distinct.len() as u64,
    })
}

fn word_count() -> Result<Task, DeclarationError> {
    Task::builder("word.count", "text@example.com")
        .description("Count the words of a text.")
        .strict_params(true)
        .handler(count_words)
}

fn main() -> ExitCode {
    let targets = Targets::new().register("app.word_count", word_count);
    let app = App::new("word-count", "1.4.0", targets).about("The text team's word-count worker");
    perago::cli::main_with(app)
}
