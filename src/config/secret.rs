//! [`Secret`]: a string that never leaves the process in clear through `Debug`, `Display`,
//! serialisation or logs.
//!
//! Only [`Secret::expose`] gives the value back, so every place that sends a credential over
//! the wire is easy to find with a search for `expose`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every rendering of a [`Secret`] prints instead of its value.
pub const REDACTED: &str = "**********";

/// A credential (lakeFS secret access key, Conductor auth secret).
///
/// `Debug`, `Display` and `Serialize` all write `REDACTED` (`**********`); the value is reachable only
/// through [`Secret::expose`]. Deserialising reads a plain string, so a value that went through
/// [`Serialize`] comes back as the redaction text, not as the original secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The credential in clear, for the one place that must send it (an HTTP auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAR: &str = "s3cr3t-value";

    #[test]
    fn every_rendering_is_redacted() {
        let secret = Secret::new(CLEAR.to_owned());
        let renderings = [
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{secret}"),
            format!("{secret:>20}"),
            serde_json::to_string(&secret).unwrap_or_default(),
            format!("{:?}", Some(&secret)),
        ];
        for rendering in renderings {
            assert!(!rendering.contains(CLEAR), "leaked in {rendering}");
            assert!(rendering.contains(REDACTED), "no redaction in {rendering}");
        }
        assert_eq!(
            serde_json::to_string(&secret).ok().as_deref(),
            Some("\"**********\"")
        );
    }

    #[test]
    fn expose_returns_the_value() {
        assert_eq!(Secret::new(CLEAR.to_owned()).expose(), CLEAR);
        assert_eq!(Secret::from(CLEAR.to_owned()).expose(), CLEAR);
    }

    #[test]
    fn deserialises_from_a_plain_string() {
        let secret: Secret =
            serde_json::from_str("\"abc\"").unwrap_or_else(|_| Secret::new(String::new()));
        assert_eq!(secret.expose(), "abc");
    }
}
