//! A blocking JSON-RPC client over any byte stream, speaking NDJSON. The
//! command line uses it to talk to a running daemon.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};

use serde_json::Value;

use crate::message::{self, ErrorObject, Incoming, Json, Parsed, Response};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error.
    #[error("{0}")]
    Rpc(ErrorObject),
    /// The connection failed or closed.
    #[error("connection to the daemon failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something that is not JSON-RPC.
    #[error("the daemon sent an invalid message: {0}")]
    Protocol(String),
}

/// A blocking client. Notifications that arrive while waiting for a
/// response are queued for [`Client::next_notification`].
pub struct Client<R: Read, W: Write> {
    reader: BufReader<R>,
    writer: W,
    next_id: u64,
    notifications: VecDeque<(String, Value)>,
}

impl<R: Read, W: Write> Client<R, W> {
    /// A client reading from `reader` and writing to `writer`.
    pub fn new(reader: R, writer: W) -> Self {
        Client {
            reader: BufReader::new(reader),
            writer,
            next_id: 1,
            notifications: VecDeque::new(),
        }
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
        let id = self.next_id;
        self.next_id += 1;
        let mut line = message::request_bytes(id, method, params);
        line.push(b'\n');
        self.writer.write_all(&line)?;
        self.writer.flush()?;
        loop {
            match self.read_one()? {
                Incoming::Response(response) if response.id.as_u64() == Some(id) => {
                    return response.outcome.map_err(CallError::Rpc);
                }
                // An error the server could not tie to a request (it could
                // not read it) answers the one this client waits for.
                Incoming::Response(Response {
                    id: null,
                    outcome: Err(error),
                }) if null.is_null() => return Err(CallError::Rpc(error)),
                Incoming::Response(_) => {}
                Incoming::Request(request) => {
                    let params = request.params.map(|p| p.to_value()).unwrap_or(Value::Null);
                    self.notifications.push_back((request.method, params));
                }
                Incoming::Invalid(response) => {
                    return Err(CallError::Protocol(format!("{:?}", response.outcome)));
                }
            }
        }
    }

    /// Sends a notification.
    pub fn notify(&mut self, method: &str, params: Value) -> Result<(), CallError> {
        let mut line = serde_json::to_vec(&message::notification(method, params))
            .map_err(|err| CallError::Protocol(err.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        Ok(self.writer.flush()?)
    }

    /// The next notification: queued, or read from the stream (blocking).
    pub fn next_notification(&mut self) -> Result<(String, Value), CallError> {
        if let Some(queued) = self.notifications.pop_front() {
            return Ok(queued);
        }
        loop {
            if let Incoming::Request(request) = self.read_one()? {
                let params = request.params.map(|p| p.to_value()).unwrap_or(Value::Null);
                return Ok((request.method, params));
            }
        }
    }

    fn read_one(&mut self) -> Result<Incoming, CallError> {
        loop {
            let mut line = Vec::new();
            if self.reader.read_until(b'\n', &mut line)? == 0 {
                return Err(CallError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                )));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return match message::parse(&line) {
                Parsed::Single(incoming) => Ok(incoming),
                other => Err(CallError::Protocol(format!("{other:?}"))),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_tied_to_no_id_answers_the_waiting_call() {
        // A server that could not read the request answers with a null id;
        // the call must end with that error, not wait for ever.
        let answer = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: nested deeper than 256 levels"}}
"#;
        let mut client = Client::new(&answer[..], Vec::new());
        match client.call("conversation/append", Value::Null) {
            Err(CallError::Rpc(error)) => assert_eq!(error.code, -32700),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn results_and_ids_are_read_as_sent() {
        let answer = br#"{"jsonrpc":"2.0","method":"note","params":{"n":1}}
{"jsonrpc":"2.0","id":1,"result":{"big":123456789012345678901234567890}}
"#;
        let mut client = Client::new(&answer[..], Vec::new());
        let result = client
            .call_raw("x", &Json::from_value(&serde_json::json!({})))
            .unwrap();
        assert_eq!(result.get(), r#"{"big":123456789012345678901234567890}"#);
        assert_eq!(client.next_notification().unwrap().0, "note");
    }
}
