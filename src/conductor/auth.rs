//! Orkes token auth: `POST /api/token {keyId, keySecret}` → `{"token"}`, sent on every other
//! request as `X-Authorization`.
//!
//! The token is fetched lazily on the first request, refreshed proactively after a fixed TTL
//! (45 minutes, like every Conductor SDK: the JWT's own expiry is not parsed) and reactively
//! when a request is refused with 401, or 403 with `error: EXPIRED_TOKEN|INVALID_TOKEN` (the
//! caller replays that request once). Only one
//! refresh runs at a time: the state mutex is held across the token request, and a refresh
//! after a 401 happens only if the cached token is still the one that failed, so a burst of
//! 401s from many threads costs one token request. A 404 or 405 from `/api/token` means an
//! OSS server without auth: no header is sent from then on.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::error::ConductorError;
use crate::config::{ConductorAuth, Secret};

/// The header that carries the token (Orkes does not use `Authorization: Bearer`).
pub const AUTH_HEADER: &str = "X-Authorization";

/// How long a token is used before it is refreshed proactively.
pub const TOKEN_TTL: Duration = Duration::from_secs(45 * 60);

/// What the token endpoint answered.
#[derive(Debug)]
pub(crate) enum TokenReply {
    /// A fresh token.
    Token(Secret),
    /// The server has no token endpoint (OSS): disable auth.
    NotSupported,
}

enum TokenState {
    /// No token fetched yet, or the last one was refused.
    Unfetched,
    /// A token and when it was fetched.
    Valid { token: Secret, fetched: Instant },
    /// The server has no auth.
    Disabled,
}

/// The token cache of one client.
///
/// # Threads
/// Shared by every thread using the client. The mutex is held for a cache lookup, or for the
/// whole token request when a refresh is due, which is what makes refreshes one at a time.
pub(crate) struct TokenAuth {
    credentials: Option<ConductorAuth>,
    ttl: Duration,
    state: Mutex<TokenState>,
}

impl TokenAuth {
    pub(crate) fn new(credentials: Option<ConductorAuth>, ttl: Duration) -> TokenAuth {
        TokenAuth {
            credentials,
            ttl,
            state: Mutex::new(TokenState::Unfetched),
        }
    }

    /// The token to send, fetching or refreshing it with `fetch` when needed; `None` when auth
    /// is not configured or the server has none.
    pub(crate) fn token(
        &self,
        fetch: impl FnOnce(&ConductorAuth) -> Result<TokenReply, ConductorError>,
    ) -> Result<Option<Secret>, ConductorError> {
        let Some(credentials) = &self.credentials else {
            return Ok(None);
        };
        let mut state = self.state.lock();
        match &*state {
            TokenState::Disabled => return Ok(None),
            TokenState::Valid { token, fetched } if fetched.elapsed() < self.ttl => {
                return Ok(Some(token.clone()));
            }
            _ => {}
        }
        match fetch(credentials)? {
            TokenReply::Token(token) => {
                *state = TokenState::Valid {
                    token: token.clone(),
                    fetched: Instant::now(),
                };
                Ok(Some(token))
            }
            TokenReply::NotSupported => {
                log::info!("conductor has no token endpoint; continuing without authentication");
                *state = TokenState::Disabled;
                Ok(None)
            }
        }
    }

    /// Forgets `refused` so the next [`token`](Self::token) call fetches a new one, unless
    /// another thread already replaced it.
    pub(crate) fn invalidate(&self, refused: &Secret) {
        let mut state = self.state.lock();
        if let TokenState::Valid { token, .. } = &*state
            && token == refused
        {
            *state = TokenState::Unfetched;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn auth(ttl: Duration) -> TokenAuth {
        TokenAuth::new(
            Some(ConductorAuth::new(
                "key".into(),
                Secret::new("secret".into()),
            )),
            ttl,
        )
    }

    #[test]
    fn token_is_fetched_once_and_refreshed_after_refusal() {
        let auth = auth(TOKEN_TTL);
        let fetches = Cell::new(0);
        let fetch = |creds: &ConductorAuth| {
            assert_eq!(creds.key_secret().expose(), "secret");
            fetches.set(fetches.get() + 1);
            Ok(TokenReply::Token(Secret::new(format!(
                "jwt{}",
                fetches.get()
            ))))
        };
        let first = auth.token(fetch).unwrap().unwrap();
        assert_eq!(first.expose(), "jwt1");
        assert_eq!(auth.token(fetch).unwrap().unwrap().expose(), "jwt1");
        assert_eq!(fetches.get(), 1);
        auth.invalidate(&Secret::new("some older token".into()));
        assert_eq!(auth.token(fetch).unwrap().unwrap().expose(), "jwt1");
        auth.invalidate(&first);
        assert_eq!(auth.token(fetch).unwrap().unwrap().expose(), "jwt2");
        assert_eq!(fetches.get(), 2);
    }

    #[test]
    fn expired_token_is_refreshed() {
        let auth = auth(Duration::ZERO);
        let fetches = Cell::new(0);
        let fetch = |_: &ConductorAuth| {
            fetches.set(fetches.get() + 1);
            Ok(TokenReply::Token(Secret::new("jwt".into())))
        };
        auth.token(fetch).unwrap();
        auth.token(fetch).unwrap();
        assert_eq!(fetches.get(), 2);
    }

    #[test]
    fn oss_server_disables_auth_for_good() {
        let auth = auth(TOKEN_TTL);
        assert!(
            auth.token(|_| Ok(TokenReply::NotSupported))
                .unwrap()
                .is_none()
        );
        let token = auth.token(|_| panic!("no second token request")).unwrap();
        assert!(token.is_none());
    }

    #[test]
    fn no_credentials_means_no_header() {
        let auth = TokenAuth::new(None, TOKEN_TTL);
        assert!(auth.token(|_| panic!("never fetched")).unwrap().is_none());
    }
}
