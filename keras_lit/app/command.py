"""`keras-lit app`: the command line that starts the web app.

Typical usage:

    keras-lit app --model lit_runs/demo/export
    python -m keras_lit.app --model /srv/models/lit --images ~/Pictures
    keras-lit app --model /srv/models/lit --serving-url http://localhost:8501

Importing this module is cheap (no TensorFlow, no Flask): `build_parser`
can be registered with the main CLI before anything heavy loads.
"""

import argparse
import ipaddress
import os
import sys
import threading

from keras_lit.serving.protocol import DEFAULT_MODEL_NAME

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def build_parser(parser=None):
    """The app's arguments, added to `parser` (or a new parser)."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m keras_lit.app",
        description="A local web page to try a LiT SavedModel: zero-shot "
        "classification and text-to-image search.",
    )
    parser.add_argument(
        "--model",
        help="export directory (keras-lit export / export_for_serving): a "
        "version directory or the base directory holding versions",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="0 picks a free port"
    )
    parser.add_argument(
        "--images",
        help="folder of images for the Search tab (default: the shipped "
        "sample images)",
    )
    parser.add_argument(
        "--serving-url",
        help="TF Serving REST address (e.g. http://localhost:8501): the "
        "page's predict calls go there instead of the in-process model",
    )
    parser.add_argument(
        "--model-name",
        default=DEFAULT_MODEL_NAME,
        help="model name in the REST paths (TF Serving's --model_name)",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="where image embeddings are cached (default "
        "~/.cache/keras_lit/app)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="keep no embeddings on disk"
    )
    parser.add_argument(
        "--max-request-mb",
        type=float,
        default=10.0,
        help="largest request body, in MB (default 10)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=50_000_000,
        help="largest image, in pixels, read from the header before "
        "decoding (default 50 million)",
    )
    parser.add_argument(
        "--open", action="store_true", help="open the page in a browser"
    )
    parser.add_argument(
        "--log-requests", action="store_true", help="print every request"
    )
    return parser


def make_server(args):
    """Builds the backend, search index and `AppServer` for parsed args."""
    from keras_lit.app.backends import LocalBackend
    from keras_lit.app.backends import RemoteBackend
    from keras_lit.app.samples import SAMPLES_DIR
    from keras_lit.app.samples import list_samples
    from keras_lit.app.search_index import SearchIndex
    from keras_lit.app.search_index import default_cache_dir
    from keras_lit.app.server import LOOPBACK_HOSTS
    from keras_lit.app.server import AppServer
    from keras_lit.app.server import bind_socket
    from keras_lit.app.server import create_app

    _check_args(args)
    listener = bind_socket(args.host, args.port)  # Fails before loading.
    try:
        if args.serving_url:
            backend = RemoteBackend(
                args.serving_url, args.model_name, export_path=args.model
            )
        else:
            _say(f"Loading {args.model}")
            backend = LocalBackend.from_export(args.model, args.model_name)
        cache_dir = (
            None if args.no_cache else (args.cache_dir or default_cache_dir())
        )
        index = SearchIndex(
            args.images or SAMPLES_DIR,
            backend.embed_images,
            backend.model_key(),
            cache_dir=cache_dir,
        )
        app = create_app(
            backend,
            search_index=index,
            max_request_bytes=int(args.max_request_mb * 1e6),
            max_pixels=args.max_pixels,
            allowed_hosts=LOOPBACK_HOSTS if _is_loopback(args.host) else None,
        )
        server = AppServer(
            app,
            args.host,
            args.port,
            log_requests=args.log_requests,
            listener=listener,
        )
    except BaseException:
        listener.close()
        raise
    index.start()
    if hasattr(backend, "warm_up"):
        samples = list_samples()
        if samples:
            with open(os.path.join(SAMPLES_DIR, samples[0]), "rb") as file:
                sample = file.read()
            threading.Thread(
                target=backend.warm_up, args=(sample,), daemon=True
            ).start()
    return server, backend, index


def run(args):
    """Runs a parsed `keras-lit app` command line until Ctrl+C."""
    server, backend, index = make_server(args)
    _say(f"Model: {backend.describe()}")
    _say(f"Search folder: {index.folder}")
    if not _is_loopback(args.host):
        _say(
            f"WARNING: listening on {args.host}: anyone who can reach this "
            "machine can run the model and see the search folder's images."
        )
    _say(f"Open {server.url}  (Ctrl+C to stop)")
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()  # Returns on Ctrl+C (werkzeug catches it).
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()
    _say("Stopped.")
    return 0


def main(argv=None):
    """`python -m keras_lit.app`: one readable line on a user error."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ImportError as error:
        print(f"keras-lit app: error: {error}", file=sys.stderr)
    except (ValueError, OSError) as error:
        message = getattr(error, "strerror", None) or str(error)
        print(f"keras-lit app: error: {message}", file=sys.stderr)
    return 2


def _check_args(args):
    try:
        import flask  # noqa: F401
    except ImportError:
        raise ImportError(
            "The app needs Flask: pip install 'keras-lit[app]' (or flask)"
        ) from None
    if not args.model and not args.serving_url:
        raise ValueError(
            "--model is required: the export directory to serve (with "
            "--serving-url it is optional and only supplies the templates)."
        )
    if args.model and not os.path.exists(os.path.expanduser(args.model)):
        raise ValueError(f"--model: no such directory: {args.model}")
    if args.images and not os.path.isdir(os.path.expanduser(args.images)):
        raise ValueError(f"--images must be a folder. Received: {args.images}")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0-65535. Received: {args.port}")
    if not args.max_request_mb > 0:
        raise ValueError(
            "--max-request-mb must be positive. "
            f"Received: {args.max_request_mb}"
        )
    if args.max_pixels < 1:
        raise ValueError(
            f"--max-pixels must be positive. Received: {args.max_pixels}"
        )


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _say(message):
    print(f"[keras-lit app] {message}", flush=True)
