//! The lakeFS half of the dev server over real HTTP: every route, checked for the statuses,
//! JSON shapes and pagination of the real lakeFS API (`shared/protocols/lakefs-api.md`).
//!
//! Every test starts its own dev server and talks to it through one ureq agent, so request
//! counters are per test and no test depends on another's state.

use std::time::Duration;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use perago_devserver::{DevServer, DevServerOptions};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// Everything but RFC 3986 unreserved characters is percent-encoded (`+` included, which
/// Go — and the dev server — would otherwise decode as a space).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Largest response body a test reads.
const MAX_RESPONSE_BYTES: u64 = 128 * 1024 * 1024;

const UPLOAD_ROUTE: &str = "POST /repositories/{repository}/branches/{branch}/objects";
const LIST_OBJECTS_ROUTE: &str = "GET /repositories/{repository}/refs/{ref}/objects/ls";

fn enc(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn basic(key: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
    )
}

fn start() -> DevServer {
    DevServer::start(DevServerOptions::default()).expect("dev server starts")
}

/// One HTTP answer, fully read.
struct Reply {
    /// `"<METHOD> <path>"`, for assertion messages.
    what: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn describe(&self) -> String {
        format!(
            "{} -> {} {}",
            self.what,
            self.status,
            String::from_utf8_lossy(&self.body)
        )
    }

    /// Asserts the status and passes the reply on.
    #[track_caller]
    fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status, status, "{}", self.describe());
        self
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.describe()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `message` of a lakeFS error body (`{"message": "..."}`, JSON content type).
    #[track_caller]
    fn message(&self) -> String {
        assert_eq!(
            self.header("Content-Type"),
            Some("application/json"),
            "{}",
            self.describe()
        );
        match &self.json()["message"] {
            Value::String(message) => message.clone(),
            other => panic!("no message ({other}): {}", self.describe()),
        }
    }
}

fn with_headers<B>(
    mut builder: ureq::RequestBuilder<B>,
    headers: &[(&str, &str)],
) -> ureq::RequestBuilder<B> {
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
}

/// A lakeFS client over one ureq agent, authenticated with the server's key pair unless
/// made otherwise.
struct Lake {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

impl Lake {
    fn new(server: &DevServer) -> Lake {
        Lake {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .into(),
            base: format!("{}/api/v1", server.lakefs_endpoint()),
            auth: Some(basic(server.access_key_id(), server.secret_access_key())),
        }
    }

    /// The same agent with another `Authorization` header (or none).
    fn with_auth(&self, auth: Option<String>) -> Lake {
        Lake {
            agent: self.agent.clone(),
            base: self.base.clone(),
            auth,
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut all = headers.to_vec();
        if let Some(auth) = &self.auth {
            all.push(("Authorization", auth));
        }
        let result = match (method, body) {
            ("GET", None) => with_headers(self.agent.get(&url), &all).call(),
            ("HEAD", None) => with_headers(self.agent.head(&url), &all).call(),
            ("DELETE", None) => with_headers(self.agent.delete(&url), &all).call(),
            ("POST", body) => {
                with_headers(self.agent.post(&url), &all).send(body.unwrap_or_default())
            }
            ("PUT", body) => {
                with_headers(self.agent.put(&url), &all).send(body.unwrap_or_default())
            }
            ("PATCH", body) => {
                with_headers(self.agent.patch(&url), &all).send(body.unwrap_or_default())
            }
            other => panic!("unsupported request {other:?}"),
        };
        let what = format!("{method} {path}");
        let mut response = result.unwrap_or_else(|err| panic!("{what}: {err}"));
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .unwrap_or_else(|err| panic!("{what}: reading the body: {err}"));
        Reply {
            what,
            status: response.status().as_u16(),
            headers,
            body,
        }
    }

    fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], None)
    }

    fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, &[], None)
    }

    fn post_json(&self, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("encodes");
        self.post_raw(path, "application/json", &bytes)
    }

    fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.send("POST", path, &[("Content-Type", content_type)], Some(body))
    }

    fn create_repo(&self, name: &str) -> Value {
        self.post_json(
            "/repositories",
            &json!({"name": name, "storage_namespace": format!("mem://{name}")}),
        )
        .expect(201)
        .json()
    }

    fn create_branch(&self, repo: &str, name: &str, source: &str) -> Reply {
        self.post_json(
            &format!("/repositories/{repo}/branches"),
            &json!({"name": name, "source": source}),
        )
    }

    fn head(&self, repo: &str, branch: &str) -> String {
        let reply = self
            .get(&format!("/repositories/{repo}/branches/{branch}"))
            .expect(200);
        reply.json()["commit_id"]
            .as_str()
            .expect("commit_id")
            .to_owned()
    }

    fn upload_with(
        &self,
        repo: &str,
        branch: &str,
        path: &str,
        headers: &[(&str, &str)],
        data: &[u8],
    ) -> Reply {
        self.send(
            "POST",
            &format!(
                "/repositories/{repo}/branches/{branch}/objects?path={}",
                enc(path)
            ),
            headers,
            Some(data),
        )
    }

    fn upload(&self, repo: &str, branch: &str, path: &str, data: &[u8]) -> Reply {
        self.upload_with(repo, branch, path, &[], data)
    }

    fn put(&self, repo: &str, branch: &str, path: &str, data: &str) {
        self.upload(repo, branch, path, data.as_bytes()).expect(201);
    }

    fn remove(&self, repo: &str, branch: &str, path: &str) -> Reply {
        self.delete(&format!(
            "/repositories/{repo}/branches/{branch}/objects?path={}",
            enc(path)
        ))
    }

    fn commit_with(&self, repo: &str, branch: &str, body: &Value) -> Reply {
        self.post_json(
            &format!("/repositories/{repo}/branches/{branch}/commits"),
            body,
        )
    }

    /// Commits and returns the new commit id.
    fn commit(&self, repo: &str, branch: &str, message: &str) -> String {
        let commit = self
            .commit_with(repo, branch, &json!({"message": message}))
            .expect(201)
            .json();
        commit["id"].as_str().expect("id").to_owned()
    }

    fn object(&self, repo: &str, reference: &str, path: &str) -> Reply {
        self.get(&format!(
            "/repositories/{repo}/refs/{}/objects?path={}",
            enc(reference),
            enc(path)
        ))
    }

    fn stat(&self, repo: &str, reference: &str, path: &str) -> Reply {
        self.get(&format!(
            "/repositories/{repo}/refs/{}/objects/stat?path={}",
            enc(reference),
            enc(path)
        ))
    }

    /// Content of an object as text, or `None` on 404.
    fn content(&self, repo: &str, reference: &str, path: &str) -> Option<String> {
        let reply = self.object(repo, reference, path);
        match reply.status {
            200 => Some(reply.text()),
            404 => None,
            _ => panic!("{}", reply.describe()),
        }
    }

    fn commit_info(&self, repo: &str, reference: &str) -> Value {
        self.get(&format!("/repositories/{repo}/commits/{}", enc(reference)))
            .expect(200)
            .json()
    }

    /// Walks every page of a list endpoint with `after = next_offset` (the Python SDK's
    /// `generate_listing` loop), checking lakeFS's pagination invariants on each page, and
    /// returns the `key` field of every result in order.
    fn walk(&self, path: &str, amount: usize, key: &str) -> Vec<String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut after = String::new();
        let mut keys = Vec::new();
        loop {
            let page = self
                .get(&format!("{path}{sep}amount={amount}&after={}", enc(&after)))
                .expect(200)
                .json();
            let results = page["results"].as_array().expect("results").clone();
            let pagination = &page["pagination"];
            assert_eq!(pagination["results"], results.len(), "{page}");
            assert_eq!(pagination["max_per_page"], 1000, "{page}");
            assert!(results.len() <= amount, "{page}");
            keys.extend(
                results
                    .iter()
                    .map(|item| item[key].as_str().expect("key").to_owned()),
            );
            if pagination["has_more"] == true {
                // Only a full page can have more, and the token is its last key.
                assert_eq!(results.len(), amount, "{page}");
                let last = keys.last().expect("a full page").clone();
                assert_eq!(pagination["next_offset"], last.as_str(), "{page}");
                after = last;
            } else {
                assert_eq!(pagination["has_more"], false, "{page}");
                assert_eq!(pagination["next_offset"], "", "{page}");
                return keys;
            }
        }
    }
}

