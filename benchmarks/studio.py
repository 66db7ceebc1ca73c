"""The studio under load: `espressivo studio` in its own process, first beside --idle half-sent connections (GET
latency, how many it closes), then one user, then N at once, each uploading a
1,000-note score (the bundled etude's measures repeated), rendering a take with the default renderer and fetching
its audio, and sending bad uploads.  Prints JSON: time to first audio (p50 / p95), takes per minute, responses by
status, takes lost, the server's peak RSS.

    python benchmarks/studio.py --clients 20
    python benchmarks/studio.py --takes 120      # memory over a long session
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

PAGE_HEADERS = {"X-Espressivo-Studio": "1"}  # what the studio's own page sends (studio/guard.py)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_read import tiled  # noqa: E402

sys.path.pop(0)


def one_user(base: str, score: bytes, statuses: collections.Counter, lock: threading.Lock, bad: bool,
             deadline: float) -> dict:  # fmt: skip
    out = {"first_audio_s": None, "lost": False}
    timeout = max(1.0, deadline - time.time())
    with httpx.Client(base_url=base, headers=PAGE_HEADERS, timeout=timeout) as client:

        def call(method, url, **kwargs):
            response = client.request(method, url, **kwargs)
            with lock:
                statuses[response.status_code] += 1
            return response

        if bad:  # a garbage upload and an oversized one, beside the real work
            call("POST", "/api/scores?name=x.musicxml", content=b"<score-partwise><part")
            call("POST", "/api/scores?name=big.mid", content=b"\0" * (11 * 2**20))
        opened = call("POST", "/api/scores?name=long.musicxml", content=score)
        if opened.status_code != 201:
            out["lost"] = True
            return out
        started = time.time()
        take = call("POST", f"/api/scores/{opened.json()['id']}/takes", json={"seed": 1})
        if take.status_code != 202:
            out["lost"] = True
            return out
        take_id = take.json()["id"]
        while True:
            state = call("GET", f"/api/takes/{take_id}").json()
            if state["status"] not in ("queued", "running") or time.time() > deadline:
                break
            time.sleep(0.05)
        if state["status"] != "done":
            out["lost"] = True
            return out
        audio = call("GET", f"/api/takes/{take_id}/audio.wav")
        out["first_audio_s"] = time.time() - started
        out["lost"] = audio.status_code != 200 or audio.content[:4] != b"RIFF"
    return out


def run(base: str, score: bytes, clients: int, max_seconds: float) -> dict:
    statuses: collections.Counter = collections.Counter()
    lock = threading.Lock()
    results: list[dict] = [{} for _ in range(clients)]
    started = time.time()

    def work(k: int) -> None:  # a take not ready within max_seconds counts as lost
        results[k] = one_user(base, score, statuses, lock, clients > 1, started + max_seconds)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - started
    times = np.array([r["first_audio_s"] for r in results if r.get("first_audio_s") is not None])
    return {
        "clients": clients,
        "first_audio_p50_s": round(float(np.percentile(times, 50)), 2) if len(times) else None,
        "first_audio_p95_s": round(float(np.percentile(times, 95)), 2) if len(times) else None,
        "takes_per_minute": round(60 * len(times) / wall, 1),
        "wall_s": round(wall, 1),
        "responses_by_status": {str(k): v for k, v in sorted(statuses.items())},
        "takes_lost": sum(bool(r.get("lost")) for r in results),
    }


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return round(int(next(line for line in status if line.startswith("VmRSS")).split()[1]) / 1024, 1)


def long_session(base: str, pid: int, takes: int) -> dict:
    """One musician for ``takes`` takes: a new score (336 to 2,016 notes) every third take, each take heard; the
    server's resident memory every 10 takes."""
    series = {"0": rss_mb(pid)}
    started = time.time()
    with httpx.Client(base_url=base, headers=PAGE_HEADERS, timeout=300) as client:
        score_id = None
        for k in range(takes):
            if k % 3 == 0:
                score = tiled(4 + 4 * ((k // 3) % 6)).encode()
                score_id = client.post(f"/api/scores?name=s{k}.musicxml", content=score).json()["id"]
            take = client.post(f"/api/scores/{score_id}/takes", json={"seed": k}).json()
            while client.get(f"/api/takes/{take['id']}").json()["status"] in ("queued", "running"):
                time.sleep(0.05)
            client.get(f"/api/takes/{take['id']}/audio.wav")
            if (k + 1) % 10 == 0:
                series[str(k + 1)] = rss_mb(pid)
                print(json.dumps({"takes": k + 1, "rss_mb": series[str(k + 1)]}), flush=True)
    return {"takes": takes, "rss_mb_after_takes": series, "wall_s": round(time.time() - started, 1)}


def idle_connections(base: str, count: int, wait: float) -> dict:
    """``count`` connections that send half a request and stop, held open: GET latency beside them, then how many
    the studio has closed after ``wait`` seconds (its header deadline)."""
    import resource
    import socket
    from urllib.parse import urlsplit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, count + 256), hard), hard))
    address = urlsplit(base)
    held = []
    for _ in range(count):
        s = socket.create_connection((address.hostname, address.port), timeout=5)
        s.sendall(f"GET /api/renderers HTTP/1.1\r\nHost: {address.netloc}\r\n".encode())  # never finished
        held.append(s)
    latencies, statuses = [], collections.Counter()
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(20):
            started = time.perf_counter()
            statuses[client.get("/api/renderers").status_code] += 1
            latencies.append(time.perf_counter() - started)
    time.sleep(wait)
    closed = 0
    for s in held:
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            closed += s.recv(1) == b""
        s.close()
    return {"idle_connections": count, "get_p50_ms": round(1000 * float(np.median(latencies)), 1),
            "get_max_ms": round(1000 * max(latencies), 1), "get_statuses": dict(statuses),
            f"closed_after_{wait:g}_s": closed}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--copies", type=int, default=12, help="copies of the etude's 84 notes (12: 1,008 notes)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="a take not heard by then is lost")
    parser.add_argument("--idle", type=int, default=1100, help="half-sent connections held open (0: none)")
    parser.add_argument("--takes", type=int, default=0, help="instead: one long session of this many takes, and "
                        "the server's memory along it")  # fmt: skip
    args = parser.parse_args()
    score = tiled(args.copies).encode()
    port = 18000 + int(time.time()) % 1000
    server = subprocess.Popen([sys.executable, "-m", "espressivo", "studio", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        line = server.stdout.readline()
        base = line.split()[2].rstrip("/")
        with httpx.Client(base_url=base, headers=PAGE_HEADERS, timeout=300) as client:  # warm: the renderer loaded once
            opened = client.post("/api/examples/etude").json()
            take = client.post(f"/api/scores/{opened['id']}/takes", json={}).json()
            while client.get(f"/api/takes/{take['id']}").json()["status"] in ("queued", "running"):
                time.sleep(0.1)
        if not 1 <= args.clients <= 200:
            raise SystemExit("--clients must lie in 1..200")
        if args.takes:
            print(json.dumps({"long_session": long_session(base, server.pid, args.takes)}, indent=1))
            return
        report = {"score_notes": 84 * args.copies}
        if args.idle:
            report["idle"] = idle_connections(base, args.idle, 11.0)
            print(json.dumps(report), flush=True)
        report["lone"] = run(base, score, 1, args.max_seconds)
        print(json.dumps(report), flush=True)
        report["concurrent"] = run(base, score, args.clients, args.max_seconds)
        with open(f"/proc/{server.pid}/status") as status:
            peak = next(line for line in status if line.startswith("VmHWM"))
        report["server_peak_rss_mb"] = round(int(peak.split()[1]) / 1024, 1)
        print(json.dumps(report, indent=1))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
