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


# safetensors dtypes -> float32 arrays: messages carry F32, checkpoints
# attncheck writes may carry F16 or BF16 as well.
_DECODE = {
    "F32": lambda raw: np.frombuffer(raw, dtype="<f4"),
    "F16": lambda raw: np.frombuffer(raw, dtype="<f2").astype(np.float32),
    "BF16": lambda raw: (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32),
}


def _read_safetensors(stream, dtypes):
    """One safetensors blob from stream: (metadata dict, {name: float32
    array}), its tensors in `dtypes`; None at EOF."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    header = json.loads(stream.read(n))
    meta = header.pop("__metadata__", {})
    size = max((s["data_offsets"][1] for s in header.values()), default=0)
    data = memoryview(stream.read(size))
    tensors = {}
    for name, s in header.items():
        if s["dtype"] not in dtypes:
            raise ValueError(f"tensor {name}: dtype {s['dtype']}, expected {' or '.join(dtypes)}")
        b, e = s["data_offsets"]
        tensors[name] = _DECODE[s["dtype"]](data[b:e]).reshape(s["shape"])
    return meta, tensors


def read_frame(stream):
    """One message: (metadata dict, {name: float32 array}); None at EOF."""
    return _read_safetensors(stream, ("F32",))


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


def _serve(handlers, caps, stdin, stdout):
    """The message loop both kinds of adapter share: hello, the handlers by
    message type, bye. A handler returns (metadata, tensors) to send back."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    caps = dict(caps)
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
        if kind not in handlers:
            write_frame(stdout, {"type": "error", "message": f"unknown message type {kind!r}"})
            continue
        try:
            write_frame(stdout, *handlers[kind](meta, tensors))
        except Unsupported as e:
            write_frame(stdout, {"type": "unsupported", "reason": str(e)})
        except Exception as e:  # reported, not fatal: the gate that was running fails with it
            write_frame(stdout, {"type": "error", "message": f"{type(e).__name__}: {e}"})


