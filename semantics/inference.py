"""Inference over view specs: join keys and strategies from semantic types, each with its evidence.

Every decision is an `InferenceConfidence`: the decision (type and value), a score in [0, 1], the
evidence it rests on, and — when the rule could not decide cleanly — the fallback it took and why.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from semantics.entities import Column
from semantics.specs import RelateSpec
from semantics.types import COMPATIBILITY
from semantics.types import SemanticType as S

JoinStrategy = Literal[
    "span_containment", "span_overlap", "foreign_key", "qualname_equi", "scope_name_equi", "scope_equi",
    "file_equi",
]


class InferenceConfidence(msgspec.Struct, frozen=True):
    decision_type: str
    decision_value: str
    score: float
    evidence: tuple[str, ...]
    fallback_reason: str | None = None

    def citing(self, why: str) -> InferenceConfidence:
        """This decision with one more piece of evidence."""
        return msgspec.structs.replace(self, evidence=(*self.evidence, why))


class JoinKeys(msgspec.Struct, frozen=True):
    equi: tuple[tuple[str, str], ...]  # (left column, right column) pairs joined with =
    range: tuple[tuple[str, str, str], ...] = ()  # (left column, operator, right column)
    confidence: InferenceConfidence | None = None


class JoinPlan(msgspec.Struct, frozen=True):
    keys: JoinKeys
    strategy: JoinStrategy
    confidence: InferenceConfidence

    def condition(self) -> str:
        terms = [f"l.{left} = r.{right}" for left, right in self.keys.equi]
        terms += [f"l.{left} {op} r.{right}" for left, op, right in self.keys.range]
        return " AND ".join(terms)


class InferenceError(ValueError):
    """A relate spec whose join cannot be inferred from its inputs' semantic types."""


def _by_type(columns: tuple[Column, ...], semantic: S) -> list[Column]:
    return [column for column in columns if column.semantic is semantic]


def _pair(left: tuple[Column, ...], right: tuple[Column, ...], semantic: S,
          evidence: list[str], ambiguities: list[str], right_semantic: S | None = None) -> tuple[str, str] | None:
    """The one (left, right) column pair of a semantic type; ties broken by equal names."""
    lefts = _by_type(left, semantic)
    rights = _by_type(right, right_semantic or semantic)
    if not lefts or not rights:
        return None
    if len(lefts) == 1 and len(rights) == 1:
        evidence.append(f"{semantic}: l.{lefts[0].name} = r.{rights[0].name} (the only columns of the type)")
        return lefts[0].name, rights[0].name
    same_name = [(lc.name, rc.name) for lc in lefts for rc in rights if lc.name == rc.name]
    if len(same_name) == 1:
        ambiguities.append(f"{len(lefts)}x{len(rights)} {semantic} columns; chose the pair with equal names")
        evidence.append(f"{semantic}: l.{same_name[0][0]} = r.{same_name[0][1]} (equal names)")
        return same_name[0]
    ambiguities.append(f"{len(lefts)}x{len(rights)} {semantic} columns; chose the first of each")
    evidence.append(f"{semantic}: l.{lefts[0].name} = r.{rights[0].name} (first of each)")
    return lefts[0].name, rights[0].name


def _foreign_key(left: tuple[Column, ...], right: tuple[Column, ...], right_entity: str | None,
                 evidence: list[str], ambiguities: list[str]) -> tuple[str, str] | None:
    identity = _by_type(right, S.ENTITY_ID)
    if len(identity) != 1:
        return None
    candidates = [c for c in left if c.semantic in (S.FOREIGN_ID, S.SCOPE_ID)]
    if right_entity is not None:
        declared = [c for c in candidates if right_entity in c.references]
        if len(declared) == 1:
            evidence.append(f"l.{declared[0].name} is declared a foreign key to {right_entity}; "
                            f"r.{identity[0].name} is its identity")
            return declared[0].name, identity[0].name
        if declared:
            candidates = declared
    if len(candidates) == 1:
        evidence.append(f"l.{candidates[0].name} is the left's only foreign id; r.{identity[0].name} the identity")
        return candidates[0].name, identity[0].name
    if candidates:
        ambiguities.append(f"{len(candidates)} foreign-id columns could name the right; chose the first")
        evidence.append(f"l.{candidates[0].name} -> r.{identity[0].name} (first foreign id)")
        return candidates[0].name, identity[0].name
    return None


def _same_file(left: tuple[Column, ...], right: tuple[Column, ...], evidence: list[str]) -> list[tuple[str, str]]:
    """The file pair of a join on one scope, when each side has one file column: a scope is one
    file's, so the rows it pairs share their file, and saying so lets the join be seen (and kept up
    to date) file by file."""
    lefts, rights = _by_type(left, S.FILE_ID), _by_type(right, S.FILE_ID)
    if len(lefts) != 1 or len(rights) != 1:
        return []
    evidence.append(f"{S.FILE_ID}: l.{lefts[0].name} = r.{rights[0].name} (one scope is one file's)")
    return [(lefts[0].name, rights[0].name)]


