"""What an HTTP answer (or its absence) means: typed errors from status codes and bodies."""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from typing import Any

import requests

from ..contract.bodies import public
from ..contract.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    RateLimitError,
    ServerError,
    SubmitUncertainError,
    TransportError,
)
from .deadline import Deadline, DeadlinePassed, TooLarge, read_capped

__all__ = ("describe_transport", "exchange", "never_sent", "parse_answer", "retry_after")

_MIB = 1024 * 1024
#: Gateways answer these when the upstream may or may not have processed the request.
_GATEWAY_STATUSES = frozenset({502, 504})


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from either delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:  # "inf", "nan" and negative numbers are no advice at all
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def messages(body: Any) -> list[str]:
    """The human texts of an error body: ``errors[].msg``, else ``message`` / ``error``."""
    if not isinstance(body, Mapping):
        return []
    texts: list[str] = []
    errors = body.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, Mapping):
                msg = item.get("msg") or item.get("message")
                if isinstance(msg, str) and msg.strip():
                    texts.append(msg.strip())
            elif isinstance(item, str) and item.strip():
                texts.append(item.strip())
    for key in ("message", "error"):
        value = body.get(key)
        if not texts and isinstance(value, str) and value.strip():
            texts.append(value.strip())
    return texts


def never_sent(error: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (no connection was made)."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.ConnectionError):
        text = repr(error)
        return any(
            marker in text
            for marker in ("NewConnectionError", "NameResolutionError", "Connection refused")
        )
    return isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema))


def describe_transport(error: requests.RequestException) -> str:
    """A transport failure in words, without URLs or headers."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "could not connect in time"
    if isinstance(error, requests.exceptions.ReadTimeout):
        return "no answer in time (read timeout)"
    if isinstance(error, requests.exceptions.ConnectionError):
        if never_sent(error):
            return "could not connect (is the service or sandbox running?)"
        return "the connection was closed before an answer came"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    return type(error).__name__


def parse_answer(
    response: requests.Response,
    text: str,
    path: str,
    submitted: Mapping[str, Any] | None,
) -> Any:
    """The parsed JSON body of a 2xx answer; raises the typed error of anything else.

    ``submitted`` is the body of a submit: answers that leave its fate open (a 2xx that is not
    JSON, a gateway error) raise :class:`SubmitUncertainError` instead.
    """
    status = response.status_code
    try:
        body: Any = json.loads(text) if text.strip() else None
        is_json = True
    except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
        body, is_json = None, False
    snippet = " ".join(text.split())[:200] or None
    if 200 <= status < 300:
        if not is_json or body is None:
            error = ServerError(
                status,
                ["the answer was not the JSON the API promises"],
                endpoint=path,
                body=snippet,
            )
            if submitted is not None:
                raise SubmitUncertainError(path, public(submitted), error)
            raise error
        return body
    texts = messages(body)
    if not is_json and snippet:
        kind = "an HTML page" if "<" in snippet else "text"
        texts.append(f"the answer was {kind}, not JSON")
    if status == 400:
        raise BadRequestError(status, texts, endpoint=path, body=snippet)
    if status == 401:
        raise AuthenticationError(status, texts, endpoint=path)
    if status == 402:
        raise InsufficientCreditsError(status, texts, endpoint=path, body=snippet)
    if status == 429:
        raise RateLimitError(
            status,
            texts,
            endpoint=path,
            body=snippet,
            retry_after=retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        error = ServerError(status, texts, endpoint=path, body=snippet)
        if submitted is not None and status in _GATEWAY_STATUSES:
            raise SubmitUncertainError(path, public(submitted), error)
        raise error
    raise APIError(status, texts, endpoint=path, body=snippet)


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    data: bytes | None,
    headers: dict[str, str],
    seconds: float,
    cap: int,
    path: str,
    submitted: Mapping[str, Any] | None,
) -> tuple[requests.Response, bytes]:
    """One request within a total deadline of ``seconds``, its body capped at ``cap`` bytes.

    Raises :class:`TransportError` (or, for a submit that may have been received,
    :class:`SubmitUncertainError`) when no complete answer came.
    """
    try:
        with Deadline(seconds) as deadline:
            response = session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=max(0.05, min(seconds, deadline.remaining())),
                allow_redirects=False,
                stream=True,
            )
            raw = read_capped(response, deadline, cap)
    except TooLarge as error:
        cause = ServerError(
            response.status_code,
            [
                f"the answer is larger than {cap // _MIB} MiB "
                f"({error.size / _MIB:.1f} MiB or more), more than any API answer needs"
            ],
            endpoint=path,
        )
        if submitted is not None:
            raise SubmitUncertainError(path, public(submitted), cause) from None
        raise cause from None
    except (requests.RequestException, DeadlinePassed) as error:
        timed_out = isinstance(error, requests.exceptions.Timeout)
        if isinstance(error, DeadlinePassed) or (deadline.fired and not timed_out):
            reason = f"no complete answer within the {seconds:g} s deadline"
            sent = True
        else:
            reason = describe_transport(error)
            sent = not never_sent(error)
        if submitted is not None and sent:
            raise SubmitUncertainError(path, public(submitted), TransportError(reason)) from None
        raise TransportError(f"{method} {path} failed: {reason}", endpoint=path) from None
    return response, raw
