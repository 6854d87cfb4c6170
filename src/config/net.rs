//! How perago reaches Conductor and lakeFS over the network: TLS material (a custom CA bundle,
//! a client certificate and key) and HTTP proxies (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
//!
//! Everything is read and checked when the configuration loads: certificate and key files are
//! read and parsed then, so a wrong path or an empty bundle fails at startup naming the
//! variable; the clients only turn the loaded material into their TLS and proxy settings.
//! Private keys and proxy passwords never reach `Debug`, logs or JSON.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::parse::{ConfigError, non_blank};

/// The variables of one connection's TLS settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsVars {
    /// PEM bundle of CA certificates trusted instead of the built-in web roots.
    pub ca_cert: &'static str,
    /// PEM client certificate (chain).
    pub client_cert: &'static str,
    /// PEM private key of the client certificate.
    pub client_key: &'static str,
}

/// Conductor's TLS variables.
pub(crate) const CONDUCTOR_TLS: TlsVars = TlsVars {
    ca_cert: "CONDUCTOR_SSL_CA_CERT",
    client_cert: "CONDUCTOR_SSL_CLIENT_CERT",
    client_key: "CONDUCTOR_SSL_CLIENT_KEY",
};

/// lakeFS's TLS variables.
pub(crate) const LAKEFS_TLS: TlsVars = TlsVars {
    ca_cert: "LAKECTL_SERVER_CA_CERT",
    client_cert: "LAKECTL_SERVER_CLIENT_CERT",
    client_key: "LAKECTL_SERVER_CLIENT_KEY",
};

struct LoadedTls {
    roots: Option<Vec<Certificate<'static>>>,
    client: Option<ClientCert>,
}

/// The TLS settings of one connection: file paths plus the certificates and key read from
/// them at load time.
///
/// `Debug`, equality and the JSON shape use the paths only; the key never leaves this type
/// except into the TLS handshake.
#[derive(Clone, Deserialize)]
#[serde(try_from = "TlsPaths")]
pub struct TlsFiles {
    paths: TlsPaths,
    loaded: Arc<LoadedTls>,
}

/// The paths of a [`TlsFiles`], as `perago config --json` writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// The CA bundle.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// The client certificate.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// The client key.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("ca_cert", &self.paths.ca_cert)
            .field("client_cert", &self.paths.client_cert)
            .field("client_key", &self.paths.client_key)
            .finish()
    }
}

impl PartialEq for TlsFiles {
    fn eq(&self, other: &Self) -> bool {
        self.paths == other.paths
    }
}

impl Eq for TlsFiles {}

impl TryFrom<TlsPaths> for TlsFiles {
    type Error = ConfigError;

    fn try_from(paths: TlsPaths) -> Result<Self, ConfigError> {
        TlsFiles::load(paths, CONDUCTOR_TLS)
    }
}

fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|error| ConfigError::TlsFileUnreadable {
        var,
        path: path.to_path_buf(),
        error,
    })
}

fn pem_items(var: &'static str, path: &Path) -> Result<Vec<PemItem<'static>>, ConfigError> {
    let bytes = read(var, path)?;
    ureq::tls::parse_pem(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ConfigError::TlsFileInvalid {
            var,
            path: path.to_path_buf(),
            expected: "PEM",
        })
}

fn certificates(var: &'static str, path: &Path) -> Result<Vec<Certificate<'static>>, ConfigError> {
    let certs: Vec<_> = pem_items(var, path)?
        .into_iter()
        .filter_map(|item| match item {
            PemItem::Certificate(cert) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(ConfigError::TlsFileInvalid {
            var,
            path: path.to_path_buf(),
            expected: "a PEM certificate",
        });
    }
    Ok(certs)
}

fn private_key(var: &'static str, path: &Path) -> Result<PrivateKey<'static>, ConfigError> {
    pem_items(var, path)?
        .into_iter()
        .find_map(|item| match item {
            PemItem::PrivateKey(key) => Some(key),
            _ => None,
        })
        .ok_or_else(|| ConfigError::TlsFileInvalid {
            var,
            path: path.to_path_buf(),
            expected: "a PEM private key",
        })
}

impl TlsFiles {
    /// Reads the TLS variables `vars` of one connection; `None` when none is set.
    pub(crate) fn from_env<'a>(
        get: &impl Fn(&str) -> Option<&'a str>,
        vars: TlsVars,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        let path = |var: &str| non_blank(get(var)).map(PathBuf::from);
        let paths = TlsPaths {
            ca_cert: path(vars.ca_cert),
            client_cert: path(vars.client_cert),
            client_key: path(vars.client_key),
        };
        if paths == TlsPaths::default() {
            return Ok(None);
        }
        TlsFiles::load(paths, vars).map(Some)
    }

    fn load(paths: TlsPaths, vars: TlsVars) -> Result<TlsFiles, ConfigError> {
        let roots = paths
            .ca_cert
            .as_deref()
            .map(|path| certificates(vars.ca_cert, path))
            .transpose()?;
        let client = match (&paths.client_cert, &paths.client_key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(vars.client_cert, cert)?;
                let key = private_key(vars.client_key, key)?;
                Some(ClientCert::new_with_certs(&chain, key))
            }
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ConfigError::TlsClientIncomplete {
                    missing: vars.client_cert,
                });
            }
            (Some(_), None) => {
                return Err(ConfigError::TlsClientIncomplete {
                    missing: vars.client_key,
                });
            }
        };
        Ok(TlsFiles {
            paths,
            loaded: Arc::new(LoadedTls { roots, client }),
        })
    }

    /// The configured paths.
    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    /// The rustls settings for a ureq agent: the CA bundle as the only roots (the built-in
    /// web roots otherwise) and the client certificate when configured.
    pub(crate) fn ureq_config(&self) -> TlsConfig {
        let mut builder = TlsConfig::builder();
        if let Some(roots) = &self.loaded.roots {
            builder = builder.root_certs(RootCerts::new_with_certs(roots));
        }
        builder.client_cert(self.loaded.client.clone()).build()
    }
}

