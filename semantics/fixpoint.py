"""Semi-naive fixpoint evaluation of a rule program on DataFusion.

A `FixpointProgram` declares recursive relations, the SQL that seeds them, and rules: each rule is a
SELECT deriving rows of one relation from the rows of another *new since the rule last ran*
(`delta_<name>`) joined with everything known so far (`<name>`) and with the program's inputs. A rule
over two recursive relations is written twice, once per delta, which is what semi-naive evaluation
needs. Rules run in stages: each stage's new rows are known (and are the next stages' deltas) before
the next stage runs, so one round can carry a fact through several rules in a row (propagate values,
then find what a call site calls, then bind its arguments). The rules of a stage that derive one
relation from the same deltas run as one query (a UNION ALL of their SELECTs): on a small code base
a query's planning is most of what it costs. Evaluation stops when a round adds nothing.

Relations live in memory as Arrow tables registered in the session; `prepare` statements run once
first (e.g. splitting a fact table by kind) and are registered the same way. A relation may cap how
many rows one key holds (`Cap`): a guard against blow-up, applied in a total order so a capped result
is deterministic, and counted; the keys at their cap are a table the rules can read. A rule may
declare a `Probe`: the prepared keys its new rows must meet for it to derive anything; when none
does, it is not run.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import DataFrame, SessionContext, col

from semantics import c3
from semantics.entities import Column
from semantics.numbering import Rows, distinct, groups, inserted, member, row_hashes
from semantics.types import ARROW_TYPES

PARTITIONS = os.cpu_count() or 1


class Relation(msgspec.Struct, frozen=True):
    name: str
    columns: tuple[Column, ...]

    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(column.name, ARROW_TYPES[column.type]) for column in self.columns])

    def conformed(self, frame: DataFrame) -> DataFrame:
        """``frame``'s rows cast onto the relation's columns (plain types, whatever the scan gave)."""
        return frame.select(*(col(c.name).cast(ARROW_TYPES[c.type]).alias(c.name) for c in self.columns))


class Closure(msgspec.Struct, frozen=True):
    """Says that a rule's SQL is a propagation the engine evaluates in memory, on integer ids: the
    target's rows new since the rule last ran, and the known rows at the source of each new edge
    moved to its destination, then everything those reach along the edges, to a fixpoint within the
    rule; an edge into a full key of the target's cap is not followed. A row's first column is its
    node, the others its value, which moves unchanged except that a value whose `slot` is NULL and
    whose `kind` is one of `kinds` takes the `label` of an edge it crosses (when that is not NULL).
    The edges relation's first two columns are the source and destination nodes.

    Only rows not known yet are returned, and a known row is not followed: what it reaches was
    derived when it became known (the engine adds every derived row but those its cap drops, whose
    key is then full for good), and what an edge added since brings is derived from the edge's
    source. So the rows the SQL would add are the same; the SQL derives the known ones again too.
    (A recursive query re-hashes every known edge at each step of its recursion.)"""

    edges: str
    label: str
    slot: str
    kind: str
    kinds: tuple[str, ...]

    def text(self) -> str:
        return (f"-- evaluated in memory: the closure along {self.edges}; a value with NULL {self.slot} and "
                f"{self.kind} in {self.kinds} takes the edge's {self.label}")


class Probe(msgspec.Struct, frozen=True):
    """Says that every row a rule derives comes from a new row of `relation` (`delta_<relation>`)
    whose `column` starts with `prefix` (when one is given) and is joined on with a row of one of
    `keys` (prepared tables and their columns, fixed before the rounds; when any are given). When no
    new row's value qualifies, the rule derives nothing, so it is not run: in the last rounds a few new
    rows meet none of the tables most rules join, and planning and scanning for nothing cost what the
    rounds cost. A false match (a hash collision) only runs the rule."""

    relation: str
    column: str
    keys: tuple[tuple[str, str], ...] = ()  # (prepared table, its column)
    prefix: str = ""

    def condition(self) -> str:
        parts = [f"starts with '{self.prefix}'"] if self.prefix else []
        if self.keys:
            parts.append("is a key of " + " or ".join(f"{table}.{column}" for table, column in self.keys))
        return f"a new {self.relation}.{self.column} " + " and ".join(parts)


class Rule(msgspec.Struct, frozen=True):
    name: str
    target: str  # the relation it derives rows of
    sql: str
    stage: int = 0  # rules run by stage within a round, lowest first; each stage sees the earlier ones' rows
    closure: Closure | None = None  # the engine evaluates the SQL (a propagation) in memory
    probe: Probe | None = None  # what the new rows must meet for the rule to derive anything

    def __post_init__(self) -> None:
        if self.probe is not None and not reads_table(self.sql, f"delta_{self.probe.relation}"):
            raise ValueError(f"rule {self.name}: its probe names delta_{self.probe.relation}, which it does not read")


class Cap(msgspec.Struct, frozen=True):
    """No value of `key` holds more than `limit` rows of `relation`. The keys that hold `limit` rows
    are registered as `full_<relation>` (one column, `key`), so a rule can stop feeding them."""

    relation: str
    key: str
    limit: int


class Prepared(msgspec.Struct, frozen=True):
    name: str
    sql: str


class FixpointProgram(msgspec.Struct, frozen=True):
    relations: tuple[Relation, ...]
    prepare: tuple[Prepared, ...]
    seeds: tuple[Rule, ...]  # rows known before the first round (no delta to read)
    rules: tuple[Rule, ...]
    result: str  # the SELECT over the final relations that is the view's result
    caps: tuple[Cap, ...] = ()
    max_rounds: int = 200
    stage_names: tuple[str, ...] = ()  # what each stage does, in stage order (default: "stage N")
    # names an evaluation of the whole program in memory (`IN_MEMORY_PROGRAMS`) that gives the rows its
    # rules give; used unless the rules are asked for (`run_fixpoint(..., in_memory=False)`)
    evaluator: str | None = None

    def __post_init__(self) -> None:
        prepared = {statement.name for statement in self.prepare}
        columns = {relation.name: {column.name for column in relation.columns} for relation in self.relations}
        for rule in self.rules:
            if rule.probe is not None:
                _check_probe(rule, rule.probe, prepared, columns)

    def stages(self) -> list[list[Rule]]:
        return [[rule for rule in self.rules if rule.stage == stage]
                for stage in sorted({rule.stage for rule in self.rules})]

    def names_of_stages(self) -> tuple[str, ...]:
        return tuple(self.stage_names[index] if index < len(self.stage_names) else f"stage {rules[0].stage}"
                     for index, rules in enumerate(self.stages()))

    def reading(self, *, seeds: bool) -> str:
        """The SQL still to run once the prepared tables are computed (with the seeds, or once they
        have run) and the tables the probes read: what a prepared table must be named in to be kept."""
        probed = (table for rule in self.rules if rule.probe for table, _ in rule.probe.keys)
        rules = (*self.seeds, *self.rules) if seeds else self.rules
        return " ".join((*(rule.sql for rule in rules), *probed, self.result))

    def text(self) -> str:
        """The whole program as one text: what its fingerprint and `cpgflow plan` show."""
        parts = [f"-- prepare {p.name}\n{p.sql}" for p in self.prepare]
        parts += [f"-- seed {r.name} -> {r.target}\n{r.sql}" for r in self.seeds]
        parts += [f"-- rule {r.name} -> {r.target}, stage {r.stage}\n{r.sql}"
                  + (f"\n{r.closure.text()}" if r.closure else "")
                  + (f"\n-- runs when {r.probe.condition()}" if r.probe else "")
                  for r in self.rules]
        parts += [f"-- cap {c.relation}.{c.key} <= {c.limit}" for c in self.caps]
        if self.evaluator:
            parts.append(f"-- evaluated in memory by {self.evaluator}: the rules above define its rows")
        parts.append(f"-- result, after at most {self.max_rounds} rounds\n{self.result}")
        return "\n\n".join(parts)


def _check_probe(rule: Rule, probe: Probe, prepared: set[str], columns: dict[str, set[str]]) -> None:
    """A probe gates its rule on one delta, so the rule may read no other (its rows would be lost
    with the skipped round's), and it names a column of a relation and prepared keys."""
    if probe.column not in columns.get(probe.relation, ()):
        raise ValueError(f"rule {rule.name}: its probe names {probe.relation}.{probe.column}, no relation's column")
    others = [name for name in columns if name != probe.relation and reads_table(rule.sql, f"delta_{name}")]
    if others:
        raise ValueError(f"rule {rule.name}: it reads delta_{others[0]} besides its probe's delta_{probe.relation}")
    if not probe.keys and not probe.prefix:
        raise ValueError(f"rule {rule.name}: its probe names neither keys nor a prefix")
    missing = [table for table, _ in probe.keys if table not in prepared]
    if missing:
        raise ValueError(f"rule {rule.name}: its probe reads {', '.join(missing)}, no prepared table")


class FixpointRun(msgspec.Struct, frozen=True):
    """How the evaluation went: rows each round added (seeds first), the stages' names and the rows
    each stage of each round after the seeds added, and rows dropped by caps. A program evaluated in
    memory (`FixpointProgram.evaluator`) has one round, its rows, and one stage name saying so."""

    rounds: tuple[int, ...]
    stage_names: tuple[str, ...]
    stages: tuple[tuple[int, ...], ...]
    capped: int
    converged: bool
    overlapped: int = 0  # times two or more of its queries ran at once (`run_fixpoint`'s ``threads``)


def register_in_memory(session: SessionContext, name: str, table: pa.Table) -> None:
    """``table`` as an in-memory table spread over the session's partitions (never zero of them: a
    plan over no partition fails DataFusion's sanity check)."""
    if session.table_exist(name):
        session.deregister_table(name)
    batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    partitions = min(len(batches), PARTITIONS)
    session.register_record_batches(name, [batches[index::partitions] for index in range(partitions)])


def _collect(session: SessionContext, sql: str) -> pa.Table:
    return session.sql(sql).to_arrow_table()


class _State:
    """Every relation's known rows, registered in the session under its name; each rule's delta of a
    relation is the slice of it added since the rule last ran."""

    def __init__(self, session: SessionContext, program: FixpointProgram, in_memory: bool = True,
                 threads: int = 1) -> None:
        self.session = session
        self.threads = threads  # queries of one stage run at once, at most this many (see `_derive_all`)
        self.overlapped = 0  # times they did
        self.in_memory = in_memory  # evaluate `Closure` rules in memory (else by their SQL)
        self.relations = {relation.name: relation for relation in program.relations}
        self.caps = {cap.relation: cap for cap in program.caps}
        self.known = {name: relation.schema().empty_table() for name, relation in self.relations.items()}
        self.seen: dict[tuple[str, str], int] = {}  # (rule, relation) -> rows of it the rule has read
        self.capped = 0
        self.counting = threading.Lock()  # `novel` of several relations runs at once
        self.propagations: dict[str, _Propagation] = {}  # by rule name
        self.probe_keys: dict[tuple[tuple[str, str], ...], np.ndarray] = {}  # hashes of a probe's keys, sorted
        # hashes of a delta's values a probe looked up, by (relation, column, prefix, first row, rows): the
        # rules of a stage probe the same delta, and hashing it is a query
        self.delta_hashes: dict[tuple[str, str, str, int, int], np.ndarray] = {}
        self.full = {cap.relation: pa.table({cap.key: pa.array([], pa.string())}) for cap in program.caps}
        for name, table in self.known.items():
            register_in_memory(session, name, table)
        for name, table in self.full.items():
            register_in_memory(session, f"full_{name}", table)

    def publish(self, deltas: dict[str, pa.Table]) -> int:
        """Add ``deltas`` to what is known; returns rows added."""
        added = 0
        self.delta_hashes.clear()
        for name, delta in deltas.items():
            if delta.num_rows:
                self.known[name] = pa.concat_tables([self.known[name], delta])
                register_in_memory(self.session, name, self.known[name])
                added += delta.num_rows
        return added

    def forget(self, program: FixpointProgram, kept: str) -> None:
        """Drop the relations, deltas and prepared tables ``kept`` (the SQL still to run) does not read."""
        for name in [name for name in self.relations if not reads_table(kept, name)]:
            self.known.pop(name, None)
        _deregister_unread(self.session, [*self.relations, *(f"delta_{name}" for name in self.relations),
                                          *(prepared.name for prepared in program.prepare)], kept)

    def release(self, program: FixpointProgram) -> None:
        """Drop every table the evaluation registered: a large program holds gigabytes."""
        names = [*self.relations, *(f"delta_{name}" for name in self.relations),
                 *(f"full_{name}" for name in self.full),
                 *(prepared.name for prepared in program.prepare), *(_candidates(name) for name in self.relations)]
        for name in names:
            if self.session.table_exist(name):
                self.session.deregister_table(name)
        self.known.clear()

    def pending(self, rule: Rule) -> dict[str, pa.Table] | None:
        """The rows of each relation ``rule`` reads that are new since it last ran (its deltas), or
        None when it cannot derive anything from them: every one is empty, or its probe finds no
        qualifying row."""
        deltas, starts = {}, {}
        for name, known in self.known.items():
            if reads_table(rule.sql, f"delta_{name}"):
                starts[name] = self.seen.get((rule.name, name), 0)
                self.seen[(rule.name, name)] = known.num_rows
                deltas[name] = known.slice(starts[name])
        if deltas and not any(delta.num_rows for delta in deltas.values()):
            return None
        probe = rule.probe
        if probe is not None and self._misses(probe, deltas[probe.relation], starts[probe.relation]):
            return None
        return deltas

    def derive(self, target: str, rules: list[Rule], deltas: dict[str, pa.Table]) -> pa.Table:
        """The rows ``rules`` (of one stage, all deriving ``target`` from the same ``deltas``) derive,
        in one query: a query's planning is most of what a small one costs."""
        for name, delta in deltas.items():
            register_in_memory(self.session, f"delta_{name}", delta)
        return self.query(target, rules)

    def query(self, target: str, rules: list[Rule]) -> pa.Table:
        """`derive` over the deltas registered already (safe to run beside another query)."""
        relation = self.relations[target]
        # each rule's columns by name, cast to the relation's types before the union (which would
        # otherwise reconcile the rules' types first: an int64 with a float64 meets as a float64)
        columns = ", ".join(f'"{column.name}"' if column.type == "string" else
                            f'CAST("{column.name}" AS {SQL_TYPES[column.type]}) AS "{column.name}"'
                            for column in relation.columns)
        sql = " UNION ALL ".join(f"SELECT {columns} FROM (\n{rule.sql.strip().rstrip(';')}\n)" for rule in rules)
        return relation.conformed(self.session.sql(sql)).to_arrow_table().cast(relation.schema())

    def _misses(self, probe: Probe, delta: pa.Table, start: int) -> bool:
        """Whether no row of ``delta`` (rows from ``start`` on) qualifies for ``probe``; keys are not
        looked up for a delta past PROBE_MAX_ROWS (its rule all but surely derives rows, and hashing
        it would cost more)."""
        values = delta.column(probe.column)
        if probe.prefix:
            values = values.filter(pc.starts_with(values.cast(pa.string()), probe.prefix))
        if not len(values) or not probe.keys:
            return not len(values)
        if len(values) > PROBE_MAX_ROWS:
            return False
        keys = self.probe_keys.get(probe.keys)
        if keys is None:
            hashed = [_hashes(self.session.sql(f"SELECT DISTINCT {column} FROM {table}").to_arrow_table().column(0))
                      for table, column in probe.keys]
            keys = self.probe_keys[probe.keys] = distinct(np.concatenate(hashed))
        cached = (probe.relation, probe.column, probe.prefix, start, len(values))
        if (hashes := self.delta_hashes.get(cached)) is None:
            hashes = self.delta_hashes[cached] = _hashes(values)
        return not member(keys, hashes).any()

    def propagate(self, rule: Rule, closure: Closure, sole: bool = False) -> pa.Table:
        """``rule``'s rows, from the target's rows and edges new since it last ran (see `Closure`).
        ``sole``: no other rule of its stage derives its target, so its rows, new already, are also
        capped here (then they need no `novel`, and they stay numbered)."""
        target = self.relations[rule.target]
        starts = {name: self.seen.get((rule.name, name), 0) for name in (rule.target, closure.edges)}
        for name in starts:
            self.seen[(rule.name, name)] = self.known[name].num_rows
        if all(self.known[name].num_rows == start for name, start in starts.items()):
            return target.schema().empty_table()
        propagation = self.propagations.setdefault(rule.name, _Propagation(closure, target))
        full = self.full[rule.target].column(0) if rule.target in self.full else pa.chunked_array([], pa.string())
        keys = propagation.run(self.known[rule.target], self.known[closure.edges], full)
        if not sole:
            return propagation.rows(keys)
        cap = self.caps.get(rule.target)
        if cap is not None:
            keys, dropped, fills = propagation.capped(keys, cap.limit)
            self.capped += dropped
            self._fill(rule.target, cap, propagation.nodes.take(fills).column(0))
        propagation.published(keys)
        return propagation.rows(keys)

    def capped_by_node(self, name: str) -> bool:
        """Whether relation ``name`` has no cap, or one on its first column (what `_Propagation` caps)."""
        cap = self.caps.get(name)
        return cap is None or cap.key == self.relations[name].columns[0].name

    def novel(self, name: str, candidates: list[pa.Table]) -> pa.Table:
        """The candidate rows of relation ``name`` not known yet, distinct, within its cap (the
        candidates are dropped from the session once compared: each relation has a table of them)."""
        if not candidates:
            return self.relations[name].schema().empty_table()
        register_in_memory(self.session, _candidates(name), pa.concat_tables(candidates))
        try:
            return self._novel(name, _candidates(name))
        finally:
            self.session.deregister_table(_candidates(name))

    def _novel(self, name: str, candidates_table: str) -> pa.Table:
        relation = self.relations[name]
        columns = ", ".join(column.name for column in relation.columns)
        cap = self.caps.get(name)
        known = f"SELECT {columns} FROM {name}"
        if cap is not None:  # only the keys at stake: a probe of one column, not of every column
            known += f" WHERE {cap.key} IN (SELECT {cap.key} FROM {candidates_table})"
        sql = f"SELECT DISTINCT {columns} FROM {candidates_table} EXCEPT {known}"
        if cap is None:
            return _collect(self.session, sql)
        order = ", ".join(f"n.{column.name}" for column in relation.columns)
        capped_sql = f"""WITH new AS ({sql}),
counts AS (SELECT {cap.key}, count(*) AS held FROM {name} WHERE {cap.key} IN (SELECT {cap.key} FROM new)
    GROUP BY {cap.key}),
ranked AS (SELECT n.*, row_number() OVER (PARTITION BY n.{cap.key} ORDER BY {order}) AS rank FROM new n)
SELECT {', '.join(f'r.{c.name}' for c in relation.columns)}, coalesce(c.held, 0) + r.rank AS place
FROM ranked r LEFT JOIN counts c ON c.{cap.key} = r.{cap.key}"""
        table = _collect(self.session, capped_sql)
        kept = pc.less_equal(table.column("place"), cap.limit)
        with self.counting:
            self.capped += table.num_rows - (pc.sum(kept).as_py() or 0)
        self._fill(name, cap, table.filter(pc.equal(table.column("place"), cap.limit)).column(cap.key))
        return table.filter(kept).drop_columns(["place"])

    def _fill(self, name: str, cap: Cap, keys: pa.ChunkedArray) -> None:
        """Add ``keys`` (which have just reached ``cap``: each comes once) to `full_<name>`."""
        if len(keys):
            added = pa.table({cap.key: keys.cast(pa.string())})
            self.full[name] = pa.concat_tables([self.full[name], added])
            register_in_memory(self.session, f"full_{name}", self.full[name])


_LOW = np.int64(0xFFFFFFFF)
# A probe looks at a delta of at most this many rows: a larger one all but surely meets a key, and
# looking its values up would cost more than it saves (see `Probe`).
PROBE_MAX_ROWS = 50_000
SQL_TYPES = {"int64": "BIGINT", "int32": "INT", "bool": "BOOLEAN", "float64": "DOUBLE"}  # of the non-string types


def _hashes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The values' hashes as strings: values a join finds equal, equal hashes (a join compares an int
    with a string as a string)."""
    return row_hashes(pa.table({"value": column.cast(pa.string())}))


def _spans(ordered: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions in the sorted array ``ordered`` of the values in ``[low[i], high[i])``, for each
    i: (i, position), one pair per position."""
    starts = np.searchsorted(ordered, low)
    counts = np.searchsorted(ordered, high) - starts
    which = np.repeat(np.arange(len(low)), counts)
    return which, np.arange(int(counts.sum())) + np.repeat(starts - (np.cumsum(counts) - counts), counts)


