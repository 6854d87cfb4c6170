//! The `.env` file and how it is layered under the process environment.
//!
//! The parser is hand-written rather than `dotenvy` because SPEC §2 asks for a strictly
//! simpler format than any dotenv library implements, and a library's extra features would
//! silently change values:
//!
//! - `KEY=value` and `export KEY=value`; keys and values are trimmed;
//! - a value wholly wrapped in matching single or double quotes is unwrapped, nothing else
//!   about quotes is special (`"abc'` stays as written);
//! - blank lines, lines starting with `#` and lines without `=` are ignored;
//! - **no** interpolation (`$HOME` stays literal), **no** escapes (`\n` is two characters),
//!   **no** multi-line values, and a `#` inside a value is part of the value;
//! - when a key repeats, the later line wins.
//!
//! Beyond the reference: a leading UTF-8 byte order mark is skipped (the reference would fold
//! it into the first key), `export` may be followed by any whitespace, and a line with an
//! empty key is ignored.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::Path;

use super::parse::ConfigError;

/// The name of the file read from the working directory.
pub const DOTENV_FILE_NAME: &str = ".env";

/// Parses `.env` text into a map; later duplicate keys win.
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut values = BTreeMap::new();
    for line in text.lines() {
        if let Some((key, value)) = parse_line(line) {
            values.insert(key.to_owned(), value.to_owned());
        }
    }
    values
}

fn parse_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || !line.contains('=') {
        return None;
    }
    let line = strip_export(line);
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    Some((key, unquote(value.trim())))
}

/// `export KEY=value` → `KEY=value`; `export=1` and `exporter=1` are ordinary keys.
fn strip_export(line: &str) -> &str {
    match line.strip_prefix("export") {
        Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim_start(),
        _ => line,
    }
}

/// Removes one pair of matching outer quotes; the inside is kept byte for byte.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// The configuration environment: `<cwd>/.env` (if it exists) overlaid by `process_env`.
///
/// The process environment wins, including a variable set to an empty value (which then
/// means "not configured"). Process variables whose name or value is not UTF-8 are skipped:
/// none of perago's variables can be spelled that way. A `.env` that exists but cannot be read,
/// or is not UTF-8, is an error naming its path.
pub fn load_env(
    cwd: &Path,
    process_env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut env = read_dotenv_file(&cwd.join(DOTENV_FILE_NAME))?;
    for (key, value) in process_env {
        if let (Ok(key), Ok(value)) = (key.into_string(), value.into_string()) {
            env.insert(key, value);
        }
    }
    Ok(env)
}

