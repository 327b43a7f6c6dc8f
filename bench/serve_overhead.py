"""What the HTTP layer costs, with no model in the way (scorers that do nothing or only sleep).

1. Server CPU per request, for each uvicorn event loop / HTTP parser pair: a no-op scorer, 8
   clients, `POST /v1/score`; the server process's CPU time (from /proc, so Linux only) divided
   by the requests. rewardforge depends on uvloop and httptools, which uvicorn picks by itself.
2. How full dynamic batches get, for each load-generator client library: a scorer that sleeps
   `--item-ms` per item (a model that releases the GIL, like torch), 32 clients. The batch size
   shows whether the clients one batch answered are back before the batching window closes;
   the load generator's own CPU per request shows why.

    python bench/serve_overhead.py

Writes bench/results/serve_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_load import batch_sizes, free_port, load, stop_server, wait_ready  # noqa: E402

from rewardforge.files import atomic_write_text  # noqa: E402
from rewardforge.serving import ServeSettings, create_app  # noqa: E402


class NoopScorer:
    """Prepares and scores nothing; `item_ms` of sleep per item stands in for a forward pass."""

    def __init__(self, item_ms: float = 0.0):
        self.item_s = item_ms / 1000.0

    def prepare(self, prompt, response) -> list[int]:
        return [1]

    def prepare_text(self, text) -> list[int]:
        return [1]

    def run(self, prepared) -> list[float]:
        if self.item_s:
            time.sleep(self.item_s * len(prepared))
        return [0.0] * len(prepared)


def serve(port: int, loop: str, http: str, item_ms: float) -> None:
    import uvicorn

    app = create_app(NoopScorer(item_ms), ServeSettings())
    uvicorn.run(app, host="127.0.0.1", port=port, loop=loop, http=http, log_level="warning")


def start(loop: str, http: str, item_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", loop, http, str(port), str(item_ms)]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url, f"the no-op server ({loop}, {http})", timeout=60)
    return proc, url


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(loop: str, http: str, requests: int) -> dict:
    proc, url = start(loop, http, 0.0)
    try:
        asyncio.run(load(url, 8, 200, 60))  # warm-up
        before = cpu_seconds(proc.pid)
        tally = asyncio.run(load(url, 8, requests, 60))
        used = cpu_seconds(proc.pid) - before
    finally:
        stop_server(proc)
    return {
        "loop": loop,
        "http": http,
        "requests": requests,
        "answered": tally["answered"],
        "server_cpu_ms_per_request": round(1000 * used / requests, 3),
        "throughput_rps": round(requests / tally["wall"], 1),
    }


def batch_fill(client: str, item_ms: float, requests: int) -> dict:
    proc, url = start("auto", "auto", item_ms)
    try:
        asyncio.run(load(url, 4, 8, 60))  # warm-up
        before = httpx.get(url + "/metrics").text
        cpu0 = time.process_time()  # this process is the load generator
        tally = asyncio.run(load(url, 32, requests, 60, client=client))
        client_cpu = time.process_time() - cpu0
        after = httpx.get(url + "/metrics").text
    finally:
        stop_server(proc)
    return {
        "client": client,
        "clients": 32,
        "requests": requests,
        "answered": tally["answered"],
        "mean_batch_size": batch_sizes(before, after)[0],
        "client_cpu_ms_per_request": round(1000 * client_cpu / requests, 3),
        "throughput_rps": round(requests / tally["wall"], 1),
    }


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--serve":
        serve(int(sys.argv[4]), sys.argv[2], sys.argv[3], float(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="per server-CPU measurement")
    ap.add_argument("--batch-requests", type=int, default=640, help="per batch-fill measurement")
    ap.add_argument("--item-ms", type=float, default=20.0, help="sleep per item in the batch-fill scorer")
    ap.add_argument("--output", default=str(HERE / "results" / "serve_overhead.json"))
    args = ap.parse_args()

    cpu = [
        server_cpu(loop, http, args.requests) for loop, http in (("asyncio", "h11"), ("uvloop", "httptools"))
    ]
    for r in cpu:
        print(
            f"server {r['loop']}/{r['http']}: {r['server_cpu_ms_per_request']} ms CPU per request, "
            f"{r['throughput_rps']} req/s (8 clients, no-op scorer)",
            flush=True,
        )
    fill = [batch_fill(client, args.item_ms, args.batch_requests) for client in ("httpx", "aiohttp")]
    for r in fill:
        print(
            f"load generator {r['client']}: mean batch {r['mean_batch_size']} of 32 clients, "
            f"{r['client_cpu_ms_per_request']} ms client CPU per request, "
            f"{r['throughput_rps']} req/s ({args.item_ms:g} ms per item)",
            flush=True,
        )
    result = {
        "benchmark": "serve_overhead",
        "command": " ".join(["python", "bench/" + Path(sys.argv[0]).name, *sys.argv[1:]]),
        "server_cpu_per_request": cpu,
        "batch_fill": fill,
        "item_ms": args.item_ms,
        "max_wait_ms": ServeSettings().max_wait_ms,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
    }
    atomic_write_text(Path(args.output), json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
