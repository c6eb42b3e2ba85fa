"""``luma-nb class``: tokens (CSV and a sheet), status, revoke, and a real ``serve`` process."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys

import requests

from luma_nb import cli
from luma_nb.sandbox import DEMO_PARENTS


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tokens_print_csv_write_a_sheet_and_keep_only_hashes(tmp_path, capsys):
    db, sheet = tmp_path / "class.sqlite", tmp_path / "sheet.html"
    code, out, err = run(
        capsys,
        "class",
        "tokens",
        "--count",
        "3",
        "--db",
        str(db),
        "--html",
        str(sheet),
        "--name",
        "Year 9 Art",
        "--url",
        "http://10.0.0.5:8765",
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["student-01", "student-02", "student-03"]
    page = sheet.read_text()
    assert "Year 9 Art" in page and "http://10.0.0.5:8765" in page
    data = db.read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("class.sqlite-")
    )
    for row in rows:
        assert row["token"] in page
        assert row["token"].encode() not in data
    names = tmp_path / "names.txt"
    names.write_text("Ada\nGrace\n\n")
    code, out, _ = run(capsys, "class", "tokens", "--names", str(names), "--db", str(db))
    assert code == 0
    assert [r["name"] for r in csv.DictReader(io.StringIO(out))] == ["Ada", "Grace"]
    code, _, err = run(capsys, "class", "tokens", "--names", str(names), "--db", str(db))
    assert code == 2 and "already in the class: Ada, Grace" in err
    code, out, _ = run(capsys, "class", "tokens", "--count", "1", "--db", str(db))
    assert [r["name"] for r in csv.DictReader(io.StringIO(out))] == ["student-06"]


def test_status_and_revoke(tmp_path, capsys):
    db = str(tmp_path / "class.sqlite")
    run(capsys, "class", "tokens", "--count", "2", "--db", db)
    code, out, _ = run(capsys, "class", "revoke", "student-02", "--db", db)
    assert code == 0 and "revoked" in out
    code, _, err = run(capsys, "class", "revoke", "nobody", "--db", db)
    assert code == 2 and "nobody" in err
    code, out, _ = run(capsys, "class", "status", "--db", db)
    assert code == 0
    assert "student-02: 0 (revoked)" in out and "uncertain submits: 0" in out


def test_serve_refuses_to_start_without_the_upstream_key(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("APIFRAME_API_KEY", raising=False)
    code, _, err = run(capsys, "class", "serve", "--db", str(tmp_path / "c.sqlite"))
    assert code == 2 and "APIFRAME_API_KEY" in err


def test_serve_with_a_sandbox_upstream_answers_students(tmp_path, capsys):
    db = str(tmp_path / "class.sqlite")
    _, out, _ = run(capsys, "class", "tokens", "--count", "1", "--db", db)
    token = next(csv.DictReader(io.StringIO(out)))["token"]
    env = {k: v for k, v in os.environ.items() if k != "APIFRAME_API_KEY"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "luma_nb.cli",
            "class",
            "serve",
            "--upstream",
            "sandbox",
            "--port",
            "0",
            "--db",
            db,
            "--name",
            "Rehearsal",
            "--student-budget",
            "12",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("class relay 'Rehearsal' on http://127.0.0.1:"), first
        url = first.split(" on ", 1)[1].split(" ", 1)[0]
        answer = requests.get(url + "/account", headers={"Authorization": token}, timeout=10)
        assert answer.json()["credits"] == 12 and answer.json()["class"] == "Rehearsal"
        parent = requests.post(  # the sandbox's demo parents are published to the class
            url + "/fetch",
            json={"task_id": DEMO_PARENTS[0].task_id},
            headers={"Authorization": token},
            timeout=10,
        )
        assert parent.status_code == 200 and parent.json()["task_id"] == DEMO_PARENTS[0].task_id
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert token not in err