class _Propagation:
    """A `Closure` rule's state across rounds: every node (a string) and every value (a row of the
    target's other columns) numbered, the known target rows as sorted keys node << 32 | value, and
    the known edges as (src, dst, label) ids sorted by src, each extended with what is new at each run."""

    def __init__(self, closure: Closure, target: Relation) -> None:
        self.closure = closure
        self.target = target
        self.nodes = Rows(pa.schema([target.schema().field(0)]))
        self.values = Rows(pa.schema(list(target.schema())[1:]))
        self.labels = Rows(pa.schema([target.schema().field(closure.slot)]))
        self.bindable = np.zeros(0, bool)  # by value id: whether it takes an edge's label
        self.bound: dict[int, int] = {}  # (value << 32 | label) -> the value bound to it
        self.held_rows = 0  # the target's rows numbered so far
        self.held = np.zeros(0, np.int64)  # their keys, sorted
        self.edge_count = 0  # the edges numbered so far
        self.edges = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))  # src, dst, label
        self.full_count = 0  # the target's full keys looked up so far
        self.full_ids = np.zeros(0, np.int64)  # their ids

    def run(self, known: pa.Table, edges: pa.Table, full: pa.ChunkedArray) -> pa.Table:
        """The rows not known yet that the rows of ``known`` and the rows of ``edges`` new since the
        last run reach (see `Closure`); ``full`` the target's keys no edge enters."""
        start = self._hold(known.slice(self.held_rows))
        added = self._connect(edges.slice(self.edge_count))
        blocked = np.zeros(len(self.nodes) + 1, bool)
        blocked[self._full_nodes(full)] = True
        moved = self._moved(added, blocked)
        moved = moved[~member(self.held, moved)]
        return self._reach(distinct(np.concatenate([start, moved])), moved, blocked)

    def _full_nodes(self, full: pa.ChunkedArray) -> np.ndarray:
        """The ids of the nodes of ``full``. A key once full stays full, so only the keys added since
        the last run are looked up; each is a node of a known row, numbered by `_hold` already."""
        found = self.nodes.find(pa.table([full.slice(self.full_count)], schema=self.nodes.schema))
        assert (found >= 0).all(), "a full key that is no known row's node"
        self.full_count = len(full)
        self.full_ids = np.concatenate([self.full_ids, found])
        return self.full_ids

    def capped(self, keys: np.ndarray, limit: int) -> tuple[np.ndarray, int, np.ndarray]:
        """Of the new ``keys`` (sorted), those a cap of ``limit`` rows per node keeps: as `_State.novel`
        keeps them, the first in the order of the target's columns. Returns them, how many it drops,
        and the nodes it fills."""
        nodes, first, inverse = groups(keys >> 32)
        count = np.bincount(inverse, minlength=len(nodes))
        held = np.searchsorted(self.held, (nodes + 1) << 32) - np.searchsorted(self.held, nodes << 32)
        room = np.maximum(limit - held, 0)
        over = np.flatnonzero(count > room)
        fills = nodes[(held < limit) & (held + count >= limit)]
        if not len(over):
            return keys, 0, fills
        rows = np.concatenate([np.arange(first[i], first[i] + count[i]) for i in over.tolist()])
        table = self.values.take(keys[rows] & _LOW).add_column(0, "_node", pa.array(keys[rows] >> 32))
        order = pc.sort_indices(table, [(name, "ascending", "at_end") for name in table.column_names])
        ranked = rows[order.to_numpy()]  # by node, then value: each over-full node's rows in cap order
        rank = np.arange(len(ranked)) - np.repeat(np.cumsum(count[over]) - count[over], count[over])
        dropped = ranked[rank >= np.repeat(room[over], count[over])]
        return np.delete(keys, dropped), len(dropped), fills

    def published(self, keys: np.ndarray) -> None:
        """The rows of ``keys`` (sorted), in that order, are the target's next rows: known, and
        followed already (they are no start of the next run)."""
        self.held_rows += len(keys)
        self.held = np.insert(self.held, np.searchsorted(self.held, keys), keys)

    def _hold(self, rows: pa.Table) -> np.ndarray:
        """Number the target's ``rows`` (the ones not numbered yet); returns their keys, in row order."""
        if not rows.num_rows:
            return np.zeros(0, np.int64)
        keys = (self.nodes.add(rows.select([0])) << 32) | self._values(rows.select(list(range(1, rows.num_columns))))
        ordered = distinct(keys)
        self.held = np.insert(self.held, np.searchsorted(self.held, ordered), ordered)
        self.held_rows += rows.num_rows
        return keys

    def _values(self, rows: pa.Table) -> np.ndarray:
        before = len(self.values)
        ids = self.values.add(rows)
        if len(self.values) > before:
            added = self.values.take(np.arange(before, len(self.values)))
            takes = pc.and_(pc.is_in(added.column(self.closure.kind), pa.array(self.closure.kinds)),
                            pc.is_null(added.column(self.closure.slot)))
            self.bindable = np.concatenate([self.bindable, takes.to_numpy(zero_copy_only=False)])
        return ids

    def _connect(self, edges: pa.Table) -> tuple[np.ndarray, ...]:
        """Number the ``edges`` (the ones not numbered yet); returns them as (src, dst, label) ids."""
        labels = edges.column(self.closure.label)
        label = np.full(edges.num_rows, -1, np.int64)
        valid = np.flatnonzero(labels.is_valid().to_numpy(zero_copy_only=False))
        if len(valid):
            label[valid] = self.labels.add(pa.table([labels.take(pa.array(valid))], names=["label"]))
        # both ends numbered in one pass (a node is often the source of one edge and the destination of
        # another): sources first, as numbering them apart did
        ends = pa.chunked_array([*edges.column(0).chunks, *edges.column(1).chunks], edges.schema.field(0).type)
        ids = self.nodes.add(pa.table([ends], schema=self.nodes.schema))
        added = (ids[:edges.num_rows], ids[edges.num_rows:], label)
        self.edges = inserted(self.edges, added)
        self.edge_count += edges.num_rows
        return added

    def _moved(self, edges: tuple[np.ndarray, ...], blocked: np.ndarray) -> np.ndarray:
        """Keys the known rows at the source of each of ``edges`` bring to its destination."""
        src, dst, label = edges
        edge, row = _spans(self.held, src << 32, (src + 1) << 32)
        return distinct(self._cross(dst[edge], self.held[row] & _LOW, label[edge], blocked))

    def _reach(self, frontier: np.ndarray, reach: np.ndarray, blocked: np.ndarray) -> np.ndarray:
        """``reach`` and the keys not known yet that ``frontier`` reaches along the edges (sorted keys
        node << 32 | value). A known key is not followed: what it reaches is known already, or at a
        full key (see `Closure`)."""
        src, dst, label = self.edges
        while len(frontier):
            nodes = frontier >> 32
            which, edge = _spans(src, nodes, nodes + 1)
            step = distinct(self._cross(dst[edge], frontier[which] & _LOW, label[edge], blocked))
            frontier = step[~(member(self.held, step) | member(reach, step))]
            reach = np.insert(reach, np.searchsorted(reach, frontier), frontier)
        return reach

    def _cross(self, dst: np.ndarray, value: np.ndarray, label: np.ndarray, blocked: np.ndarray) -> np.ndarray:
        """Keys of ``value`` moved to ``dst`` across edges with ``label``, but not into a blocked node."""
        open_ = ~blocked[dst]
        dst, value, label = dst[open_], value[open_], label[open_]
        binds = np.flatnonzero((label >= 0) & self.bindable[value])
        if len(binds):
            value = value.copy()
            value[binds] = self._bind((value[binds] << 32) | label[binds])
        return (dst << 32) | value

    def _bind(self, pairs: np.ndarray) -> np.ndarray:
        """The value each (value << 32 | label) becomes: the value with the label in its slot."""
        unique, _, inverse = groups(pairs)
        missing = [pair for pair in unique.tolist() if pair not in self.bound]
        if missing:
            rows = self.values.take(np.array([pair >> 32 for pair in missing], np.int64))
            slot = rows.schema.get_field_index(self.closure.slot)
            labels = self.labels.take(np.array([pair & 0xFFFFFFFF for pair in missing], np.int64)).column(0)
            ids = self._values(rows.set_column(slot, rows.schema.field(slot), labels))
            self.bound.update(zip(missing, ids.tolist(), strict=True))
        return np.fromiter(map(self.bound.__getitem__, unique.tolist()), np.int64, len(unique))[inverse]

    def rows(self, keys: np.ndarray) -> pa.Table:
        nodes = self.nodes.take(keys >> 32)
        values = self.values.take(keys & _LOW)
        return pa.Table.from_arrays([*nodes.columns, *values.columns], schema=self.target.schema())


