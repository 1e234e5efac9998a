"""Group names: one Channels group per subscription class and user group, always valid.

A subscription class gets a short, stable namespace (:func:`class_namespace`) from its
module and qualified name; a group within it is readable when the user's name is short
and safe, hashed otherwise (:func:`group_name`), so that two different user strings
never share a Channels group and every name fits Channels' 100-character limit.
"""

from __future__ import annotations

import hashlib
import re

_SAFE_GROUP = re.compile(r"[A-Za-z0-9_\-.]{1,48}")


def class_namespace(module: str, qualname: str) -> str:
    """A short, stable, Channels-safe namespace for a subscription class."""
    readable = re.sub(r"[^A-Za-z0-9]", "", qualname.rsplit(".", 1)[-1])[:24] or "S"
    digest = hashlib.sha256(f"{module}.{qualname}".encode()).hexdigest()[:10]
    return f"cgt.{readable}-{digest}"


def group_name(namespace: str, group: str | None) -> str:
    """The Channels group of ``group`` within a class namespace; ``None`` is the class's
    default group, which every subscription of the class joins.

    Safe short names stay readable (``u_`` prefix); anything else -- long, non-ASCII,
    with other characters -- is hashed (``h_`` prefix), so two different user strings
    never share a Channels group and the result is always under Channels' 100-character
    limit.
    """
    if group is None:
        return f"{namespace}.all"
    if _SAFE_GROUP.fullmatch(group):
        return f"{namespace}.u_{group}"
    return (
        f"{namespace}.h_{hashlib.sha256(group.encode('utf-8', 'surrogatepass')).hexdigest()[:40]}"
    )
