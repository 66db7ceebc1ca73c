"""The web studio's API with an in-process client: scores, takes, passages, downloads, and every bad input
answered with a 4xx and one line (never a 500, a hung worker or a lost take)."""

import io
import shutil
import time
import zipfile

import numpy as np
import pytest

pytest.importorskip("httpx")

from starlette.testclient import TestClient

from espressivo.io import read_midi, read_score
from espressivo.render.passage import bar_span
from espressivo.studio.app import create_app
from espressivo.studio.service import Studio
from tests.conftest import EXAMPLES

CLIENT = {"base_url": "http://127.0.0.1:8000", "headers": {"X-Espressivo-Studio": "1"}}  # as the studio's page


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    studio = Studio(tmp_path_factory.mktemp("store"), workers=2, max_pending=4)
    with TestClient(create_app(studio, max_upload=2 * 2**20), **CLIENT) as c:
        yield c
    studio.close()


def wait(client, take_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        take = client.get(f"/api/takes/{take_id}?view=1").json()
        if take["status"] not in ("queued", "running"):
            return take
        time.sleep(0.05)
    raise AssertionError(f"take {take_id} still {take['status']} after {timeout} s")


@pytest.fixture(scope="module")
def etude(client):
    response = client.post("/api/examples/etude")
    assert response.status_code == 201
    return response.json()


def test_the_page_and_its_files_come_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="roll"' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    for name in ("studio.js", "studio.css"):
        assert client.get(f"/static/{name}").status_code == 200
    listed = client.get("/api/renderers").json()
    assert listed["renderers"][0]["default"] and {"phrase-small", "cvrnn-small"} <= {
        r["name"] for r in listed["renderers"]
    }
    assert next(r for r in listed["renderers"] if r["name"] == "cvrnn-small")["z_dim"] == 5


def test_open_render_listen_and_take_home(client, etude):
    info = etude["info"]
    assert info["notes"] == 84 and info["measures"] == 8 and etude["humans"] == ["pianist"]
    assert len(info["bars"]) == 8 and info["dynamics"] == ["p @q0", "mf @q16"] and len(info["dynamics_at"]) == 2
    take = client.post(f"/api/scores/{etude['id']}/takes", json={"seed": 3, "tempo": 90, "expressiveness": 1.2})
    assert take.status_code == 202 and take.json()["label"] == "phrase-small, seed 3, tempo 90, expressiveness 1.2"
    done = wait(client, take.json()["id"])
    assert done["status"] == "done", done["error"]
    assert set(done["files"]) == {"performance.mid", "tempo-mapped.mid", "audio.wav"}
    view = done["view"]
    assert len(view["notes"]) == 84 and view["curves"]["tempo_bpm"] and len(view["curves"]["beat"]) > 10
    midi = client.get(f"/api/takes/{done['id']}/performance.mid")
    assert midi.status_code == 200 and "attachment" in midi.headers["content-disposition"]
    name = midi.headers["content-disposition"].split("filename=")[1].strip('"')  # the title, what the take is
    assert name.startswith("Espressivo_Etude_No_1-phrase-small_seed_3") and name.endswith("-performance.mid"), name
    perf = read_midi(_saved(midi.content))
    assert len(perf) == 84 and abs(perf.end_sec - view["duration"]) < 0.01
    wav = client.get(f"/api/takes/{done['id']}/audio.wav")
    assert wav.content[:4] == b"RIFF" and len(wav.content) > 22050 * 2 * 2 * (view["duration"] - 1)
    for kind in ("deadpan", "human"):
        other = wait(client, client.post(f"/api/scores/{etude['id']}/takes", json={"kind": kind}).json()["id"])
        assert other["status"] == "done" and len(other["view"]["notes"]) == 84 and "curves" in other["view"]


def _saved(data: bytes):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "x.mid"
    path.write_bytes(data)
    return path


def test_a_passage_rendered_again_keeps_every_note_outside_it(client, etude):
    base = wait(client, client.post(f"/api/scores/{etude['id']}/takes", json={"seed": 5}).json()["id"])
    again = client.post(f"/api/takes/{base['id']}/passage", json={"first": 2, "last": 3})
    assert again.status_code == 202
    spliced = wait(client, again.json()["id"])
    assert spliced["status"] == "done", spliced["error"]
    old = read_midi(_saved(client.get(f"/api/takes/{base['id']}/performance.mid").content))
    new = read_midi(_saved(client.get(f"/api/takes/{spliced['id']}/performance.mid").content))
    score = read_score(EXAMPLES / "etude.musicxml", unfold=True)
    b0, b1 = bar_span(score, 2, 3)
    assert (b0, b1) == (4.0, 12.0)
    # every note of bars 1 and 4..8 sounds as before (MIDI keeps no note ids: compare the notes themselves)
    inside = {k for k, (note, beat) in enumerate(_with_beats(base, score)) if b0 <= beat < b1}

    def key(n):
        return round(float(n["onset_sec"]), 4), int(n["pitch"]), round(float(n["duration_sec"]), 4), int(n["velocity"])

    by_time = np.lexsort((old.notes["pitch"], old.notes["onset_sec"]))
    outside = [key(old.notes[i]) for k, i in enumerate(by_time) if k not in inside]
    assert len(outside) == 84 - 23 == len(set(outside) & {key(n) for n in new.notes})
    assert len(new) == 84 and {key(n) for n in new.notes} != {key(n) for n in old.notes}  # the passage did change
    # the same bars again, no seed asked: another take of them (a fresh seed), not the same notes
    twice = wait(client, client.post(f"/api/takes/{base['id']}/passage", json={"first": 2, "last": 3}).json()["id"])
    assert twice["settings"]["seed"] != spliced["settings"]["seed"]
    third = read_midi(_saved(client.get(f"/api/takes/{twice['id']}/performance.mid").content))
    assert {key(n) for n in third.notes} != {key(n) for n in new.notes}


def _with_beats(take, score):
    """(note, score beat) of a rendering of the etude, notes by time and pitch: the phrase renderer keeps the
    written order of onsets (its tempo curve is positive), so the k-th note in time is the k-th written onset."""
    notes = sorted(take["view"]["notes"], key=lambda n: (n[0], n[2]))
    return list(zip(notes, sorted(score.notes["onset_beat"]), strict=True))


def test_cvrnn_takes_can_be_steered(client, etude):
    plain = {"model": "cvrnn-small", "seed": 1}
    up = wait(
        client,
        client.post(f"/api/scores/{etude['id']}/takes", json=plain | {"interpretation": [2, 0, 0, 0, 0]}).json()["id"],
    )
    flat = wait(client, client.post(f"/api/scores/{etude['id']}/takes", json=plain).json()["id"])
    assert up["status"] == flat["status"] == "done"
    assert up["view"]["notes"] != flat["view"]["notes"]
    swell = {"start": [0, 0, 0, 0, 0], "end": [2, 0, 0, 0, 0]}  # over the piece: the start as without steering
    changing = wait(
        client, client.post(f"/api/scores/{etude['id']}/takes", json=plain | {"interpretation": swell}).json()["id"]
    )
    assert changing["status"] == "done" and changing["settings"]["interpretation"] == swell
    assert up["label"] == "cvrnn-small, seed 1, interpretation +2 z1"  # what differs, said
    assert changing["label"] == "cvrnn-small, seed 1, interpretation 0 → +2 z1"
    assert changing["view"]["notes"] != flat["view"]["notes"]


def test_a_take_can_be_cancelled_and_the_queue_is_bounded(tmp_path):
    import threading

    studio = Studio(tmp_path / "store", workers=1, max_pending=2, synthesize_audio=False)
    gate, perform = threading.Event(), studio._perform
    studio._perform = lambda take, entry: (gate.wait(30), perform(take, entry))[1]  # the worker held at the gate
    with TestClient(create_app(studio), **CLIENT) as c:
        score = c.post("/api/examples/etude").json()["id"]
        first = c.post(f"/api/scores/{score}/takes", json={"seed": 1}).json()
        second = c.post(f"/api/scores/{score}/takes", json={"seed": 2}).json()
        third = c.post(f"/api/scores/{score}/takes", json={"seed": 3})
        assert third.status_code == 429 and "already waiting" in third.json()["error"]
        assert c.delete(f"/api/takes/{second['id']}").json()["status"] in ("queued", "running")
        gate.set()
        assert wait(c, second["id"])["status"] == "cancelled"
        assert wait(c, first["id"])["status"] == "done"  # the others go on
        assert c.post(f"/api/scores/{score}/takes", json={"seed": 4}).status_code == 202
    studio.close()


def _mxl_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/container.xml",
                         '<container><rootfiles><rootfile full-path="s.xml"/></rootfiles></container>')  # fmt: skip
        archive.writestr("s.xml", b"\0" * (60 * 2**20))
    return buffer.getvalue()