def run_fixpoint(session: SessionContext, program: FixpointProgram,
                 in_memory: bool = True, threads: int = 1) -> tuple[pa.Table, FixpointRun]:
    """Evaluate ``program`` to its fixpoint (or `max_rounds`); returns its result and how it went.
    The relations it held in the session are dropped before it returns. ``in_memory=False`` runs
    every rule by its SQL, `Closure` rules and a program with an `evaluator` too (what their
    in-memory evaluation must equal). ``threads``: how many independent queries of a stage run at
    once (the rows are the same whatever it is)."""
    overlapped = _prepare(session, program, threads)
    if program.evaluator is not None and in_memory:
        result = IN_MEMORY_PROGRAMS[program.evaluator](session, program)
        for prepared in program.prepare:
            if session.table_exist(prepared.name):
                session.deregister_table(prepared.name)
        how = f"evaluated in memory by {program.evaluator}"
        return result, FixpointRun(rounds=(result.num_rows,), stage_names=(how,), stages=(), capped=0, converged=True,
                                   overlapped=overlapped)
    state = _State(session, program, in_memory, threads)
    rounds = [_run_stage(state, list(program.seeds))]
    _deregister_unread(session, [prepared.name for prepared in program.prepare], program.reading(seeds=False))
    stages: list[tuple[int, ...]] = []
    converged = rounds[0] == 0
    ordered = program.stages()
    while not converged and len(rounds) <= program.max_rounds:
        stages.append(tuple(_run_stage(state, rules) for rules in ordered))
        rounds.append(sum(stages[-1]))
        converged = rounds[-1] == 0
    state.propagations.clear()  # their ids (hundreds of MB on the stdlib) are done with before the result
    state.forget(program, program.result)  # (the copy edges, ~200 MB on the stdlib, before the result's 340 MB)
    result = session.sql(program.result).to_arrow_table()
    state.release(program)
    return result, FixpointRun(rounds=tuple(rounds), stage_names=program.names_of_stages(), stages=tuple(stages),
                               capped=state.capped, converged=converged, overlapped=overlapped + state.overlapped)


