"""What a provider API call's result (or raised error) says: status, method, rate limiting.

Duck-typed over the HTTP clients mgit's providers use (requests, httpx, urllib, aiohttp,
PyGithub-style errors): nothing here imports any of them, and a strange object never
raises out of these functions.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

__all__ = [
    "describe_response",
    "extract_status_code",
    "is_rate_limited",
]

_RATE_REMAINING = ("x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining")
_MAX_CAUSES = 4  # the error itself and up to three it was raised from


def _http_int(value: Any) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return int(value)
    return None


def _status_of(obj: Any) -> Optional[int]:
    for attr in ("status_code", "status", "code"):
        try:
            code = _http_int(getattr(obj, attr, None))
        except Exception:  # noqa: BLE001  # nosec B112 # a raising property: try the next name
            continue
        if code is not None:
            return code
    getcode = getattr(obj, "getcode", None)
    if callable(getcode):
        try:
            return _http_int(getcode())
        except Exception:  # noqa: BLE001
            return None
    return None


def _response_of(obj: Any) -> Any:
    """``obj`` itself when it carries a status, else its ``.response`` (requests/httpx errors);
    for an exception without either, the same on the error it was raised from
    (``raise ProviderError(...) from http_error``), a few levels deep."""
    for _ in range(_MAX_CAUSES):
        if obj is None:
            return None
        if _status_of(obj) is not None:
            return obj
        try:
            response = getattr(obj, "response", None)
        except Exception:  # noqa: BLE001
            response = None
        if response is not None and _status_of(response) is not None:
            return response
        # __cause__ only: an explicit "from"; __context__ may be an unrelated earlier error.
        obj = obj.__cause__ if isinstance(obj, BaseException) else None
    return None


def extract_status_code(obj: Any) -> Optional[int]:
    """The HTTP status a response or an exception carries, duck-typed; None if none.

    Tried in order: ``.status_code`` (requests, httpx), ``.status`` (urllib responses,
    aiohttp, PyGithub errors), ``.code`` and ``.getcode()`` (urllib), then the same on
    ``.response`` (the errors of requests and httpx), then, for an exception, on the error
    it was raised from (``__cause__``, up to three levels). Only integers 100..599 count.
    """
    response = _response_of(obj)
    return None if response is None else _status_of(response)


def _header(headers: Any, names: Tuple[str, ...]) -> Any:
    if headers is None:
        return None
    if isinstance(headers, dict):  # a plain dict is case-sensitive
        lowered = {str(k).lower(): v for k, v in headers.items()}
        for name in names:
            if name in lowered:
                return lowered[name]
        return None
    get = getattr(headers, "get", None)
    if not callable(get):
        return None
    for name in names:
        value = get(name)
        if value is not None:
            return value
    return None


def _limited(response: Any, status: Optional[int]) -> bool:
    """:func:`is_rate_limited` of a response whose status is known."""
    if status == 429:
        return True
    if status != 403 or response is None:
        return False
    headers = getattr(response, "headers", None)
    remaining = _header(headers, _RATE_REMAINING)
    if remaining is not None:
        try:
            return int(str(remaining).strip()) == 0
        except ValueError:
            return False
    return _header(headers, ("retry-after",)) is not None


def is_rate_limited(obj: Any, status: Optional[int] = None) -> bool:
    """True for HTTP 429, or 403 with a zero remaining quota (or a ``Retry-After``).

    ``obj`` is a response or an exception (its ``.response`` is used); the quota header is
    ``X-RateLimit-Remaining`` (GitHub, Bitbucket, Azure DevOps) or ``RateLimit-Remaining``
    (GitLab), any case.
    """
    try:
        response = _response_of(obj)
        if status is None:
            status = _status_of(response) if response is not None else None
        return _limited(response, status)
    except Exception:  # noqa: BLE001 - a strange response object must not break the call
        return False


def _method_of(obj: Any) -> Optional[str]:
    try:
        request = getattr(obj, "request", None)
        method = getattr(request, "method", None) if request is not None else None
        if method is None:
            method = getattr(obj, "method", None)
    except Exception:  # noqa: BLE001 - e.g. httpx raises when a response has no request
        return None
    return method if isinstance(method, str) and method else None


def describe_response(
    obj: Any, method: Optional[str] = None
) -> Tuple[Optional[int], Optional[str], bool]:
    """``(status, method, rate_limited)`` of what an API call returned or raised.

    ``status`` as :func:`extract_status_code` finds it (None without one); ``method`` as
    given, else from the response's ``request.method`` (or its own ``.method``), else from
    ``obj``'s own request (a transport error of requests or httpx carries ``.request``
    without a response), None when unknown; ``rate_limited`` as :func:`is_rate_limited`.
    Never raises: a strange object gives ``(None, method, False)``.
    """
    try:
        response = _response_of(obj)
        if response is None:
            return None, method or (_method_of(obj) if obj is not None else None), False
        status = _status_of(response)
        return status, method or _method_of(response), _limited(response, status)
    except Exception:  # noqa: BLE001 - a strange response object must not break the call
        return None, method, False
