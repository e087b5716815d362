//! The two-way peer: requests both ways over one connection, cancellation
//! both ways, order, bounds, batches, dialects, and the end of a
//! connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exo_rpc::message::{Dialect, ErrorObject, Json, Request};
use exo_rpc::peer::{memory_pair, Context, Handler, Options, Peer, RequestError};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;

/// Answers `echo` with its params, `add` with a sum; `ask_back` asks the
/// other side `echo` and answers with what it got; `notify_then_answer`
/// sends two notifications before answering; `wait` waits until cancelled
/// and reports it; `hold` waits on a gate. Notifications are recorded.
struct Test {
    notifications: Mutex<Vec<(String, Value)>>,
    cancelled: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    most_running: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
    closed: Arc<AtomicUsize>,
}

impl Default for Test {
    fn default() -> Test {
        Test {
            notifications: Mutex::default(),
            cancelled: Arc::default(),
            running: Arc::default(),
            most_running: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
            closed: Arc::default(),
        }
    }
}

impl Handler for Test {
    fn handle(
        &self,
        request: Request,
        context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>> {
        let params = request
            .params
            .as_ref()
            .map(Json::to_value)
            .unwrap_or(Value::Null);
        if request.is_notification() {
            self.notifications
                .lock()
                .unwrap()
                .push((request.method.clone(), params));
            return Box::pin(async { Ok(Json::null()) });
        }
        let cancelled = Arc::clone(&self.cancelled);
        let running = Arc::clone(&self.running);
        let most = Arc::clone(&self.most_running);
        let gate = Arc::clone(&self.gate);
        Box::pin(async move {
            match request.method.as_str() {
                "echo" => Ok(Json::from_value(&params)),
                "add" => Ok(Json::from_value(&json!(
                    params["a"].as_i64().unwrap() + params["b"].as_i64().unwrap()
                ))),
                "ask_back" => {
                    let answer = context
                        .peer
                        .request("echo", Json::from_value(&json!({"from": "callee"})))
                        .await
                        .map_err(|err| ErrorObject::new(-32000, err.to_string()))?;
                    Ok(answer)
                }
                "notify_then_answer" => {
                    for n in 0..2 {
                        context
                            .peer
                            .notify("progress", Json::from_value(&json!({"n": n})))
                            .await
                            .unwrap();
                    }
                    Ok(Json::from_value(&json!("done")))
                }
                "wait" => {
                    context.cancelled.cancelled().await;
                    cancelled.fetch_add(1, Ordering::SeqCst);
                    Err(ErrorObject::new(-32800, "request cancelled"))
                }
                "hold" => {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let permit = gate.acquire().await.unwrap();
                    permit.forget();
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(Json::null())
                }
                "panic" => panic!("a bug in a handler"),
                other => Err(ErrorObject::new(
                    -32601,
                    format!("method not found: {other}"),
                )),
            }
        })
    }

    fn closed(&self) -> BoxFuture<'static, ()> {
        self.closed.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
}

fn pair() -> (Peer, Peer, Arc<Test>, Arc<Test>) {
    let a = Arc::new(Test::default());
    let b = Arc::new(Test::default());
    let (left, right) = memory_pair(
        Arc::clone(&a) as Arc<dyn Handler>,
        Arc::clone(&b) as Arc<dyn Handler>,
        Options::default(),
    );
    (left, right, a, b)
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn requests_go_both_ways_on_one_connection() {
    let (left, right, _, _) = pair();
    let sum: i64 = left
        .handle()
        .request_as("add", &json!({"a": 2, "b": 3}))
        .await
        .unwrap();
    assert_eq!(sum, 5);
    let echoed: Value = right
        .handle()
        .request_as("echo", &json!({"x": [1, 2]}))
        .await
        .unwrap();
    assert_eq!(echoed, json!({"x": [1, 2]}));
    // A request answered by asking the caller something first.
    let back: Value = left
        .handle()
        .request_as("ask_back", &json!({}))
        .await
        .unwrap();
    assert_eq!(back, json!({"from": "callee"}));
    match left.handle().request("nope", Json::null()).await {
        Err(RequestError::Rpc(error)) => assert_eq!(error.code, -32601),
        other => panic!("{other:?}"),
    }
    match left.handle().request("panic", Json::null()).await {
        Err(RequestError::Rpc(error)) => assert_eq!(error.code, -32603),
        other => panic!("{other:?}"),
    }
    // The connection survived the panic.
    let sum: i64 = left
        .handle()
        .request_as("add", &json!({"a": 1, "b": 1}))
        .await
        .unwrap();
    assert_eq!(sum, 2);
}

#[tokio::test]
async fn notifications_sent_before_an_answer_arrive_before_it() {
    let (left, _right, a, _) = pair();
    let answer: String = left
        .handle()
        .request_as("notify_then_answer", &json!({}))
        .await
        .unwrap();
    assert_eq!(answer, "done");
    let seen = a.notifications.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("progress".to_string(), json!({"n": 0})),
            ("progress".to_string(), json!({"n": 1}))
        ]
    );
}

