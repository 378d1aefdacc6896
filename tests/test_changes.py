"""`driver.changes.changed_groups`: which files' rows differ between two versions of a table, exactly,
on small tables whose answers follow from the rows (a file's rows compared as a multiset)."""

from __future__ import annotations

import pyarrow as pa
from datafusion import SessionContext, col
from datafusion.functions.spark import xxhash64

from driver.changes import changed_groups
from tests.test_numbering import SEED_PROOF

SCHEMA = pa.schema([pa.field("file_id", pa.string()), pa.field("name", pa.string()), pa.field("score", pa.float64())])


def _changed(before: list[tuple], after: list[tuple]) -> list:
    session = SessionContext()
    for name, rows in (("old", before), ("new", after)):
        table = pa.Table.from_pylist([dict(zip(SCHEMA.names, row, strict=True)) for row in rows], schema=SCHEMA)
        session.register_record_batches(name, [table.to_batches() or [pa.RecordBatch.from_pylist([], schema=SCHEMA)]])
    found = changed_groups(session, "old", "new", SCHEMA.names, "file_id")
    assert not [name for name in session.catalog().schema().names() if name not in ("old", "new")]  # (cleaned up)
    return found


def test_a_file_whose_rows_are_the_same_multiset_is_unchanged():
    before = [("a", "x", 1.0), ("a", "y", 2.0), ("b", None, 0.5)]
    after = [("b", None, 0.5), ("a", "y", 2.0), ("a", "x", 1.0)]  # reordered only
    assert _changed(before, after) == []


def test_added_removed_and_changed_rows_name_their_files():
    before = [("a", "x", 1.0), ("b", "y", 1.0), ("c", "z", 1.0)]
    after = [("a", "x", 1.0), ("a", "w", 1.0),  # a: a row added
             ("c", "z", 1.5),  # c: a value changed (b: its only row removed)
             ("d", "v", 1.0)]  # d: new
    assert sorted(set(_changed(before, after))) == ["a", "b", "c", "d"]


def test_a_row_moved_to_another_file_changes_both():
    assert sorted(set(_changed([("a", "x", 1.0), ("b", "y", 1.0)], [("a", "y", 1.0), ("b", "x", 1.0)]))) == ["a", "b"]


def test_rows_held_twice_are_compared_by_their_counts():
    before = [("a", "x", 1.0), ("a", "x", 1.0),  # a: the same row twice, on both sides
              ("b", "x", 1.0), ("b", "x", 1.0),  # b: twice, then once
              ("c", "x", 1.0), ("c", "x", 1.0), ("c", "y", 1.0)]  # c: {x, x, y} -> {x, y, y}: same count, same set
    after = [("a", "x", 1.0), ("a", "x", 1.0), ("b", "x", 1.0), ("c", "x", 1.0), ("c", "y", 1.0), ("c", "y", 1.0)]
    assert sorted(set(_changed(before, after))) == ["b", "c"]


def test_two_rows_whose_hashes_collide_for_every_seed_are_told_apart():
    """The second step compares the paired rows themselves: a pair of names that xxHash64 cannot tell
    apart whatever the seed (so the rows' hashes agree) still makes a change."""
    first, second = SEED_PROOF
    session = SessionContext()
    table = pa.table({"file_id": ["a", "a"], "name": [first, second], "score": [1.0, 1.0]})
    session.register_record_batches("t", [table.to_batches()])
    parts = [part for name in table.column_names for part in (col(name), col(name).is_null())]
    assert len(set(session.table("t").select(xxhash64(*parts)).to_arrow_table().column(0).to_pylist())) == 1
    assert _changed([("a", first, 1.0), ("b", first, 1.0)], [("a", second, 1.0), ("b", first, 1.0)]) == ["a"]


def test_nulls_are_values_of_their_own():
    before = [("a", None, 1.0), ("b", "", 1.0), ("c", None, None)]
    after = [("a", "", 1.0),  # a: NULL -> empty text
             ("b", "", 1.0),  # b: unchanged
             ("c", None, None)]  # c: unchanged, NULLs in two columns
    assert _changed(before, after) == ["a"]


def test_floats_compare_as_sql_equality_does():
    """-0.0 = 0.0 in SQL, and Spark's xxHash64 hashes them alike: as documented, not a change."""
    assert _changed([("a", "x", 0.0), ("b", "x", 1.0)], [("a", "x", -0.0), ("b", "x", 2.0)]) == ["b"]


def test_rows_of_no_file_are_a_group_like_any_other():
    """The caller learns that rows crediting no file changed (and then cannot replace them by file)."""
    assert _changed([("a", "x", 1.0), (None, "y", 1.0)], [("a", "x", 1.0), (None, "y", 1.0)]) == []
    assert _changed([("a", "x", 1.0), (None, "y", 1.0)], [("a", "x", 1.0), (None, "z", 1.0)]) == [None]
    assert _changed([(None, "y", 1.0), (None, "y", 1.0)], [(None, "y", 1.0)]) == [None]  # (a hash held twice)


def test_columns_named_with_capitals_and_dots_are_compared():
    session = SessionContext()
    schema = pa.schema([pa.field("File", pa.string()), pa.field("a.b", pa.string())])
    for name, values in (("old", ["x", "y"]), ("new", ["x", "z"])):
        table = pa.table({"File": ["a", "b"], "a.b": values}, schema=schema)
        session.register_record_batches(name, [table.to_batches()])
    assert changed_groups(session, "old", "new", ["File", "a.b"], "File") == ["b"]
