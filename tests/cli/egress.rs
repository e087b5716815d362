//! Credentials at the boundary (spec/sandboxes.md): with `exo binding
//! http`, a sandboxed command's request for the bound host reaches it with
//! the credential the command never sees; other hosts get nothing added
//! and are refused while the network is closed; every request is an
//! `http.request` event, and the secret is nowhere: not in the sandbox,
//! the events, the output or exo's root.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use exo_fake_model::{Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{Fixture, API_KEY};
use crate::sandbox::{bwrap_ready, container_of, docker_ready, line, shell_output};

const SECRET: &str = "sk-egress-5e3f9a71c2d8";

/// A stand-in for an HTTP API: answers every request with a fixed body
/// (never echoing a header) and keeps each request's head.
struct Api {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Api {
    fn start(body: &'static str) -> Api {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&heads);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                kept.lock().unwrap().push(head.clone());
                // /echo reflects the request, as a debug endpoint or a
                // TRACE would: its head in the body, its credential in a
                // header.
                let (body, echoed) = if head.starts_with("GET /echo") {
                    let auth = header(&head, "authorization").unwrap_or("").to_owned();
                    (head.clone(), format!("X-Seen-Authorization: {auth}\r\n"))
                } else {
                    (body.to_owned(), String::new())
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{echoed}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        Api { port, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// A header's value in a request head (names case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The command: asks the bound API over http and over https, another
/// host, the bound host trusting nothing, the proxy without its token, an
/// endpoint that echoes the request, and TRACE; tries to write the proxy's
/// directory; then looks for the secret everywhere it can read.
fn probe(api: u16, other: u16) -> String {
    format!(
        r#"exec 2>&1
P=$(echo "$HTTP_PROXY" | sed 's|.*@||')
S=sk-egress; S="$S-5e3f9a71c2d8"
echo "bound: $(curl -sS http://127.0.0.1:{api}/v1/thing?q=1)"
echo "other: $(curl -sS -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{other}/x)"
echo "tunnel: $(curl -sS https://127.0.0.1:{api}/v1/secure)"
echo "untrusted: $(env -u CURL_CA_BUNDLE -u SSL_CERT_FILE curl -sS https://127.0.0.1:{api}/ 2>&1 | head -c 100)"
echo "token: $(curl -sS -o /dev/null -w '%{{http_code}}' -x "http://$P" http://127.0.0.1:{api}/)"
echo "echo: $(curl -sS -i http://127.0.0.1:{api}/echo | grep -c -F -- "$S")"
echo "masked: $(curl -sS -i http://127.0.0.1:{api}/echo | grep -ci 'X-Seen-Authorization: Bearer \*\*\*\*')"
echo "trace: $(curl -sS -o /dev/null -w '%{{http_code}}' -X TRACE http://127.0.0.1:{api}/)"
echo "egress: $(touch /run/exo-egress/planted 2>&1 | grep -c 'Read-only')"
echo "leak: $(printf '%s\n' "$S" | grep -rlsF -f - /proc/[0-9]*/environ /proc/[0-9]*/cmdline /run /tmp /etc . 2>/dev/null | tr '\n' ' ')"
echo "env: $(env | grep -c "$S")"
"#
    )
}

fn shell_stdout(fixture: &Fixture) -> String {
    shell_output(fixture)["stdout"].as_str().unwrap().to_owned()
}

fn http_events(fixture: &Fixture) -> Vec<Value> {
    fixture
        .last_turn("work")
        .into_iter()
        .filter(|event| event["kind"] == "custom" && event["type"] == "http.request")
        .collect()
}

/// Every file under `dir`, for a secret that must not be in any.
fn assert_nowhere_under(dir: &std::path::Path, secret: &str) {
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes()),
            "the secret is in {}",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => found.extend(walk(&path)),
            Ok(kind) if kind.is_file() => found.push(path),
            _ => {}
        }
    }
    found
}

fn bind(fixture: &Fixture, api: &Api) {
    fixture.ok(&["secret", "set", "api-token", "--value", SECRET]);
    let host = format!("127.0.0.1:{}", api.port);
    let bound = fixture.ok(&[
        "binding",
        "http",
        &host,
        "--secret",
        "api-token",
        "--plain-http",
    ]);
    assert!(!bound.stdout.contains(SECRET), "{}", bound.stdout);
    let listed = fixture.ok(&["binding", "list", "--kind", "http"]).stdout;
    assert!(
        listed.contains(&format!("http {host}  authorization: Bearer <secret>")),
        "{listed}"
    );
}

fn run_probe(fixture: &Fixture, api: &Api, other: &Api) -> String {
    fixture.model.push(Completion::text("").with_tool_call(
        "call_probe",
        "shell",
        json!({"command": probe(api.port, other.port)}),
    ));
    fixture.model.push(Completion::text("done"));
    let sent = fixture.send_ok("work", "call the API");
    assert!(!sent.stdout.contains(SECRET) && !sent.stderr.contains(SECRET));
    shell_stdout(fixture)
}

/// In the local sandbox with its network closed: the bound host is
/// reached through the proxy with the credential added, nothing else is.
#[test]
fn a_bound_host_gets_its_credential_and_nothing_else_does() {
    if !bwrap_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    let api = Api::start("hello from the api");
    let other = Api::start("hello from elsewhere");
    bind(&fixture, &api);
    let stdout = run_probe(&fixture, &api, &other);

    assert_eq!(line(&stdout, "bound"), "hello from the api", "{stdout}");
    let heads = api.heads();
    assert_eq!(heads.len(), 4, "{heads:?}");
    assert!(
        heads[0].starts_with("GET /v1/thing?q=1 HTTP/1.1\r\n"),
        "{heads:?}"
    );
    // https to the bound host ends at exo, under the turn's own authority
    // (which the command trusts, and the system does not), and goes on
    // with the credential.
    assert_eq!(line(&stdout, "tunnel"), "hello from the api", "{stdout}");
    assert!(
        heads[1].starts_with("GET /v1/secure HTTP/1.1\r\n"),
        "{heads:?}"
    );
    assert!(
        line(&stdout, "untrusted").contains("certificate"),
        "{stdout}"
    );
    for head in &heads {
        assert_eq!(
            header(head, "authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
        assert_eq!(header(head, "proxy-authorization"), None);
    }
    // Refused: another host while the network is closed, and the proxy
    // without its token.
    assert_eq!(line(&stdout, "other"), "403", "{stdout}");
    assert!(other.heads().is_empty());
    assert_eq!(line(&stdout, "token"), "407", "{stdout}");
    // An answer that echoes the request has the secret masked; TRACE is
    // not forwarded to a bound host; the proxy's directory is read-only.
    assert_eq!(line(&stdout, "echo"), "0", "{stdout}");
    assert_eq!(line(&stdout, "masked"), "1", "{stdout}");
    assert_eq!(line(&stdout, "trace"), "405", "{stdout}");
    assert_eq!(line(&stdout, "egress"), "1", "{stdout}");
    // The secret is nowhere the command can read.
    assert_eq!(line(&stdout, "leak").trim(), "", "{stdout}");
    assert_eq!(line(&stdout, "env"), "0", "{stdout}");

    let events = http_events(&fixture);
    let seen: Vec<(String, String, String, u64, bool)> = events
        .iter()
        .map(|event| {
            let p = &event["payload"];
            (
                p["host"].as_str().unwrap().to_owned(),
                p["method"].as_str().unwrap().to_owned(),
                p["path"].as_str().unwrap().to_owned(),
                p["status"].as_u64().unwrap(),
                p["credential"].as_bool().unwrap(),
            )
        })
        .collect();
    let bound_host = format!("127.0.0.1:{}", api.port);
    let other_host = format!("127.0.0.1:{}", other.port);
    assert_eq!(
        seen,
        vec![
            (
                bound_host.clone(),
                "GET".into(),
                "/v1/thing".into(),
                200,
                true
            ),
            (other_host, "GET".into(), "/x".into(), 403, false),
            (
                bound_host.clone(),
                "GET".into(),
                "/v1/secure".into(),
                200,
                true
            ),
            (bound_host.clone(), "GET".into(), "/".into(), 407, false),
            (bound_host.clone(), "GET".into(), "/echo".into(), 200, true),
            (bound_host.clone(), "GET".into(), "/echo".into(), 200, true),
            (bound_host, "TRACE".into(), "/".into(), 405, false),
        ],
        "{events:#?}"
    );
    assert!(events[1]["payload"]["refused"]
        .as_str()
        .unwrap()
        .contains("network is closed"));
    // The events come before the call's result, in the turn.
    let turn = fixture.last_turn("work");
    let at = |kind: &str| turn.iter().position(|e| e["kind"] == kind).unwrap();
    let first_http = turn
        .iter()
        .position(|e| e["type"] == "http.request")
        .unwrap();
    assert!(at("tool_call") < first_http && first_http < at("tool_result"));

    let all = fixture.run(&["conversation", "events", "coder", "work", "--json"]);
    assert!(!all.stdout.contains(SECRET));
    assert_nowhere_under(&fixture.root, SECRET);
    assert!(!stdout.contains(API_KEY));
}

/// With the network open, another host's requests pass through the proxy
/// with nothing added; the bound host still gets its credential.
#[test]
fn with_the_network_open_other_hosts_get_nothing_added() {
    if !bwrap_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    fixture.ok(&["agent", "set", "coder", "--network", "on"]);
    let api = Api::start("hello from the api");
    let other = Api::start("hello from elsewhere");
    bind(&fixture, &api);
    let stdout = run_probe(&fixture, &api, &other);
    assert_eq!(line(&stdout, "bound"), "hello from the api", "{stdout}");
    assert_eq!(line(&stdout, "other"), "200", "{stdout}");
    let heads = other.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert_eq!(header(&heads[0], "authorization"), None, "{heads:?}");
    assert_eq!(header(&heads[0], "proxy-authorization"), None, "{heads:?}");
    assert_eq!(line(&stdout, "leak").trim(), "", "{stdout}");
}

/// In a docker sandbox (no network at all), the bound host on the
/// machine is reached through the proxy; the container holds no secret.
#[test]
fn a_docker_sandbox_reaches_its_bound_host_through_the_proxy() {
    if !docker_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let _container = container_of(&fixture);
    let api = Api::start("hello from the api");
    let other = Api::start("hello from elsewhere");
    bind(&fixture, &api);
    let stdout = run_probe(&fixture, &api, &other);
    assert_eq!(line(&stdout, "bound"), "hello from the api", "{stdout}");
    assert_eq!(line(&stdout, "tunnel"), "hello from the api", "{stdout}");
    for head in api.heads() {
        assert_eq!(
            header(&head, "authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
    }
    assert_eq!(line(&stdout, "other"), "403", "{stdout}");
    assert!(other.heads().is_empty());
    assert_eq!(line(&stdout, "leak").trim(), "", "{stdout}");
    assert_eq!(line(&stdout, "env"), "0", "{stdout}");
    assert_eq!(line(&stdout, "echo"), "0", "{stdout}");
    assert_eq!(line(&stdout, "egress"), "1", "{stdout}");
    assert_eq!(http_events(&fixture).len(), 7);
    assert_nowhere_under(&fixture.root, SECRET);
}

/// Bad bindings are refused saying why, and store nothing.
#[test]
fn a_bad_http_binding_is_refused() {
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    fixture.ok(&["secret", "set", "api-token", "--value", SECRET]);
    for (args, said) in [
        (
            vec!["https://api.example.com"],
            "invalid HTTP host \"https://api.example.com\"",
        ),
        (vec!["api.example.com:99999"], "the port must be 1-65535"),
        (
            vec!["api.example.com", "--header", "Host"],
            "the connection's own",
        ),
        (
            vec!["api.example.com", "--scheme", "two words"],
            "invalid authorization scheme",
        ),
    ] {
        let mut full = vec!["binding", "http"];
        full.extend(args);
        full.extend(["--secret", "api-token"]);
        let run = fixture.run(&full);
        assert_ne!(run.code, 0);
        assert!(run.stderr.contains(said), "{}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    }
    let listed = fixture.ok(&["binding", "list", "--kind", "http"]).stdout;
    assert!(listed.trim().is_empty(), "{listed}");
    // A secret gone since fails the turn before it begins.
    fixture.ok(&[
        "binding",
        "http",
        "api.example.com",
        "--secret",
        "api-token",
    ]);
    fixture.ok(&["secret", "delete", "api-token"]);
    fixture.model.push(Completion::text("never"));
    let run = fixture.send("work", "go", &[]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("HTTP binding api.example.com"),
        "{}",
        run.stderr
    );
}
