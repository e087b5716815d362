//! A blocking JSON-RPC client on a Unix socket: the [`Peer`] driven by a
//! small runtime of its own, for code that is not asynchronous (the command
//! line's one-shot commands). One connection implementation serves every
//! client and server in exo; this is its blocking face.

use std::collections::VecDeque;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value;

use crate::message::{ErrorObject, Json};
use crate::peer::{NotificationsOnly, Options, Peer, RequestError};
use crate::Framing;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error.
    #[error("{0}")]
    Rpc(ErrorObject),
    /// The connection failed or closed.
    #[error("connection to the daemon failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something that is not JSON-RPC, or a result that is
    /// not the expected shape.
    #[error("the daemon sent an invalid message: {0}")]
    Protocol(String),
    /// No answer came within the client's timeout.
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
}

impl From<RequestError> for CallError {
    fn from(err: RequestError) -> CallError {
        match err {
            RequestError::Rpc(error) => CallError::Rpc(error),
            RequestError::Closed => CallError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection",
            )),
            RequestError::Unexpected(why) => CallError::Protocol(why),
        }
    }
}

/// A blocking client. Notifications that arrive while waiting for a
/// response are queued for [`Client::next_notification`].
pub struct Client {
    runtime: tokio::runtime::Runtime,
    peer: Option<Peer>,
    notifications: tokio::sync::mpsc::UnboundedReceiver<(String, Option<Json>)>,
    queued: VecDeque<(String, Value)>,
    timeout: Option<Duration>,
}

impl Client {
    /// A client on a connected socket.
    pub fn new(stream: UnixStream) -> std::io::Result<Client> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        stream.set_nonblocking(true)?;
        let (handler, notifications) = NotificationsOnly::new();
        let peer = runtime.block_on(async {
            let stream = tokio::net::UnixStream::from_std(stream)?;
            let (reader, writer) = stream.into_split();
            let options = Options {
                framing: Some(Framing::Ndjson),
                ..Options::default()
            };
            Ok::<_, std::io::Error>(Peer::spawn(reader, writer, handler, options))
        })?;
        Ok(Client {
            runtime,
            peer: Some(peer),
            notifications,
            queued: VecDeque::new(),
            timeout: None,
        })
    }

    /// Gives up on a call that has not been answered within `timeout`.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    fn peer(&self) -> &Peer {
        self.peer
            .as_ref()
            .expect("the peer lives as long as the client")
    }

    /// Calls `method` and waits for its response.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, CallError> {
        let result = self.call_raw(method, &Json::from_value(&params))?;
        result
            .parse()
            .map_err(|err| CallError::Protocol(err.to_string()))
    }

    /// Calls `method` with params given as JSON text; returns the result as
    /// JSON text, for the caller to read into its own type.
    pub fn call_raw(&mut self, method: &str, params: &Json) -> Result<Json, CallError> {
        let handle = self.peer().handle();
        let timeout = self.timeout;
        let outcome = self.runtime.block_on(async move {
            let call = handle.request(method, params.clone());
            match timeout {
                Some(limit) => match tokio::time::timeout(limit, call).await {
                    Ok(outcome) => outcome.map_err(CallError::from),
                    Err(_) => Err(CallError::Timeout(limit)),
                },
                None => call.await.map_err(CallError::from),
            }
        });
        self.drain_notifications();
        outcome
    }

    /// Sends a notification.
    pub fn notify(&mut self, method: &str, params: Value) -> Result<(), CallError> {
        let handle = self.peer().handle();
        self.runtime
            .block_on(async move { handle.notify(method, Json::from_value(&params)).await })
            .map_err(CallError::from)
    }

    /// The next notification: queued, or read from the connection (blocking).
    pub fn next_notification(&mut self) -> Result<(String, Value), CallError> {
        self.drain_notifications();
        if let Some(queued) = self.queued.pop_front() {
            return Ok(queued);
        }
        let received = self.runtime.block_on(self.notifications.recv());
        match received {
            Some((method, params)) => {
                Ok((method, params.map(|p| p.to_value()).unwrap_or(Value::Null)))
            }
            None => Err(RequestError::Closed.into()),
        }
    }

    fn drain_notifications(&mut self) {
        while let Ok((method, params)) = self.notifications.try_recv() {
            self.queued
                .push_back((method, params.map(|p| p.to_value()).unwrap_or(Value::Null)));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Stop reading and let the writer close, inside the runtime the
        // peer's tasks belong to.
        if let Some(peer) = self.peer.take() {
            peer.stop();
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(1), peer.join()).await
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A server thread: reads one request line, writes `answer`.
    fn answering(answer: &'static str) -> UnixStream {
        let (ours, theirs) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(theirs.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut writer = theirs;
            writer.write_all(answer.as_bytes()).unwrap();
            // Hold the connection until the client is done.
            let _ = reader.read_line(&mut line);
        });
        ours
    }

    #[test]
    fn an_error_tied_to_no_id_answers_the_waiting_call() {
        // A server that could not read the request answers with a null id;
        // the call must end with that error, not wait for ever.
        let mut client = Client::new(answering(
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse error: nested deeper than 256 levels\"}}\n",
        ))
        .unwrap();
        match client.call("conversation/append", serde_json::json!({})) {
            Err(CallError::Rpc(error)) => assert_eq!(error.code, -32700),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn results_and_ids_are_read_as_sent() {
        let mut client = Client::new(answering(
            "{\"jsonrpc\":\"2.0\",\"method\":\"note\",\"params\":{\"n\":1}}\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"big\":123456789012345678901234567890}}\n",
        ))
        .unwrap();
        let result = client
            .call_raw("x", &Json::from_value(&serde_json::json!({})))
            .unwrap();
        assert_eq!(result.get(), r#"{"big":123456789012345678901234567890}"#);
        assert_eq!(client.next_notification().unwrap().0, "note");
    }

    #[test]
    fn a_call_without_an_answer_times_out() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut client = Client::new(ours).unwrap();
        client.set_timeout(Some(Duration::from_millis(50)));
        assert!(matches!(
            client.call("ping", serde_json::json!({})),
            Err(CallError::Timeout(_))
        ));
        drop(theirs);
    }
}