/// The `path` of every result of a list page.
fn paths(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|item| item["path"].as_str().expect("path").to_owned())
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn basic_auth_guards_every_route_but_the_healthcheck() {
    let server = start();
    let lake = Lake::new(&server);
    let anonymous = lake.with_auth(None);
    let health = anonymous.get("/healthcheck").expect(204);
    assert!(health.body.is_empty());
    assert!(health.header("X-Request-ID").is_some());

    let (key, secret) = (server.access_key_id(), server.secret_access_key());
    let encoded = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let bad: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("wrong secret", Some(basic(key, "not-the-secret"))),
        ("wrong key", Some(basic("AKIAWRONGKEY", secret))),
        (
            "secret with an extra byte",
            Some(basic(key, &format!("{secret}x"))),
        ),
        (
            "secret prefix",
            Some(basic(key, &secret[..secret.len() - 1])),
        ),
        ("empty pair", Some(basic("", ""))),
        ("no colon", Some(format!("Basic {}", encoded(key)))),
        ("not base64", Some("Basic !!not base64!!".into())),
        (
            "bearer scheme",
            Some(format!("Bearer {}", encoded(&format!("{key}:{secret}")))),
        ),
        ("scheme only", Some("Basic".into())),
    ];
    let guarded = [
        ("GET", "/user"),
        ("GET", "/repositories"),
        ("POST", "/repositories"),
        ("GET", "/repositories/repo1/branches/main"),
        ("POST", "/repositories/repo1/branches/main/objects?path=a"),
        ("GET", "/repositories/repo1/refs/main/objects/ls"),
    ];
    for (case, auth) in &bad {
        let client = lake.with_auth(auth.clone());
        for (method, path) in guarded {
            // Valid bodies: lakeFS validates requests before authenticating them.
            let body = (method == "POST")
                .then_some(&br#"{"name": "repo1", "storage_namespace": "mem://repo1"}"#[..]);
            let reply = client.send(method, path, &[("Content-Type", "application/json")], body);
            assert_eq!(reply.status, 401, "{case}: {}", reply.describe());
            assert_eq!(reply.message(), "error authenticating request", "{case}");
        }
    }
    // Nothing was created by the refused requests.
    let listed = lake.get("/repositories").expect(200).json();
    assert_eq!(listed["results"], json!([]));

    let user = lake.get("/user").expect(200).json();
    assert_eq!(user["user"]["id"], "admin");
    assert!(user["user"]["creation_date"].is_i64());
    // Setup endpoints are public; the dev server is always initialised.
    assert_eq!(
        anonymous.get("/setup_lakefs").expect(200).json()["state"],
        "initialized"
    );
    let setup = anonymous.post_json("/setup_lakefs", &json!({"username": "admin"}));
    assert_eq!(setup.expect(409).message(), "lakeFS already initialized");
    // Unknown endpoints are 404 with lakeFS's message, with or without credentials.
    for client in [&lake, &anonymous] {
        assert_eq!(
            client.get("/no/such/route").expect(404).message(),
            "invalid API endpoint"
        );
    }
}

#[test]
fn repositories_are_created_read_listed_and_deleted() {
    let server = start();
    let lake = Lake::new(&server);
    let created = lake
        .post_json(
            "/repositories",
            &json!({"name": "alpha", "storage_namespace": "local://alpha", "default_branch": "trunk"}),
        )
        .expect(201)
        .json();
    assert_eq!(created["id"], "alpha");
    assert_eq!(created["default_branch"], "trunk");
    assert_eq!(created["storage_namespace"], "local://alpha");
    assert_eq!(created["storage_id"], "");
    assert_eq!(created["read_only"], false);
    assert!(created["creation_date"].is_i64());
    assert_eq!(lake.get("/repositories/alpha").expect(200).json(), created);

    // The default branch points at the empty "Repository created" commit.
    let head = lake.head("alpha", "trunk");
    let initial = lake.commit_info("alpha", &head);
    assert_eq!(initial["message"], "Repository created");
    assert_eq!(initial["parents"], json!([]));
    assert_eq!(initial["committer"], "");
    assert_eq!(initial["id"], head.as_str());
    assert_eq!(lake.get("/repositories/alpha/branches/main").status, 404);

    // The id check comes first (409), then the namespace (400 "already in use").
    let duplicate = lake.post_json(
        "/repositories",
        &json!({"name": "alpha", "storage_namespace": "mem://other"}),
    );
    assert!(duplicate.expect(409).message().contains("already exists"));
    let reused = lake.post_json(
        "/repositories",
        &json!({"name": "beta", "storage_namespace": "local://alpha"}),
    );
    assert!(reused.expect(400).message().contains("already in use"));
    let invalid = [
        json!({"name": "ab", "storage_namespace": "mem://x1"}),
        json!({"name": "Alpha2", "storage_namespace": "mem://x2"}),
        json!({"name": "-abc", "storage_namespace": "mem://x3"}),
        json!({"name": "a_bc", "storage_namespace": "mem://x4"}),
        json!({"name": "a".repeat(64), "storage_namespace": "mem://x5"}),
        json!({"name": "gamma", "storage_namespace": "ftp://gamma"}),
        json!({"name": "gamma", "storage_namespace": "gamma"}),
        json!({"name": "gamma", "storage_namespace": "mem://g", "default_branch": "a/b"}),
        json!({"name": "gamma"}),
        json!({"storage_namespace": "mem://gamma"}),
    ];
    for body in &invalid {
        let reply = lake.post_json("/repositories", body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.describe());
        reply.message();
    }
    let missing = lake.get("/repositories/nope");
    assert!(missing.expect(404).message().contains("not found"));

    // Listing: sorted by id, paginated with lakeFS's invariants at every page size.
    let mut names = vec!["alpha".to_owned()];
    for i in 0..6 {
        let name = format!("repo-{i}");
        lake.create_repo(&name);
        names.push(name);
    }
    names.sort();
    for amount in [1, 2, 3, 6, 7, 8, 1000] {
        assert_eq!(
            lake.walk("/repositories", amount, "id"),
            names,
            "amount {amount}"
        );
    }
    let exact = lake.get("/repositories?amount=7").expect(200).json();
    assert_eq!(exact["pagination"]["has_more"], false);
    assert_eq!(exact["pagination"]["next_offset"], "");
    let short = lake.get("/repositories?amount=6").expect(200).json();
    assert_eq!(short["pagination"]["has_more"], true);
    assert_eq!(short["pagination"]["next_offset"], "repo-4");
    let rest = lake.get("/repositories?after=repo-4").expect(200).json();
    assert_eq!(rest["results"][0]["id"], "repo-5");
    assert_eq!(rest["pagination"]["results"], 1);
    for after in ["repo-5", "zzz"] {
        let empty = lake
            .get(&format!("/repositories?after={after}"))
            .expect(200)
            .json();
        assert_eq!(empty["results"], json!([]), "after {after}");
        assert_eq!(empty["pagination"]["has_more"], false);
    }
    let prefixed = lake.walk("/repositories?prefix=repo-", 4, "id");
    assert_eq!(prefixed, names[1..].to_vec());

    lake.delete("/repositories/alpha").expect(204);
    assert_eq!(lake.get("/repositories/alpha").status, 404);
    assert_eq!(lake.get("/repositories/alpha/branches/trunk").status, 404);
    lake.delete("/repositories/alpha").expect(404).message();
    assert_eq!(lake.walk("/repositories", 100, "id"), names[1..].to_vec());
    // A deleted repository's namespace stays taken, as in lakeFS.
    let recreated = lake.post_json(
        "/repositories",
        &json!({"name": "alpha", "storage_namespace": "local://alpha"}),
    );
    assert!(recreated.expect(400).message().contains("already in use"));
}

#[test]
fn branches_are_created_from_refs_listed_deleted_and_hard_reset() {
    let server = start();
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    let initial = lake.head("repo1", "main");
    lake.put("repo1", "main", "a.txt", "a1");
    let c1 = lake.commit("repo1", "main", "c1");
    lake.put("repo1", "main", "staged-only.txt", "s");

    // 201 with the bare commit id as text; staged changes of the source are not carried.
    let created = lake.create_branch("repo1", "feature", "main").expect(201);
    assert_eq!(created.text(), c1);
    assert_ne!(created.header("Content-Type"), Some("application/json"));
    assert_eq!(
        lake.get("/repositories/repo1/branches/feature")
            .expect(200)
            .json(),
        json!({"id": "feature", "commit_id": c1})
    );
    assert_eq!(lake.stat("repo1", "feature", "a.txt").status, 200);
    assert_eq!(lake.stat("repo1", "feature", "staged-only.txt").status, 404);

    // Sources are any ref expression.
    let sources = [
        ("from-id", c1.clone()),
        ("from-prefix", c1[..12].to_owned()),
        ("from-parent", "main~1".to_owned()),
        ("from-committed", "main@".to_owned()),
        ("from_branch", "feature".to_owned()),
    ];
    for (name, source) in &sources {
        lake.create_branch("repo1", name, source).expect(201);
    }
    assert_eq!(lake.head("repo1", "from-parent"), initial);
    assert_eq!(lake.head("repo1", "from-prefix"), c1);

    let exists = lake.create_branch("repo1", "feature", "main").expect(409);
    assert_eq!(exists.message(), "branch already exists: not unique");
    let refused = [
        ("feature", "main", 409),
        ("x1", "nope", 404),
        ("x2", "0123456789abcdef", 404),
        ("a/b", "main", 400),
        ("a.b", "main", 400),
        ("-x", "main", 400),
        ("", "main", 400),
        ("x3", "main~x", 400),
    ];
    for (name, source, status) in refused {
        let reply = lake.create_branch("repo1", name, source);
        assert_eq!(
            reply.status,
            status,
            "{name} from {source}: {}",
            reply.describe()
        );
        reply.message();
    }
    lake.create_branch("nope-repo", "x", "main")
        .expect(404)
        .message();
    lake.get("/repositories/repo1/branches/nope")
        .expect(404)
        .message();

    // Listing: sorted by name, all pages, exact-size edges.
    let mut names: Vec<String> = ["main", "feature"]
        .into_iter()
        .map(String::from)
        .chain(sources.iter().map(|(name, _)| name.to_string()))
        .collect();
    names.sort();
    for amount in [1, 2, 6, 7, 8] {
        assert_eq!(
            lake.walk("/repositories/repo1/branches", amount, "id"),
            names,
            "amount {amount}"
        );
    }
    let listed = lake
        .get("/repositories/repo1/branches?prefix=from")
        .expect(200)
        .json();
    assert_eq!(listed["results"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        listed["results"][0],
        json!({"id": "from-committed", "commit_id": c1})
    );
    let exact = lake
        .get(&format!(
            "/repositories/repo1/branches?amount={}",
            names.len()
        ))
        .expect(200)
        .json();
    assert_eq!(exact["pagination"]["has_more"], false);
    let last = names.last().expect("names");
    let after_last = lake
        .get(&format!("/repositories/repo1/branches?after={last}"))
        .expect(200)
        .json();
    assert_eq!(after_last["results"], json!([]));

    // Delete: 204, then 404; the default branch is 403.
    lake.delete("/repositories/repo1/branches/from_branch")
        .expect(204);
    lake.get("/repositories/repo1/branches/from_branch")
        .expect(404);
    lake.delete("/repositories/repo1/branches/from_branch")
        .expect(404)
        .message();
    lake.delete("/repositories/repo1/branches/main")
        .expect(403)
        .message();
    lake.delete("/repositories/nope-repo/branches/main")
        .expect(404);

    // Hard reset: PUT .../hard_reset?ref=..., no body, 204; the target need not be an
    // ancestor; ordinary staged changes stay staged.
    lake.put("repo1", "feature", "b.txt", "b");
    let c2 = lake.commit("repo1", "feature", "c2");
    let reset = |branch: &str, query: &str| {
        lake.send(
            "PUT",
            &format!("/repositories/repo1/branches/{branch}/hard_reset{query}"),
            &[],
            None,
        )
    };
    lake.put("repo1", "feature", "kept-staged.txt", "k");
    let done = reset("feature", &format!("?ref={c1}")).expect(204);
    assert!(done.body.is_empty());
    assert_eq!(lake.head("repo1", "feature"), c1);
    assert_eq!(lake.stat("repo1", "feature", "b.txt").status, 404);
    assert_eq!(
        lake.content("repo1", "feature", "kept-staged.txt")
            .as_deref(),
        Some("k")
    );
    assert_eq!(
        lake.stat("repo1", "feature@", "kept-staged.txt").status,
        404
    );
    reset("feature", &format!("?ref={c2}&force=false")).expect(204);
    assert_eq!(lake.head("repo1", "feature"), c2);
    reset("feature", &format!("?ref={}", enc("feature~1"))).expect(204);
    assert_eq!(lake.head("repo1", "feature"), c1);
    let bad_resets = [
        ("feature", String::new(), 400),
        ("feature", "?ref=".to_owned(), 400),
        ("feature", "?ref=nope".to_owned(), 404),
        ("feature", format!("?ref={}", enc("main$")), 400),
        ("feature", format!("?ref={c2}&force=maybe"), 400),
        ("nope", format!("?ref={c2}"), 404),
    ];
    for (branch, query, status) in bad_resets {
        let reply = reset(branch, &query);
        assert_eq!(reply.status, status, "{}", reply.describe());
        reply.message();
    }
    assert_eq!(lake.head("repo1", "feature"), c1);
}

/// A `multipart/form-data` body of `(name, content type, data)` parts.
fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, content_type, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"f.bin\"\r\n")
                .as_bytes(),
        );
        if let Some(content_type) = content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[test]
