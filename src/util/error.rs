//! Printing an error with its causes.

use std::error::Error;

/// `error: cause: cause of cause …`: the error's message followed by each `source()`, joined
/// with `": "`.
///
/// perago's own errors keep their cause in `source()` and never repeat it in their message.
/// Foreign errors (I/O, HTTP clients) sometimes do; a cause whose text the line already
/// holds is skipped, so no text is printed twice whatever the error's style.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1
                .as_deref()
                .map(|layer| layer as &(dyn Error + 'static))
        }
    }

    #[test]
    fn every_cause_once_in_order() {
        let error = Layer(
            "a",
            Some(Box::new(Layer("b", Some(Box::new(Layer("c", None)))))),
        );
        assert_eq!(error_chain(&error), "a: b: c");
    }

    #[test]
    fn a_cause_the_message_already_shows_is_not_repeated() {
        let error = Layer("read x: denied", Some(Box::new(Layer("denied", None))));
        assert_eq!(error_chain(&error), "read x: denied");
    }
}
