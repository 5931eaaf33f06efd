"""The one error model: every docpost exception is a DocpostError with a code in one spelling."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import docpost
from docpost.errors import ConfigurationError, DocpostError, Unavailable, describe, internal_code

CODE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+(-[a-z0-9]+)*)+")


def product_modules():
    for info in pkgutil.walk_packages(docpost.__path__, "docpost."):
        if ".migrations" in info.name:
            continue
        yield importlib.import_module(info.name)


def exception_classes():
    seen = {}
    for module in product_modules():
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                seen[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return seen


def test_every_product_exception_is_a_docpost_error_with_a_well_spelled_code():
    classes = exception_classes()
    assert len(classes) > 40  # the walk found the library's errors
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, DocpostError))
    assert outside == []
    badly_spelled = sorted(f"{name}: {cls.code}" for name, cls in classes.items() if not CODE.fullmatch(cls.code))
    assert badly_spelled == []


def test_infrastructure_and_configuration_are_marked():
    from docpost.channels.sf1601 import Permanent, Retryable
    from docpost.configfile import ConfigFileError
    from docpost.rendering import AddressDoesNotFit, LogoUnreadable
    from docpost.replies.errors import MailRefused, MailUnavailable
    from docpost.storage import ObjectNotFound, StorageUnavailable

    assert all(issubclass(c, Unavailable) for c in (StorageUnavailable, Retryable, MailUnavailable))
    assert not any(issubclass(c, Unavailable) for c in (ObjectNotFound, Permanent, MailRefused, AddressDoesNotFit))
    assert issubclass(ConfigFileError, ConfigurationError) and issubclass(LogoUnreadable, ConfigurationError)


def test_describe_never_carries_a_foreign_exception_text():
    secret = "0101701234 Jens Hansen, Vestergade 1"
    try:
        raise ValueError(secret)
    except ValueError as exc:
        text = describe(exc, trace=True)
    assert secret not in text and "builtins.ValueError [internal.ValueError]" in text
    assert "test_errors.py" in text  # where it happened is kept
    assert internal_code(KeyError("x")) == "internal.KeyError"
    assert describe(DocpostError("plain", code="area.kind")) == "[area.kind] plain"


@pytest.mark.parametrize("exc", [DocpostError("m", code="a.b"), Unavailable("m")])
def test_docpost_errors_survive_pickling(exc):
    import pickle

    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is type(exc) and again.code == exc.code and again.message == "m"
