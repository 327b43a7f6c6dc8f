"""`rewardforge serve`: an HTTP reward-model server (FastAPI + uvicorn) with dynamic micro-batching."""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import sys

DESCRIPTION = """Serve a reward model over HTTP.

Endpoints: POST /v1/score, POST /v1/compare, POST /get_reward (OpenRLHF remote reward model),
GET /health, GET /metrics (Prometheus), GET / (a page to try the model), GET /openapi.json, /docs.
Concurrent requests are merged into micro-batches (up to --max-batch-size items, waiting at most
--max-wait-ms) and scored in one forward pass. SIGTERM or Ctrl+C: in-flight requests finish,
then the server exits with code 0.

Examples:
  rewardforge serve --model runs/rm
  REWARDFORGE_API_KEY=secret rewardforge serve --model runs/rm --host 0.0.0.0 --port 8000
  curl -s localhost:8000/v1/score -H 'content-type: application/json' \\
       -d '{"prompt": "What is 2+2?", "response": "4"}'
"""


GRACEFUL_TIMEOUT_LIMIT = 3600.0  # seconds

# ServeSettings field -> the option that sets it (a settings error names what the user typed)
OPTION_OF_SETTING = {
    "max_batch_size": "--max-batch-size",
    "max_wait_ms": "--max-wait-ms",
    "max_queue": "--max-queue",
    "max_items": "--max-items",
    "max_body_bytes": "--max-body-mb",
    "max_text_chars": "--max-text-chars",
    "max_messages": "--max-messages",
    "graceful_timeout_s": "--graceful-timeout",
}


def build_parser() -> argparse.ArgumentParser:
    from rewardforge.commands.checks import integer, number
    from rewardforge.serving.settings import MAX_WAIT_MS_LIMIT, MiB, ServeSettings

    d = ServeSettings()
    from rewardforge.commands.checks import OneLineParser

    p = OneLineParser(
        prog="rewardforge serve",
        description=DESCRIPTION,
    )
    p.add_argument(
        "--model",
        required=True,
        help="a reward model folder saved by rewardforge (or a one-output HF classifier)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)"
    )
    p.add_argument(
        "--port", type=integer(0, 65535), default=8000, help="port (default: %(default)s; 0 picks a free one)"
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (default: $REWARDFORGE_API_KEY; unset = no key)",
    )
    p.add_argument(
        "--max-batch-size",
        type=integer(1),
        default=d.max_batch_size,
        help="items per forward pass (default: %(default)s)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=number(0, MAX_WAIT_MS_LIMIT),
        default=d.max_wait_ms,
        help="how long a batch may wait for more requests once the model is free; it stops waiting once as many requests have arrived as the last batch answered (default: %(default)s)",
    )
    p.add_argument(
        "--max-queue",
        type=integer(1),
        default=d.max_queue,
        help="requests allowed to wait (tokenizing or queued for the model); more get 503 (default: %(default)s)",
    )
    p.add_argument(
        "--max-items",
        type=integer(1),
        default=d.max_items,
        help="items per request; more is 413 (default: %(default)s)",
    )
    p.add_argument(
        "--max-body-mb",
        type=number(high=2**20, above=0),
        default=d.max_body_bytes / MiB,
        help="request body limit in MiB; more is 413 (default: %(default)s)",
    )
    p.add_argument(
        "--max-text-chars",
        type=integer(1, 2**31),
        default=d.max_text_chars,
        help="characters in one text field (default: %(default)s)",
    )
    p.add_argument(
        "--max-messages",
        type=integer(1, 2**31),
        default=d.max_messages,
        help="messages in one prompt or response, and tool calls in one message; more is 422 (default: %(default)s)",
    )
    p.add_argument(
        "--no-share-prefix",
        action="store_true",
        help="decoders: do not compute a prefix shared inside a micro-batch (system prompt, prompt) once",
    )
    p.add_argument(
        "--max-length", type=integer(1), default=None, help="tokens per scored text (default: the model's)"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument(
        "--dtype", default="fp32", choices=["fp32", "bf16"], help="weights dtype (default: %(default)s)"
    )
    p.add_argument(
        "--threads", type=integer(1), default=None, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument(
        "--name", default=None, help="model name shown by the API and the page (default: folder name)"
    )
    p.add_argument(
        "--graceful-timeout",
        type=number(0, GRACEFUL_TIMEOUT_LIMIT),
        default=d.graceful_timeout_s,
        help="seconds in-flight requests get after SIGTERM (default: %(default)s)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log detail (default: %(default)s)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    return p


def bind_socket(host: str, port: int) -> socket.socket:
    from rewardforge.training.run import UsageError

    if host.startswith("[") and host.endswith("]"):  # [::1], as an IPv6 address is written in a URL
        host = host[1:-1]
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.set_inheritable(True)
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def settings_from_args(args: argparse.Namespace):
    from rewardforge.serving.settings import MiB, ServeSettings
    from rewardforge.training.run import UsageError

    api_key = args.api_key if args.api_key is not None else os.environ.get("REWARDFORGE_API_KEY")
    name = args.name or os.path.basename(os.path.normpath(args.model)) or args.model
    try:
        return ServeSettings(
            api_key=api_key or None,
            max_batch_size=args.max_batch_size,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            max_items=args.max_items,
            max_body_bytes=math.ceil(args.max_body_mb * MiB),
            max_text_chars=args.max_text_chars,
            max_messages=args.max_messages,
            graceful_timeout_s=args.graceful_timeout,
            share_prefix=not args.no_share_prefix,
            model_name=name,
        )
    except ValueError as e:
        message = str(e)
        for field, option in OPTION_OF_SETTING.items():
            message = message.replace(field, option)
        raise UsageError(message) from None


def main(argv: list[str]) -> int:
    from rewardforge.commands.checks import check_device

    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    check_device(args.device)
    from rewardforge.serving.settings import is_loopback

    sock = bind_socket(args.host, args.port)  # fail fast (exit 2) before loading the model
    if not is_loopback(args.host) and not settings.auth_required:  # (said once it does listen)
        print(
            f"rewardforge serve: warning: listening on {args.host} with no API key; "
            "anyone who can reach this port can use the model (set --api-key or REWARDFORGE_API_KEY)",
            file=sys.stderr,
        )
    try:
        return _serve(args, settings, sock)
    finally:
        sock.close()


def _serve(args: argparse.Namespace, settings, sock: socket.socket) -> int:
    import time

    import torch
    import uvicorn

    from rewardforge.inference import loaded_quietly
    from rewardforge.serving import create_app

    started = time.monotonic()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = loaded_quietly(args.model, max_length=args.max_length, device=args.device, dtype=args.dtype)
    app = create_app(model, settings)
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=settings.graceful_timeout_s,  # seconds; a fraction is kept
        lifespan="on",
    )
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    # that was installed before it; this one notes it, so a clean shutdown exits with code 0.
    received: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: received.append(signum))
    print(
        f"rewardforge serve: {settings.model_name} on http://{shown}:{port} "
        f"(device {model.device}, max batch {settings.max_batch_size}, max wait {settings.max_wait_ms:g} ms, "
        f"queue {settings.max_queue}, auth {'on' if settings.auth_required else 'off'}; "
        f"loaded in {time.monotonic() - started:.1f} s)",
        file=sys.stderr,
        flush=True,
    )
    server.run(sockets=[sock])
    if not server.started:
        print("rewardforge serve: the server did not start (see the log above)", file=sys.stderr)
        return 1
    if received:
        print(f"rewardforge serve: stopped by {signal.Signals(received[0]).name}", file=sys.stderr)
    return 0