# Whole programs the engine evaluates in memory, by `FixpointProgram.evaluator`.
IN_MEMORY_PROGRAMS = {"c3_linearization": c3.evaluate}


def _prepare(session: SessionContext, program: FixpointProgram, threads: int = 1) -> int:
    """Compute and register the prepared tables in order, deregistering (and so freeing) each one
    that only serves to prepare others as soon as the last step reading it is computed: on the
    standard library they hold ~700 MB together, ~300 MB of which the rules read. With ``threads``
    > 1 the steps that read no step not computed yet run at once, wave after wave; returns how many
    waves ran two or more at once."""
    evaluation = program.reading(seeds=True)
    steps = program.prepare
    order = _waves(steps) if threads > 1 else [[index] for index in range(len(steps))]
    wave_of = {index: number for number, wave in enumerate(order) for index in wave}
    last_wave: dict[str, int] = {}  # table -> the wave of the last step reading it (tables no rule reads)
    for index, prepared in enumerate(steps):
        if not reads_table(evaluation, prepared.name):
            readers = [later for later in range(index + 1, len(steps)) if reads_table(steps[later].sql, prepared.name)]
            last_wave[prepared.name] = max((wave_of[reader] for reader in readers), default=wave_of[index])
    overlapped = 0
    for number, wave in enumerate(order):
        overlapped += _overlaps(len(wave), threads)
        tables = _at_once([functools.partial(_collect, session, steps[index].sql) for index in wave], threads)
        for index, table in zip(wave, tables, strict=True):
            register_in_memory(session, steps[index].name, table)
        for name, last in last_wave.items():
            if last == number and session.table_exist(name):
                session.deregister_table(name)
    return overlapped


