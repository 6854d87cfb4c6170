//! A host resolver for the client's `ureq::Agent` that never spawns a thread on the hot path.
//!
//! ureq's default resolver spawns a thread for every request that has a deadline (it runs the
//! blocking lookup there so the deadline can cut it short), even when the host is an IP
//! literal and the connection comes from the pool. A worker runtime makes thousands of
//! requests per second, so this resolver answers IP literals directly and caches hostname
//! lookups for [`CACHE_TTL`]; only a cache miss goes to ureq's default resolver, deadline and
//! all.
//!
//! It uses ureq's `unversioned` resolver seam, which does not follow semver; the dependency is
//! locked in `Cargo.lock`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a hostname lookup is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// IP literals answered directly, hostnames cached; see the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct CachingResolver {
    inner: DefaultResolver,
    cache: Mutex<HashMap<String, (ResolvedSocketAddrs, Instant)>>,
}

impl CachingResolver {
    /// The port of `uri`, explicit or the scheme's default.
    fn port(uri: &Uri) -> Option<u16> {
        uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        })
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if let (Some(host), Some(port)) = (uri.host(), Self::port(uri)) {
            let literal = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = literal.parse::<IpAddr>() {
                let mut addrs = self.empty();
                addrs.push(SocketAddr::new(ip, port));
                return Ok(addrs);
            }
            let key = format!("{host}:{port}");
            if let Some((addrs, at)) = self.cache.lock().get(&key)
                && at.elapsed() < CACHE_TTL
            {
                return Ok(addrs.clone());
            }
            let addrs = self.inner.resolve(uri, config, timeout)?;
            self.cache
                .lock()
                .insert(key, (addrs.clone(), Instant::now()));
            return Ok(addrs);
        }
        self.inner.resolve(uri, config, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(resolver: &CachingResolver, url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        let config = Config::default();
        let timeout = NextTimeout {
            after: Duration::from_secs(5).into(),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        resolver
            .resolve(&uri, &config, timeout)
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn ip_literals_resolve_without_lookup_and_hostnames_are_cached() {
        let resolver = CachingResolver::default();
        assert_eq!(
            resolve(&resolver, "http://127.0.0.1:8080/api"),
            ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&resolver, "http://[::1]/api"),
            ["[::1]:80".parse::<SocketAddr>().unwrap()]
        );
        assert!(resolver.cache.lock().is_empty());
        let first = resolve(&resolver, "http://localhost:9/api");
        assert!(!first.is_empty());
        assert_eq!(resolver.cache.lock().len(), 1);
        assert_eq!(resolve(&resolver, "http://localhost:9/x"), first);
    }
}
