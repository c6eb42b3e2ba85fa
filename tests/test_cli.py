"""``luma-nb`` against a running sandbox: commands, JSON output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from luma_nb import cli
from luma_nb.sandbox import Sandbox


@pytest.fixture(scope="module")
def box():
    with Sandbox(speed=400, seed=7) as sandbox:
        yield sandbox


@pytest.fixture
def env(box, monkeypatch):
    monkeypatch.setenv("APIFRAME_API_KEY", box.api_key)
    monkeypatch.setenv("APIFRAME_BASE_URL", box.base_url)
    return box


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_extend_wait_json(env, capsys):
    parent = env.demo_parents[0].task_id
    code, out, err = run(capsys, "--json", "extend", parent, "a comet passes", "--wait", "--quiet")
    assert code == cli.EXIT_OK, err
    data = json.loads(out)
    assert data["status"] == "finished" and data["video_url"].endswith(".mp4")
    assert data["task_type"] == "luma-ext"


def test_imagine_then_fetch_and_account(env, capsys):
    code, out, _ = run(capsys, "imagine", "a lighthouse at dusk", "--aspect-ratio", "9:16")
    assert code == 0
    task_id = out.strip()
    assert env.task(task_id) is not None
    code, out, _ = run(capsys, "fetch", task_id)
    assert code == 0 and out.startswith(f"{task_id}: ")
    code, out, _ = run(capsys, "--json", "account")
    assert code == 0 and json.loads(out)["credits"] == env.credits


def test_wait_shows_progress_lines(env, capsys):
    parent = env.demo_parents[1].task_id
    code, out, _ = run(capsys, "extend", parent, "rain starts")
    task_id = out.strip()
    code, out, err = run(capsys, "wait", task_id)
    assert code == 0
    assert f"{task_id}: finished" in err  # progress on stderr, one line per change off a tty
    assert out.startswith(f"{task_id} finished: http://127.0.0.1:")


def test_exit_codes(env, capsys, monkeypatch):
    code, _, err = run(capsys, "extend", "p", "   ")
    assert code == cli.EXIT_INVALID and "prompt is empty" in err
    code, _, err = run(capsys, "extend", "no-such-parent", "x")
    assert code == cli.EXIT_REFUSED and "HTTP 400" in err
    env.faults.next_task(fail="the model refused")
    code, out, _ = run(capsys, "imagine", "doomed")
    code, _, err = run(capsys, "wait", out.strip())
    assert code == cli.EXIT_FAILED and "the model refused" in err
    code, _, err = run(capsys, "wait", env.demo_parents[0].task_id, "--wait-timeout", "5")
    assert code == 0
    env.faults.add(path="/luma-extend", kind="drop")
    code, _, err = run(capsys, "extend", env.demo_parents[0].task_id, "lost")
    assert code == cli.EXIT_UNCERTAIN and "answer was lost" in err
    monkeypatch.setenv("APIFRAME_API_KEY", "")
    code, _, err = run(capsys, "account")
    assert code == cli.EXIT_INVALID and "APIFRAME_API_KEY" in err


def test_console_script_keeps_the_key_out_of_output(box):
    key = "cli-secret-key-5e0c1a"
    with Sandbox(speed=400, api_key=key) as strict:
        environ = {**os.environ, "APIFRAME_API_KEY": key, "APIFRAME_BASE_URL": strict.base_url}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "luma_nb.cli",
                "--json",
                "extend",
                strict.demo_parents[0].task_id,
                "hello",
                "--wait",
            ],
            capture_output=True,
            text=True,
            env=environ,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert key not in done.stdout and key not in done.stderr
        environ["APIFRAME_API_KEY"] = "wrong-key"
        done = subprocess.run(
            [sys.executable, "-m", "luma_nb.cli", "account"],
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
        )
        assert done.returncode == cli.EXIT_REFUSED and "HTTP 401" in done.stderr


def test_bare_command_lists_the_commands_and_exits_0(capsys):
    code, out, err = run(capsys)
    assert code == cli.EXIT_OK and not err
    for command in ("extend", "imagine", "fetch", "wait", "account", "sandbox", "demo", "class"):
        assert f"\n    {command} " in out, command
    assert "luma-nb demo" in out and "jupyter lab notebooks/" in out


def test_bare_console_script_exits_0():
    done = subprocess.run(
        [sys.executable, "-m", "luma_nb.cli"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "COMMAND" in done.stdout and "demo" in done.stdout and not done.stderr
