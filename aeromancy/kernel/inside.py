"""What a container or Nix kernel runs inside the runtime:
`python3 -m aeromancy.kernel.inside -f CONNECTION_FILE`.

It is ipykernel's own launcher, plus one watch: a connection to the data
broker that the launcher on the host holds open as long as it lives. When the
launcher is gone (Jupyter killed it with SIGKILL, as `shutdown_kernel(now=True)`
does), the connection ends and the kernel ends with it, instead of idling in
a container or a shell nobody can reach any more.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

from aeromancy.kernel.broker import WATCH
from aeromancy.notebook import BROKER_ENV

__all__ = ["main"]


def main() -> None:
    """Watch the launcher, then run ipykernel with our arguments."""
    watch = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    watch.connect(os.environ[BROKER_ENV])
    watch.sendall(WATCH + b"\n")
    threading.Thread(target=_wait_for_end, args=(watch,), daemon=True).start()

    # As ipykernel_launcher does: the working directory comes back on the
    # notebook's own path once the kernel has loaded.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


def _wait_for_end(watch: socket.socket) -> None:
    try:
        while watch.recv(64):
            pass
    except OSError:
        pass
    os._exit(0)  # the launcher is gone: nobody can reach this kernel


if __name__ == "__main__":
    main()
