"""The adapter side of attncheck's external protocol (docs/adapter-protocol.md).

    from attncheck_adapter import serve

    def run(problem, q, k, v):      # numpy float32 arrays, packed varlen
        ...                         # your attention
        return o, lse               # [total_q, Hq, d] and [total_q, Hq]

    serve(run, capabilities={"name": "mine", "dtypes": ["fp32"], "causal": True, ...})

`attncheck run --external "python3 my_adapter.py"` then checks it like any
target. `run` may raise Unsupported(reason) to skip a case; any other
exception is reported to attncheck as an error (it fails the running gate).
"""
import json
import struct
import sys

import numpy as np

PROTOCOL = 1


class Unsupported(Exception):
    """Raised by `run` for a case the implementation cannot compute."""


def read_frame(stream):
    """One safetensors blob: (metadata dict, {name: float32 array}); None at EOF."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    header = json.loads(stream.read(n))
    meta = header.pop("__metadata__", {})
    specs = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    size = max((s["data_offsets"][1] for _, s in specs), default=0)
    data = stream.read(size)
    tensors = {}
    for name, s in specs:
        if s["dtype"] != "F32":
            raise ValueError(f"tensor {name}: dtype {s['dtype']}, expected F32")
        b, e = s["data_offsets"]
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(s["shape"])
    return meta, tensors


def write_frame(stream, meta, tensors=None):
    header = {"__metadata__": {k: str(v) for k, v in meta.items()}}
    blobs, off = [], 0
    for name, t in (tensors or {}).items():
        a = np.ascontiguousarray(t, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    stream.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    stream.flush()


def serve(run, capabilities, stdin=None, stdout=None):
    """Answers attncheck until it says bye (or closes the pipe)."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    caps = dict(capabilities)
    caps.setdefault("protocol", PROTOCOL)
    while True:
        msg = read_frame(stdin)
        if msg is None:
            return
        meta, tensors = msg
        kind = meta.get("type")
        if kind == "bye":
            return
        if kind == "hello":
            write_frame(stdout, {"type": "capabilities", "capabilities": json.dumps(caps)})
            continue
        if kind != "run":
            write_frame(stdout, {"type": "error", "message": f"unknown message type {kind!r}"})
            continue
        try:
            o, lse = run(json.loads(meta["problem"]), tensors["q"], tensors["k"], tensors["v"])
            write_frame(stdout, {"type": "result"}, {"o": o, "lse": lse})
        except Unsupported as e:
            write_frame(stdout, {"type": "unsupported", "reason": str(e)})
        except Exception as e:  # reported, not fatal: the gate that was running fails with it
            write_frame(stdout, {"type": "error", "message": f"{type(e).__name__}: {e}"})
