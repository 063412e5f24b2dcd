"""Running the viewer app locally (``hf-txray view``): the app module is imported only here, on demand, because it
needs gradio (the ``space`` extra)."""

from __future__ import annotations

import errno
import importlib
import importlib.util
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .data import open_results, strip_source


def load_app(app_dir: str | Path | None = None) -> Any:
    """The viewer app module: :mod:`hf_txray.viewer.app` (needs gradio), or the ``app.py`` of `app_dir` when given
    (a customised copy of the Space)."""
    if app_dir is None:
        return importlib.import_module("hf_txray.viewer.app")
    path = Path(app_dir) / "app.py"
    if not path.is_file():
        raise ConfigurationError(f"The viewer app {path} is missing: pass the folder holding app.py, or no app_dir "
                                 "for the app shipped in hf_txray.viewer.")
    spec = importlib.util.spec_from_file_location("hf_txray_space_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_address(host: str, port: int | None) -> None:
    """Refuse, before any work, a `host` this machine cannot serve on, or a `port` there that is taken: gradio's
    launch ended ``hf-txray view --port 7860`` (a viewer already running there) in an OSError traceback that named
    its GRADIO_SERVER_PORT variable rather than --port. Without a port, gradio takes 7860 or the next free one.

    Raises:
        ConfigurationError: the address that cannot be bound, why, and the flag that changes it.
    """
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise ConfigurationError(f"--host {host!r} is not an address ({getattr(err, 'strerror', None) or err}): give "
                                 "127.0.0.1 (this machine only), 0.0.0.0 (every network interface) or one of this "
                                 "machine's addresses.") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed one's port is free
        try:
            probe.bind(address)
        except OSError as err:
            if port and err.errno == errno.EADDRINUSE:
                raise ConfigurationError(f"Port {port} on {host} is in use (another viewer or server is running "
                                         "there): choose another --port, or leave --port out for 7860 or the next "
                                         "free one.") from None
            where = f"{host}:{port}" if port else host
            raise ConfigurationError(f"Cannot serve on {where} ({err.strerror or err}): give a --host of this machine "
                                     "(127.0.0.1, 0.0.0.0) and a --port above 1023 (lower ones need administrator "
                                     "rights), or leave them out.") from None


def launch_viewer(source: str | list[str], *, port: int | None = None, host: str = "127.0.0.1",
                  app_dir: str | Path | None = None, model: Any = None, **launch_kwargs: Any) -> Any:
    """Open `source` (fails fast with a readable error) and launch the viewer app on `host`:`port`.

    Backs ``hf-txray view DIR_OR_REPO [--port PORT] [--model MODEL_PATH]`` (`model` enables attribution of top
    examples in the Neuron tab, loaded on the first request). Blocks until the server stops unless
    ``prevent_thread_lock=True`` is passed; returns the ``gr.Blocks``. `source`: a results folder or Hub repo id, or
    profile and report folders; a list of them opens as one.
    """
    source = strip_source(source)  # a list stays a list: joined, folders a and b opened as a:b where it exists
    check_address(host, port)  # before the results are read and the app is built
    open_results(source)
    demo = load_app(app_dir).build_demo(source, model=model)
    demo.launch(server_name=host, server_port=port, **launch_kwargs)
    return demo
