"""Driver errors are translated at the database adapter's boundary."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from adapters.db.engine import translate_errors
from sbdh.errors import TransientDeliveryError


class DriverError(Exception):
    sqlstate: str | None = None


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [("53300", True), ("57P03", True), ("08006", True), ("42P01", False), (None, False)],
)
def test_driver_errors_that_mean_not_now_become_transient(
    sqlstate: str | None, transient: bool
) -> None:
    orig = DriverError("remaining connection slots are reserved")
    orig.sqlstate = sqlstate
    error = sa_exc.DBAPIError("SELECT 1", {}, orig)
    expected: type[Exception] = TransientDeliveryError if transient else sa_exc.DBAPIError
    with pytest.raises(expected), translate_errors():
        raise error
