"""Feed stdin to a hera agent's data port, print one JSON record per byte: data_client.py CONNECTION_FILE < FILE

Plain Python, no hera needed: the wire format is in docs/protocol.md ("The data port").
The last line is the stream's end: {"end": "done", "fed": N, "records": N} once every byte has its record.
"""

import hashlib
import hmac
import json
import socket
import sys
import threading
from typing import BinaryIO


def digest(key: bytes, word: bytes, nonce: str) -> str:
    return hmac.new(key, word + b"\0" + nonce.encode(), hashlib.sha256).hexdigest()


def connect(connection_file: str) -> tuple[socket.socket, BinaryIO]:
    """A stream on the agent's data port, and its lines; the agent proves it holds the key before we send a byte."""
    with open(connection_file) as file:
        info = json.load(file)
    key = bytes.fromhex(info["key"])
    sock = socket.create_connection((info["ip"], info["data_port"]))
    lines = sock.makefile("rb")
    hello = json.loads(lines.readline())
    if hello["uuid"] != info["uuid"] or not hmac.compare_digest(hello["proof"], digest(key, b"agent", hello["nonce"])):
        sys.exit("this is not the agent of that connection file: nothing was sent")
    sock.sendall(digest(key, b"data", hello["nonce"]).encode() + b"\n")
    answer = json.loads(lines.readline())
    if not answer["ok"]:
        sys.exit(answer["error"])
    return sock, lines


def send(sock: socket.socket, source: BinaryIO) -> None:
    """Send everything, then half-close: the agent ends the stream once every byte has its record."""
    try:
        while chunk := source.read(1 << 16):
            sock.sendall(chunk)  # blocks while the agent is busy: it reads only what it can take
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the agent ended the stream (went down): its end line says how many bytes it took


if __name__ == "__main__":
    sock, lines = connect(sys.argv[1])
    threading.Thread(target=send, args=(sock, sys.stdin.buffer), daemon=True).start()
    line = b"{}"
    for line in lines:  # records while it is still being fed, then the end line
        sys.stdout.buffer.write(line)
    sys.exit(0 if json.loads(line).get("end") == "done" else 1)
