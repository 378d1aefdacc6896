"""Dense integer ids of Arrow rows, for the fixpoint's in-memory propagation.

A row is found by a 64-bit hash of its columns (DataFusion's xxHash64, computed in Rust over whole
columns) in a sorted array, then compared with the row numbered under that hash, so an id is exact:
two rows get one id only when they are equal. Hashes that two different rows share are rare (a clash
among a million rows has a chance of about 3 in 10^8); their rows are numbered through a dictionary
of the rows themselves. Nothing here holds a Python object per row, which is what a dictionary of a million
strings cost (hundreds of MB on the standard library).

The comparison stays: xxHash64 has collisions that hold for every seed (inputs of 32 bytes or more,
which a package can spell in its own names), so a second seeded hash would let a crafted pair share
an id. Measured on the standard library's fixpoint (its 101 numbering calls replayed alone), a
second hash in place of the comparison saved ~0.4 s of ~2.5 s; a strong one (MD5, BLAKE3 of the
row) would cost more than the comparison.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionConfig, SessionContext, col
from datafusion.functions.spark import xxhash64

_BATCHES = itertools.count()


@functools.cache
def _hashing_session() -> SessionContext:
    """One partition: a projection over it keeps the rows in order."""
    return SessionContext(SessionConfig().with_target_partitions(1))


def row_hashes(rows: pa.Table) -> np.ndarray:
    """A 64-bit hash of each of ``rows``, in order: xxHash64 of each column's value and of whether
    it is null, so that a null in one column and a null in another hash differently."""
    if not rows.num_rows:
        return np.zeros(0, np.int64)
    session = _hashing_session()
    name = f"rows_{next(_BATCHES)}"
    columns = [f"c{index}" for index in range(rows.num_columns)]  # `col` would fold capitals, split dots
    session.register_record_batches(name, [rows.rename_columns(columns).to_batches()])
    try:
        parts = [part for column in columns for part in (col(column), col(column).is_null())]
        hashed = session.table(name).select(xxhash64(*parts).alias("hash")).to_arrow_table()
    finally:
        session.deregister_table(name)
    return hashed.column(0).to_numpy()


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted, by a sort: numpy 2.4's `np.unique` hashes integers, and is 30-60x
    slower than this on a million of them (measured here)."""
    ordered = np.sort(values)
    return ordered[_starts(ordered)]


def groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`np.unique(values, return_index=True, return_inverse=True)`, by a stable sort (~25% faster):
    the distinct values, sorted, where each first occurs, and which of them each value is."""
    order = np.argsort(values, kind="stable")
    starts = _starts(values[order])
    inverse = np.empty(len(values), np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return values[order][starts], order[starts], inverse


def _starts(ordered: np.ndarray) -> np.ndarray:
    """Whether each value of the sorted ``ordered`` differs from the one before it."""
    return np.concatenate((np.ones(min(len(ordered), 1), bool), ordered[1:] != ordered[:-1]))


def member(ordered: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in the sorted array ``ordered``."""
    return _places(ordered, keys)[1]