/// A proxy URL; its password is never displayed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ProxyUrl {
    url: String,
    /// The variable it came from (for messages; `"proxy"` when deserialised).
    #[serde(skip)]
    var: &'static str,
}

impl TryFrom<String> for ProxyUrl {
    type Error = ConfigError;

    fn try_from(url: String) -> Result<Self, ConfigError> {
        ProxyUrl::parse("proxy", &url)
    }
}

impl ProxyUrl {
    fn parse(var: &'static str, raw: &str) -> Result<ProxyUrl, ConfigError> {
        let url = raw.trim();
        let valid = ureq::Proxy::new(url).is_ok()
            && [
                "http://",
                "https://",
                "socks4://",
                "socks4a://",
                "socks5://",
                "socks://",
            ]
            .iter()
            .any(|scheme| url.to_ascii_lowercase().starts_with(scheme));
        if !valid {
            return Err(ConfigError::ProxyInvalid { var });
        }
        Ok(ProxyUrl {
            url: url.to_owned(),
            var,
        })
    }

    /// The URL with any password replaced by `****`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return self.url.clone();
        };
        let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                format!("{scheme}://{user}:****@{host}{tail}")
            }
            None => self.url.clone(),
        }
    }

    /// The ureq proxy (already validated at load time).
    pub(crate) fn ureq_proxy(&self) -> Option<ureq::Proxy> {
        ureq::Proxy::new(&self.url).ok()
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProxyUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The proxy environment: `HTTPS_PROXY`/`https_proxy`, `HTTP_PROXY`/`http_proxy` (the
/// lower-case spelling wins when both are set, as in curl) and `NO_PROXY`/`no_proxy`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxyEnv {
    https: Option<ProxyUrl>,
    http: Option<ProxyUrl>,
    no_proxy: Vec<String>,
}

impl ProxyEnv {
    pub(crate) fn from_env<'a>(
        get: &impl Fn(&str) -> Option<&'a str>,
    ) -> Result<ProxyEnv, ConfigError> {
        let proxy = |lower: &'static str, upper: &'static str| match (
            non_blank(get(lower)),
            non_blank(get(upper)),
        ) {
            (Some(value), _) => ProxyUrl::parse(lower, value).map(Some),
            (None, Some(value)) => ProxyUrl::parse(upper, value).map(Some),
            (None, None) => Ok(None),
        };
        let https = proxy("https_proxy", "HTTPS_PROXY")?;
        let http = proxy("http_proxy", "HTTP_PROXY")?;
        let no_proxy = non_blank(get("no_proxy"))
            .or_else(|| non_blank(get("NO_PROXY")))
            .map(|list| {
                list.split(',')
                    .map(|entry| entry.trim().to_ascii_lowercase())
                    .filter(|entry| !entry.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(ProxyEnv {
            https,
            http,
            no_proxy,
        })
    }

    /// The proxy to use for `url`: by its scheme, unless `NO_PROXY` names its host.
    pub(crate) fn proxy_for(&self, url: &str) -> Option<ProxyUrl> {
        let lower = url.trim().to_ascii_lowercase();
        let (proxy, rest) = if let Some(rest) = lower.strip_prefix("https://") {
            (self.https.as_ref(), rest)
        } else if let Some(rest) = lower.strip_prefix("http://") {
            (self.http.as_ref(), rest)
        } else {
            return None;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if let Some(v6) = host_port.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            host_port.split(':').next().unwrap_or("")
        };
        if self
            .no_proxy
            .iter()
            .any(|entry| no_proxy_matches(entry, host))
        {
            return None;
        }
        proxy.cloned()
    }
}

/// curl's `NO_PROXY` rules: `*` matches every host; `example.com` and `.example.com` match
/// that host and its subdomains; an IP address matches itself. A `:port` is ignored.
fn no_proxy_matches(entry: &str, host: &str) -> bool {
    if entry == "*" {
        return true;
    }
    let entry = entry.trim_start_matches('*');
    let entry = entry
        .strip_prefix('[')
        .map_or(entry, |v6| v6.trim_end_matches(']'));
    let entry = if entry.matches(':').count() == 1 {
        entry.split(':').next().unwrap_or(entry)
    } else {
        entry
    };
    let bare = entry.trim_start_matches('.');
    !bare.is_empty() && (host == bare || host.ends_with(&format!(".{bare}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn proxies(pairs: &[(&str, &str)]) -> Result<ProxyEnv, ConfigError> {
        let env = env(pairs);
        ProxyEnv::from_env(&|var: &str| env.get(var).map(String::as_str))
    }

    #[test]
    fn proxy_is_chosen_by_scheme_and_no_proxy_exempts_hosts() {
        let env = proxies(&[
            ("HTTPS_PROXY", "http://user:pa55@secure-proxy:3128"),
            ("HTTP_PROXY", "http://plain-proxy:3128"),
            ("NO_PROXY", "localhost, .internal.example, 10.0.0.7:8080"),
        ])
        .unwrap();
        let url = |u: &str| env.proxy_for(u).map(|p| p.redacted());
        assert_eq!(
            url("https://conductor.example.com/api").as_deref(),
            Some("http://user:****@secure-proxy:3128")
        );
        assert_eq!(
            url("http://conductor.example.com:8080/api").as_deref(),
            Some("http://plain-proxy:3128")
        );
        assert_eq!(url("http://localhost:8080/api"), None);
        assert_eq!(url("https://lakefs.internal.example/api/v1"), None);
        assert_eq!(url("https://internal.example"), None);
        assert_eq!(url("http://10.0.0.7:9000"), None);
        assert!(url("https://notinternal.example").is_some());
        assert_eq!(
            proxies(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", "*")])
                .unwrap()
                .proxy_for("https://x"),
            None
        );
    }

    #[test]
    fn lower_case_proxy_wins_and_bad_proxies_are_named() {
        let env = proxies(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:1"),
        ])
        .unwrap();
        assert_eq!(
            env.proxy_for("https://x").map(|p| p.redacted()).as_deref(),
            Some("http://lower:1")
        );
        assert_eq!(
            proxies(&[("HTTP_PROXY", "not a url")])
                .unwrap_err()
                .to_string(),
            "HTTP_PROXY must be a proxy URL such as 'http://proxy.example.com:3128'"
        );
    }

    #[test]
    fn proxy_passwords_never_show() {
        let env = proxies(&[("HTTPS_PROXY", "http://me:s3cret@p:3128")]).unwrap();
        let proxy = env.proxy_for("https://x").unwrap();
        let shown = format!("{proxy} {proxy:?} {env:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn tls_files_are_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        let load = |pairs: &[(&str, &str)]| {
            let env = env(pairs);
            TlsFiles::from_env(&|var: &str| env.get(var).map(String::as_str), CONDUCTOR_TLS)
        };
        assert!(load(&[]).unwrap().is_none());
        let missing = dir.path().join("missing.pem");
        let error = load(&[("CONDUCTOR_SSL_CA_CERT", missing.to_str().unwrap())]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "CONDUCTOR_SSL_CA_CERT names a file that cannot be read: {}",
                missing.display()
            )
        );
        assert!(std::error::Error::source(&error).is_some());
        let error = load(&[("CONDUCTOR_SSL_CA_CERT", empty.to_str().unwrap())]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "CONDUCTOR_SSL_CA_CERT must name a file holding a PEM certificate: {}",
                empty.display()
            )
        );
        let error = load(&[("CONDUCTOR_SSL_CLIENT_KEY", empty.to_str().unwrap())]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "TLS client certificate config is incomplete; missing CONDUCTOR_SSL_CLIENT_CERT"
        );
    }
}