fn objects_are_uploaded_raw_and_multipart_then_read_and_deleted() {
    let server = start();
    let lake = Lake::new(&server);
    lake.create_repo("repo1");

    // Raw upload: the request content type and X-Lakefs-Meta-* headers are stored.
    let text = b"hello world";
    let stats = lake
        .upload_with(
            "repo1",
            "main",
            "docs/readme.txt",
            &[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Lakefs-Meta-Owner", "Alice"),
            ],
            text,
        )
        .expect(201)
        .json();
    assert_eq!(stats["path"], "docs/readme.txt");
    assert_eq!(stats["path_type"], "object");
    assert_eq!(stats["checksum"], md5_hex(text));
    assert_eq!(stats["size_bytes"], 11);
    assert_eq!(stats["content_type"], "text/plain; charset=utf-8");
    assert_eq!(stats["metadata"], json!({"owner": "Alice"}));
    assert!(stats["mtime"].is_i64());
    assert!(!stats["physical_address"].as_str().unwrap_or("").is_empty());

    // Multipart: the first part named `content` is the object, with its own content type;
    // binary data with CR/LF and boundary-like bytes survives.
    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"\r\n--BOUNDARY-not-quite\r\n--");
    let body = multipart(
        "BOUNDARY",
        &[
            ("other", Some("text/plain"), b"ignored"),
            ("content", Some("application/x-custom"), &binary),
            (
                "content",
                Some("text/plain"),
                b"second content part is ignored",
            ),
        ],
    );
    let stats = lake
        .upload_with(
            "repo1",
            "main",
            "bin/data.bin",
            &[("Content-Type", "multipart/form-data; boundary=BOUNDARY")],
            &body,
        )
        .expect(201)
        .json();
    assert_eq!(stats["checksum"], md5_hex(&binary));
    assert_eq!(stats["size_bytes"], binary.len());
    assert_eq!(stats["content_type"], "application/x-custom");
    // lakeFS answers every multipart failure with a 500.
    let no_content = multipart("B", &[("file", None, b"x")]);
    let failures: [(&str, &[u8]); 4] = [
        ("multipart/form-data; boundary=B", &no_content),
        ("multipart/form-data; boundary=B", b"garbage"),
        ("multipart/form-data; boundary=B", b""),
        ("multipart/form-data", &no_content),
    ];
    for (content_type, body) in failures {
        lake.upload_with(
            "repo1",
            "main",
            "never.bin",
            &[("Content-Type", content_type)],
            body,
        )
        .expect(500)
        .message();
    }
    assert_eq!(lake.stat("repo1", "main", "never.bin").status, 404);

    // Raw upload without a content type defaults to application/octet-stream; empty body ok.
    let empty = lake
        .upload("repo1", "main", "empty", b"")
        .expect(201)
        .json();
    assert_eq!(empty["content_type"], "application/octet-stream");
    assert_eq!(empty["checksum"], md5_hex(b""));
    assert_eq!(empty["size_bytes"], 0);

    // Stat and get agree with the uploads, on the branch and across a commit.
    let table: [(&str, &[u8], &str); 3] = [
        ("docs/readme.txt", text, "text/plain; charset=utf-8"),
        ("bin/data.bin", &binary, "application/x-custom"),
        ("empty", b"", "application/octet-stream"),
    ];
    for reference in ["main", "main@"] {
        if reference == "main@" {
            lake.commit("repo1", "main", "three objects");
        }
        for (path, data, content_type) in table {
            let stat = lake.stat("repo1", reference, path).expect(200).json();
            assert_eq!(stat["path"], path);
            assert_eq!(stat["checksum"], md5_hex(data), "{path}");
            assert_eq!(stat["size_bytes"], data.len(), "{path}");
            assert_eq!(stat["content_type"], content_type, "{path}");
            assert!(stat["metadata"].is_object(), "{path}");
            let got = lake.object("repo1", reference, path).expect(200);
            assert_eq!(got.body, data, "{path}");
            assert_eq!(got.header("Content-Type"), Some(content_type));
            assert_eq!(
                got.header("ETag"),
                Some(format!("\"{}\"", md5_hex(data)).as_str())
            );
            let head = lake.send(
                "HEAD",
                &format!(
                    "/repositories/repo1/refs/{}/objects?path={}",
                    enc(reference),
                    enc(path)
                ),
                &[],
                None,
            );
            assert!(head.expect(200).body.is_empty());
        }
    }
    let head_missing = lake.send(
        "HEAD",
        "/repositories/repo1/refs/main/objects?path=nope",
        &[],
        None,
    );
    assert!(head_missing.expect(404).body.is_empty());

    // Ranges (206/416) and conditional get (304).
    let ranged = lake.send(
        "GET",
        "/repositories/repo1/refs/main/objects?path=docs%2Freadme.txt",
        &[("Range", "bytes=6-")],
        None,
    );
    assert_eq!(ranged.expect(206).body, b"world");
    let unsatisfiable = lake.send(
        "GET",
        "/repositories/repo1/refs/main/objects?path=empty",
        &[("Range", "bytes=0-0")],
        None,
    );
    assert_eq!(
        unsatisfiable.expect(416).header("Content-Range"),
        Some("bytes */0")
    );
    let etag = format!("\"{}\"", md5_hex(text));
    lake.send(
        "GET",
        "/repositories/repo1/refs/main/objects?path=docs%2Freadme.txt",
        &[("If-None-Match", &etag)],
        None,
    )
    .expect(304);

    // Missing objects, refs and repositories are 404 with a JSON message.
    let missing = [
        ("repo1", "main", "nope"),
        ("repo1", "main@", "nope"),
        ("repo1", "nope", "docs/readme.txt"),
        ("nope-repo", "main", "docs/readme.txt"),
        ("repo1", "0123456789abcdef", "docs/readme.txt"),
    ];
    for (repo, reference, path) in missing {
        lake.stat(repo, reference, path).expect(404).message();
        lake.object(repo, reference, path).expect(404).message();
    }

    // Keys are used exactly as given: odd characters round-trip, no normalisation.
    let odd = [
        "a b+c&d=e#f?g%h;i",
        "ünï/cødé.txt",
        "a//b",
        "/a/b",
        "a/b",
        "../../etc/passwd",
        "trailing/",
    ];
    for (i, key) in odd.iter().enumerate() {
        let stats = lake
            .upload("repo1", "main", key, format!("odd {i}").as_bytes())
            .expect(201)
            .json();
        assert_eq!(stats["path"], *key);
    }
    for (i, key) in odd.iter().enumerate() {
        assert_eq!(
            lake.content("repo1", "main", key),
            Some(format!("odd {i}")),
            "{key}"
        );
    }
    let mut expected = strings(&odd);
    expected.extend(strings(&["bin/data.bin", "docs/readme.txt", "empty"]));
    expected.sort();
    assert_eq!(
        lake.walk("/repositories/repo1/refs/main/objects/ls", 3, "path"),
        expected
    );

    // Create-only uploads and overwrites.
    let create_only = [("If-None-Match", "*")];
    lake.upload_with("repo1", "main", "empty", &create_only, b"x")
        .expect(412)
        .message();
    lake.upload_with("repo1", "main", "fresh", &create_only, b"x")
        .expect(201);
    lake.upload_with(
        "repo1",
        "main",
        "fresh",
        &[("If-None-Match", "\"abc\"")],
        b"x",
    )
    .expect(501);
    lake.upload("repo1", "main", "fresh", b"overwritten")
        .expect(201);
    assert_eq!(
        lake.content("repo1", "main", "fresh").as_deref(),
        Some("overwritten")
    );
    lake.upload("repo1", "nope", "x", b"x")
        .expect(404)
        .message();
    lake.upload("nope-repo", "main", "x", b"x")
        .expect(404)
        .message();

    // Delete one: 204 even when missing; a staged delete hides only the branch view.
    let deleted = lake.remove("repo1", "main", "docs/readme.txt").expect(204);
    assert!(deleted.body.is_empty());
    lake.stat("repo1", "main", "docs/readme.txt").expect(404);
    lake.stat("repo1", "main@", "docs/readme.txt").expect(200);
    lake.remove("repo1", "main", "docs/readme.txt").expect(204);
    lake.remove("repo1", "main", "never-existed").expect(204);
    lake.remove("repo1", "nope", "x").expect(404).message();

    // Bulk delete: 200 with an errors list; missing paths are fine.
    let bulk = lake
        .post_json(
            "/repositories/repo1/branches/main/objects/delete",
            &json!({"paths": ["a//b", "/a/b", "missing"]}),
        )
        .expect(200)
        .json();
    assert_eq!(bulk, json!({"errors": []}));
    for (key, present) in [("a//b", false), ("/a/b", false), ("a/b", true)] {
        assert_eq!(
            lake.stat("repo1", "main", key).status == 200,
            present,
            "{key}"
        );
    }
    // Batch-level failures, as lakeFS reports them: an empty path anywhere (or a missing
    // repository or branch) deletes nothing and reports nothing; an over-long path or a
    // malformed branch id fails every path with a 500; still 200 throughout.
    let bulk_delete = |repo: &str, branch: &str, paths: Value| {
        lake.post_json(
            &format!("/repositories/{repo}/branches/{branch}/objects/delete"),
            &json!({ "paths": paths }),
        )
        .expect(200)
        .json()
    };
    for (repo, branch, paths) in [
        ("repo1", "main", json!(["a/b", ""])),
        ("repo1", "nope", json!(["a/b"])),
        ("nope-repo", "main", json!(["a/b"])),
    ] {
        assert_eq!(bulk_delete(repo, branch, paths), json!({"errors": []}));
    }
    for (branch, paths) in [
        ("main", json!(["a/b", "x".repeat(1025)])),
        ("a.b", json!(["a/b", "fresh"])),
    ] {
        let errors = bulk_delete("repo1", branch, paths)["errors"].clone();
        let codes: Vec<&Value> = errors
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| &e["status_code"])
            .collect();
        assert_eq!(codes, [&json!(500), &json!(500)], "{errors}");
        assert_eq!(errors[0]["path"], "a/b");
    }
    lake.stat("repo1", "main", "a/b").expect(200);
    let too_many: Vec<String> = (0..1001).map(|i| format!("p{i}")).collect();
    let refused = lake.post_json(
        "/repositories/repo1/branches/main/objects/delete",
        &json!({"paths": too_many}),
    );
    assert_eq!(
        refused.expect(400).message(),
        "request size exceeded, max paths is set to 1000"
    );
    let thousand: Vec<String> = (0..1000).map(|i| format!("p{i}")).collect();
    lake.post_json(
        "/repositories/repo1/branches/main/objects/delete",
        &json!({"paths": thousand}),
    )
    .expect(200);
}

