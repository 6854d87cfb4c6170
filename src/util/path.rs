//! Safe file-system path components, shared by log directories and attempt workspaces.

/// Turns an arbitrary string into one safe file-system path component.
///
/// The rule (shared by log directories and attempt workspace directories, SPEC §8 and §11):
/// 1. every run of one or more characters outside `[A-Za-z0-9_.=-]` becomes a single `_`;
/// 2. leading and trailing `.` and `_` characters are trimmed;
/// 3. an empty result becomes `unknown`.
///
/// The result therefore never contains a path separator, is never `.` or `..`, never starts
/// with a dot (no hidden files) and is never empty.
pub fn safe_path_component(s: &str) -> String {
    let mut replaced = String::with_capacity(s.len());
    let mut in_unsafe_run = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '=' | '-') {
            replaced.push(c);
            in_unsafe_run = false;
        } else if !in_unsafe_run {
            replaced.push('_');
            in_unsafe_run = true;
        }
    }
    let trimmed = replaced.trim_matches(|c| c == '.' || c == '_');
    if trimmed.is_empty() {
        "unknown".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_path_component_rules() {
        let cases = [
            ("plain", "plain"),
            ("app.workers.features_build", "app.workers.features_build"),
            ("key=value-1", "key=value-1"),
            ("a/b", "a_b"),
            ("a//\\b", "a_b"),
            ("a b  c", "a_b_c"),
            ("../../etc/passwd", "etc_passwd"),
            ("..", "unknown"),
            (".", "unknown"),
            ("", "unknown"),
            ("___", "unknown"),
            ("/", "unknown"),
            (".hidden", "hidden"),
            ("_x_", "x"),
            ("täsk", "t_sk"),
            ("日本", "unknown"),
            ("a\u{0}b", "a_b"),
            ("x.-=y", "x.-=y"),
        ];
        for (input, expected) in cases {
            assert_eq!(safe_path_component(input), expected, "input {input:?}");
        }
    }
}
