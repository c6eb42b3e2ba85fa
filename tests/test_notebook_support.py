"""What the notebooks lean on: videos a remote browser can play, growing galleries, a ready form."""

from __future__ import annotations

import pytest

import luma_nb
from luma_nb import LumaClient, media
from luma_nb.notebook.widgets import extend_form


@pytest.mark.parametrize(
    ("setting", "hub", "expected"),
    [("", "", False), ("", "/user/someone/", True), ("1", "", True), ("0", "/user/x/", False)],
)
def test_remote_browser_setting_and_hub_detection(monkeypatch, setting, hub, expected):
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", setting)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", hub)
    assert media.remote_browser() is expected


def test_sandbox_videos_are_embedded_only_for_a_remote_browser(sandbox, client, monkeypatch):
    job = client.extend(sandbox.demo_parents[0].task_id, "the tide comes in")
    job.wait(timeout=60)
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "0")
    local = media.video(job)._repr_html_()
    assert f'src="{job.task.video_url}"' in local
    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "1")
    remote = media.video(job)._repr_html_()
    assert "data:video/mp4;base64," in remote and "127.0.0.1" not in remote


def test_a_public_video_url_is_never_embedded(monkeypatch):
    from luma_nb.contract.models import Task

    monkeypatch.setenv("LUMA_NB_REMOTE_BROWSER", "1")
    task = Task.from_json({"task_id": "t1", "video_url": "https://cdn.example/t1.mp4"})
    assert 'src="https://cdn.example/t1.mp4"' in media.video(task)._repr_html_()


def test_form_function_starts_on_a_demo_parent_in_demo_mode(sandbox, client):
    assert extend_form(client).parent_task_id == sandbox.demo_parents[0].task_id
    assert extend_form(client, parent_task_id="abc").parent_task_id == "abc"
    assert luma_nb.ExtendForm(client).parent_task_id == ""  # the class itself starts empty
    real = LumaClient("k-1", base_url="https://api.example.invalid", journal=None)
    assert extend_form(real).parent_task_id == ""
