#!/usr/bin/env python3
"""Watch a conversation live while recording one turn into it.

A tour of exo's JSON-RPC protocol using only Python's standard library:

    exo daemon &                        # in another terminal, or in the background
    python3 examples/python/watch.py    # or: watch.py path/to/.exo

It connects to the daemon's Unix socket, creates an agent and a fresh
conversation, starts watching the conversation, then plays the part of an
executor: it begins a turn with a user message, appends an assistant reply
and finishes the turn. Every event the watch delivers is printed as one line,
`KIND<TAB>summary`; the script exits 0 once it has seen its turn end.

The wire format is newline-delimited JSON: one JSON-RPC 2.0 message per line.
See spec/protocol.md for every method.
"""

import argparse
import json
import os
import socket
import sys
import time


class RpcError(Exception):
    """A JSON-RPC error response: {"code", "message", "data": {"code": ...}}."""

    def __init__(self, method, error):
        self.method = method
        self.error = error
        # exo puts a stable name for the error in data.code ("not_found",
        # "already_exists", ...); the numeric code is the JSON-RPC one.
        self.name = (error.get("data") or {}).get("code", "")
        super().__init__(f"{method} failed: {error.get('message')} "
                         f"(code {error.get('code')} {self.name})")


class Client:
    """A minimal JSON-RPC client: one request at a time, notifications on the side."""

    def __init__(self, path, on_notification):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.lines = self.sock.makefile("r", encoding="utf-8")
        self.next_id = 1
        self.on_notification = on_notification

    def read(self):
        """Reads the next message from the daemon."""
        line = self.lines.readline()
        if not line:
            raise ConnectionError("the daemon closed the connection")
        return json.loads(line)

    def request(self, method, params):
        """Sends a request and waits for the response with the same id.

        Notifications (messages with a "method" and no "id") can arrive
        before the response; they are handed to on_notification meanwhile.
        """
        request_id = self.next_id
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.sock.sendall((json.dumps(message) + "\n").encode("utf-8"))
        while True:
            message = self.read()
            if "method" in message:
                self.on_notification(message)
            elif message.get("id") == request_id:
                if "error" in message:
                    raise RpcError(method, message["error"])
                return message["result"]


def summary(event):
    """One readable line for an event (see spec/exoharness.md for every kind)."""
    kind = event["kind"]
    if kind == "message":
        text = " ".join(part.get("text", f"[{part['type']}]") for part in event["content"])
        return f"{event['role']}: {text}"
    if kind == "conversation_created":
        return f"{event['name']} ({event['slug']})"
    if kind in ("session_started", "session_ended"):
        return f"session {event['session']} {event.get('reason', '')}".rstrip()
    if kind == "turn_started":
        return f"turn {event['turn']}"
    if kind == "turn_ended":
        return f"turn {event['turn']} {event['status']}"
    return f"event {event['id']}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=os.environ.get("EXO_ROOT", ".exo"),
                        help="the exo root (default: $EXO_ROOT or .exo)")
    args = parser.parse_args()

    # What the watch has shown us so far.
    state = {"turn": None, "done": False, "cursor": None, "lagged": False}

    def on_notification(message):
        params = message["params"]
        if message["method"] == "events/appended":
            # First the stored events after the watch's cursor, then new ones.
            for event in params["events"]:
                print(f"{event['kind']}\t{summary(event)}", flush=True)
                state["cursor"] = event["id"]
                if event["kind"] == "turn_ended" and event["turn"] == state["turn"]:
                    state["done"] = True
        elif message["method"] == "events/lagged":
            # We read too slowly and the daemon ended the watch; we will
            # watch again from the last event we saw.
            state["lagged"] = True

    path = os.path.join(args.root, "exo.sock")
    try:
        client = Client(path, on_notification)
    except OSError as err:
        raise SystemExit(f"error: cannot connect to {path}: {err.strerror}\n"
                         f"(start the daemon first: exo --root {args.root} daemon)")

    # 1. Say hello; the daemon answers with its version and capabilities.
    hello = client.request("initialize", {"client": {"name": "watch.py"}})
    print(f"connected to exo {hello['server']['version']} "
          f"(protocol {hello['protocol_version']})", file=sys.stderr)

    # 2. An agent: create it, or reuse it if an earlier run made it.
    try:
        agent = client.request("agent/create", {"name": "Watch Example"})
    except RpcError as err:
        if err.name != "already_exists":
            raise
        agent = client.request("agent/get", {"agent": err.error["data"]["key"]})

    # 3. A fresh conversation for this run (names must be unique per agent).
    conversation = client.request("conversation/create", {
        "agent": agent["id"],
        "name": f"Watch {time.strftime('%Y%m%d%H%M%S')} {os.getpid()}",
    })
    where = {"agent": agent["id"], "conversation": conversation["id"]}

    # 4. Watch it. With no "after" cursor the daemon replays the whole
    #    history (here: conversation_created) and then streams new events.
    client.request("events/watch", where)

    # 5. Record a turn, as an executor would: begin it with the user's
    #    input, append the assistant's reply, finish it.
    turn = client.request("turn/begin", {**where, "input": "What is 6 times 7?"})
    state["turn"] = turn["turn"]
    client.request("turn/append", {
        "turn": turn["turn"],
        "events": [{"kind": "message", "role": "assistant", "content": "42."}],
    })
    client.request("turn/finish", {"turn": turn["turn"], "status": "completed"})

    # 6. Print what the watch delivers until our turn has ended.
    while not state["done"]:
        if state["lagged"]:
            state["lagged"] = False
            after = {"after": state["cursor"]} if state["cursor"] else {}
            client.request("events/watch", {**where, **after})
        else:
            message = client.read()
            if "method" in message:
                on_notification(message)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RpcError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
