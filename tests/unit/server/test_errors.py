"""The one error table (``server.errors``): every domain error any layer defines is mapped
explicitly, HTTP statuses and WebSocket close codes come from the same row, and a subclass listed
after its base could never be reached (the walk takes the first match)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import hls
import models
import server
from models.errors import FacestreamError
from server import errors
from server.errors import STATUS_TABLE, close_code_for, retry_after_for, status_for

SKIP_PACKAGES = ("models.imtalker",)  # torch; its errors are models.errors classes anyway


def _all_domain_errors() -> set[type[FacestreamError]]:
    for package in (models, hls, server):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.startswith(SKIP_PACKAGES):
                importlib.import_module(info.name)
    found: set[type[FacestreamError]] = set()
    todo = [FacestreamError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.split(".")[0] in ("models", "hls", "server"):
                found.add(sub)
            todo.append(sub)
    return found


def _instance(cls: type[FacestreamError]) -> FacestreamError:
    """An instance without knowing each constructor's extra arguments."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, "x")
    return exc


def test_every_domain_error_has_a_row_of_its_own_or_of_a_domain_ancestor() -> None:
    listed = {cls for cls, _ in STATUS_TABLE}
    unmapped = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _all_domain_errors()
        if not any(issubclass(cls, row) and row is not FacestreamError for row in listed)
    ]
    assert not unmapped, f"add these to server.errors._STATUS: {sorted(unmapped)}"


def test_no_row_is_shadowed_by_an_earlier_base_class() -> None:
    for i, (cls, _) in enumerate(STATUS_TABLE):
        for earlier, _ in STATUS_TABLE[:i]:
            assert not issubclass(cls, earlier), f"{cls.__name__} is unreachable behind {earlier.__name__}"


@pytest.mark.parametrize(("cls", "status"), STATUS_TABLE, ids=lambda v: getattr(v, "__name__", str(v)))
def test_http_status_and_ws_close_code_come_from_the_same_row(cls: type, status: int) -> None:
    exc = _instance(cls)
    assert status_for(exc) == status
    assert close_code_for(exc) == 4000 + status
    assert 400 <= status < 600


def test_retry_after_is_whole_seconds_and_only_for_retry_errors() -> None:
    assert retry_after_for(errors.CapacityError("full", retry_after=0.2)) == 1
    assert retry_after_for(errors.SpeechQueueFullError("full", retry_after=2.5)) == 3
    assert retry_after_for(errors.SessionNotFoundError("gone")) is None


def test_unknown_exceptions_are_500_and_lookup_errors_404() -> None:
    assert status_for(RuntimeError("bug")) == 500
    assert status_for(KeyError("k")) == 404
    assert inspect.isfunction(status_for)
