"""A registry of the options of one kind (normalisation, aggregation, ...), in the style of scikit-learn's.

Adding an option is one decorated function: its keyword-only parameters (with defaults) are the option's
parameters, its docstring says what it does::

    @NORMALISATIONS.register("minmax", check=lower_below_upper)
    def minmax(x, *, lo=0.0, hi=100.0):
        "Rescale each column to [lo, hi]."
        ...

Users then write ``minmax`` (the defaults) or ``minmax:1,100`` in ``--set`` and in specs. Parameters are
numbers, except a single parameter whose default is a string: then the whole text after the colon is that
parameter, and it may be left out (``group_mean`` or ``group_mean:COLUMN``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from ..errors import UserError, check_choice

F = TypeVar("F", bound=Callable)


def format_params(params: tuple) -> str:
    """``1,100`` for (1.0, 100.0); text parameters as they are."""
    return ",".join(p if isinstance(p, str) else f"{p:g}" for p in params)


@dataclass(frozen=True, order=True)
class Option:
    """One methodological choice with its parameters, e.g. ``minmax:1,100``."""

    name: str
    params: tuple = ()

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + format_params(self.params)


@dataclass(frozen=True)
class Entry:
    """One registered option: its function, parameter names and defaults, and properties."""

    name: str
    func: Callable
    params: tuple[str, ...] = ()
    defaults: tuple = ()
    text: bool = False  # one optional free-text parameter instead of numbers
    check: Callable[..., str | None] | None = None  # the parameters' problem in words, or None
    props: Mapping[str, Any] = field(default_factory=dict)

    @property
    def doc(self) -> str:
        """The first line of the function's docstring."""
        return (inspect.getdoc(self.func) or "").split("\n", 1)[0]

    def __call__(self, *data: Any, params: tuple = ()) -> Any:
        """Apply the option to ``data`` with an Option's parameters (in declaration order)."""
        return self.func(*data, **dict(zip(self.params, params, strict=False)))


class Registry:
    """The options of one kind, in registration order (the order listed in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, check: Callable[..., str | None] | None = None,
                 **props: Any) -> Callable[[F], F]:
        """Decorator adding ``func`` as option ``name``. ``check(*params)`` returns what is wrong with
        parsed parameters (or None); ``props`` are properties other modules read (e.g. ``needs_positive``)."""

        def add(func: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if not name or any(c in name for c in ":/,= "):
                raise ValueError(f"{self.kind} name {name!r} must be non-empty without ':/,= ' or spaces")
            kw = [p for p in inspect.signature(func).parameters.values() if p.kind is p.KEYWORD_ONLY]
            if any(p.default is p.empty for p in kw):
                raise ValueError(f"{self.kind} {name!r}: every keyword-only parameter needs a default")
            text = any(isinstance(p.default, str) for p in kw)
            if text and len(kw) != 1:
                raise ValueError(f"{self.kind} {name!r}: a text parameter must be the only parameter")
            defaults = () if text else tuple(float(p.default) for p in kw)
            self._entries[name] = Entry(name, func, tuple(p.name for p in kw), defaults, text, check,
                                        MappingProxyType(dict(props)))
            return func

        return add

    def unregister(self, name: str) -> None:
        """Remove option ``name`` (e.g. one a test registered)."""
        del self._entries[name]

    def __getitem__(self, name: str) -> Entry:
        """The option ``name``; an unknown name is a UserError listing the options (with a did-you-mean)."""
        entry = self._entries.get(name)
        if entry is None:
            check_choice(name, self._entries, self.kind)
        return entry  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    def parse(self, text: str) -> Option:
        """``name[:p1,p2]`` -> Option, defaults filled in; a clear error if anything is wrong."""
        name, _, rest = str(text).strip().partition(":")
        entry = self[name]
        if entry.text:
            return Option(name, (rest,) if rest else ())
        if not rest:
            return Option(name, entry.defaults)
        try:
            params = tuple(float(p) for p in rest.split(","))
        except ValueError:
            raise UserError(f'{self.kind} "{text}": parameters must be numbers, e.g. minmax:1,100') from None
        if not all(math.isfinite(p) for p in params):
            raise UserError(f'{self.kind} "{text}": parameters must be finite numbers (not inf or nan), '
                            f"e.g. {name}:{format_params(entry.defaults)}")
        if len(params) != len(entry.defaults):
            raise UserError(f'{self.kind} "{text}" takes {len(entry.defaults)} parameter(s) '
                            f"({name}:{format_params(entry.defaults)}), not {len(params)}")
        problem = entry.check(*params) if entry.check else None
        if problem:
            raise UserError(f'{self.kind} "{text}": {problem}')
        return Option(name, params)
