#!/usr/bin/env python3
"""Start a registry and time it to its first answered request.

Usage: launch.py PORT LOGFILE COMMAND...

Runs COMMAND (output appended to LOGFILE) in its own session, polls
`GET /v2/` on 127.0.0.1:PORT every half millisecond, and prints
"PID MILLISECONDS" once it answers 200: the time from the exec to the first
answered request. The server keeps running after this script exits. Exits 1
(and kills the server) if it does not answer within 20 seconds.
"""

import socket
import subprocess
import sys
import time

port, log = int(sys.argv[1]), sys.argv[2]
with open(log, "ab") as out:
    t0 = time.monotonic_ns()
    proc = subprocess.Popen(
        sys.argv[3:],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        start_new_session=True,
    )
while time.monotonic_ns() - t0 < 20e9:
    if proc.poll() is not None:
        sys.exit(1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                print(proc.pid, f"{(time.monotonic_ns() - t0) / 1e6:.1f}")
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.0005)
proc.kill()
sys.exit(1)
