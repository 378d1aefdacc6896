"""Semi-naive fixpoint evaluation of a rule program on DataFusion.

A `FixpointProgram` declares recursive relations, the SQL that seeds them, and rules: each rule is a
SELECT deriving rows of one relation from the rows of another *new since the rule last ran*
(`delta_<name>`) joined with everything known so far (`<name>`) and with the program's inputs. A rule
over two recursive relations is written twice, once per delta, which is what semi-naive evaluation
needs. Rules run in stages: each stage's new rows are known (and are the next stages' deltas) before
the next stage runs, so one round can carry a fact through several rules in a row (propagate values,
then find what a call site calls, then bind its arguments). Evaluation stops when a round adds nothing.

Relations live in memory as Arrow tables registered in the session; `prepare` statements run once
first (e.g. splitting a fact table by kind) and are registered the same way. A relation may cap how
many rows one key holds (`Cap`): a guard against blow-up, applied in a total order so a capped result
is deterministic, and counted; the keys at their cap are a table the rules can read.
"""

from __future__ import annotations

import os
import re

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import DataFrame, SessionContext, col

from semantics.entities import Column
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


class Rule(msgspec.Struct, frozen=True):
    name: str
    target: str  # the relation it derives rows of
    sql: str
    stage: int = 0  # rules run by stage within a round, lowest first; each stage sees the earlier ones' rows


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

    def stages(self) -> list[list[Rule]]:
        return [[rule for rule in self.rules if rule.stage == stage]
                for stage in sorted({rule.stage for rule in self.rules})]

    def names_of_stages(self) -> tuple[str, ...]:
        return tuple(self.stage_names[index] if index < len(self.stage_names) else f"stage {rules[0].stage}"
                     for index, rules in enumerate(self.stages()))

    def text(self) -> str:
        """The whole program as one text: what its fingerprint and `cpgflow plan` show."""
        parts = [f"-- prepare {p.name}\n{p.sql}" for p in self.prepare]
        parts += [f"-- seed {r.name} -> {r.target}\n{r.sql}" for r in self.seeds]
        parts += [f"-- rule {r.name} -> {r.target}, stage {r.stage}\n{r.sql}" for r in self.rules]
        parts += [f"-- cap {c.relation}.{c.key} <= {c.limit}" for c in self.caps]
        parts.append(f"-- result, after at most {self.max_rounds} rounds\n{self.result}")
        return "\n\n".join(parts)


