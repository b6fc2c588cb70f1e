"""RFC 7396 as its text writes it (the reference our merge patch is checked against), and JSON objects
to try it on."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def reference_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396, section 2, transcribed."""
    if isinstance(patch, dict):
        if not isinstance(target, dict):
            target = {}
        target = dict(target)
        for name, value in patch.items():
            if value is None:
                if name in target:
                    del target[name]
            else:
                target[name] = reference_merge_patch(target.get(name), value)
        return target
    return patch


keys = st.sampled_from(["a", "b", "c", "d"])
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(keys, inner, max_size=3), max_leaves=8
)
json_objects = st.dictionaries(keys, values, max_size=4)
