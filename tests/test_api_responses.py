"""Reading provider API responses: status codes, request methods, rate limits."""

from __future__ import annotations

import unittest
from typing import Any, Dict

from mgit_monitoring.api_responses import describe_response, extract_status_code, is_rate_limited
from tests.support import need_module


class ApiResponsesTest(unittest.TestCase):
    def test_extract_status_code(self) -> None:
        """Duck-typed extraction accepts 100..599 integers only."""

        class Coded:
            def __init__(self, **attrs: Any) -> None:
                self.__dict__.update(attrs)

        class Getcode:
            def getcode(self) -> int:
                return 204

        self.assertEqual(extract_status_code(Coded(status_code=201)), 201)
        self.assertEqual(extract_status_code(Coded(status=503)), 503)
        self.assertEqual(extract_status_code(Coded(code=404)), 404)
        self.assertEqual(extract_status_code(Getcode()), 204)
        self.assertEqual(extract_status_code(Coded(response=Coded(status_code=418))), 418)
        self.assertIsNone(extract_status_code(Coded(status="active", code=True)))
        self.assertIsNone(extract_status_code(SystemExit(2)))
        self.assertIsNone(extract_status_code(Coded(response=None)))
        self.assertIsNone(extract_status_code(["a", "b"]))

    def test_is_rate_limited(self) -> None:
        """429 always; 403 only with a zero remaining quota or Retry-After."""

        class R:
            def __init__(self, status: int, headers: Dict[str, str]) -> None:
                self.status = status
                self.headers = headers

        self.assertTrue(is_rate_limited(R(429, {})))
        self.assertTrue(is_rate_limited(R(403, {"RateLimit-Remaining": "0"})))
        self.assertTrue(is_rate_limited(R(403, {"Retry-After": "60"})))
        self.assertFalse(is_rate_limited(R(403, {"X-RateLimit-Remaining": "12"})))
        self.assertFalse(is_rate_limited(R(403, {"X-RateLimit-Remaining": "soon"})))
        self.assertFalse(is_rate_limited(R(500, {})))
        self.assertFalse(is_rate_limited(object()))

    def test_real_requests_objects(self) -> None:
        """requests' falsy 4xx Response and its HTTPError give status, method and rate limit."""
        requests = need_module("requests")
        response = requests.Response()
        response.status_code = 403
        response.headers["X-RateLimit-Remaining"] = "0"
        response.request = requests.Request("GET", "https://api.github.com/x").prepare()
        self.assertFalse(response)  # requests: a 4xx response is falsy
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            error = exc
        self.assertEqual((extract_status_code(error), is_rate_limited(error)), (403, True))
        self.assertEqual(describe_response(error), (403, "GET", True))
        self.assertEqual(describe_response(response), (403, "GET", True))

    def test_describe_response(self) -> None:
        """(status, method, rate_limited) of a result or an error; plain data and objects
        whose attributes raise give (None, None, False)."""

        class Request:
            method = "PATCH"

        class Response:
            status_code = 429
            headers: Dict[str, str] = {}
            request = Request()

        class Error(Exception):
            response = Response()

        class Hostile:
            @property
            def status_code(self) -> int:
                raise RuntimeError("no")

        self.assertEqual((429, "PATCH", True), describe_response(Response()))
        self.assertEqual((429, "PATCH", True), describe_response(Error("x")))
        self.assertEqual((None, None, False), describe_response(["plain", "data"]))
        self.assertEqual((None, None, False), describe_response(Hostile()))
        self.assertEqual((None, None, False), describe_response(None))
        self.assertEqual((429, "GET", True), describe_response(Response(), "GET"))  # as given
        self.assertEqual((None, "GET", False), describe_response(Hostile(), "GET"))


if __name__ == "__main__":
    unittest.main()