def infer_join(spec: RelateSpec, left: tuple[Column, ...], right: tuple[Column, ...],
               right_entity: str | None = None) -> JoinPlan:
    """Keys and strategy for a relate spec, from the semantic types of its two inputs."""
    evidence: list[str] = []
    ambiguities: list[str] = []
    if spec.keys:
        keys = JoinKeys(equi=spec.keys)
        key_confidence = InferenceConfidence("join_keys", _keys_text(keys), 1.0,
                                             ("explicit keys in the spec (override)",), None)
        strategy = _strategy_of(spec, keys, left)
        return JoinPlan(keys=msgspec.structs.replace(keys, confidence=key_confidence), strategy=strategy,
                        confidence=InferenceConfidence("join_strategy", strategy, 1.0,
                                                       ("follows from the explicit keys",)))
    equi: list[tuple[str, str]] = []
    ranges: list[tuple[str, str, str]] = []
    relation = spec.relation
    if relation == "refers_to":
        pair = _foreign_key(left, right, right_entity, evidence, ambiguities)
        if pair:
            equi.append(pair)
        strategy: JoinStrategy = "foreign_key"
    elif relation == "in_scope":
        for semantic in (S.SCOPE_ID, S.NAME):
            pair = _pair(left, right, semantic, evidence, ambiguities)
            if pair:
                equi.append(pair)
        strategy = "scope_name_equi"
        equi = [*equi, *_same_file(left, right, evidence)] if len(equi) == 2 else []
    elif relation == "same_scope":
        pair = _pair(left, right, S.SCOPE_ID, evidence, ambiguities)
        if pair:
            equi += [pair, *_same_file(left, right, evidence)]
        strategy = "scope_equi"
    elif relation == "named":
        pair = _pair(left, right, S.QUALNAME, evidence, ambiguities)
        if pair:
            equi.append(pair)
        strategy = "qualname_equi"
    elif relation == "in_file":
        pair = _pair(left, right, S.FILE_ID, evidence, ambiguities)
        if pair:
            equi.append(pair)
        strategy = "file_equi"
    else:  # inside / overlapping: same file, then a range condition on the spans
        pair = _pair(left, right, S.FILE_ID, evidence, ambiguities)
        start = _pair(left, right, S.SPAN_START, evidence, ambiguities)
        end = _pair(left, right, S.SPAN_END, evidence, ambiguities)
        if pair and start and end:
            equi.append(pair)
            if relation == "inside":
                ranges = [(start[0], ">=", start[1]), (end[0], "<=", end[1])]
                strategy = "span_containment"
            else:
                ranges = [(start[0], "<", end[1]), (end[0], ">", start[1])]
                strategy = "span_overlap"
        else:
            strategy = "span_containment" if relation == "inside" else "span_overlap"
    if not equi:
        raise InferenceError(
            f"view {spec.name}: cannot infer the keys of relation {relation!r} between {spec.left} and "
            f"{spec.right} from their semantic types; declare keys=... in the spec"
        )
    score = 1.0 if not ambiguities else 0.6
    keys = JoinKeys(equi=tuple(equi), range=tuple(ranges))
    key_confidence = InferenceConfidence(
        "join_keys", _keys_text(keys), score, tuple(evidence), "; ".join(ambiguities) or None
    )
    strategy_confidence = InferenceConfidence(
        "join_strategy", strategy, score,
        (f"relation {relation!r} with keys of groups "
         f"{sorted({_group(left, column) for column, _ in equi})}",),
        "; ".join(ambiguities) or None,
    )
    return JoinPlan(keys=msgspec.structs.replace(keys, confidence=key_confidence), strategy=strategy,
                    confidence=strategy_confidence)


def _group(columns: tuple[Column, ...], name: str) -> str:
    for column in columns:
        if column.name == name:
            return COMPATIBILITY[column.semantic].value
    return "unknown"


def _keys_text(keys: JoinKeys) -> str:
    terms = [f"{left}={right}" for left, right in keys.equi] + [f"{a}{op}{b}" for a, op, b in keys.range]
    return ", ".join(terms)


def _strategy_of(spec: RelateSpec, keys: JoinKeys, left: tuple[Column, ...]) -> JoinStrategy:
    by_name = {column.name: column.semantic for column in left}
    types = {by_name.get(column) for column, _ in keys.equi}
    if S.QUALNAME in types:
        return "qualname_equi"
    if S.SCOPE_ID in types and S.NAME in types:
        return "scope_name_equi"
    if types == {S.SCOPE_ID}:
        return "scope_equi"
    if types <= {S.FILE_ID}:
        return "file_equi"
    return "foreign_key"
