#!/usr/bin/env python
"""Load test of the web demo's HTTP API: N concurrent ``/detect`` requests on loopback.

    python tools/benchmark_web_demo.py [--requests 20] [--model demo|tiny] [--config-file CFG --weights W]
        [--url http://127.0.0.1:7860/] [--timeout 300] [--json out.json]

Starts ``tools/web_demo.py`` on 127.0.0.1 (a free port; or uses the server at ``--url``), sends one warm-up
request, then one sequential request to time a single request alone, then ``--requests`` requests at once,
each from its own ``gradio_client`` thread, and checks that every one succeeds and that the server still
answers afterwards. Prints the latency p50 / p95 / max of the concurrent requests and the ratio of their wall
time to that of the same requests one after the other (the queue's overhead: 1.0 is none). Everything is
bounded: one deadline for the whole run, a timeout per request, and the server is stopped at the end.

Model (unless ``--config-file``): ``demo`` is ``make web-demo``'s architecture (the demo recipe,
projects/RLIPv2/configs/demo/) with random weights, ``tiny`` the tiny test model; images are scenes of the
synthetic relation world at the demo's 128 px. Exit status 1 if any request failed or the server went down.
"""
import argparse
import concurrent.futures
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(REPO, "projects", "RLIPv2", "configs", "demo", "rlipv2_parseda_tiny_synthetic.py")
OBJECTS = "person, ball, bicycle, horse, chair, cup, kite, box, umbrella, dog"
RELATIONS = "ride, hold, kick, carry, sit on, look at, next to, no interaction"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str, timeout: float = 5.0) -> bool:
    """True when ``url`` answers HTTP 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


class WebDemoServer:
    """``tools/web_demo.py`` in a subprocess on 127.0.0.1; a context manager that waits until it answers
    (at most ``start_timeout`` s) and stops it on exit. Its output goes to ``log_path``."""

    def __init__(self, config_file: str, weights: str | None, *, log_path: str, port: int | None = None,
                 extra_args=(), start_timeout: float = 240.0, env: dict | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path, self.start_timeout = log_path, start_timeout
        self.cmd = [sys.executable, os.path.join(REPO, "tools", "web_demo.py"), "--config-file", config_file,
                    "--host", "127.0.0.1", "--port", str(self.port), *map(str, extra_args)]
        if weights:
            self.cmd[4:4] = ["--weights", weights]
        self.env = dict(os.environ if env is None else env, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
                        TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        self.proc: subprocess.Popen | None = None

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def __enter__(self):
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while not answers(self.url, timeout=2.0):
            if self.proc.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError(f"the web demo exited with status {self.proc.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise TimeoutError(f"the web demo did not answer within {self.start_timeout:.0f} s:\n"
                                   f"{self.log()[-3000:]}")
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._log.close()
        return False


def write_model(kind: str, directory: str) -> tuple[str, str]:
    """(config, weights) of a model with random weights: ``demo`` (the demo recipe) or ``tiny``."""
    if kind == "tiny":
        from rlipv2.utils.testing import write_tiny_model_files

        return write_tiny_model_files(directory)
    import torch
    from detectron2.config import LazyConfig, instantiate

    from rlipv2.engine import RLIPv2Checkpointer

    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(DEMO_CONFIG).model)
    RLIPv2Checkpointer(model, directory).save("demo_random")
    return DEMO_CONFIG, os.path.join(directory, "demo_random.pth")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between the sorted values."""
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def run_load(url: str, images: list[str], n: int, timeout: float, deadline: float) -> dict:
    """Warm-up, one request alone, then ``n`` at once; returns the figures."""
    from gradio_client import Client, handle_file

    def request(client, i):
        t0 = time.perf_counter()
        doc = client.predict([handle_file(images[i % len(images)])], OBJECTS, RELATIONS, 0.2, 20,
                             api_name="/detect")
        if not isinstance(doc, dict) or len(doc.get("images", [])) != 1:
            raise RuntimeError(f"unexpected answer: {str(doc)[:200]}")
        return time.perf_counter() - t0

    first = Client(url, verbose=False)
    warmup = request(first, 0)
    alone = [request(first, i) for i in range(3)]
    clients = [Client(url, verbose=False) for _ in range(n)]
    latencies, errors = [], []
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(request, clients[i], i) for i in range(n)]
        for f in futures:
            try:
                latencies.append(f.result(timeout=max(1.0, min(timeout, deadline - time.monotonic()))))
            except Exception as e:  # noqa: BLE001 - a failed request is counted and reported
                errors.append(f"{type(e).__name__}: {e}")
    wall = time.perf_counter() - t0
    return dict(requests=n, succeeded=len(latencies), errors=errors[:5], warmup_s=warmup,
                alone_median_s=statistics.median(alone), wall_s=wall,
                p50_s=percentile(latencies, 50) if latencies else float("nan"),
                p95_s=percentile(latencies, 95) if latencies else float("nan"),
                max_s=max(latencies) if latencies else float("nan"),
                ratio_wall_over_sequential=wall / (n * statistics.median(alone)),
                server_up_after=answers(url))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20, help="concurrent requests")
    ap.add_argument("--model", choices=("demo", "tiny"), default="demo", help="random-weight model to serve")
    ap.add_argument("--config-file", default=None, help="serve this config instead (with --weights)")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--url", default=None, help="use the web demo already running there")
    ap.add_argument("--timeout", type=float, default=300.0, help="deadline of the whole run, seconds")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)
    if not 1 <= args.requests <= 200:
        print(f"benchmark_web_demo.py: error: --requests must be in [1, 200], got {args.requests}", file=sys.stderr)
        return 2
    try:
        import gradio_client  # noqa: F401
    except ImportError:
        print("skipped: gradio_client is not installed (pip install -e .[web])")
        return 0
    from rlipv2.engine.web_demo import render_example_images

    deadline = time.monotonic() + args.timeout
    workdir = tempfile.mkdtemp(prefix="rlipv2_bench_web_")
    try:
        images = render_example_images(os.path.join(workdir, "images"), num=4, size=128)
        with contextlib.ExitStack() as stack:
            url, what = args.url, f"server at {args.url}"
            if url is None:
                config, weights = ((args.config_file, args.weights) if args.config_file
                                   else write_model(args.model, os.path.join(workdir, "model")))
                what = f"{os.path.relpath(config, REPO) if config.startswith(REPO) else args.model} model"
                env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
                server = stack.enter_context(WebDemoServer(
                    config, weights, log_path=os.path.join(workdir, "server.log"), env=env,
                    extra_args=["--min-size", "128", "--max-size", "256", "--examples", "0"]))
                url = server.url
            fig = run_load(url, images, args.requests, timeout=args.timeout, deadline=deadline)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"web demo load test: {fig['requests']} concurrent /detect requests on loopback, {what}, "
          f"one worker, 1 image of 128 px each")
    alone = fig["alone_median_s"]
    up = "server up afterwards" if fig["server_up_after"] else "SERVER DOWN afterwards"
    print(f"  {fig['succeeded']}/{fig['requests']} succeeded, {up}; latency p50 {fig['p50_s']:.2f} s, "
          f"p95 {fig['p95_s']:.2f} s, max {fig['max_s']:.2f} s; one request alone {alone:.3f} s "
          f"(first request {fig['warmup_s']:.2f} s): p50 {fig['p50_s'] / alone:.1f}x, "
          f"p95 {fig['p95_s'] / alone:.1f}x one alone")
    print(f"  wall time {fig['wall_s']:.2f} s; ratio wall / (N x one alone) = {fig['ratio_wall_over_sequential']:.2f} "
          f"(1.00: queued requests cost what they would one after the other; below: uploads and answers overlap "
          f"the model's work)")
    print(f"  load average: {load}")
    for e in fig["errors"]:
        print(f"  error: {e}")
    if args.json:
        from rlipv2.utils.file_io import atomic_write_json

        atomic_write_json(args.json, fig)
    return 0 if fig["succeeded"] == fig["requests"] and fig["server_up_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
