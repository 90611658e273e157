"""Settings dataclasses built from config mappings, refusing misspelt keys by name."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="Settings")


class Settings:
    """Mixin for frozen settings dataclasses: ``from_dict`` names every unknown key."""

    KIND: ClassVar[str] = "a"  # what the settings are for, used in the error message

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown {cls.KIND} setting(s): {', '.join(unknown)}")
        return cls(**d)
