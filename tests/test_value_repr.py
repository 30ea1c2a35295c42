"""The bounded repr formatter of ``dump --locals`` (flamekit.analysis.value_repr).

Properties over generated values: within the bounds a repr is Python's own; a value cut
as the object reader cuts it (flamekit.record.objects.Partial, at the same bounds)
renders exactly as the whole value; every repr fits its width; strings, containers and
nesting are cut where the bounds say, with the cut shown.
"""

from __future__ import annotations

import ast
import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flamekit.analysis.value_repr import CUT, UNREADABLE, Bounds, short_repr
from flamekit.record.objects import Opaque, Partial, TypeRef

bounds_st = st.builds(
    Bounds,
    depth=st.integers(0, 4),
    items=st.integers(1, 6),
    chars=st.integers(1, 12),
    width=st.integers(1, 200),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
hashable = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.binary(max_size=4))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=8),
        st.tuples(inner, inner),
        st.lists(inner, max_size=1).map(tuple),
        st.dictionaries(hashable, inner, max_size=8),
        st.frozensets(hashable, max_size=8),
        st.sets(st.integers(), max_size=8),
    ),
    max_leaves=30,
)


def as_read(value: Any, b: Bounds, depth: int) -> Any:
    """``value`` as the object reader gives it when limited to ``b`` (see graph.py):
    str and bytes cut to ``chars``, containers to ``items``, none opened below depth."""
    if isinstance(value, (str, bytes)):
        if len(value) > b.chars:
            return Partial(type(value), value[: b.chars], len(value))
        return value
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        kind = type(value)
        if depth <= 0:
            return Partial(kind, kind() if kind in (list, tuple) else (), len(value))
        items = list(value.items()) if isinstance(value, dict) else list(value)
        head = items[: b.items]
        if kind is dict:
            pairs = tuple((as_read(k, b, depth - 1), as_read(v, b, depth - 1)) for k, v in head)
            whole = len(head) == len(value)
            try:
                return dict(pairs) if whole else Partial(dict, pairs, len(value))
            except TypeError:  # a key cut into a Partial (unhashable)
                return Partial(dict, pairs, len(value))
        read = [as_read(v, b, depth - 1) for v in head]
        if kind in (set, frozenset):
            try:
                return (
                    kind(read)
                    if len(read) == len(value)
                    else Partial(kind, tuple(read), len(value))
                )
            except TypeError:
                return Partial(kind, tuple(read), len(value))
        return kind(read) if len(read) == len(value) else Partial(kind, kind(read), len(value))
    return value


def within(value: Any, b: Bounds, depth: int) -> bool:
    """Whether no bound cuts ``value`` (and it holds no set, whose order is the hash's)."""
    if isinstance(value, (str, bytes)):
        return len(value) <= b.chars
    if isinstance(value, int) and not isinstance(value, bool):
        return len(str(value)) <= b.chars
    if isinstance(value, (set, frozenset)):
        return False
    if isinstance(value, (list, tuple, dict)):
        if depth <= 0 and len(value) or len(value) > b.items:
            return False
        items = [x for kv in value.items() for x in kv] if isinstance(value, dict) else value
        return all(within(v, b, depth - 1) for v in items)
    return True


@given(values, bounds_st)
def test_fits_its_width(value: Any, b: Bounds) -> None:
    assert len(short_repr(value, b)) <= max(b.width, len(CUT))


@given(values, bounds_st)
def test_read_cut_renders_as_whole(value: Any, b: Bounds) -> None:
    assert short_repr(as_read(value, b, b.depth), b) == short_repr(value, b)


@given(values, bounds_st)
def test_within_bounds_is_pythons_repr(value: Any, b: Bounds) -> None:
    wide = Bounds(b.depth, b.items, b.chars, width=10**6)
    if within(value, wide, wide.depth):
        assert short_repr(value, wide) == repr(value)
        assert CUT not in short_repr(value, wide) or CUT in repr(value)


@given(st.text(min_size=1, max_size=40), st.integers(1, 20))
def test_long_str_is_cut_and_marked(text: str, chars: int) -> None:
    b = Bounds(chars=chars)
    out = short_repr(text, b)
    if len(text) > chars:
        assert out.endswith(CUT)
        assert ast.literal_eval(out[: -len(CUT)]) == text[:chars]
    else:
        assert out == repr(text)


@given(st.lists(st.integers(0, 9), min_size=0, max_size=30), st.integers(1, 10))
def test_items_cut_and_marked(items: list[int], n: int) -> None:
    out = short_repr(items, Bounds(items=n))
    if len(items) > n:
        assert out == "[" + ", ".join(map(str, items[:n])) + ", " + CUT + "]"
    else:
        assert out == repr(items)


@given(st.integers(0, 12), st.integers(0, 5))
def test_nesting_opens_depth_levels(levels: int, depth: int) -> None:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    out = short_repr(value, Bounds(depth=depth, width=10**6))
    if levels <= depth:
        assert out == repr(value)
    else:  # depth levels opened, the next one shown closed with the cut inside
        assert out == "[" * depth + "[" + CUT + "]" + "]" * depth


def test_self_reference_ends() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert short_repr(loop, Bounds(depth=3)) == "[1, [1, [1, […]]]]"
    both: dict[str, Any] = {}
    both["me"] = both
    assert short_repr(both, Bounds(depth=1)) == "{'me': {…}}"


def test_reader_shapes() -> None:
    assert short_repr(Opaque(0x7F00, "Foo")) == "<Foo object at 0x7f00>"
    assert short_repr(Opaque(0x7F00, None)) == UNREADABLE
    assert short_repr(TypeRef(0x10, "Foo")) == "<class 'Foo'>"
    assert short_repr(Partial(str, "ab", 10**7), Bounds(chars=2)) == "'ab'" + CUT
    assert short_repr(Partial(list, [], 3), Bounds(depth=0)) == "[" + CUT + "]"
    assert short_repr(Partial(set, (), 0)) == "set()"
    assert short_repr(Partial(frozenset, (2, 1), 3)) == "frozenset({1, 2, " + CUT + "})"


def test_huge_ints() -> None:
    for big in (7**6000, -(10**5000) - 1):  # past CPython's int-to-str limit (3.11+)
        out = short_repr(big, Bounds(chars=20))
        with_limit = getattr(sys, "set_int_max_str_digits", None)
        if with_limit is not None:
            old = sys.get_int_max_str_digits()
            with_limit(0)
            try:
                whole = str(big)
            finally:
                with_limit(old)
        else:
            whole = str(big)
        assert out == whole[:20] + CUT
    assert short_repr(-(10**199), Bounds(chars=300)) == str(-(10**199))
