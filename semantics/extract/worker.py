"""An extraction worker process: batches of files in on stdin, Arrow IPC rows out on stdout.

The parent starts it with ``python -I -c BOOTSTRAP`` (see ``parallel.worker_command``): isolated
mode keeps the current directory and the analysed tree off the import path from the interpreter's
first import on, and the bootstrap then sets exactly the import path the parent chose. No module
of the analysed code base can shadow one the worker imports.

Messages are length-prefixed msgpack frames. The worker ends when its input ends (the parent
closed it, or died) and, on Linux, the moment its parent dies even mid-batch.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import struct
import sys
from typing import BinaryIO

import msgspec

from semantics.extract.files import FileTask

FRAME_HEADER = struct.Struct("<Q")
PR_SET_PDEATHSIG = 1

_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[FileTask])


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(FRAME_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's payload; None when the stream ended (cleanly or not) before a whole frame."""
    header = stream.read(FRAME_HEADER.size)
    if len(header) < FRAME_HEADER.size:
        return None
    (size,) = FRAME_HEADER.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


def encode_batch(batch: list[FileTask]) -> bytes:
    return _encoder.encode(batch)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies; elsewhere the closed input ends it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def serve(parent_pid: int) -> None:
    """Extract batches until the input ends. Ctrl-C is the parent's to handle: it stops workers."""
    from semantics.extract.parallel import extract_batch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    gc.collect()
    gc.freeze()
    gc.disable()  # ASTs and row tuples hold no cycles
    # The protocol owns the real stdout; anything else printed goes to stderr.
    output = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    source = sys.stdin.buffer
    while (frame := read_frame(source)) is not None:
        write_frame(output, _encoder.encode(extract_batch(_batch_decoder.decode(frame))))
        gc.collect()  # whatever the batch left behind, before the next one