def _waves(steps: tuple[Prepared, ...]) -> list[list[int]]:
    """The steps' indexes by wave: each step in the wave after the last step it reads."""
    waves: dict[int, int] = {}
    for index, step in enumerate(steps):
        read = (waves[earlier] for earlier in range(index) if reads_table(step.sql, steps[earlier].name))
        waves[index] = 1 + max(read, default=0)
    return [[index for index, wave in waves.items() if wave == number] for number in sorted(set(waves.values()))]


def _deregister_unread(session: SessionContext, names: list[str], kept: str) -> None:
    """Deregister (and so free) each of the tables ``names`` that ``kept`` (SQL still to run) does not read."""
    for name in names:
        if not reads_table(kept, name) and session.table_exist(name):
            session.deregister_table(name)


@functools.lru_cache(maxsize=8192)  # asked of every rule each round (bounded: queries ask it too)
def reads_table(sql: str, table: str) -> bool:
    """Whether ``sql`` names ``table`` (a regular expression for a name) as a whole word: the fixpoint's
    rules and what a read-only session opens for a query (`driver.api.open_session`)."""
    return re.search(rf"\b{table}\b", sql, re.IGNORECASE) is not None  # (SQL folds unquoted names)


def _run_stage(state: _State, rules: list[Rule]) -> int:
    """Run ``rules`` against what is known, then add what they found that is new; returns rows added.
    The rules that derive one relation from the same deltas run as one query."""
    derived: dict[str, list[pa.Table]] = {}
    novel: dict[str, pa.Table] = {}
    targets = [rule.target for rule in rules]
    together: dict[tuple[object, ...], tuple[list[Rule], dict[str, pa.Table]]] = {}

    def run_together() -> None:
        for (target, *_), rows in zip(together, _derive_all(state, together), strict=True):
            if rows.num_rows:
                derived.setdefault(target, []).append(rows)
        together.clear()

    for rule in rules:
        if rule.closure is not None and state.in_memory:
            run_together()  # the rules before it run first, as listed (a capped closure fills full_<target>)
            if targets.count(rule.target) == 1 and state.capped_by_node(rule.target):
                novel[rule.target] = state.propagate(rule, rule.closure, sole=True)
            elif (rows := state.propagate(rule, rule.closure)).num_rows:
                derived.setdefault(rule.target, []).append(rows)
            continue
        deltas = state.pending(rule)
        if deltas is not None:
            # (within a stage every rule last ran at the same point, so their deltas are the same slices;
            # the key says so rather than assume it)
            key = (rule.target, *sorted((name, delta.num_rows, state.known[name].num_rows - delta.num_rows)
                                        for name, delta in deltas.items()))
            together.setdefault(key, ([], deltas))[0].append(rule)
    run_together()
    state.overlapped += _overlaps(len(derived), state.threads)
    found = _at_once([functools.partial(state.novel, name, tables) for name, tables in derived.items()], state.threads)
    return state.publish(novel | dict(zip(derived, found, strict=True)))


