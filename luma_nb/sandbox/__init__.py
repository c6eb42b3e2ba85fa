"""The offline sandbox: a loopback HTTP server that speaks the APIFRAME Luma API.

It runs the task life cycle (pending, staged, starting, processing with a string percentage,
finished), posts webhooks, injects faults on request, and serves real H.264 MP4s it synthesizes.
It is a separate program: it talks to clients over HTTP only and never imports the client.

    from luma_nb.sandbox import Sandbox
    with Sandbox(speed=100) as sandbox:
        print(sandbox.base_url, sandbox.api_key, sandbox.demo_parents[0].task_id)
"""

from __future__ import annotations

from .core import DEMO_API_KEY, Sandbox
from .demo import DEMO_PARENTS, DemoParent
from .faults import Fault, Faults, TaskFault
from .hooks import Delivery
from .reqlog import RequestRecord
from .shared import shared_sandbox

__all__ = (
    "DEMO_API_KEY",
    "DEMO_PARENTS",
    "Delivery",
    "DemoParent",
    "Fault",
    "Faults",
    "RequestRecord",
    "Sandbox",
    "TaskFault",
    "shared_sandbox",
)