def _places(ordered: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``keys`` is (or would go, within bounds) in the sorted ``ordered``, and whether
    it is there."""
    if not len(ordered):
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    places = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
    return places, ordered[places] == keys


def inserted(ordered: tuple[np.ndarray, ...], rows: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Columns sorted by the first, with ``rows`` (columns alike) inserted in their places."""
    order = np.argsort(rows[0], kind="stable")
    place = np.searchsorted(ordered[0], rows[0][order], side="right")
    return tuple(np.insert(column, place, new[order]) for column, new in zip(ordered, rows, strict=True))


def _equal(left: pa.Table, right: pa.Table) -> np.ndarray:
    """Whether each row of ``left`` equals the row of ``right`` in its place (a null equals a null)."""
    same = np.ones(left.num_rows, bool)
    for one, other in zip(left.columns, right.columns, strict=True):
        nulls = pc.and_(pc.is_null(one), pc.is_null(other))
        same &= pc.fill_null(pc.or_kleene(pc.equal(one, other), nulls), False).to_numpy(zero_copy_only=False)
    return same


class Rows:
    """Rows by dense id, numbered in order of first sight (within a call, the rows whose hash
    clashes come last): `add` numbers the rows of a table and keeps each new one, `find` numbers
    nothing (though a clash it meets is remembered), and `take` turns ids back into rows. No column
    may be a float: a NaN is not equal to itself, so no row holding one could be found again."""

    def __init__(self, schema: pa.Schema) -> None:
        floats = [field.name for field in schema if pa.types.is_floating(field.type)]
        if floats:
            raise TypeError(f"rows with float columns cannot be numbered (NaN is not equal to itself): {floats}")
        self.schema = schema
        self.chunks: list[pa.Table] = [schema.empty_table()]
        self.count = 0
        self.hashes = np.zeros(0, np.int64)  # the hash of each row numbered by hash, sorted
        self.hash_ids = np.zeros(0, np.int64)  # the id of each of those rows
        self.clashing = np.zeros(0, np.int64)  # hashes that different rows have, sorted
        self.clashes: dict[tuple[object, ...], int] = {}  # every row with one of those hashes -> its id

    def __len__(self) -> int:
        return self.count

    def add(self, rows: pa.Table) -> np.ndarray:
        """The ids of ``rows``, numbering the new ones."""
        return self._number(self._conformed(rows), add=True)

    def find(self, rows: pa.Table) -> np.ndarray:
        """The ids of ``rows``, -1 for a row never added."""
        return self._number(self._conformed(rows), add=False)

    def _conformed(self, rows: pa.Table) -> pa.Table:
        return rows.rename_columns(self.schema.names).cast(self.schema)

    def take(self, ids: np.ndarray) -> pa.Table:
        if len(self.chunks) > 1:
            self.chunks = [pa.concat_tables(self.chunks).combine_chunks()]
        return self.chunks[0].take(pa.array(ids, pa.int64()))

    def _number(self, rows: pa.Table, add: bool) -> np.ndarray:
        hashes = row_hashes(rows)
        ids = np.full(rows.num_rows, -1, np.int64)
        while True:
            slow = member(self.clashing, hashes)
            fast = np.flatnonzero(~slow)
            hashed = rows if len(fast) == rows.num_rows else rows.take(pa.array(fast))
            unique, first, inverse = groups(hashes[fast])
            unique_ids = self._ids_by_hash(unique)
            # exact: each row equals the first of its hash in ``rows``, and that one the row numbered
            # under the hash; a hash where either fails is a clash
            differ = ~_equal(hashed, hashed.take(pa.array(first[inverse])))
            known = np.flatnonzero(unique_ids >= 0)
            differ_known = ~_equal(hashed.take(pa.array(first[known])), self.take(unique_ids[known]))
            clashes = distinct(np.concatenate([hashes[fast][differ], unique[known][differ_known]]))
            if not len(clashes):
                break
            self._clash(clashes)
        if add:
            new = np.flatnonzero(unique_ids < 0)
            new = new[np.argsort(first[new], kind="stable")]  # in order of first sight
            unique_ids[new] = np.arange(self.count, self.count + len(new))
            self._append(hashed.take(pa.array(first[new])), unique[new])
        ids[fast] = unique_ids[inverse]
        if len(fast) < rows.num_rows:
            ids[slow] = self._number_by_row(rows.filter(pa.array(slow)), add)
        return ids

    def _ids_by_hash(self, hashes: np.ndarray) -> np.ndarray:
        """The id of the row numbered under each of ``hashes``, -1 if none."""
        places, found = _places(self.hashes, hashes)
        return np.where(found, self.hash_ids[places] if len(self.hash_ids) else -1, -1)

    def _append(self, rows: pa.Table, hashes: np.ndarray | None = None) -> None:
        """Keep ``rows`` as the next ids (and find them by ``hashes``, when given)."""
        if hashes is not None:
            ids = np.arange(self.count, self.count + len(hashes))
            self.hashes, self.hash_ids = inserted((self.hashes, self.hash_ids), (hashes, ids))
        self.chunks.append(rows)
        self.count += rows.num_rows

    def _clash(self, hashes: np.ndarray) -> None:
        """Number the rows of ``hashes`` (sorted) by row from now on, the one numbered already too."""
        self.clashing = distinct(np.concatenate([self.clashing, hashes]))
        known = self._ids_by_hash(hashes)
        known = known[known >= 0]
        self.clashes.update(zip(_tuples(self.take(known)), known.tolist(), strict=True))

    def _number_by_row(self, rows: pa.Table, add: bool) -> np.ndarray:
        ids = []
        for row in _tuples(rows):
            number = self.clashes.get(row, -1)
            if number < 0 and add:
                number = self.clashes[row] = self.count
                self._append(pa.Table.from_pylist([dict(zip(self.schema.names, row, strict=True))], self.schema))
            ids.append(number)
        return np.array(ids, np.int64)


def _tuples(rows: pa.Table) -> list[tuple[object, ...]]:
    return list(zip(*(column.to_pylist() for column in rows.columns), strict=True))
