//! A blocking JSON-RPC client over any byte stream, speaking NDJSON. The
//! command line uses it to talk to a running daemon.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};

use serde_json::Value;

use crate::message::{self, ErrorObject, Incoming, Parsed};

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
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&message::request(Value::from(id), method, params))
            .map_err(|err| CallError::Protocol(err.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        self.writer.flush()?;
        loop {
            match self.read_one()? {
                Incoming::Response(response) if response.id == id => {
                    return response.outcome.map_err(CallError::Rpc);
                }
                Incoming::Response(_) => {}
                Incoming::Request(request) => {
                    self.notifications
                        .push_back((request.method, request.params.unwrap_or(Value::Null)));
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
                return Ok((request.method, request.params.unwrap_or(Value::Null)));
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