#[test]
fn object_listing_paginates_with_lakefs_edges() {
    let server = start();
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    let flat: Vec<String> = (0..10).map(|i| format!("f/{i:02}")).collect();
    for key in &flat {
        lake.put("repo1", "main", key, key);
    }
    for key in ["d/a.txt", "d/b/1", "d/b/2", "d/c/x/1", "d/z.txt", "e"] {
        lake.put("repo1", "main", key, key);
    }
    let ls = "/repositories/repo1/refs/main/objects/ls";
    let f = |range: std::ops::Range<usize>| flat[range].to_vec();

    // (query, expected paths, has_more, next_offset)
    let cases: Vec<(&str, Vec<String>, bool, &str)> = vec![
        ("prefix=f/&amount=10", f(0..10), false, ""),
        ("prefix=f/&amount=9", f(0..9), true, "f/08"),
        ("prefix=f/&amount=11", f(0..10), false, ""),
        ("prefix=f/&amount=1", f(0..1), true, "f/00"),
        ("prefix=f/&amount=1000", f(0..10), false, ""),
        ("prefix=f/&after=f/04&amount=3", f(5..8), true, "f/07"),
        ("prefix=f/&after=f/04&amount=5", f(5..10), false, ""),
        ("prefix=f/&after=f/045", f(5..10), false, ""),
        ("prefix=f/&after=f/09", vec![], false, ""),
        ("prefix=f/&after=f/09&amount=1", vec![], false, ""),
        ("prefix=f/&after=zzz", vec![], false, ""),
        ("prefix=f/&after=", f(0..10), false, ""),
        ("prefix=f/&after=a", f(0..10), false, ""),
        ("prefix=f/&amount=0", f(0..10), false, ""),
        ("prefix=f/&amount=-1", f(0..10), false, ""),
        ("prefix=f/&amount=", f(0..10), false, ""),
        ("prefix=f/0", f(0..10), false, ""),
        ("prefix=f/1", vec![], false, ""),
        ("prefix=nothing", vec![], false, ""),
        ("after=f/08", strings(&["f/09"]), false, ""),
        ("after=e&amount=2", f(0..2), true, "f/01"),
        // Delimited listings fold sub-"directories" into common prefixes.
        (
            "prefix=d/&delimiter=/",
            strings(&["d/a.txt", "d/b/", "d/c/", "d/z.txt"]),
            false,
            "",
        ),
        (
            "prefix=d/&delimiter=/&amount=2",
            strings(&["d/a.txt", "d/b/"]),
            true,
            "d/b/",
        ),
        (
            "prefix=d/&delimiter=/&after=d/b/&amount=2",
            strings(&["d/c/", "d/z.txt"]),
            false,
            "",
        ),
        ("prefix=d/c/&delimiter=/", strings(&["d/c/x/"]), false, ""),
        ("delimiter=/", strings(&["d/", "e", "f/"]), false, ""),
        ("delimiter=/&after=d/", strings(&["e", "f/"]), false, ""),
        (
            "delimiter=/&amount=3",
            strings(&["d/", "e", "f/"]),
            false,
            "",
        ),
        ("delimiter=/&amount=2", strings(&["d/", "e"]), true, "e"),
        // A prefix is a plain string prefix, not a directory.
        ("prefix=d/b", strings(&["d/b/1", "d/b/2"]), false, ""),
    ];
    for (query, expected, has_more, next_offset) in cases {
        let page = lake.get(&format!("{ls}?{query}")).expect(200).json();
        assert_eq!(paths(&page), expected, "{query}");
        let pagination = &page["pagination"];
        assert_eq!(pagination["has_more"], has_more, "{query}");
        assert_eq!(pagination["next_offset"], next_offset, "{query}");
        assert_eq!(pagination["results"], expected.len(), "{query}");
        assert_eq!(pagination["max_per_page"], 1000, "{query}");
    }

    // Entry shapes: objects carry stats, common prefixes only path and type.
    let page = lake
        .get(&format!("{ls}?prefix=d/&delimiter=/"))
        .expect(200)
        .json();
    let object = &page["results"][0];
    assert_eq!(object["path_type"], "object");
    assert_eq!(object["size_bytes"], 7);
    assert_eq!(object["checksum"], md5_hex(b"d/a.txt"));
    assert_eq!(object["content_type"], "application/octet-stream");
    let common = &page["results"][1];
    assert_eq!(common["path_type"], "common_prefix");
    assert!(common.get("size_bytes").is_none(), "{common}");
    assert!(common.get("content_type").is_none(), "{common}");

    // Out-of-schema amounts are validation errors.
    for amount in ["-2", "1001", "abc", "1.5"] {
        lake.get(&format!("{ls}?amount={amount}"))
            .expect(400)
            .message();
    }

    // Walking delimited listings visits every top-level entry once at any page size.
    for amount in [1, 2, 3] {
        assert_eq!(
            lake.walk(&format!("{ls}?prefix=d/&delimiter=/"), amount, "path"),
            strings(&["d/a.txt", "d/b/", "d/c/", "d/z.txt"])
        );
    }

    // A branch listing includes staged changes (staged deletes hidden); `branch@` does not.
    lake.commit("repo1", "main", "all");
    lake.remove("repo1", "main", "f/00").expect(204);
    lake.put("repo1", "main", "f/10", "new");
    let staged = lake.walk(&format!("{ls}?prefix=f/"), 4, "path");
    let mut expected = f(1..10);
    expected.push("f/10".into());
    assert_eq!(staged, expected);
    let committed = lake.walk(
        &format!(
            "/repositories/repo1/refs/{}/objects/ls?prefix=f/",
            enc("main@")
        ),
        4,
        "path",
    );
    assert_eq!(committed, flat);
    lake.get("/repositories/repo1/refs/nope/objects/ls")
        .expect(404)
        .message();
}

