#!/usr/bin/env python3
"""Captures the bytes of one real query sent by dig (BIND 9) into dig-query.hex.
Run once by hand: python3 capture-dig.py"""
import os, socket, subprocess
HERE = os.path.dirname(os.path.abspath(__file__))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
p = subprocess.Popen(["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=1",
                      "Web.Default.svc.cluster.local", "AAAA"], stdout=subprocess.DEVNULL)
data, _ = s.recvfrom(4096)
p.wait()
version = subprocess.run(["dig", "-v"], capture_output=True, text=True).stderr.strip()
with open(os.path.join(HERE, "dig-query.hex"), "w") as f:
    f.write(data.hex() + "\n# captured from: " + version + "\n")
print(data.hex())
