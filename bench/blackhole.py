"""blackhole.py PORT [SECONDS] - a black-holed service for bench/run.sh.

Listens on 127.0.0.1:PORT with a large backlog and never calls accept(), so
a client's connect() succeeds (the kernel completes the handshake) and its
request is never answered. Exits after SECONDS (default 600) at the latest.
"""
import socket
import sys
import time

port = int(sys.argv[1])
limit = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(1024)
print("blackhole listening on 127.0.0.1:%d" % port, flush=True)
time.sleep(limit)