#[test]
fn walking_all_pages_of_2500_objects_yields_each_key_once_in_order() {
    let server = start();
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    const N: usize = 2500;
    let mut keys: Vec<String> = (0..N).map(|i| format!("many/{:02}/{i}", i % 37)).collect();
    // Upload in an order unrelated to the listing order.
    for key in keys.iter().rev() {
        lake.put("repo1", "main", key, key);
    }
    assert_eq!(server.stats().count("lakefs", UPLOAD_ROUTE), N as u64);
    keys.sort();

    let mut list_calls = 0;
    for (reference, amount) in [("main", 1000), ("main", 333), ("main", 100)] {
        let walked = lake.walk(
            &format!("/repositories/repo1/refs/{reference}/objects/ls?prefix=many/"),
            amount,
            "path",
        );
        list_calls += N.div_ceil(amount);
        assert_eq!(walked.len(), N, "amount {amount}");
        assert_eq!(walked, keys, "amount {amount}");
    }
    lake.commit("repo1", "main", "2500 objects");
    let committed = lake.walk(
        &format!("/repositories/repo1/refs/{}/objects/ls", enc("main@")),
        1000,
        "path",
    );
    list_calls += 3;
    assert_eq!(committed, keys);
    let folded = lake.walk(
        "/repositories/repo1/refs/main/objects/ls?prefix=many/&delimiter=/",
        10,
        "path",
    );
    list_calls += 4;
    let dirs: Vec<String> = (0..37).map(|i| format!("many/{i:02}/")).collect();
    assert_eq!(folded, dirs);
    assert_eq!(
        server.stats().count("lakefs", LIST_OBJECTS_ROUTE),
        list_calls as u64
    );
    assert_eq!(server.stats().count("lakefs", UPLOAD_ROUTE), N as u64);
}