XXE = (b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b"<score-partwise><work><work-title>&x;</work-title></work></score-partwise>")  # fmt: skip


@pytest.mark.parametrize(
    "method, url, body, status, message",
    [
        ("post", "/api/scores?name=big.musicxml", b"<" * (3 * 2**20), 413, "larger than 2 MB"),
        ("post", "/api/scores?name=run.exe", b"MZ", 400, "not a score file"),
        ("post", "/api/scores?name=lying.mid", b"<score-partwise/>", 400, "MIDI"),
        ("post", "/api/scores?name=lying.musicxml", b"MThd\0\0\0\6", 400, "lying.musicxml"),
        ("post", "/api/scores?name=xxe.musicxml", XXE, 400, "xxe.musicxml"),
        ("post", "/api/scores?name=bomb.mxl", _mxl_bomb(), 400, "bomb.mxl"),
        ("post", "/api/scores?name=../../etc/passwd.musicxml", b"<x/>", 400, "passwd.musicxml"),
        ("post", "/api/scores?name=empty.mid", b"", 400, "empty"),
        ("post", "/api/scores", b"<x/>", 400, "not a score file"),
        ("get", "/api/scores/0123456789abcdef", None, 404, "no such score"),
        ("get", "/api/takes/../../etc/passwd", None, 404, "not found"),
        ("get", "/api/takes/nothing", None, 404, "no such take"),
        ("delete", "/api/takes/nothing", None, 404, "no such take"),
        ("get", "/static/../__init__.py", None, 404, "not found"),
        ("get", "/static/secret.py", None, 404, "no such file"),
        ("post", "/api/examples/..%2F..%2Fetc", None, 400, "unknown example"),
        ("post", "/api/examples/nope", None, 400, "unknown example"),
        ("put", "/api/scores", b"", 405, "method not allowed"),
    ],
)
def test_bad_requests_are_one_line_4xx(client, method, url, body, status, message):
    response = getattr(client, method)(url, content=body) if body is not None else getattr(client, method)(url)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error and "/tmp" not in error


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"kind": "karaoke"}', "kind must be"),
        (b'{"tempo": "fast"}', "tempo must be a number"),
        (b'{"tempo": 1e309}', "tempo must lie"),
        (b'{"tempo": 5}', "tempo must lie"),
        (b'{"seed": -1}', "seed must lie"),
        (b'{"seed": 1.5}', "seed must be a whole number"),
        (b'{"seed": true}', "seed must be a whole number"),
        (b'{"expressiveness": 9}', "expressiveness must lie"),
        (b'{"temperature": 0}', "variety must lie"),
        (b'{"dynamics_scale": "nan"}', "dynamics scale must lie"),
        (b'{"model": "../../etc/passwd"}', "unknown renderer"),
        (b'{"model": "transformer-small"}', "not a renderer"),
        (b'{"model": ["phrase-small"]}', "model must be"),
        (b'{"interpretation": [1, 2, 3, 4, 5]}', "only a CVRNN"),
        (b'{"model": "cvrnn-small", "interpretation": [1, 2]}', "must be 5 numbers"),
        (b'{"model": "cvrnn-small", "interpretation": {"start": [0, 0, 0, 0, 0]}}', "must be 5 numbers"),
        (b'{"model": "cvrnn-small", "interpretation": [9, 0, 0, 0, 0]}', "interpretation must lie"),
        (b'{"kind": "human", "index": 7}', "no pianist"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_garbage_take_requests_are_one_line_400(client, etude, body, message):
    response = client.post(f"/api/scores/{etude['id']}/takes", content=body)
    assert response.status_code in (400, 413), response.text
    assert message in response.json()["error"] or response.status_code == 413


@pytest.mark.parametrize(
    "body, message",
    [(b'{"first": 0, "last": 2}', "first bar must lie"), (b'{"first": 3, "last": 2}', "first <= last"),
     (b'{"first": 2, "last": 99}', "last bar must lie"), (b'{"first": "two"}', "whole number")],
)  # fmt: skip
def test_bad_passages_are_one_line_400(client, etude, body, message):
    base = wait(client, client.post(f"/api/scores/{etude['id']}/takes", json={"kind": "deadpan"}).json()["id"])
    rendered = wait(client, client.post(f"/api/scores/{etude['id']}/takes", json={"seed": 9}).json()["id"])
    assert (
        client.post(f"/api/takes/{base['id']}/passage", content=b'{"first": 1}').status_code == 400
    )  # not a rendering
    response = client.post(f"/api/takes/{rendered['id']}/passage", content=body)
    assert response.status_code == 400 and message in response.json()["error"]


def test_an_uploaded_score_opens(client):
    data = (EXAMPLES / "etude.musicxml").read_bytes()
    response = client.post("/api/scores?name=My%20Etude.musicxml", content=data)
    assert response.status_code == 201 and response.json()["info"]["notes"] == 84
    assert response.json()["name"] == "My Etude.musicxml" and response.json()["humans"] == []
    midi = client.post("/api/scores?name=perf.mid", content=(EXAMPLES / "etude_performance.mid").read_bytes())
    assert midi.status_code == 201
    odd = client.post('/api/scores?name=%E7%B7%B4%E7%BF%92"%0d%0aX:1.musicxml', content=data)  # a header in a name
    take = wait(client, client.post(f"/api/scores/{odd.json()['id']}/takes", json={"kind": "deadpan"}).json()["id"])
    download = client.get(f"/api/takes/{take['id']}/performance.mid")
    assert (
        download.status_code == 200
        and "X" not in download.headers
        and '"' not in download.headers["content-disposition"].split("filename=")[1][1:-1]
    )


def test_a_cvrnn_take_plays_like_a_reference(client, etude):
    assert (
        client.post(f"/api/scores/{etude['id']}/takes", json={"model": "cvrnn-small", "reference": True})
        .json()["error"]
        .startswith("upload a reference")
    )
    bad = client.post(f"/api/scores/{etude['id']}/reference?name=x.mid", content=b"MThd nonsense")
    assert bad.status_code == 400 and "x.mid" in bad.json()["error"]
    assert client.post(f"/api/scores/{etude['id']}/reference?name=x.musicxml", content=b"<x/>").status_code == 400
    ok = client.post(f"/api/scores/{etude['id']}/reference?name=played.mid",
                     content=(EXAMPLES / "etude_performance.mid").read_bytes())  # fmt: skip
    assert ok.status_code == 201 and ok.json()["notes"] == 84
    styled = client.post(
        f"/api/scores/{etude['id']}/takes", json={"model": "cvrnn-small", "seed": 2, "reference": True}
    )
    plain = client.post(f"/api/scores/{etude['id']}/takes", json={"model": "cvrnn-small", "seed": 2})
    styled, plain = wait(client, styled.json()["id"]), wait(client, plain.json()["id"])
    assert styled["status"] == "done", styled["error"]
    assert styled["label"].endswith("like the reference") and styled["view"]["notes"] != plain["view"]["notes"]
    refused = client.post(f"/api/scores/{etude['id']}/takes", json={"reference": True})
    assert refused.status_code == 400 and "only a CVRNN" in refused.json()["error"]


def test_the_store_is_bounded_and_a_cleared_take_says_so(tmp_path):
    import os

    from espressivo.studio.store import Store

    now = time.time()
    store = Store(tmp_path / "s", max_bytes=3000, max_age_sec=3600)
    ids = [store.new_id() for _ in range(3)]
    for k, entry in enumerate(ids):
        store.write(entry, "performance.mid", b"m" * 100)
        store.write(entry, "audio.wav", b"x" * 1200)
        for name in ("audio.wav", "performance.mid"):  # oldest and least recently heard first
            os.utime(store.root / entry / name, (now - 100 + k, now - 100 + k))
    # over 3,000 bytes: the audio of the least recently heard take not in use goes; every take is kept
    assert store.prune(in_use={ids[0]}) == []
    assert [(store.root / e / "audio.wav").exists() for e in ids] == [True, False, True]
    assert all((store.root / e / "performance.mid").exists() for e in ids)
    store.max_bytes = 1450  # all the audio not in use gone and still over: then the oldest takes
    assert store.prune(in_use={ids[0]}) == [ids[1]]
    assert not (store.root / ids[2] / "audio.wav").exists() and (store.root / ids[0] / "audio.wav").exists()
    assert sorted(p.name for p in store.root.iterdir()) == sorted([ids[0], ids[2]])
    with pytest.raises(Exception, match="no such file"):
        store.path("../etc", "audio.wav")
    with pytest.raises(Exception, match="no such file"):
        store.path(ids[0], "../../passwd")
    studio = Studio(tmp_path / "store", workers=1, synthesize_audio=False)
    studio.store.max_bytes = 0  # everything finished is cleared at once
    with TestClient(create_app(studio), **CLIENT) as c:
        score = c.post("/api/examples/etude").json()["id"]
        take = wait(c, c.post(f"/api/scores/{score}/takes", json={"kind": "deadpan"}).json()["id"])
        for _ in range(100):  # cleared just after it is done
            take = c.get(f"/api/takes/{take['id']}").json()
            if take["status"] == "expired":
                break
            time.sleep(0.02)
        assert take["status"] == "expired" and take["files"] == []
        gone = c.get(f"/api/takes/{take['id']}/performance.mid")
        assert gone.status_code == 404 and "cleared" in gone.json()["error"]
    studio.close()


def test_an_asap_example_opens_with_its_pianists(client, asap_root):
    listed = client.get("/api/renderers").json()["examples"]
    asap = [e for e in listed if e["id"].startswith("asap:")]
    assert asap, "the (n)ASAP test pieces are offered when the data is here"
    opened = client.post(f"/api/examples/{asap[0]['id']}")
    assert opened.status_code == 201 and 1 <= len(opened.json()["humans"]) <= 3
    take = wait(client, client.post(f"/api/scores/{opened.json()['id']}/takes", json={"kind": "human"}).json()["id"])
    assert take["status"] == "done" and "curves" in take["view"]


def test_the_studio_command_starts_on_localhost_and_refuses_bad_flags(capsys):
    import subprocess
    import sys

    import httpx

    from espressivo.cli import main

    assert main(["studio", "--port", "70000"]) == 2 and "--port must lie" in capsys.readouterr().err
    assert main(["studio", "--store", __file__]) == 2 and "must be a folder" in capsys.readouterr().err
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        assert main(["studio", "--port", busy]) == 2
        assert capsys.readouterr().err.strip().endswith("Address already in use")
    server = subprocess.Popen([sys.executable, "-m", "espressivo", "studio"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        line = server.stdout.readline()
        assert line.startswith("espressivo studio: http://127.0.0.1:")
        url = line.split()[2]
        for _ in range(100):
            try:
                page = httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert page.status_code == 200 and "espressivo" in page.text
    finally:
        server.terminate()
        server.wait(10)


def test_other_sites_cannot_post_read_or_frame(tmp_path):
    """Blind cross-site POSTs (text/plain, forms, an empty body), a foreign Host (DNS rebinding), another Origin:
    403, nothing opened; every answer carries the CSP and frame headers."""
    studio = Studio(tmp_path / "store", workers=1)
    with TestClient(create_app(studio), base_url="http://127.0.0.1:8000") as c:
        blind = [
            c.post("/api/examples/etude"),  # an empty body, no header: what a cross-site form or fetch sends
            c.post("/api/scores?name=a.mid", content=b"x", headers={"Content-Type": "text/plain"}),
            c.post("/api/scores?name=a.mid", data={"a": "b"}),
            c.post("/api/examples/etude", headers={"X-Espressivo-Studio": "1", "Origin": "https://evil.example"}),
            c.post("/api/examples/etude", headers={"X-Espressivo-Studio": "1", "Origin": "null"}),
            c.post("/api/examples/etude", headers={"X-Espressivo-Studio": "1", "Sec-Fetch-Site": "cross-site"}),
            c.get("/api/renderers", headers={"Host": "evil.example:8000"}),
        ]
        assert [r.status_code for r in blind] == [403] * len(blind)
        assert all(r.json()["error"].count("\n") == 0 for r in blind)
        assert not list((tmp_path / "store").rglob("score*"))  # nothing was opened
        ok = c.post("/api/examples/etude", headers={"X-Espressivo-Studio": "1", "Origin": "http://127.0.0.1:8000"})
        assert ok.status_code == 201
        page = c.get("/", headers={"Host": "localhost:8000"})
        assert page.status_code == 200
        for r in (page, ok, blind[0]):
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    studio.close()


def test_odd_numbers_big_json_and_unknown_settings_get_one_line_4xx(client):
    entry = client.post("/api/examples/etude").json()
    takes = f"/api/scores/{entry['id']}/takes"
    for body in ({"seed": "²"}, {"seed": "\uff11\uff12"}, {"tempo": "٣٠"}, {"seed": "9" * 400}, {"tempo": "1e999"},
                 {"kind": "human", "index": "²"}, {"colour": "blue"}, {"kind": "deadpan", "seed": 3}):  # fmt: skip
        answer = client.post(takes, json=body)
        assert answer.status_code == 400, body
        assert answer.json()["error"].count("\n") == 0
    assert "unknown setting(s): colour" in client.post(takes, json={"colour": "blue"}).json()["error"]
    big = client.post(takes, content=b'{"seed": 1, "pad": "' + b"x" * 70_000 + b'"}',
                      headers={"Content-Type": "application/json"})  # fmt: skip
    assert big.status_code == 413 and big.json()["error"] == "the request is larger than 64 KB"


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")
def test_audio_cleared_for_room_is_made_again_and_synthesis_stops_on_cancel(tmp_path):
    import threading

    from espressivo import EspressivoError, Performance
    from espressivo.audio import synthesize

    studio = Studio(tmp_path / "store", workers=1)
    with TestClient(create_app(studio), **CLIENT) as c:
        score = c.post("/api/examples/etude").json()["id"]
        take = wait(c, c.post(f"/api/scores/{score}/takes", json={"kind": "deadpan"}).json()["id"])
        assert "audio.wav" in take["files"]
        first = c.get(f"/api/takes/{take['id']}/audio.wav").content
        (studio.store.root / take["id"] / "audio.wav").unlink()  # as the store's bound does
        again = c.get(f"/api/takes/{take['id']}/audio.wav")
        assert again.status_code == 200 and again.content == first
    studio.close()
    cancel = threading.Event()
    cancel.set()
    n = 5000
    long = Performance.from_arrays(np.arange(n) * 0.2, np.full(n, 0.1), 40 + np.arange(n) % 40, 70)
    started = time.time()
    with pytest.raises(InterruptedError):
        synthesize(long, tmp_path / "long.wav", cancel=cancel)
    assert time.time() - started < 5 and not list(tmp_path.glob("*.wav")) and not list(tmp_path.glob(".*wav"))
    with pytest.raises(EspressivoError):
        synthesize(Performance.from_arrays([0.0, 4000.0], [1.0, 1.0], [60, 60], 60), tmp_path / "far.wav")


def test_the_queue_takes_turns_between_clients(tmp_path):
    """One client's waiting takes do not hold up another client's single take: once it is asked for, at most one
    of theirs starts before it (first come, first served would run all that were waiting)."""
    studio = Studio(tmp_path / "store", workers=1, synthesize_audio=False)
    with TestClient(create_app(studio), **CLIENT) as c:
        mine = c.post("/api/examples/etude").json()["id"]
        theirs = c.post("/api/examples/etude").json()["id"]
        queued = [c.post(f"/api/scores/{mine}/takes", json={"kind": "render", "seed": k},
                         headers={"X-Espressivo-Client": "busy"}).json()["id"] for k in range(6)]  # fmt: skip
        asked = time.monotonic()
        single = c.post(f"/api/scores/{theirs}/takes", json={"kind": "deadpan"},
                        headers={"X-Espressivo-Client": "other"}).json()["id"]  # fmt: skip
        waiting = sum(1 for t in queued if studio.takes[t].status == "queued")
        for take_id in [*queued, single]:
            assert wait(c, take_id)["status"] == "done"
    mine = studio.takes[single].started
    cut_in = [t for t in queued if asked <= studio.takes[t].started < mine]
    assert len(cut_in) <= 1, (len(cut_in), waiting)
    assert waiting >= 2 or len(cut_in) <= waiting  # (on a slow machine fewer may still wait: then fewer cut in)
    studio.close()


def test_half_sent_requests_neither_stall_the_studio_nor_stay_open(tmp_path):
    """300 connections that send half a request and stop: other requests are answered at once, and the idle
    ones are closed after the header deadline (they used to hold their files for ever)."""
    import socket
    import subprocess
    import sys
    import urllib.request

    from espressivo.studio.server import HEADER_SECONDS

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "espressivo", "studio", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    held = []
    try:
        server.stdout.readline()  # the address is printed just before uvicorn listens
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/renderers", timeout=10)
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
            held.append(s)
        started = time.time()
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/api/renderers", timeout=10).status == 200
        assert time.time() - started < 3
        time.sleep(HEADER_SECONDS + 1)
        for s in held:
            s.settimeout(2)
            assert s.recv(1) == b""  # closed by the studio
    finally:
        for s in held:
            s.close()
        server.terminate()
        server.wait(10)
    assert b"Traceback" not in server.stderr.read()


def test_what_reading_a_score_says_reaches_the_page(client, monkeypatch):
    import espressivo.io.score as score_io

    def broken(pt, part):
        raise IndexError("repeat structure")

    monkeypatch.setattr(score_io, "_unfold", broken)
    opened = client.post("/api/scores?name=my%20piece.musicxml", content=(EXAMPLES / "etude.musicxml").read_bytes())
    assert opened.status_code == 201
    said = opened.json()["warnings"]
    assert len(said) == 1 and "repeats not expanded" in said[0] and "my piece.musicxml" in said[0]


def test_a_pianist_or_deadpan_asked_for_again_is_the_take_already_there(client, etude):
    """The same notes again are the same take (the page selects it): no duplicates in the list."""
    first = client.post(f"/api/scores/{etude['id']}/takes", json={"kind": "human", "index": 0}).json()
    again = client.post(f"/api/scores/{etude['id']}/takes", json={"kind": "human", "index": 0}).json()
    assert again["id"] == first["id"]
    slow = client.post(f"/api/scores/{etude['id']}/takes", json={"kind": "deadpan", "tempo": 61}).json()
    faster = client.post(f"/api/scores/{etude['id']}/takes", json={"kind": "deadpan", "tempo": 62}).json()
    assert slow["id"] != faster["id"]
    same = client.post(f"/api/scores/{etude['id']}/takes", json={"kind": "deadpan", "tempo": 61}).json()
    assert same["id"] == slow["id"]


def test_the_page_says_where_the_asap_examples_come_from(tmp_path, monkeypatch):
    studio = Studio(tmp_path / "store", workers=1)
    monkeypatch.setattr(studio, "asap_examples", lambda: [])  # started away from the data
    with TestClient(create_app(studio), **CLIENT) as c:
        listed = c.get("/api/renderers").json()
    studio.close()
    assert [e["id"] for e in listed["examples"]] == ["etude"] and "ESPRESSIVO_DATA" in listed["examples_note"]


def test_the_score_is_shown_as_notation_whose_notes_are_the_takes(client, etude):
    """Verovio's pages keep the score file's note ids, and a take's view names each note's: the page lights the
    notes a take plays on the notation.  A MIDI score has none (one line)."""
    info = client.get(f"/api/scores/{etude['id']}/notation").json()
    assert info == {"pages": 1, "total": 1}
    page = client.get(f"/api/scores/{etude['id']}/notation/1")
    assert page.status_code == 200 and page.headers["content-type"].startswith("image/svg+xml")
    take = wait(client, client.post(f"/api/scores/{etude['id']}/takes", json={"kind": "deadpan"}).json()["id"])
    ids = set(take["view"]["ids"])
    assert len(ids) == 84 and all(f'<g id="{i}" class="note"' in page.text for i in ids)
    assert client.get(f"/api/scores/{etude['id']}/notation/2").status_code == 404
    assert client.get(f"/api/scores/{etude['id']}/notation/..%2F..%2Fx").status_code == 404
    midi = client.post("/api/scores?name=perf.mid", content=(EXAMPLES / "etude_performance.mid").read_bytes()).json()
    refused = client.get(f"/api/scores/{midi['id']}/notation")
    assert refused.status_code == 400 and "piano roll" in refused.json()["error"]


def test_takes_can_be_named_starred_deleted_and_listed_again(client, etude):
    take = wait(client, client.post(f"/api/scores/{etude['id']}/takes", json={"seed": 11}).json()["id"])
    named = client.patch(f"/api/takes/{take['id']}", json={"name": "the slow one", "star": True})
    assert named.status_code == 200 and named.json()["name"] == "the slow one" and named.json()["star"] is True
    listed = client.get(f"/api/scores/{etude['id']}/takes").json()["takes"]
    assert any(t["id"] == take["id"] and t["star"] for t in listed)  # what a reloaded page shows again
    for body, message in (({"name": "x" * 81}, "at most 80"), ({"name": "a\nb"}, "one line"),
                          ({"star": "yes"}, "true or false"), ({"colour": "red"}, "unknown setting")):  # fmt: skip
        bad = client.patch(f"/api/takes/{take['id']}", json=body)
        assert bad.status_code == 400 and message in bad.json()["error"], bad.json()
    assert client.delete(f"/api/takes/{take['id']}?remove=1").status_code == 200
    assert client.get(f"/api/takes/{take['id']}").status_code == 404
    assert client.get(f"/api/takes/{take['id']}/performance.mid").status_code == 404
    assert take["id"] not in {t["id"] for t in client.get(f"/api/scores/{etude['id']}/takes").json()["takes"]}
    assert client.get("/api/scores/0123456789abcdef/takes").status_code == 404


def test_notation_is_engraved_apart_so_a_bad_file_costs_one_line(tmp_path):
    """Verovio runs in a process of its own: a file it cannot engrave (or that crashes it) is one line."""
    from espressivo.errors import EspressivoError
    from espressivo.studio.notation import engrave

    bad = tmp_path / "bad.mei"
    bad.write_bytes(b"<mei><music><body><mdiv><score><section><measure n='1'><staff><layer><note pname='q'")
    with pytest.raises(EspressivoError, match="could not be engraved"):
        engrave(bad, tmp_path)
    assert engrave(EXAMPLES / "etude.musicxml", tmp_path) == (1, 1) and (tmp_path / "notation-1.svg").is_file()