/// Like [`load_env`], with `path` read instead of `<cwd>/.env`; the file must exist.
pub fn load_env_file(
    path: &Path,
    process_env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    if !path.exists() {
        return Err(ConfigError::DotenvUnreadable {
            path: path.to_owned(),
            error: io::Error::new(io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut env = read_dotenv_file(path)?;
    for (key, value) in process_env {
        if let (Ok(key), Ok(value)) = (key.into_string(), value.into_string()) {
            env.insert(key, value);
        }
    }
    Ok(env)
}

/// The 1-based line that sets each key in `.env` text (the last one, which wins).
#[cfg(feature = "cli")]
pub fn dotenv_line_numbers(text: &str) -> BTreeMap<String, usize> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if let Some((key, _)) = parse_line(line) {
            lines.insert(key.to_owned(), index + 1);
        }
    }
    lines
}

/// Reads and parses one `.env` file; a missing file is an empty map.
pub fn read_dotenv_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => {
            return Err(ConfigError::DotenvUnreadable {
                path: path.to_owned(),
                error,
            });
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(parse_dotenv(&text)),
        Err(error) => {
            let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            Err(ConfigError::DotenvNotUtf8 {
                path: path.to_owned(),
                line,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn line_rules() {
        // (file text, expected value of KEY or None when the line must be ignored)
        let cases: &[(&str, Option<&str>)] = &[
            ("KEY=value", Some("value")),
            ("  KEY  =  value  ", Some("value")),
            ("\tKEY=value\t", Some("value")),
            ("export KEY=value", Some("value")),
            ("export   KEY = value", Some("value")),
            ("export\tKEY=value", Some("value")),
            ("KEY=", Some("")),
            ("KEY=  ", Some("")),
            ("KEY=\"double quoted\"", Some("double quoted")),
            ("KEY='single quoted'", Some("single quoted")),
            ("KEY=\" padded \"", Some(" padded ")),
            ("KEY=  ' padded '  ", Some(" padded ")),
            ("KEY=\"\"", Some("")),
            ("KEY=''", Some("")),
            ("KEY=\"", Some("\"")),
            ("KEY='", Some("'")),
            ("KEY=\"mismatched'", Some("\"mismatched'")),
            ("KEY='mismatched\"", Some("'mismatched\"")),
            ("KEY=\"only-leading", Some("\"only-leading")),
            ("KEY=only-trailing\"", Some("only-trailing\"")),
            ("KEY=\"a\"b\"", Some("a\"b")),
            ("KEY=\"'nested'\"", Some("'nested'")),
            ("KEY=$HOME", Some("$HOME")),
            ("KEY=${HOME}/x", Some("${HOME}/x")),
            ("KEY=\"$HOME\"", Some("$HOME")),
            ("KEY=a\\nb", Some("a\\nb")),
            ("KEY=\"a\\nb\"", Some("a\\nb")),
            ("KEY=value # not a comment", Some("value # not a comment")),
            ("KEY=#hash", Some("#hash")),
            ("KEY=a=b=c", Some("a=b=c")),
            ("KEY=\"multi", Some("\"multi")),
            ("KEY=value\r", Some("value")),
            ("# KEY=commented", None),
            ("   # KEY=commented", None),
            ("#KEY=commented", None),
            ("KEY", None),
            ("export KEY", None),
            ("", None),
            ("   ", None),
        ];
        for &(text, expected) in cases {
            let parsed = parse_dotenv(text);
            assert_eq!(
                parsed.get("KEY").map(String::as_str),
                expected,
                "line {text:?}"
            );
        }
    }

    #[test]
    fn whole_file() {
        let text = "\u{feff}# comment\n\
                    \n\
                    A=1\n\
                    export B='two words'\n\
                    no equals sign here\n\
                    C=\"multi\n\
                    line\"\n\
                    A=3\n\
                    =orphan\n\
                    export=plain\n\
                    exporter=x\n\
                    URL=http://h/?a=1#frag\r\n";
        assert_eq!(
            parse_dotenv(text),
            map(&[
                ("A", "3"),
                ("B", "two words"),
                ("C", "\"multi"),
                ("URL", "http://h/?a=1#frag"),
                ("export", "plain"),
                ("exporter", "x"),
            ])
        );
    }

    #[test]
    fn process_env_overlays_dotenv() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(".env"),
            "ONLY_FILE=file\nBOTH=file\nBLANKED=file\n",
        )
        .expect("write .env");
        let process = [
            ("BOTH", "process"),
            ("BLANKED", ""),
            ("ONLY_PROCESS", "process"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = load_env(dir.path(), process).expect("load");
        assert_eq!(
            env,
            map(&[
                ("BLANKED", ""),
                ("BOTH", "process"),
                ("ONLY_FILE", "file"),
                ("ONLY_PROCESS", "process"),
            ])
        );
    }

    #[test]
    fn missing_dotenv_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = load_env(dir.path(), []).expect("load");
        assert!(env.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_process_vars_are_skipped() {
        use std::os::unix::ffi::OsStringExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let process = [
            (OsString::from("GOOD"), OsString::from("yes")),
            (
                OsString::from("BAD_VALUE"),
                OsString::from_vec(vec![0xff, 0xfe]),
            ),
            (OsString::from_vec(vec![b'K', 0xff]), OsString::from("v")),
        ];
        let env = load_env(dir.path(), process).expect("load");
        assert_eq!(env, map(&[("GOOD", "yes")]));
    }

    #[test]
    fn non_utf8_dotenv_names_path_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".env");
        std::fs::write(&path, b"A=1\nB=\xff\n").expect("write .env");
        let error = load_env(dir.path(), []).expect_err("must fail");
        assert_eq!(
            error.to_string(),
            format!("{} is not valid UTF-8 (line 2)", path.display())
        );
    }

    #[test]
    fn unreadable_dotenv_names_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".env");
        std::fs::create_dir(&path).expect("mkdir .env");
        let error = load_env(dir.path(), []).expect_err("a directory is not a file");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("cannot read {}: ", path.display())),
            "{text}"
        );
    }
}