#[test]
fn commits_log_and_get_commit_follow_lakefs() {
    let server = start();
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    let initial = lake.head("repo1", "main");
    lake.put("repo1", "main", "a", "1");
    let first = lake
        .commit_with(
            "repo1",
            "main",
            &json!({"message": "first", "metadata": {"k": "v", "run": "7"}}),
        )
        .expect(201)
        .json();
    let c1 = first["id"].as_str().expect("id").to_owned();
    assert_eq!(c1.len(), 64);
    assert!(c1.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(first["parents"], json!([initial]));
    assert_eq!(first["message"], "first");
    assert_eq!(first["metadata"], json!({"k": "v", "run": "7"}));
    assert_eq!(first["committer"], "admin");
    assert_eq!(first["version"], 1);
    assert!(first["creation_date"].is_i64());
    assert!(first["meta_range_id"].is_string());
    let generation = |commit: &Value| commit["generation"].as_u64().expect("generation");
    assert_eq!(
        generation(&first),
        generation(&lake.commit_info("repo1", &initial)) + 1
    );
    assert_eq!(lake.head("repo1", "main"), c1);
    assert_eq!(lake.commit_info("repo1", &c1), first);

    // Nothing to commit is 400 "no changes" (also for an identical re-upload).
    let nothing = lake.commit_with("repo1", "main", &json!({"message": "again"}));
    assert!(nothing.expect(400).message().contains("no changes"));
    lake.put("repo1", "main", "a", "1");
    let identical = lake.commit_with("repo1", "main", &json!({"message": "same"}));
    assert!(identical.expect(400).message().contains("no changes"));
    let empty = lake
        .commit_with(
            "repo1",
            "main",
            &json!({"message": "empty", "allow_empty": true, "date": 1_700_000_000}),
        )
        .expect(201)
        .json();
    assert_eq!(empty["parents"], json!([c1]));
    assert_eq!(empty["creation_date"], 1_700_000_000);
    assert_eq!(empty["meta_range_id"], first["meta_range_id"]);
    let c2 = empty["id"].as_str().expect("id").to_owned();
    lake.put("repo1", "main", "b", "2");
    let c3 = lake.commit("repo1", "main", "third");
    lake.remove("repo1", "main", "a").expect(204);
    let c4 = lake.commit("repo1", "main", "fourth");
    assert_eq!(lake.stat("repo1", &c3, "a").status, 200);
    assert_eq!(lake.stat("repo1", &c4, "a").status, 404);

    let refused = [
        (
            "main",
            json!({"message": "x", "allow_empty": true, "force": "yes"}),
            400,
        ),
        ("main", json!({"metadata": {}}), 400),
        ("main", json!({"message": 5}), 400),
        ("main", json!({"message": "x", "metadata": {"n": 1}}), 400),
        ("main", json!({"message": "x", "date": "today"}), 400),
        ("nope", json!({"message": "x"}), 404),
    ];
    for (branch, body, status) in refused {
        let reply = lake.commit_with("repo1", branch, &body);
        assert_eq!(reply.status, status, "{body}: {}", reply.describe());
        reply.message();
    }
    lake.commit_with("nope-repo", "main", &json!({"message": "x"}))
        .expect(404);

    // Get commit takes any ref expression.
    let expected = [
        ("main", &c4),
        ("main~1", &c3),
        ("main~3", &c1),
        ("main^1", &c3),
        (&c2[..10], &c2),
        ("main@", &c4),
    ];
    for (reference, id) in expected {
        assert_eq!(
            lake.commit_info("repo1", reference)["id"],
            id.as_str(),
            "{reference}"
        );
    }
    lake.get("/repositories/repo1/commits/nope")
        .expect(404)
        .message();
    lake.get(&format!("/repositories/nope-repo/commits/{c1}"))
        .expect(404);

    // Log: newest first from the ref, every page, exact-size edges.
    let history = vec![
        c4.clone(),
        c3.clone(),
        c2.clone(),
        c1.clone(),
        initial.clone(),
    ];
    let log = "/repositories/repo1/refs/main/commits";
    for amount in [1, 2, 4, 5, 6] {
        assert_eq!(lake.walk(log, amount, "id"), history, "amount {amount}");
    }
    let page = lake.get(&format!("{log}?amount=5")).expect(200).json();
    assert_eq!(page["pagination"]["has_more"], false);
    assert_eq!(page["results"][0]["parents"], json!([c3]));
    assert_eq!(page["results"][0]["message"], "fourth");
    let page = lake.get(&format!("{log}?amount=4")).expect(200).json();
    assert_eq!(page["pagination"]["next_offset"], c1.as_str());
    let tail = lake.get(&format!("{log}?after={c1}")).expect(200).json();
    assert_eq!(tail["results"][0]["id"], initial.as_str());
    let end = lake
        .get(&format!("{log}?after={initial}"))
        .expect(200)
        .json();
    assert_eq!(end["results"], json!([]));
    assert_eq!(end["pagination"]["has_more"], false);
    let older = lake.walk(
        &format!("/repositories/repo1/refs/{}/commits", enc("main~2")),
        2,
        "id",
    );
    assert_eq!(older, history[2..].to_vec());
    lake.get("/repositories/repo1/refs/nope/commits")
        .expect(404)
        .message();
    // `after` is dereferenced like any ref: unknown is 404, a ref expression works.
    lake.get(&format!("{log}?after=nope")).expect(404).message();
    lake.get(&format!("{log}?after={}", "0".repeat(64)))
        .expect(404)
        .message();
    let from_ref = lake
        .get(&format!("{log}?after={}", enc("main~1")))
        .expect(200)
        .json();
    assert_eq!(from_ref["results"][0]["id"], c2.as_str());
}

#[test]
fn merges_squash_conflict_and_nothing_to_merge() {
    let server = start();
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    lake.put("repo1", "main", "base.txt", "base");
    lake.put("repo1", "main", "shared.txt", "v0");
    let base = lake.commit("repo1", "main", "base");
    lake.create_branch("repo1", "feature", "main").expect(201);
    lake.put("repo1", "feature", "new.txt", "from feature");
    lake.put("repo1", "feature", "shared.txt", "feature");
    let f1 = lake.commit("repo1", "feature", "feature work");
    lake.put("repo1", "main", "main-only.txt", "main");
    let m1 = lake.commit("repo1", "main", "main work");
    let merge = |source: &str, dest: &str, body: Option<&Value>| {
        let path = format!("/repositories/repo1/refs/{source}/merge/{dest}");
        match body {
            Some(body) => lake.post_json(&path, body),
            None => lake.send("POST", &path, &[], None),
        }
    };

    // The merge base is what both sides share.
    let bases = lake
        .get("/repositories/repo1/refs/feature/merge/main")
        .expect(200)
        .json();
    assert_eq!(
        bases,
        json!({"source_commit_id": f1, "destination_commit_id": m1, "base_commit_id": base})
    );

    // A regular merge (no body at all is fine): parents [dest, source], default message.
    let merged = merge("feature", "main", None).expect(200).json();
    let id = merged["reference"].as_str().expect("reference").to_owned();
    assert_eq!(lake.head("repo1", "main"), id);
    let commit = lake.commit_info("repo1", &id);
    assert_eq!(commit["parents"], json!([m1, f1]));
    assert_eq!(commit["message"], "Merge 'feature' into 'main'");
    assert_eq!(commit["metadata"][".lakefs.merge.strategy"], "default");
    assert_eq!(lake.commit_info("repo1", "main~1")["id"], m1.as_str());
    assert_eq!(lake.commit_info("repo1", "main^2")["id"], f1.as_str());
    for (path, content) in [
        ("base.txt", "base"),
        ("shared.txt", "feature"),
        ("new.txt", "from feature"),
        ("main-only.txt", "main"),
    ] {
        assert_eq!(
            lake.content("repo1", "main", path).as_deref(),
            Some(content),
            "{path}"
        );
    }
    // The first-parent log of the destination runs through the destination's history.
    let first_parent = lake.walk(
        "/repositories/repo1/refs/main/commits?first_parent=true",
        2,
        "id",
    );
    assert_eq!(first_parent[..3], [id.clone(), m1.clone(), base.clone()]);
    let full_log = lake.walk("/repositories/repo1/refs/main/commits", 100, "id");
    assert!(full_log.contains(&f1));
    assert_eq!(full_log[0], id);

    // Nothing to merge: 400 "... no changes"; allow_empty makes an empty merge commit.
    let nothing = merge("feature", "main", Some(&json!({})));
    assert!(nothing.expect(400).message().ends_with("no changes"));
    assert_eq!(lake.head("repo1", "main"), id);
    let forced = merge("feature", "main", Some(&json!({"allow_empty": true})))
        .expect(200)
        .json();
    let forced_id = forced["reference"].as_str().expect("reference").to_owned();
    assert_eq!(
        lake.commit_info("repo1", &forced_id)["parents"],
        json!([id, f1])
    );

    // Squash merge: one parent, the given message and metadata.
    lake.create_branch("repo1", "squashy", "main").expect(201);
    lake.put("repo1", "squashy", "sq1.txt", "1");
    lake.commit("repo1", "squashy", "sq 1");
    lake.put("repo1", "squashy", "sq2.txt", "2");
    let sq2 = lake.commit("repo1", "squashy", "sq 2");
    let before = lake.head("repo1", "main");
    let squashed = merge(
        "squashy",
        "main",
        Some(&json!({"squash_merge": true, "message": "squashed", "metadata": {"ticket": "42"}})),
    )
    .expect(200)
    .json();
    let squash_commit = lake.commit_info("repo1", squashed["reference"].as_str().expect("ref"));
    assert_eq!(squash_commit["parents"], json!([before]));
    assert_eq!(squash_commit["message"], "squashed");
    assert_eq!(squash_commit["metadata"]["ticket"], "42");
    assert_eq!(
        squash_commit["metadata"][".lakefs.merge.strategy"],
        "default"
    );
    assert_eq!(
        lake.content("repo1", "main", "sq2.txt").as_deref(),
        Some("2")
    );
    let log = lake.walk("/repositories/repo1/refs/main/commits", 100, "id");
    assert!(
        !log.contains(&sq2),
        "a squash merge does not bring the source history"
    );

    // Conflict: 409 with {"reference": ""} and nothing changed; strategies resolve it.
    lake.create_branch("repo1", "conflicting", "main")
        .expect(201);
    lake.put("repo1", "conflicting", "shared.txt", "theirs");
    lake.commit("repo1", "conflicting", "theirs");
    lake.put("repo1", "main", "shared.txt", "ours");
    let ours = lake.commit("repo1", "main", "ours");
    let conflict = merge("conflicting", "main", Some(&json!({}))).expect(409);
    assert_eq!(conflict.json(), json!({"reference": ""}));
    assert_eq!(lake.head("repo1", "main"), ours);
    merge(
        "conflicting",
        "main",
        Some(&json!({"strategy": "dest-wins"})),
    )
    .expect(200);
    assert_eq!(
        lake.content("repo1", "main", "shared.txt").as_deref(),
        Some("ours")
    );
    lake.put("repo1", "conflicting", "shared.txt", "theirs again");
    lake.commit("repo1", "conflicting", "theirs again");
    let resolved = merge(
        "conflicting",
        "main",
        Some(&json!({"strategy": "source-wins"})),
    )
    .expect(200)
    .json();
    assert_eq!(
        lake.content("repo1", "main", "shared.txt").as_deref(),
        Some("theirs again")
    );
    let resolved = lake.commit_info("repo1", resolved["reference"].as_str().expect("ref"));
    assert_eq!(
        resolved["metadata"][".lakefs.merge.strategy"],
        "source-wins"
    );

    // Refusals.
    lake.put("repo1", "conflicting", "more.txt", "more");
    lake.commit("repo1", "conflicting", "more");
    lake.put("repo1", "main", "dirty.txt", "dirty");
    let dirty = merge("conflicting", "main", Some(&json!({})));
    assert!(dirty.expect(400).message().contains("dirty branch"));
    lake.remove("repo1", "main", "dirty.txt").expect(204);
    let refused = [
        ("conflicting", "main", json!({"strategy": "default"}), 400),
        ("conflicting", "main", json!({"squash_merge": "yes"}), 400),
        ("nope", "main", json!({}), 404),
        ("conflicting", "nope", json!({}), 404),
    ];
    for (source, dest, body, status) in refused {
        let reply = merge(source, dest, Some(&body));
        assert_eq!(reply.status, status, "{body}: {}", reply.describe());
        reply.message();
    }
    lake.post_json("/repositories/nope-repo/refs/a/merge/main", &json!({}))
        .expect(404);
    // After the refusals the merge still works.
    merge("conflicting", "main", Some(&json!({}))).expect(200);
    assert_eq!(
        lake.content("repo1", "main", "more.txt").as_deref(),
        Some("more")
    );
}

/// `(type, path)` of each diff entry.
type Kinds = Vec<(String, String)>;

#[test]
fn diffs_between_refs_list_added_removed_and_changed() {
    let server = start();
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    for (path, content) in [("a", "1"), ("b", "2"), ("c", "3")] {
        lake.put("repo1", "main", path, content);
    }
    lake.commit("repo1", "main", "abc");
    lake.create_branch("repo1", "dev", "main").expect(201);
    lake.put("repo1", "dev", "b", "22");
    lake.remove("repo1", "dev", "c").expect(204);
    for path in ["d", "e/1", "e/2", "e/3/x"] {
        lake.put("repo1", "dev", path, "new!");
    }
    lake.commit("repo1", "dev", "dev work");
    // main changes `a` after the branch point: part of a two-dot diff, not of three-dot.
    lake.put("repo1", "main", "a", "11");
    lake.commit("repo1", "main", "main work");

    let diff = |left: &str, right: &str, query: &str| {
        lake.get(&format!(
            "/repositories/repo1/refs/{}/diff/{}{query}",
            enc(left),
            enc(right)
        ))
    };
    let kinds = |page: &Value| -> Kinds {
        page["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|d| {
                (
                    d["type"].as_str().expect("type").to_owned(),
                    d["path"].as_str().expect("path").to_owned(),
                )
            })
            .collect()
    };
    let pairs = |items: &[(&str, &str)]| -> Kinds {
        items
            .iter()
            .map(|(kind, path)| (kind.to_string(), path.to_string()))
            .collect()
    };
    let cases: Vec<(&str, &str, &str, Kinds)> = vec![
        (
            "main",
            "dev",
            "",
            pairs(&[
                ("changed", "b"),
                ("removed", "c"),
                ("added", "d"),
                ("added", "e/1"),
                ("added", "e/2"),
                ("added", "e/3/x"),
            ]),
        ),
        (
            "main",
            "dev",
            "?type=three_dot",
            pairs(&[
                ("changed", "b"),
                ("removed", "c"),
                ("added", "d"),
                ("added", "e/1"),
                ("added", "e/2"),
                ("added", "e/3/x"),
            ]),
        ),
        (
            "main",
            "dev",
            "?type=two_dot",
            pairs(&[
                ("changed", "a"),
                ("changed", "b"),
                ("removed", "c"),
                ("added", "d"),
                ("added", "e/1"),
                ("added", "e/2"),
                ("added", "e/3/x"),
            ]),
        ),
        (
            "dev",
            "main",
            "?type=two_dot",
            pairs(&[
                ("changed", "a"),
                ("changed", "b"),
                ("added", "c"),
                ("removed", "d"),
                ("removed", "e/1"),
                ("removed", "e/2"),
                ("removed", "e/3/x"),
            ]),
        ),
        ("dev", "main", "", pairs(&[("changed", "a")])),
        ("dev", "dev", "", vec![]),
        (
            "main",
            "main~1",
            "?type=two_dot",
            pairs(&[("changed", "a")]),
        ),
        (
            "main",
            "dev",
            "?delimiter=/",
            pairs(&[
                ("changed", "b"),
                ("removed", "c"),
                ("added", "d"),
                ("prefix_changed", "e/"),
            ]),
        ),
        (
            "main",
            "dev",
            "?prefix=e/&delimiter=/",
            pairs(&[
                ("added", "e/1"),
                ("added", "e/2"),
                ("prefix_changed", "e/3/"),
            ]),
        ),
        (
            "main",
            "dev",
            "?prefix=e/&after=e/2",
            pairs(&[("added", "e/3/x")]),
        ),
        ("main", "dev", "?after=zzz", vec![]),
    ];
    for (left, right, query, expected) in cases {
        let page = diff(left, right, query).expect(200).json();
        assert_eq!(kinds(&page), expected, "{left}...{right}{query}");
        assert_eq!(
            page["pagination"]["has_more"], false,
            "{left}...{right}{query}"
        );
    }
    let page = diff("main", "dev", "?delimiter=/").expect(200).json();
    let entries = page["results"].as_array().expect("results");
    assert_eq!(entries[2]["path_type"], "object");
    assert_eq!(entries[2]["size_bytes"], 4);
    assert_eq!(entries[3]["path_type"], "common_prefix");
    assert!(entries[3].get("size_bytes").is_none());

    // Pagination over diffs.
    let all = strings(&["b", "c", "d", "e/1", "e/2", "e/3/x"]);
    for amount in [1, 2, 5, 6, 7] {
        let walked = lake.walk("/repositories/repo1/refs/main/diff/dev", amount, "path");
        assert_eq!(walked, all, "amount {amount}");
    }
    let page = diff("main", "dev", "?amount=4").expect(200).json();
    assert_eq!(page["pagination"]["has_more"], true);
    assert_eq!(page["pagination"]["next_offset"], "e/1");

    // A conflicting change shows up as "conflict" in the merge preview.
    lake.put("repo1", "main", "b", "main-b");
    lake.commit("repo1", "main", "conflict on b");
    let page = diff("main", "dev", "?amount=1").expect(200).json();
    assert_eq!(kinds(&page), pairs(&[("conflict", "b")]));
    // `branch$` (staging) as the right side of a two-dot diff.
    lake.put("repo1", "main", "staged", "s");
    let page = diff("main", "main$", "?type=two_dot").expect(200).json();
    assert_eq!(kinds(&page), pairs(&[("added", "staged")]));
    let uncommitted = lake
        .get("/repositories/repo1/branches/main/diff")
        .expect(200)
        .json();
    assert_eq!(kinds(&uncommitted), pairs(&[("added", "staged")]));

    diff("main", "nope", "").expect(404).message();
    diff("nope", "main", "").expect(404).message();
    diff("main", "dev", "?type=four_dot").expect(400).message();
    diff("main", "dev", "?amount=1001").expect(400).message();
    lake.get("/repositories/nope-repo/refs/a/diff/b")
        .expect(404)
        .message();
}

