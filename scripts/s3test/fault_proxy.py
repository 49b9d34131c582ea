#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the object-store tests (standard library only).

    fault_proxy.py LISTEN_PORT UPSTREAM_PORT

Forwards every request to 127.0.0.1:UPSTREAM_PORT with its headers as they
came (the Host header included, so that a signature made for the proxy's
address still verifies upstream) and keeps client connections alive.

Faults are rules, managed at /__fault (never forwarded):

    POST   /__fault   {"match": REGEX, "action": ACTION, "count": N}   add a rule
    DELETE /__fault   remove every rule and forget the log
    GET    /__fault   the rules and the log of requests ("METHOD PATH", action)

A rule applies to the next N requests (default 1) whose "METHOD PATH"
matches REGEX (re.search); the first rule that matches wins. ACTION is:

    500, 503       answer that status with an S3 error document, without
                   forwarding (InternalError, SlowDown)
    reset          close the connection without answering
    delay:SECONDS  wait, then forward
    die            end the proxy process at once, as a server killed mid-request

Loopback only: it listens on 127.0.0.1.
"""
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = ("127.0.0.1", int(sys.argv[2]))
LOCK = threading.Lock()
RULES = []
LOG = []
ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
}
# Headers that belong to one connection, not to the request.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "expect"}


def take_action(line):
    """The action of the first live rule matching `line`, consumed; logs the request."""
    with LOCK:
        action = None
        for rule in RULES:
            if rule["count"] > 0 and re.search(rule["match"], line):
                rule["count"] -= 1
                action = rule["action"]
                break
        LOG.append([line, action])
        return action


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_expect_100(self):
        # Decide before the client sends its body: a reset or an error
        # then comes before "100 Continue", as from a real server.
        if not self.path.startswith("/__fault"):
            self.fault = take_action(f"{self.command} {self.path}")
            self.decided = True
            if self.apply_early(self.fault):
                return False
        return super().handle_expect_100()

    def apply_early(self, action):
        """Carries out an action that needs no body; True if the request is done."""
        if action == "die":
            os._exit(1)
        if action == "reset":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if action in ERRORS:
            status, code, message = ERRORS[action]
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>").encode()
            # The body the client may still send is not read: close after.
            self.close_connection = True
            self.answer(status, body, "application/xml")
            return True
        return False

    def answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def control(self, body):
        with LOCK:
            if self.command == "POST":
                rule = json.loads(body)
                rule.setdefault("count", 1)
                RULES.append(rule)
            elif self.command == "DELETE":
                RULES.clear()
                LOG.clear()
            state = json.dumps({"rules": RULES, "log": LOG}).encode()
        self.answer(200, state, "application/json")

    def handle_any(self):
        fault = getattr(self, "fault", None)
        decided = getattr(self, "decided", False)
        self.fault = None
        self.decided = False
        if not decided and not self.path.startswith("/__fault"):
            fault = take_action(f"{self.command} {self.path}")
            if self.apply_early(fault):
                return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/__fault"):
            return self.control(body)
        if fault and fault.startswith("delay:"):
            time.sleep(float(fault[len("delay:"):]))
        upstream = http.client.HTTPConnection(*UPSTREAM, timeout=120)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            data = response.read()
        except OSError:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        finally:
            upstream.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() in HOP_BY_HOP or name.lower() in ("content-length", "server", "date"):
                continue
            self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length", "0"))
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