#[tokio::test]
async fn dropping_a_request_cancels_it_at_the_other_side() {
    let (left, _right, _, b) = pair();
    let handle = left.handle();
    let request = tokio::spawn(async move { handle.request("wait", Json::null()).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    request.abort();
    eventually("the callee saw the cancel", || {
        b.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn incoming_requests_are_bounded_batch_items_included() {
    let a = Arc::new(Test::default());
    let b = Arc::new(Test::default());
    let options = Options {
        max_in_flight: 4,
        ..Options::default()
    };
    let (left, _right) = memory_pair(
        Arc::clone(&a) as Arc<dyn Handler>,
        Arc::clone(&b) as Arc<dyn Handler>,
        options,
    );
    let mut calls = Vec::new();
    for _ in 0..10 {
        let handle = left.handle();
        calls.push(tokio::spawn(async move {
            handle.request("hold", Json::null()).await.unwrap()
        }));
    }
    eventually("four run", || b.running.load(Ordering::SeqCst) == 4).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(b.most_running.load(Ordering::SeqCst), 4);
    b.gate.add_permits(10);
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(b.most_running.load(Ordering::SeqCst), 4);
}

/// A peer on one end of a duplex, raw bytes on the other.
fn raw(handler: Arc<dyn Handler>, options: Options) -> (Peer, tokio::io::DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let (reader, writer) = tokio::io::split(ours);
    (Peer::spawn(reader, writer, handler, options), theirs)
}

#[tokio::test]
async fn batches_are_answered_in_order_in_one_array() {
    let (_peer, stream) = raw(Arc::new(Test::default()), Options::default());
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    writer
        .write_all(
            br#"[{"jsonrpc":"2.0","id":1,"method":"add","params":{"a":1,"b":1}},{"jsonrpc":"2.0","method":"note"},{"jsonrpc":"2.0","id":"two","method":"ask_nothing"},7,{"jsonrpc":"2.0","id":3,"method":"echo","params":[1]}]
"#,
        )
        .await
        .unwrap();
    let line = lines.next_line().await.unwrap().unwrap();
    let replies: Value = serde_json::from_str(&line).unwrap();
    let ids: Vec<Value> = replies
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(1), json!("two"), Value::Null, json!(3)]);
    assert_eq!(replies[0]["result"], 2);
    assert_eq!(replies[3]["result"], json!([1]));
}

#[tokio::test]
async fn the_bare_dialect_writes_no_version_and_needs_none() {
    let options = Options {
        dialect: Dialect::Bare,
        ..Options::default()
    };
    let (peer, stream) = raw(Arc::new(Test::default()), options);
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    writer
        .write_all(b"{\"id\":1,\"method\":\"echo\",\"params\":{\"a\":1}}\n")
        .await
        .unwrap();
    let line = lines.next_line().await.unwrap().unwrap();
    assert_eq!(line, r#"{"id":1,"result":{"a":1}}"#);
    // Its own requests carry no version either.
    let handle = peer.handle();
    let call = tokio::spawn(async move { handle.request("ping", Json::null()).await });
    let line = lines.next_line().await.unwrap().unwrap();
    let request: Value = serde_json::from_str(&line).unwrap();
    assert!(request.get("jsonrpc").is_none(), "{line}");
    writer
        .write_all(format!("{{\"id\":{},\"result\":\"pong\"}}\n", request["id"]).as_bytes())
        .await
        .unwrap();
    assert_eq!(call.await.unwrap().unwrap().get(), r#""pong""#);
}

#[tokio::test]
async fn an_error_tied_to_no_id_answers_what_waits() {
    let (peer, stream) = raw(Arc::new(Test::default()), Options::default());
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    let handle = peer.handle();
    let call = tokio::spawn(async move { handle.request("deep", Json::null()).await });
    lines.next_line().await.unwrap().unwrap();
    writer
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse error\"}}\n")
        .await
        .unwrap();
    match call.await.unwrap() {
        Err(RequestError::Rpc(error)) => assert_eq!(error.code, -32700),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_end_of_input_fails_waiting_requests_and_answers_running_ones() {
    let test = Arc::new(Test::default());
    let (peer, stream) = raw(Arc::clone(&test) as Arc<dyn Handler>, Options::default());
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    // One request of ours waits; one of theirs runs.
    let handle = peer.handle();
    let ours = tokio::spawn(async move { handle.request("never", Json::null()).await });
    lines.next_line().await.unwrap().unwrap();
    writer
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"hold\"}\n")
        .await
        .unwrap();
    eventually("theirs runs", || test.running.load(Ordering::SeqCst) == 1).await;
    writer.shutdown().await.unwrap();
    assert!(matches!(ours.await.unwrap(), Err(RequestError::Closed)));
    assert_eq!(
        test.closed.load(Ordering::SeqCst),
        0,
        "closed before answering"
    );
    test.gate.add_permits(1);
    let line = lines.next_line().await.unwrap().unwrap();
    assert_eq!(line, r#"{"jsonrpc":"2.0","id":9,"result":null}"#);
    peer.join().await;
    assert_eq!(test.closed.load(Ordering::SeqCst), 1);
    assert!(
        lines.next_line().await.unwrap().is_none(),
        "the writer closed"
    );
}

#[tokio::test]
async fn a_frame_over_the_limit_is_refused_and_the_connection_goes_on() {
    let options = Options {
        max_frame_bytes: 64,
        ..Options::default()
    };
    let (_peer, stream) = raw(Arc::new(Test::default()), options);
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{{\"x\":\"{}\"}}}}\n",
        "y".repeat(200)
    );
    writer.write_all(big.as_bytes()).await.unwrap();
    writer
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":[]}\n")
        .await
        .unwrap();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["error"]["code"], -32600);
    assert!(first["id"].is_null());
    let second: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(second["id"], 2);
}

/// A handler whose answer announces a stream that must follow it.
struct Announcer;

impl Handler for Announcer {
    fn handle(
        &self,
        _request: Request,
        context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>> {
        let stream = context.clone();
        tokio::spawn(async move {
            stream.after_reply().await;
            let _ = stream.peer.notify("streamed", Json::null()).await;
        });
        Box::pin(async move {
            // Not ready at once, so the answer comes from a task.
            tokio::task::yield_now().await;
            Ok(Json::from_value(&json!("announced")))
        })
    }
}

#[tokio::test]
async fn work_waiting_for_the_reply_follows_it() {
    let (_peer, stream) = raw(Arc::new(Announcer), Options::default());
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    for id in 0..20 {
        writer
            .write_all(format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"x\"}}\n").as_bytes())
            .await
            .unwrap();
        let first: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(first["id"], id, "the answer comes first: {first}");
        let second: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(second["method"], "streamed");
    }
}
