#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the golden vectors of bgp/tests/vectors/*.txt: each
# captured message, prefixed with three context octets (4-octet AS and extended message on;
# add-path for IPv4 unicast on and off), for decode_message and round_trip; for
# decode_attribute, each path attribute of each captured UPDATE.
set -euo pipefail
cd "$(dirname "$0")"
/usr/bin/env python3 - <<'PY'
import glob, hashlib, os
def put(target, data):
    d = f"corpus/{target}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/{hashlib.sha1(data).hexdigest()}", "wb") as f:
        f.write(data)
for path in sorted(glob.glob("../bgp/tests/vectors/*.txt")):
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        msg = bytes.fromhex(line.split()[3])
        for ctx in (bytes([3, 0, 0]), bytes([3, 1, 1])):
            put("decode_message", ctx + msg)
            put("round_trip", ctx + msg)
        if msg[18] != 2:
            continue
        wl = int.from_bytes(msg[19:21], "big")
        al = int.from_bytes(msg[21 + wl:23 + wl], "big")
        attrs = msg[23 + wl:23 + wl + al]
        i = 0
        while i + 3 <= len(attrs):
            flags = attrs[i]
            ext = flags & 0x10
            hl = 4 if ext else 3
            n = int.from_bytes(attrs[i + 2:i + hl], "big")
            put("decode_attribute", bytes([3, 0, 1]) + attrs[i:i + hl + n])
            i += hl + n
PY
for t in corpus/*; do echo "$t: $(ls "$t" | wc -l) seeds"; done