class FixpointRun(msgspec.Struct, frozen=True):
    """How the evaluation went: rows each round added (seeds first), the stages' names and the rows
    each stage of each round after the seeds added, and rows dropped by caps."""

    rounds: tuple[int, ...]
    stage_names: tuple[str, ...]
    stages: tuple[tuple[int, ...], ...]
    capped: int
    converged: bool


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

    def __init__(self, session: SessionContext, program: FixpointProgram) -> None:
        self.session = session
        self.relations = {relation.name: relation for relation in program.relations}
        self.caps = {cap.relation: cap for cap in program.caps}
        self.known = {name: relation.schema().empty_table() for name, relation in self.relations.items()}
        self.seen: dict[tuple[str, str], int] = {}  # (rule, relation) -> rows of it the rule has read
        self.capped = 0
        self.full = {cap.relation: pa.table({cap.key: pa.array([], pa.string())}) for cap in program.caps}
        for name, table in self.known.items():
            register_in_memory(session, name, table)
        for name, table in self.full.items():
            register_in_memory(session, f"full_{name}", table)

    def publish(self, deltas: dict[str, pa.Table]) -> int:
        """Add ``deltas`` to what is known; returns rows added."""
        added = 0
        for name, delta in deltas.items():
            if delta.num_rows:
                self.known[name] = pa.concat_tables([self.known[name], delta])
                register_in_memory(self.session, name, self.known[name])
                added += delta.num_rows
        return added

    def release(self, program: FixpointProgram) -> None:
        """Drop every table the evaluation registered: a large program holds gigabytes."""
        names = [*self.relations, *(f"delta_{name}" for name in self.relations),
                 *(f"full_{name}" for name in self.full),
                 *(prepared.name for prepared in program.prepare), "fixpoint_candidates"]
        for name in names:
            if self.session.table_exist(name):
                self.session.deregister_table(name)
        self.known.clear()

    def derive(self, rule: Rule) -> pa.Table:
        """``rule``'s rows, from each relation's rows new since it last ran; empty (and no query run)
        when every delta it reads is empty."""
        relation = self.relations[rule.target]
        fresh = False
        for name, known in self.known.items():
            if _reads(rule.sql, f"delta_{name}"):
                start = self.seen.get((rule.name, name), 0)
                self.seen[(rule.name, name)] = known.num_rows
                register_in_memory(self.session, f"delta_{name}", known.slice(start))
                fresh = fresh or known.num_rows > start
        if not fresh and _reads(rule.sql, r"delta_\w+"):
            return relation.schema().empty_table()
        return relation.conformed(self.session.sql(rule.sql)).to_arrow_table().cast(relation.schema())

    def novel(self, name: str, candidates: list[pa.Table]) -> pa.Table:
        """The candidate rows of relation ``name`` not known yet, distinct, within its cap."""
        relation = self.relations[name]
        if not candidates:
            return relation.schema().empty_table()
        register_in_memory(self.session, "fixpoint_candidates", pa.concat_tables(candidates))
        columns = ", ".join(column.name for column in relation.columns)
        cap = self.caps.get(name)
        known = f"SELECT {columns} FROM {name}"
        if cap is not None:  # only the keys at stake: a probe of one column, not of every column
            known += f" WHERE {cap.key} IN (SELECT {cap.key} FROM fixpoint_candidates)"
        sql = f"SELECT DISTINCT {columns} FROM fixpoint_candidates EXCEPT {known}"
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
        self.capped += table.num_rows - (pc.sum(kept).as_py() or 0)
        self._fill(name, cap, table.filter(pc.equal(table.column("place"), cap.limit)).column(cap.key))
        return table.filter(kept).drop_columns(["place"])

    def _fill(self, name: str, cap: Cap, keys: pa.ChunkedArray) -> None:
        """Add ``keys`` (which have just reached ``cap``: each comes once) to `full_<name>`."""
        if len(keys):
            added = pa.table({cap.key: keys.cast(pa.string())})
            self.full[name] = pa.concat_tables([self.full[name], added])
            register_in_memory(self.session, f"full_{name}", self.full[name])


def run_fixpoint(session: SessionContext, program: FixpointProgram) -> tuple[pa.Table, FixpointRun]:
    """Evaluate ``program`` to its fixpoint (or `max_rounds`); returns its result and how it went.
    The relations it held in the session are dropped before it returns."""
    for prepared in program.prepare:
        register_in_memory(session, prepared.name, _collect(session, prepared.sql))
    _drop_intermediates(session, program)
    state = _State(session, program)
    rounds = [_run_stage(state, list(program.seeds))]
    stages: list[tuple[int, ...]] = []
    converged = rounds[0] == 0
    ordered = program.stages()
    while not converged and len(rounds) <= program.max_rounds:
        stages.append(tuple(_run_stage(state, rules) for rules in ordered))
        rounds.append(sum(stages[-1]))
        converged = rounds[-1] == 0
    result = session.sql(program.result).to_arrow_table()
    state.release(program)
    return result, FixpointRun(rounds=tuple(rounds), stage_names=program.names_of_stages(), stages=tuple(stages),
                               capped=state.capped, converged=converged)


def _drop_intermediates(session: SessionContext, program: FixpointProgram) -> None:
    """Deregister (and so free) the prepared tables that only served to prepare others."""
    used = " ".join(rule.sql for rule in (*program.seeds, *program.rules)) + " " + program.result
    for prepared in program.prepare:
        if not _reads(used, prepared.name):
            session.deregister_table(prepared.name)


def _reads(sql: str, table: str) -> bool:
    """Whether ``sql`` names ``table`` (a regular expression for a name) as a whole word."""
    return re.search(rf"\b{table}\b", sql) is not None


def _run_stage(state: _State, rules: list[Rule]) -> int:
    """Run ``rules`` against what is known, then add what they found that is new; returns rows added."""
    derived: dict[str, list[pa.Table]] = {}
    for rule in rules:
        rows = state.derive(rule)
        if rows.num_rows:
            derived.setdefault(rule.target, []).append(rows)
    return state.publish({name: state.novel(name, tables) for name, tables in derived.items()})
