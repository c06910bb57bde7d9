"""The exception tree: what callers can catch."""

from __future__ import annotations

import unittest

from mgit_monitoring import errors


class TestTree(unittest.TestCase):
    def test_every_error_is_a_monitoring_error(self):
        """Every public exception subclasses MonitoringError, so one except catches them all."""
        for name in errors.__all__:
            with self.subTest(name=name):
                self.assertTrue(issubclass(getattr(errors, name), errors.MonitoringError))

    def test_bad_values_are_value_errors(self):
        """Errors about a bad value are ValueErrors too, so `except ValueError` keeps working."""
        for cls in (errors.ConfigError, errors.MetricError, errors.DuplicateMetricError):
            with self.subTest(cls=cls.__name__):
                self.assertTrue(issubclass(cls, ValueError))

    def test_duplicate_is_a_metric_error(self):
        """A duplicate registration is a MetricError."""
        self.assertTrue(issubclass(errors.DuplicateMetricError, errors.MetricError))

    def test_message_is_kept(self):
        """The one-line message is the exception's text."""
        self.assertEqual(
            "MGIT_MONITORING_PORT='x': bad",
            str(errors.ConfigError("MGIT_MONITORING_PORT='x': bad")),
        )


if __name__ == "__main__":
    unittest.main()