def _derive_all(state: _State, groups: dict[tuple[object, ...], tuple[list[Rule], dict[str, pa.Table]]]
                ) -> list[pa.Table]:
    """The rows each group of rules derives, in order; a group's key is its target, then (relation,
    rows, first row) of each delta its rules read. When the groups read the same slice of each
    relation, their queries run at once: a small code base's queries are mostly planning, which
    DataFusion does off the GIL, so two take about the time of one on two cores. Otherwise they run
    one after another, each with its deltas."""
    slices = {part for key in groups for part in key[1:]}
    if state.threads < 2 or len(groups) < 2 or len({part[0] for part in slices}) < len(slices):  # type: ignore[index]
        return [state.derive(rules[0].target, rules, deltas) for rules, deltas in groups.values()]
    for name, delta in {name: delta for _, deltas in groups.values() for name, delta in deltas.items()}.items():
        register_in_memory(state.session, f"delta_{name}", delta)
    state.overlapped += _overlaps(len(groups), state.threads)
    return _at_once([functools.partial(state.query, rules[0].target, rules) for rules, _ in groups.values()],
                    state.threads)


def _overlaps(calls: int, threads: int) -> bool:
    """Whether `_at_once` runs ``calls`` calls at once."""
    return calls > 1 and threads > 1


def _at_once(calls: list[functools.partial[pa.Table]], threads: int) -> list[pa.Table]:
    """The results of ``calls``, in order, run on up to ``threads`` threads."""
    if not _overlaps(len(calls), threads):
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=min(len(calls), threads), thread_name_prefix="cpgflow-fixpoint") as pool:
        return list(pool.map(lambda call: call(), calls))


def _candidates(relation: str) -> str:
    """The table `novel` registers a relation's candidate rows as (one each: they may run at once)."""
    return f"fixpoint_candidates_{relation}"
