#!/usr/bin/python3
"""A webpod backend for the seed lab's dataplane variant: an HTTP server and a UDP echo that
answer with who they are and whom they see, so a client can tell which backend it reached and
whether its own address was preserved.

  HTTP (any method, HTTP/1.1 keep-alive):  "NAME PEER_ADDRESS:PORT BODY_BYTES\n"
  UDP:                                     "NAME PEER_ADDRESS:PORT DATAGRAM_BYTES\n"

Usage: webpod.py --name webpod-1 [--http 80] [--udp 5353]
"""

import argparse
import http.server
import socket
import socketserver
import sys
import threading


def answer(name, peer, size):
    return f"{name} {peer[0]}:{peer[1]} {size}\n".encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "webpod"

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                return
            remaining -= len(chunk)
        body = answer(self.server.webpod_name, self.client_address, length)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = handle_any

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def udp_echo(name, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(answer(name, peer, len(data)), peer)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--http", type=int, default=80)
    p.add_argument("--udp", type=int, default=0)
    a = p.parse_args()
    if a.udp:
        threading.Thread(target=udp_echo, args=(a.name, a.udp), daemon=True).start()
    srv = Server(("0.0.0.0", a.http), Handler)
    srv.webpod_name = a.name
    print(f"{a.name}: HTTP on {a.http}, UDP on {a.udp or 'none'}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