/// Property tests of the SPEC §2 `.env` rules: rendered maps parse back, arbitrary text never
/// panics and never yields a key or value the rules forbid.
#[cfg(test)]
mod proptests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::{parse_dotenv, unquote};

    /// Keys as people write them (never `export…`, which the `export ` prefix would eat).
    fn key() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.]{0,12}"
            .prop_filter("not export-prefixed", |k| !k.starts_with("export"))
    }

    /// Values: anything on one line, and the characters other formats treat specially.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof!["[^\n\r]{0,24}", "[a-zA-Z0-9$#{}()\\\\ '\"=/:.\t-]{0,24}"]
    }

    /// How one line is written: quoting, `export `, and padding around key, `=` and value.
    #[derive(Debug, Clone)]
    struct Style {
        quote: Option<char>,
        export: bool,
        pad: [&'static str; 4],
    }

    fn style() -> impl Strategy<Value = Style> {
        let pad = prop_oneof![Just(""), Just(" "), Just("\t"), Just("  ")];
        (
            prop_oneof![Just(None), Just(Some('"')), Just(Some('\''))],
            any::<bool>(),
            [pad.clone(), pad.clone(), pad.clone(), pad],
        )
            .prop_map(|(quote, export, pad)| Style { quote, export, pad })
    }

    /// A line the parser must ignore: blank, a comment, or text without `=`.
    fn noise() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ \t]{0,3}",
            "[ \t]{0,3}#[^\n\r]{0,20}",
            "[^=\n\r]{0,20}",
            "export [A-Z]{1,5}",
        ]
    }

    fn render(key: &str, value: &str, style: &Style) -> String {
        // A bare value is written as is only when the parser would read it back unchanged
        // (no outer whitespace, not wholly wrapped in quotes); otherwise it is quoted.
        let quote = style
            .quote
            .or((value.trim() != value || unquote(value) != value).then_some('"'));
        let [a, b, c, d] = style.pad;
        let export = if style.export { "export " } else { "" };
        match quote {
            Some(q) => format!("{a}{export}{key}{b}={c}{q}{value}{q}{d}"),
            None => format!("{a}{export}{key}{b}={c}{value}{d}"),
        }
    }

    proptest! {
        #[test]
        fn rendered_maps_parse_back_exactly(
            entries in proptest::collection::btree_map(
                key(),
                (value(), style(), proptest::option::of(value()), noise()),
                0..12,
            ),
            crlf in any::<bool>(),
        ) {
            let mut lines = Vec::new();
            let mut expected = BTreeMap::new();
            for (key, (value, style, shadowed, noise)) in &entries {
                // An earlier line for the same key loses to the later one.
                if let Some(old) = shadowed {
                    lines.push(render(key, old, style));
                }
                lines.push(noise.clone());
                lines.push(render(key, value, style));
                expected.insert(key.clone(), value.clone());
            }
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
            prop_assert_eq!(parse_dotenv(&text), expected, "text {:?}", text);
        }

        #[test]
        fn values_are_never_interpolated_or_unescaped(
            name in "[A-Z]{1,8}",
            inner in "[a-z]{0,4}(\\$[A-Z]{1,6}|\\$\\{[A-Z]{1,6}\\}|\\\\n|\\\\t|#[a-z]{0,3})[a-z]{0,4}",
        ) {
            for text in [
                format!("{name}={inner}"),
                format!("{name}=\"{inner}\""),
                format!("{name}='{inner}'"),
            ] {
                let parsed = parse_dotenv(&text);
                prop_assert_eq!(parsed.get(&name).map(String::as_str), Some(inner.as_str()));
            }
        }

        #[test]
        fn arbitrary_text_never_panics_and_yields_only_lawful_pairs(text in "\\PC*(\n\\PC*){0,6}") {
            for (key, value) in parse_dotenv(&text) {
                prop_assert!(!key.is_empty());
                prop_assert_eq!(key.trim(), key.as_str());
                prop_assert!(!key.contains('=') && !key.contains('\n'));
                prop_assert!(!value.contains('\n'));
            }
        }

        #[test]
        fn arbitrary_unicode_never_panics(text in any::<String>()) {
            let _ = parse_dotenv(&text);
        }
    }
}
