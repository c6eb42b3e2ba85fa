"""A render worker: ``python -m luma_nb.sandbox.worker`` (started by
:class:`~luma_nb.sandbox.pool.WorkerPool`, never by hand).

Reads pickled calls from standard input, runs them one at a time, writes each answer
(``(True, result)`` or ``(False, exception)``) to standard output. Ends the moment its standard
input reads end of file: its starter closed it, or is gone.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import sys
import threading
from typing import IO


def main() -> None:
    # Ctrl-C and a kernel's interrupt reach the whole process group: the sandbox decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .pool import read_frame, write_frame

    # The pipes are the protocol's alone: anything a library prints goes to standard error.
    calls: IO[bytes] = os.fdopen(os.dup(0), "rb")
    answers: IO[bytes] = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def listen() -> None:
        while True:
            try:
                frame = read_frame(calls)
            except OSError:
                frame = None
            if frame is None:  # the starter closed the pipe, or is gone: a render is moot
                os._exit(0)
            inbox.put(frame)

    threading.Thread(target=listen, name="luma-sandbox-lifeline", daemon=True).start()
    try:  # import the video stack now, so the first job does not pay for it
        from . import remux, video  # noqa: F401

        video._require_extra()
    except Exception as error:
        print(f"luma_nb sandbox worker: {error}", file=sys.stderr)
    while True:
        frame = inbox.get()
        try:
            function, args, kwargs = pickle.loads(frame)  # noqa: S301 - from our starter only
            answer = (True, function(*args, **kwargs))
        except BaseException as error:
            answer = (False, error)
        try:
            data = pickle.dumps(answer)
        except Exception as error:
            data = pickle.dumps((False, RuntimeError(f"{answer[1]!r} ({error})")))
        write_frame(answers, data)


if __name__ == "__main__":
    main()