def _host(x):
    """A result as a float32 numpy array; a torch tensor (on any device)
    is copied to the host here, so a GPU adapter may return device tensors."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


DEFAULT_MAX_BATCH = 16


class _CudaIpc:
    """attncheck's CUDA IPC buffer (docs/adapter-protocol.md), mapped into
    this process through the driver API and read and written in place as
    torch tensors. Needs torch with CUDA, on the GPU attncheck uses."""

    def __init__(self):
        import ctypes
        import torch
        self.torch, self.ctypes = torch, ctypes
        torch.zeros(1, device="cuda")  # makes the primary context current on this thread
        self.cuda = ctypes.CDLL("libcuda.so.1")
        self.open = getattr(self.cuda, "cuIpcOpenMemHandle_v2", None) or self.cuda.cuIpcOpenMemHandle

        class Handle(ctypes.Structure):  # CUipcMemHandle, passed by value
            _fields_ = [("reserved", ctypes.c_ubyte * 64)]
        self.Handle = Handle
        self.open.argtypes = [ctypes.POINTER(ctypes.c_uint64), Handle, ctypes.c_uint]
        self.open.restype = ctypes.c_int
        self.cuda.cuIpcCloseMemHandle.argtypes = [ctypes.c_uint64]
        self.handle, self.base = None, None

    def _map(self, handle_hex):
        if handle_hex == self.handle:
            return self.base
        ct = self.ctypes
        if self.base is not None:
            self.cuda.cuIpcCloseMemHandle(self.base)
            self.handle = self.base = None
        ptr = ct.c_uint64()
        h = self.Handle.from_buffer_copy(bytes.fromhex(handle_hex))
        rc = self.open(ct.byref(ptr), h, ct.c_uint(1))  # CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS
        if rc != 0:
            raise RuntimeError(f"cuIpcOpenMemHandle failed with CUresult {rc} (is attncheck on this GPU?)")
        self.handle, self.base = handle_hex, ptr.value
        return self.base

    def tensors(self, ipc):
        """{name: float32 CUDA tensor} over the buffer an "ipc" metadata describes."""
        base = self._map(ipc["handle"])
        out = {}
        for name, t in ipc["tensors"].items():
            shape = tuple(t["shape"])

            class View:  # a __cuda_array_interface__ for torch.as_tensor (no copy)
                __cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (base + t["offset"], False),
                                            "version": 3, "strides": None}
            out[name] = self.torch.as_tensor(View(), device="cuda")
        return out

    def store(self, dst, x):
        torch = self.torch
        src = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        dst.copy_(src.to(device=dst.device, dtype=torch.float32).reshape(dst.shape))


def serve(run, capabilities, stdin=None, stdout=None):
    """Answers attncheck until it says bye (or closes the pipe).

    Runs come one per `run` message, or many per `run_batch` (the adapter
    declares `max_batch`, DEFAULT_MAX_BATCH unless the capabilities say
    otherwise). A batch calls `run` on every problem first and copies the
    results to the host after: an adapter that returns GPU tensors gets its
    kernels queued back to back, with one wait for the whole batch.

    An adapter that declares `"cuda_ipc": true` (torch with CUDA, on
    attncheck's GPU) gets a batch's q, k, v as CUDA tensors in attncheck's
    own buffer, and its results are written back there: nothing crosses the
    pipes but the metadata. `run` must then take torch tensors as well as
    numpy arrays (torch.as_tensor takes both)."""
    def on_run(meta, t):
        o, lse = run(json.loads(meta["problem"]), t["q"], t["k"], t["v"])
        return {"type": "result"}, {"o": _host(o), "lse": _host(lse)}

    ipc_state = {}

    def on_run_batch(meta, t):
        problems = json.loads(meta["problems"])
        ipc = json.loads(meta["ipc"]) if "ipc" in meta else None
        if ipc is not None:  # the tensors are on the GPU, in attncheck's buffer
            if "mapper" not in ipc_state:
                ipc_state["mapper"] = _CudaIpc()
            t = ipc_state["mapper"].tensors(ipc)
        answers, pending = [], []
        for i, p in enumerate(problems):
            try:
                pending.append((i, run(p, t[f"q.{i}"], t[f"k.{i}"], t[f"v.{i}"])))
                answers.append({"status": "result"})
            except Unsupported as e:
                answers.append({"status": "unsupported", "reason": str(e)})
            except Exception as e:  # this run's error; the others stand
                answers.append({"status": "error", "message": f"{type(e).__name__}: {e}"})
        out = {}
        for i, (o, lse) in pending:
            try:
                if ipc is not None:  # written in place; attncheck reads them once we answer
                    ipc_state["mapper"].store(t[f"o.{i}"], o)
                    ipc_state["mapper"].store(t[f"lse.{i}"], lse)
                else:
                    out[f"o.{i}"], out[f"lse.{i}"] = _host(o), _host(lse)
            except Exception as e:  # e.g. a CUDA error that surfaces at the copy
                answers[i] = {"status": "error", "message": f"{type(e).__name__}: {e}"}
                out.pop(f"o.{i}", None)
        if ipc is not None:
            ipc_state["mapper"].torch.cuda.synchronize()
        return {"type": "results", "answers": json.dumps(answers)}, out

    caps = dict(capabilities)
    caps.setdefault("max_batch", DEFAULT_MAX_BATCH)
    _serve({"run": on_run, "run_batch": on_run_batch}, caps, stdin, stdout)


def serve_model(load, capabilities, stdin=None, stdout=None):
    """A model adapter (docs/adapter-protocol.md, "Model adapters"):

        def load(config, checkpoint, slots):  # config.json as a dict, its folder, KV slots
            ...                               # an object with forward(batch) and reset(seq)
        serve_model(load, {"name": "mine", "archs": ["llama", "qwen2"], "dtypes": ["fp32"], ...})

    forward(batch) gets [{"seq": slot, "tokens": [...]}, ...]: each chunk's
    tokens continue that slot's sequence (its cache), and it returns the
    logits of every new token, chunk after chunk, as a float32 array
    [rows, vocab]. reset(seq) empties a slot."""
    state = {}

    def on_load(meta, _):
        state["model"] = load(json.loads(meta["config"]), meta["checkpoint"], int(meta["slots"]))
        return {"type": "ok"}, None

    def model():
        if "model" not in state:
            raise RuntimeError("no model loaded")
        return state["model"]

    def on_forward(meta, _):
        return {"type": "result"}, {"logits": model().forward(json.loads(meta["batch"]))}

    def on_reset(meta, _):
        model().reset(int(meta["seq"]))
        return {"type": "ok"}, None

    caps = dict(capabilities)
    caps["kind"] = "model"
    _serve({"load": on_load, "forward": on_forward, "reset": on_reset}, caps, stdin, stdout)


def read_checkpoint(folder):
    """A checkpoint attncheck wrote for a model adapter: (config dict,
    {tensor name: float32 array}) from folder/config.json and
    folder/model.safetensors (F32, F16 or BF16 tensors)."""
    import os
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(folder, "model.safetensors"), "rb") as f:
        _, tensors = _read_safetensors(f, tuple(_DECODE))
    return config, tensors
