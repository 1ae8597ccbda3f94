"""freeport.py N - print N distinct free TCP ports of 127.0.0.1, one a line.

Binds N sockets to port 0 at once (so the N ports differ), prints them and
closes them. Another process could take one before the caller does; the
callers check that their servers came up.
"""
import socket
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