#[test]
fn bad_input_is_refused_and_the_server_keeps_serving() {
    let server = start();
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    lake.put("repo1", "main", "a", "a");
    lake.commit("repo1", "main", "a");
    let r = "/repositories/repo1";
    let long_path = "p".repeat(1025);
    let deep = "[".repeat(100_000);
    // The server answers, and still serves the next request with nothing changed.
    let check = |reply: Reply, status: u16| {
        assert_eq!(reply.status, status, "{}", reply.describe());
        reply.message();
        lake.get(&format!("{r}/branches/main")).expect(200);
    };

    // JSON bodies: malformed, wrong shapes, wrong types, missing required fields.
    let repos = "/repositories".to_owned();
    let json_bodies: Vec<(String, &[u8])> = vec![
        (repos.clone(), b"{not json"),
        (repos.clone(), b"{\"name\":\"abc\""),
        (repos.clone(), b"[]"),
        (repos.clone(), b""),
        (repos.clone(), b"\xff\xfe"),
        (repos.clone(), deep.as_bytes()),
        (
            repos.clone(),
            br#"{"name": 5, "storage_namespace": "mem://x"}"#,
        ),
        (
            repos.clone(),
            br#"{"name": "abc", "storage_namespace": "mem://abc", "read_only": "no"}"#,
        ),
        (format!("{r}/branches"), br#"{"name": "x"}"#),
        (
            format!("{r}/branches"),
            br#"{"name": ["x"], "source": "main"}"#,
        ),
        (format!("{r}/branches/main/commits"), br#""just a string""#),
        (format!("{r}/refs/main/merge/main"), b"{"),
        (
            format!("{r}/branches/main/objects/delete"),
            br#"{"paths": "a"}"#,
        ),
        (
            format!("{r}/branches/main/objects/delete"),
            br#"{"paths": [1, 2]}"#,
        ),
        (format!("{r}/branches/main/objects/delete"), b"{}"),
    ];
    for (path, body) in &json_bodies {
        check(lake.post_raw(path, "application/json", body), 400);
    }
    // A JSON body needs the JSON content type.
    let valid = br#"{"name": "abc", "storage_namespace": "mem://abc"}"#;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        check(lake.post_raw("/repositories", content_type, valid), 400);
    }
    check(
        lake.send("POST", "/repositories", &[], Some(&valid[..])),
        400,
    );
    check(
        lake.send(
            "PUT",
            &format!("{r}/branches/main"),
            &[("Content-Type", "application/json")],
            Some(br#"{"type": "everything"}"#),
        ),
        400,
    );

    // Requests without a body: (method, path, status).
    let requests: Vec<(&str, String, u16)> = vec![
        ("PUT", format!("{r}/branches/main/hard_reset"), 400),
        // Invalid object paths: missing, empty, longer than 1024 bytes.
        ("GET", format!("{r}/refs/main/objects/stat"), 400),
        ("GET", format!("{r}/refs/main/objects?path="), 400),
        (
            "GET",
            format!("{r}/refs/main/objects?path={long_path}"),
            400,
        ),
        (
            "POST",
            format!("{r}/branches/main/objects?path={long_path}"),
            400,
        ),
        ("POST", format!("{r}/branches/main/objects"), 400),
        ("DELETE", format!("{r}/branches/main/objects"), 400),
        // Bad query values.
        ("GET", format!("{r}/refs/main/objects/ls?amount=many"), 400),
        ("GET", "/repositories?amount=1001".into(), 400),
        ("GET", format!("{r}/branches?amount=-5"), 400),
        (
            "GET",
            format!("{r}/refs/main/objects/stat?path=a&user_metadata=maybe"),
            400,
        ),
        (
            "DELETE",
            format!("{r}/branches/main/objects?path=a&force=perhaps"),
            400,
        ),
        // Bad refs: malformed (400), a parent that does not exist (400), past the root (404).
        ("GET", format!("{r}/refs/main~x/objects/ls"), 400),
        ("GET", format!("{r}/refs/main@@/objects/ls"), 400),
        ("GET", format!("{r}/refs/main%5E2/objects/ls"), 400),
        ("GET", format!("{r}/refs/main~5/objects/ls"), 404),
        // Unknown repositories, branches and refs.
        ("GET", "/repositories/nope-repo/branches".into(), 404),
        (
            "GET",
            "/repositories/nope-repo/refs/main/objects/ls".into(),
            404,
        ),
        ("DELETE", "/repositories/nope-repo".into(), 404),
        ("GET", format!("{r}/branches/nope"), 404),
        ("GET", format!("{r}/refs/nope/objects/ls"), 404),
        ("GET", format!("{r}/refs/nope/commits"), 404),
        ("PUT", format!("{r}/branches/nope/hard_reset?ref=main"), 404),
        ("POST", format!("{r}/branches/nope/objects?path=a"), 404),
        // Body validation comes first: no JSON body is a 400 even for a missing branch.
        ("POST", format!("{r}/branches/nope/commits"), 400),
        // Malformed repository and branch ids are validation errors, not "not found"
        // (get-commit answers every such error with a 500).
        ("GET", "/repositories/Repo1".into(), 400),
        ("GET", "/repositories/Repo1/branches".into(), 400),
        ("GET", "/repositories/Repo1/commits/main".into(), 500),
        ("GET", format!("{r}/branches/a.b"), 400),
        ("DELETE", format!("{r}/branches/a.b"), 400),
        ("POST", format!("{r}/branches/a.b/objects?path=a"), 400),
        ("POST", format!("{r}/refs/main/merge/main~1"), 400),
        // Path traversal in the URL path never escapes the route table.
        ("GET", format!("{r}/../repo1/branches/main"), 404),
        ("GET", "/repositories/%2E%2E/branches/main".into(), 400),
        ("GET", "/repositories/repo1%2Fbranches%2Fmain".into(), 400),
        ("GET", format!("{r}/branches/%2E%2E"), 400),
        // Unknown routes and methods.
        ("GET", format!("{r}/nope"), 404),
        ("PATCH", r.into(), 404),
        ("POST", format!("{r}/branches/main"), 404),
    ];
    for (method, path, status) in &requests {
        let body = matches!(*method, "POST" | "PUT" | "PATCH").then_some(&b""[..]);
        check(lake.send(method, path, &[], body), *status);
    }

    assert_eq!(lake.walk("/repositories", 100, "id"), ["repo1"]);
    assert_eq!(lake.walk(&format!("{r}/branches"), 100, "id"), ["main"]);
    assert_eq!(
        lake.walk(&format!("{r}/refs/main/objects/ls"), 100, "path"),
        ["a"]
    );
    // A path of exactly 1024 bytes is fine.
    let longest = "q".repeat(1024);
    lake.upload("repo1", "main", &longest, b"x").expect(201);
    assert_eq!(
        lake.content("repo1", "main", &longest).as_deref(),
        Some("x")
    );
}

#[test]
fn oversized_bodies_are_refused_and_the_server_keeps_serving() {
    // The default limit is 5 GiB; a small one shows the same refusal without the bytes.
    let max = 3 * 1024 * 1024;
    let server = DevServer::start(DevServerOptions {
        max_body_bytes: max as u64,
        ..DevServerOptions::default()
    })
    .expect("dev server starts");
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    let body = vec![b'x'; max + 1];
    let reply = lake.upload("repo1", "main", "huge", &body);
    assert_eq!(reply.expect(413).message(), "request body too large");
    lake.stat("repo1", "main", "huge").expect(404);
    lake.upload("repo1", "main", "small", b"ok").expect(201);
    assert_eq!(
        lake.content("repo1", "main", "small").as_deref(),
        Some("ok")
    );
    // Just under the limit and over the 1 MiB spool threshold: spooled to disk, served whole.
    let spooled: String = (0..max as u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    lake.upload("repo1", "main", "spooled", spooled.as_bytes())
        .expect(201);
    assert!(lake.content("repo1", "main", "spooled") == Some(spooled));
}

#[test]
fn every_route_counts_its_requests_once() {
    let server = start();
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    const N: usize = 17;
    for i in 0..N {
        lake.put("repo1", "main", &format!("o{i}"), "x");
    }
    let c1 = lake.commit("repo1", "main", "c1");
    lake.create_branch("repo1", "dev", "main").expect(201);
    lake.put("repo1", "dev", "d", "d");
    lake.commit("repo1", "dev", "d");
    let base = "/repositories/repo1";
    // (route label, method, path, body) — each request is sent exactly once, success or not.
    let requests: Vec<(&str, &str, String, Option<Value>)> = vec![
        ("GET /healthcheck", "GET", "/healthcheck".into(), None),
        ("GET /user", "GET", "/user".into(), None),
        ("GET /config", "GET", "/config".into(), None),
        ("GET /config/version", "GET", "/config/version".into(), None),
        ("GET /config/storage", "GET", "/config/storage".into(), None),
        ("GET /setup_lakefs", "GET", "/setup_lakefs".into(), None),
        ("GET /repositories", "GET", "/repositories".into(), None),
        ("GET /repositories/{repository}", "GET", base.into(), None),
        (
            "GET /repositories/{repository}/branches",
            "GET",
            format!("{base}/branches"),
            None,
        ),
        (
            "GET /repositories/{repository}/branches/{branch}",
            "GET",
            format!("{base}/branches/dev"),
            None,
        ),
        (
            "PUT /repositories/{repository}/branches/{branch}",
            "PUT",
            format!("{base}/branches/dev"),
            Some(json!({"type": "reset"})),
        ),
        (
            "PUT /repositories/{repository}/branches/{branch}/hard_reset",
            "PUT",
            format!("{base}/branches/dev/hard_reset?ref={c1}"),
            None,
        ),
        (
            "GET /repositories/{repository}/branches/{branch}/diff",
            "GET",
            format!("{base}/branches/dev/diff"),
            None,
        ),
        (
            "DELETE /repositories/{repository}/branches/{branch}/objects",
            "DELETE",
            format!("{base}/branches/main/objects?path=o0"),
            None,
        ),
        (
            "POST /repositories/{repository}/branches/{branch}/objects/delete",
            "POST",
            format!("{base}/branches/main/objects/delete"),
            Some(json!({"paths": ["o1"]})),
        ),
        (
            "GET /repositories/{repository}/refs/{ref}/objects",
            "GET",
            format!("{base}/refs/main/objects?path=o2"),
            None,
        ),
        (
            "HEAD /repositories/{repository}/refs/{ref}/objects",
            "HEAD",
            format!("{base}/refs/main/objects?path=o2"),
            None,
        ),
        (
            "GET /repositories/{repository}/refs/{ref}/objects/stat",
            "GET",
            format!("{base}/refs/main/objects/stat?path=o2"),
            None,
        ),
        (
            LIST_OBJECTS_ROUTE,
            "GET",
            format!("{base}/refs/main/objects/ls"),
            None,
        ),
        (
            "GET /repositories/{repository}/refs/{ref}/commits",
            "GET",
            format!("{base}/refs/main/commits"),
            None,
        ),
        (
            "GET /repositories/{repository}/refs/{leftRef}/diff/{rightRef}",
            "GET",
            format!("{base}/refs/main/diff/dev"),
            None,
        ),
        (
            "GET /repositories/{repository}/refs/{sourceRef}/merge/{destinationBranch}",
            "GET",
            format!("{base}/refs/dev/merge/main"),
            None,
        ),
        (
            "GET /repositories/{repository}/commits/{commitId}",
            "GET",
            format!("{base}/commits/{c1}"),
            None,
        ),
        (
            "GET /repositories/{repository}/settings/branch_protection",
            "GET",
            format!("{base}/settings/branch_protection"),
            None,
        ),
        (
            "PUT /repositories/{repository}/settings/branch_protection",
            "PUT",
            format!("{base}/settings/branch_protection"),
            Some(json!([])),
        ),
        (
            "POST /repositories/{repository}/branches/{branch}/commits",
            "POST",
            format!("{base}/branches/main/commits"),
            Some(json!({"message": "deletes"})),
        ),
        (
            "POST /repositories/{repository}/refs/{sourceRef}/merge/{destinationBranch}",
            "POST",
            format!("{base}/refs/main/merge/dev"),
            Some(json!({})),
        ),
        (
            "DELETE /repositories/{repository}/branches/{branch}",
            "DELETE",
            format!("{base}/branches/dev"),
            None,
        ),
        ("unknown", "GET", "/no/such/route".into(), None),
        (
            "DELETE /repositories/{repository}",
            "DELETE",
            base.into(),
            None,
        ),
    ];
    let before = server.stats().all();
    for (route, method, path, body) in &requests {
        let bytes = body
            .as_ref()
            .map(|b| serde_json::to_vec(b).expect("encodes"));
        let reply = lake.send(
            method,
            path,
            &[("Content-Type", "application/json")],
            bytes.as_deref(),
        );
        assert!(
            reply.status < 300 || *route == "unknown",
            "{route}: {}",
            reply.describe()
        );
    }
    let after = server.stats().all();
    for (route, ..) in &requests {
        let key = format!("lakefs {route}");
        let delta = after.get(&key).copied().unwrap_or(0) - before.get(&key).copied().unwrap_or(0);
        assert_eq!(delta, 1, "{route}: {after:?}");
        assert_eq!(
            server.stats().count("lakefs", route),
            after[&key],
            "{route}"
        );
    }
    // Route setup above: N + 1 uploads, 2 commits, 1 branch create, 1 repository create.
    assert_eq!(server.stats().count("lakefs", UPLOAD_ROUTE), N as u64 + 1);
    assert_eq!(
        server.stats().count(
            "lakefs",
            "POST /repositories/{repository}/branches/{branch}/commits"
        ),
        3
    );
    assert_eq!(
        server
            .stats()
            .count("lakefs", "POST /repositories/{repository}/branches"),
        1
    );
    assert_eq!(server.stats().count("lakefs", "POST /repositories"), 1);
}

#[test]
fn state_survives_a_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let options = DevServerOptions {
        data_dir: Some(data_dir.clone()),
        ..DevServerOptions::default()
    };
    let server = DevServer::start(options.clone()).expect("starts");
    let lake = Lake::new(&server);
    lake.create_repo("repo1");
    lake.create_repo("repo2");
    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    lake.upload_with(
        "repo1",
        "main",
        "bin/data.bin",
        &[
            ("Content-Type", "application/x-custom"),
            ("X-Lakefs-Meta-Run", "7"),
        ],
        &binary,
    )
    .expect(201);
    lake.put("repo1", "main", "../../escape.txt", "stays a key");
    lake.put("repo1", "main", "docs/a.txt", "a");
    lake.commit_with(
        "repo1",
        "main",
        &json!({"message": "first", "metadata": {"k": "v"}}),
    )
    .expect(201);
    lake.create_branch("repo1", "feature", "main").expect(201);
    lake.put("repo1", "feature", "docs/b.txt", "b");
    lake.commit("repo1", "feature", "feature");
    lake.post_json("/repositories/repo1/refs/feature/merge/main", &json!({}))
        .expect(200);
    lake.put("repo1", "main", "staged.txt", "not committed");
    lake.remove("repo1", "main", "docs/a.txt").expect(204);

    let snapshot = |lake: &Lake| {
        json!({
            "repos": lake.get("/repositories").expect(200).json(),
            "repo1": lake.get("/repositories/repo1").expect(200).json(),
            "branches": lake.get("/repositories/repo1/branches").expect(200).json(),
            "log": lake.get("/repositories/repo1/refs/main/commits").expect(200).json(),
            "staged": lake.get("/repositories/repo1/refs/main/objects/ls").expect(200).json(),
            "committed": lake.get("/repositories/repo1/refs/main%40/objects/ls").expect(200).json(),
            "feature": lake.get("/repositories/repo1/refs/feature/objects/ls").expect(200).json(),
            "uncommitted": lake.get("/repositories/repo1/branches/main/diff").expect(200).json(),
        })
    };
    let before = snapshot(&lake);
    drop(lake);
    server.stop().expect("stops and saves");
    // Object keys never become file paths: only the data dir exists next to it.
    let siblings: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(siblings, [std::ffi::OsString::from("data")]);

    let server = DevServer::start(options.clone()).expect("restarts");
    let lake = Lake::new(&server);
    assert_eq!(snapshot(&lake), before);
    let data = lake.object("repo1", "main", "bin/data.bin").expect(200);
    assert_eq!(data.body, binary);
    assert_eq!(data.header("Content-Type"), Some("application/x-custom"));
    let stat = lake
        .stat("repo1", "main", "bin/data.bin")
        .expect(200)
        .json();
    assert_eq!(stat["metadata"], json!({"run": "7"}));
    assert_eq!(
        lake.content("repo1", "main", "../../escape.txt").as_deref(),
        Some("stays a key")
    );
    assert_eq!(
        lake.content("repo1", "main", "staged.txt").as_deref(),
        Some("not committed")
    );
    assert_eq!(lake.content("repo1", "main", "docs/a.txt"), None);
    assert_eq!(
        lake.content("repo1", "main@", "docs/a.txt").as_deref(),
        Some("a")
    );
    let log = lake.walk(
        "/repositories/repo1/refs/main/commits?first_parent=true",
        100,
        "id",
    );
    assert_eq!(log.len(), 3);
    assert_eq!(
        lake.commit_info("repo1", &log[1])["metadata"],
        json!({"k": "v"})
    );
    // Namespaces stay taken and the state keeps evolving across a second restart.
    lake.post_json(
        "/repositories",
        &json!({"name": "repo3", "storage_namespace": "mem://repo1"}),
    )
    .expect(400);
    let after_restart = lake.commit("repo1", "main", "after restart");
    drop(lake);
    server.stop().expect("stops again");
    let server = DevServer::start(options).expect("restarts again");
    let lake = Lake::new(&server);
    assert_eq!(lake.head("repo1", "main"), after_restart);
    assert_eq!(
        lake.content("repo1", "main@", "staged.txt").as_deref(),
        Some("not committed")
    );
    assert_eq!(lake.walk("/repositories", 1, "id"), ["repo1", "repo2"]);
}
