"""Property tests: the spans and ids of extracted rows, over generated Python source.

A hypothesis strategy writes small but varied Python modules (docstrings; decorated classes with
bases, keywords and methods; nested and async defs; nested lambdas; calls with positional, keyword,
``*args`` and ``**kwargs`` arguments; attribute chains; every import form; comprehensions; walrus;
f-strings; match statements; non-ASCII strings, comments and identifiers, including identifiers
that NFKC normalization changes; tabs in indentation; semicolons and backslash continuations).
Every sample is checked with ``ast.parse`` and discarded if it does not parse.

Each module is then encoded as a file: UTF-8 with LF, CRLF, CR or mixed line endings, with or
without a BOM; and, separately, latin-1 with a ``# -*- coding: latin-1 -*-`` cookie and latin-1
characters in strings, comments and identifiers.

The reference is CPython: ``ast.parse`` of the file's raw bytes, and ``ast.get_source_segment`` on the
file's text decoded as the interpreter decodes it (``tokenize.detect_encoding``; a BOM is stripped).
Newlines are NOT normalized on either side: ``ast.get_source_segment`` splits lines on ``\\r\\n``,
``\\r`` and ``\\n`` but keeps each line's own terminator, so the segment it returns holds the file's
original line endings, exactly as the raw byte slice does — the comparison is byte-for-byte strict.
"""

from __future__ import annotations

import ast
import codecs
import io
import re
import tokenize
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from semantics.entities import ENTITIES_BY_NAME, NODE_ENTITIES
from semantics.extract.files import FileTask, content_hash, extract_file
from semantics.extract.parallel import rows_to_table

PATH = "pkg/mod.py"
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------------------------------
# Generated source
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alphabet:
    """What a generated module may contain, so that it stays encodable in the target encoding."""

    names: tuple[str, ...]  # identifiers (no two with the same NFKC form)
    text: tuple[str, ...]  # characters (or escape sequences) for string literals
    comment: tuple[str, ...]  # characters for comments


UTF8 = Alphabet(
    # NFKC changes three of them: U+FB01 (the fi ligature) + "le" -> "file", U+00B5 (micro sign) + "s"
    # -> U+03BC (Greek mu) + "s", U+210C (black-letter H) + "x" -> "Hx".
    names=("x", "y", "foo", "bar_2", "_p", "café", "π", "変数", "\ufb01le", "\u00b5s", "\u210cx", "Ωmega", "naïve"),
    text=("a", "Z", " ", "#", "é", "漢", "字", "😀", "\u2028", "\x85", "\x0c", "\\n", "\\t", "\\\\", "\\u00e9"),
    comment=("a", " ", "#", "é", "漢字", "😀", "'", '"', "\u2028", "\x85", "(", "\\", " as ", "def "),
)
LATIN1 = Alphabet(
    # NFKC changes two of them: U+00B5 (micro sign) + "s" -> U+03BC (Greek mu) + "s", "ªb" -> "ab".
    names=("x", "y", "foo", "bar_2", "café", "naïve", "\u00b5s", "ªb", "Ñame", "ÿ"),
    text=("a", "Z", " ", "#", "é", "ñ", "ß", "¿", "©", "ÿ", "\xa0", "\x85", "\\n", "\\xe9"),
    comment=("a", " ", "#", "é", "ñ", "ß", "¿", "©", "\xa0", "\x85", "'", '"', "\\", " as ", "def "),
)
INDENT_UNITS = ("    ", "  ", " ", "\t", "\t ", " \t")
MAX_DEPTH = 3


@dataclass(frozen=True)
class Env:
    alphabet: Alphabet
    indent: str = ""
    in_function: bool = False
    in_async: bool = False

    def deeper(self, unit: str, *, function: bool | None = None, is_async: bool | None = None) -> Env:
        return Env(
            self.alphabet,
            self.indent + unit,
            self.in_function if function is None else function,
            self.in_async if is_async is None else is_async,
        )


def name(draw, env: Env) -> str:
    return draw(st.sampled_from(env.alphabet.names))


def comment(draw, env: Env) -> str:
    return "#" + "".join(draw(st.lists(st.sampled_from(env.alphabet.comment), max_size=6)))


def string_literal(draw, env: Env, *, multiline: bool = True, allow_fstring: bool = True) -> str:
    kinds = ["'", '"', "r'", "b'", "u'"]
    if multiline:
        kinds += ["'''", '"""']
    if allow_fstring:
        kinds += ['f"']
    kind = draw(st.sampled_from(kinds))
    chars = draw(st.lists(st.sampled_from(env.alphabet.text), max_size=6))
    if kind == "b'":
        body = "".join(c for c in chars if c.isascii() and c not in ("\x0c",) and not c.startswith("\\u"))
        return f"b'{body}'"
    if kind == "r'":
        body = "".join(c for c in chars if not c.startswith("\\"))
        return f"r'{body}'"
    if kind in ("'''", '"""'):
        parts = draw(st.lists(st.sampled_from([*chars, "\n", "\n", "\t"]) if chars else st.just("\n"), max_size=8))
        body = "".join(parts)
        return f"{kind}{body} {kind}"  # the space: never four quotes in a row
    if kind == 'f"':
        pieces = []
        for _ in range(draw(st.integers(1, 3))):
            pieces.append("".join(draw(st.lists(st.sampled_from(env.alphabet.text), max_size=3))))
            pieces.append("{" + fstring_expression(draw, env) + "}")
        return 'f"' + "".join(pieces) + '"'
    body = "".join(chars)
    return f"{kind}{body}{kind[-1]}"


def fstring_expression(draw, env: Env) -> str:
    """A replacement field's expression: no quotes, backslashes or newlines (Python 3.11)."""
    head = name(draw, env)
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return head
    if choice == 1:
        return f"{head}.{name(draw, env)}"
    if choice == 2:
        args = ", ".join(name(draw, env) for _ in range(draw(st.integers(0, 2))))
        return f"{head}({args})"
    return f"{head}({name(draw, env)}={name(draw, env)}({name(draw, env)}))"


def separator(draw, env: Env, inline: bool) -> str:
    """Between items inside brackets: maybe a line break, maybe a comment before it."""
    if inline:
        return ", "
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return ",\n" + env.indent + draw(st.sampled_from(["", " ", "\t", "        "]))
    if choice == 1:
        return ",  " + comment(draw, env) + "\n" + env.indent + "  "
    return ", "


def atom(draw, env: Env) -> str:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.sampled_from(["0", "1", "42", "3.5", "0x1f", "1_000", "2j", "None", "True", "..."]))
    if choice == 1:
        return string_literal(draw, env)
    return name(draw, env)


def lambda_expr(draw, env: Env, depth: int, inline: bool) -> str:
    params = parameters(draw, env, depth, inline=True, annotations=False)
    body = expression(draw, env, depth - 1, inline)
    return f"lambda {params}: {body}" if params else f"lambda: {body}"


def call_expr(draw, env: Env, depth: int, inline: bool) -> str:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        func = attribute_chain(draw, env, depth, inline)
    elif choice == 1:
        func = call_expr(draw, env, depth - 1, inline) if depth > 1 else name(draw, env)
    elif choice == 2:
        func = f"({lambda_expr(draw, env, depth, inline)})"
    else:
        func = name(draw, env)
    if draw(st.integers(0, 7)) == 0:  # a generator expression as the sole argument
        return f"{func}({comprehension_body(draw, env, depth - 1, inline)})"
    args = []
    for _ in range(draw(st.integers(0, 3))):
        value = expression(draw, env, depth - 1, inline, allow_bare_lambda=True)
        args.append(f"*{value}" if draw(st.integers(0, 4)) == 0 else value)
    keywords = draw(st.lists(st.sampled_from(env.alphabet.names), max_size=2, unique=True))
    for keyword in keywords:
        args.append(f"{keyword}={expression(draw, env, depth - 1, inline, allow_bare_lambda=True)}")
    if draw(st.integers(0, 4)) == 0:
        args.append(f"**{expression(draw, env, depth - 1, inline)}")
    text = ""
    for index, arg in enumerate(args):
        text += (separator(draw, env, inline) if index else "") + arg
    if args and draw(st.integers(0, 4)) == 0:
        text += ","
    return f"{func}({text})"


def attribute_chain(draw, env: Env, depth: int, inline: bool) -> str:
    choice = draw(st.integers(0, 3))
    if choice == 0 and depth > 1:
        base = call_expr(draw, env, depth - 1, inline)
    elif choice == 1:
        base = f"({expression(draw, env, depth - 1, inline)})"
    else:
        base = name(draw, env)
    attrs = [name(draw, env) for _ in range(draw(st.integers(1, 3)))]
    joiner = draw(st.sampled_from([".", ".", " . "]))
    return base + "".join(joiner + attr for attr in attrs)


def target(draw, env: Env) -> str:
    if draw(st.integers(0, 3)) == 0:
        return f"{name(draw, env)}, {name(draw, env)}"
    return name(draw, env)


def comprehension_body(draw, env: Env, depth: int, inline: bool) -> str:
    elt = expression(draw, env, depth, inline)
    text = elt
    for _ in range(draw(st.integers(1, 2))):
        text += f" for {target(draw, env)} in {expression(draw, env, depth, inline)}"
        if draw(st.booleans()):
            text += f" if {expression(draw, env, depth, inline)}"
    return text


def comprehension(draw, env: Env, depth: int, inline: bool) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 3:
        key, value = expression(draw, env, depth - 1, inline), expression(draw, env, depth - 1, inline)
        return f"{{{key}: {value} for {target(draw, env)} in {expression(draw, env, depth - 1, inline)}}}"
    body = comprehension_body(draw, env, depth - 1, inline)
    return ("[{}]", "{{{}}}", "({})")[kind].format(body)


def expression(draw, env: Env, depth: int, inline: bool = True, *, allow_bare_lambda: bool = False) -> str:
    """An expression that is safe to use as an operand (compound forms come parenthesized)."""
    if depth <= 0:
        return atom(draw, env)
    choice = draw(st.integers(0, 12))
    if choice <= 1:
        return atom(draw, env)
    if choice <= 4:
        return call_expr(draw, env, depth, inline)
    if choice == 5:
        return attribute_chain(draw, env, depth, inline)
    if choice == 6:
        text = lambda_expr(draw, env, depth, inline)
        return text if allow_bare_lambda else f"({text})"
    if choice == 7:
        return comprehension(draw, env, depth, inline)
    if choice == 8:
        return f"({name(draw, env)} := {expression(draw, env, depth - 1, inline)})"
    if choice == 9:
        op = draw(st.sampled_from(["+", "*", "-", "and", "or", "==", "if x else"]))
        left, right = expression(draw, env, depth - 1, inline), expression(draw, env, depth - 1, inline)
        return f"({left} {op} {right})"
    if choice == 10:
        items = [expression(draw, env, depth - 1, inline) for _ in range(draw(st.integers(0, 3)))]
        open_, close = draw(st.sampled_from([("[", "]"), ("(", ",)"), ("{", "}")])) if items else ("[", "]")
        return open_ + ", ".join(items) + close
    if choice == 11:
        return f"{name(draw, env)}[{expression(draw, env, depth - 1, inline)}]"
    if env.in_async:
        return f"(await {expression(draw, env, depth - 1, inline)})"
    return atom(draw, env)


def parameters(draw, env: Env, depth: int, *, inline: bool, annotations: bool) -> str:
    """A parameter list with every kind: positional-only, defaults, *args or bare *, keyword-only, **kw."""
    names = iter(draw(st.permutations(env.alphabet.names)))

    def param(default: bool) -> str:
        text = next(names)
        if annotations and draw(st.booleans()):
            text += ": " + draw(st.sampled_from(["int", "'str'", "list[int]", "a.B", f"{name(draw, env)}()"]))
        if default:
            value = expression(draw, env, depth - 1, inline=True)
            text += (" = " if ":" in text else "=") + value
        return text

    parts: list[str] = []
    defaults = False
    positional = draw(st.integers(0, 3))
    for _ in range(positional):
        defaults = defaults or draw(st.integers(0, 2)) == 0
        parts.append(param(defaults))
    if positional and draw(st.integers(0, 3)) == 0:
        parts.append("/")
    star = draw(st.integers(0, 2))
    kwonly = draw(st.integers(0, 2)) if star else 0
    if star == 1:
        vararg = next(names)
        if annotations and draw(st.booleans()):
            vararg += ": int"
        parts.append("*" + vararg)
    elif star == 2 and kwonly:
        parts.append("*")
    for _ in range(kwonly):
        parts.append(param(draw(st.booleans())))
    if draw(st.integers(0, 2)) == 0:
        parts.append("**" + next(names) + (": dict" if annotations and draw(st.booleans()) else ""))
    return (", " if inline else ",\n" + env.indent + "        ").join(parts)


def docstring(draw, env: Env) -> str:
    chars = draw(st.lists(st.sampled_from([*env.alphabet.text, "\n"]), max_size=10))
    quote = draw(st.sampled_from(['"""', "'''", '"', "r'''"]))
    body = "".join(chars)
    if quote == '"':
        body = body.replace("\n", " ")
    if quote.startswith("r"):
        body = body.replace("\\", "")
    return f"{quote}{body} {quote[-3:] if len(quote) > 1 else quote}"


def block(draw, env: Env, depth: int, *, doc: bool = False, class_body: bool = False) -> list[str]:
    lines = []
    if doc and draw(st.booleans()):
        lines.append(env.indent + docstring(draw, env))
    count = draw(st.integers(1, 3))
    for _ in range(count):
        if class_body and draw(st.booleans()):
            lines.extend(function_def(draw, env, depth))
        else:
            lines.extend(statement(draw, env, depth))
    return lines


def decorators(draw, env: Env, depth: int) -> list[str]:
    result = []
    for _ in range(draw(st.integers(0, 2))):
        choice = draw(st.integers(0, 2))
        if choice == 0:
            expr = name(draw, env)
        elif choice == 1:
            expr = attribute_chain(draw, env, 1, True)
        else:
            expr = call_expr(draw, env, max(1, depth - 1), True)
        result.append(f"{env.indent}@{expr}" + (f"  {comment(draw, env)}" if draw(st.integers(0, 3)) == 0 else ""))
    return result


def function_def(draw, env: Env, depth: int) -> list[str]:
    is_async = draw(st.integers(0, 3)) == 0
    lines = decorators(draw, env, depth)
    params = parameters(draw, env, depth, inline=draw(st.booleans()), annotations=True)
    returns = " -> " + draw(st.sampled_from(["int", "None", "'é'", "a.B[c]"])) if draw(st.booleans()) else ""
    keyword = "async def" if is_async else "def"
    space = draw(st.sampled_from([" ", "  ", "\t"]))
    trailer = f"  {comment(draw, env)}" if draw(st.integers(0, 3)) == 0 else ""
    header = f"{env.indent}{keyword}{space}{name(draw, env)}({params}){returns}:"
    unit = draw(st.sampled_from(INDENT_UNITS))
    inner = env.deeper(unit, function=True, is_async=is_async)
    if depth <= 1 or draw(st.integers(0, 4)) == 0:
        body_text = draw(st.sampled_from(["pass", "...", f"return {expression(draw, inner, 1)}"]))
        if draw(st.booleans()):  # the whole body on the header's line
            return [*lines, f"{header} {body_text}"]
        return [*lines, header + trailer, inner.indent + body_text]
    return [*lines, header + trailer, *block(draw, inner, depth - 1, doc=True)]


def class_def(draw, env: Env, depth: int) -> list[str]:
    lines = decorators(draw, env, depth)
    bases = [expression(draw, env, 1) for _ in range(draw(st.integers(0, 2)))]
    if draw(st.integers(0, 3)) == 0:
        bases.append(f"metaclass={name(draw, env)}")
    arglist = f"({', '.join(bases)})" if bases or draw(st.booleans()) else ""
    trailer = f"  {comment(draw, env)}" if draw(st.integers(0, 3)) == 0 else ""
    header = f"{env.indent}class {name(draw, env)}{arglist}:{trailer}"
    inner = env.deeper(draw(st.sampled_from(INDENT_UNITS)), function=False, is_async=False)
    return [*lines, header, *block(draw, inner, max(1, depth - 1), doc=True, class_body=True)]


def import_stmt(draw, env: Env) -> str:
    n = lambda: name(draw, env)  # noqa: E731
    choice = draw(st.integers(0, 6))
    if choice == 0:
        return f"import {n()}.{n()} as {n()}"
    if choice == 1:
        return f"import {n()}, {n()}.{n()}.{n()}"
    if choice == 2:
        return f"from . import {n()}"
    if choice == 3:
        return f"from ..{n()} import {n()} as {n()}"
    if choice == 4:
        return (f"from .{n()}.{n()} import (\n{env.indent}    {n()},  {comment(draw, env)}\n"
                f"{env.indent}    {n()} as {n()},\n{env.indent})")
    if choice == 5:
        return f"from {n()} import {n()} as\\\n{env.indent}  {n()}, {n()}"
    return f"import   {n()}   as   {n()}"


def simple_statement(draw, env: Env, depth: int) -> str:
    choice = draw(st.integers(0, 10))
    inline = draw(st.booleans())
    if choice <= 1:
        return expression(draw, env, depth, inline)
    if choice == 2:
        return f"{target(draw, env)} = {expression(draw, env, depth, inline, allow_bare_lambda=True)}"
    if choice == 3:
        return f"{name(draw, env)}: {name(draw, env)} = {expression(draw, env, depth, inline)}"
    if choice == 4:
        return f"{attribute_chain(draw, env, 1, True)} += {expression(draw, env, depth, inline)}"
    if choice == 5:
        return import_stmt(draw, env)
    if choice == 6:
        return f"{name(draw, env)} = {expression(draw, env, 1)} + \\\n{env.indent}    {expression(draw, env, 1)}"
    if choice == 7 and env.in_function:
        return f"return {expression(draw, env, depth, inline)}"
    if choice == 8:
        return f"del {name(draw, env)}"
    if choice == 9:
        return f"assert {expression(draw, env, depth)}, {string_literal(draw, env, multiline=False)}"
    return "pass"


def statement(draw, env: Env, depth: int) -> list[str]:
    choice = draw(st.integers(0, 14))
    trailer = f"  {comment(draw, env)}" if draw(st.integers(0, 4)) == 0 else ""
    if choice <= 5 or depth <= 0:
        statements = [simple_statement(draw, env, max(depth, 1)) for _ in range(draw(st.integers(1, 2)))]
        return [env.indent + draw(st.sampled_from(["; ", ";"])).join(statements) + trailer]
    if choice == 6:
        return [env.indent + comment(draw, env)]
    if choice <= 8:
        return function_def(draw, env, depth)
    if choice == 9:
        return class_def(draw, env, depth)
    inner = env.deeper(draw(st.sampled_from(INDENT_UNITS)))
    header_expr = expression(draw, env, 1)
    if choice == 10:
        lines = [f"{env.indent}if {header_expr}:{trailer}", *block(draw, inner, depth - 1)]
        if draw(st.booleans()):
            lines += [f"{env.indent}else:", *block(draw, inner, depth - 1)]
        return lines
    if choice == 11:
        prefix = "async " if env.in_async and draw(st.booleans()) else ""
        return [f"{env.indent}{prefix}for {target(draw, env)} in {header_expr}:", *block(draw, inner, depth - 1)]
    if choice == 12:
        prefix = "async " if env.in_async and draw(st.booleans()) else ""
        items = f"{header_expr} as {name(draw, env)}"
        if draw(st.booleans()):
            items += f", {expression(draw, env, 1)} as ({name(draw, env)}, {name(draw, env)})"
        return [f"{env.indent}{prefix}with {items}:", *block(draw, inner, depth - 1)]
    if choice == 13:
        handler = draw(st.sampled_from(["", " E", " (E, F)", " a.b"]))
        bound = f" as {name(draw, env)}" if handler and draw(st.booleans()) else ""
        lines = [f"{env.indent}try:", *block(draw, inner, depth - 1),
                 f"{env.indent}except{handler}{bound}:{trailer}", *block(draw, inner, depth - 1)]
        if draw(st.booleans()):
            lines += [f"{env.indent}finally:", *block(draw, inner, depth - 1)]
        return lines
    n = lambda: name(draw, env)  # noqa: E731
    case_inner = inner.deeper(draw(st.sampled_from(INDENT_UNITS)))
    patterns = [
        f"[{n()}, *{n()}]",
        f"{{'k': {n()}, **{n()}}}",
        f"P({n()}=0) as {n()}",
        f"({n()} | 1) as   {n()}",
        f"{n()}",
    ]
    lines = [f"{env.indent}match {header_expr}:"]
    for pattern in draw(st.lists(st.sampled_from(patterns), min_size=1, max_size=3)):
        lines += [f"{inner.indent}case {pattern}:", *block(draw, case_inner, 0)]
    return lines


@st.composite
def python_module(draw, alphabet: Alphabet = UTF8) -> str:
    """The text of a module that `ast.parse` accepts, with "\\n" line endings."""
    env = Env(alphabet)
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append(comment(draw, env))
    if draw(st.booleans()):
        lines.append(docstring(draw, env))
    for _ in range(draw(st.integers(1, 4))):
        lines.extend(statement(draw, env, MAX_DEPTH))
        if draw(st.integers(0, 3)) == 0:
            lines.append(draw(st.sampled_from(["", "   ", "\t"])))
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        assume(False)
    return text


def with_newlines(draw, text: str, styles: tuple[str, ...]) -> str:
    style = draw(st.sampled_from(styles))
    if style != "mixed":
        return text.replace("\n", style)
    pieces = text.split("\n")
    out = pieces[0]
    for piece in pieces[1:]:
        out += draw(st.sampled_from(["\n", "\r\n", "\r"])) + piece
    return out


@st.composite
def utf8_file(draw) -> bytes:
    """UTF-8 bytes: LF, CRLF, CR or mixed line endings, with or without a BOM."""
    text = with_newlines(draw, draw(python_module(UTF8)), ("\n", "\r\n", "\r", "mixed"))
    raw = text.encode("utf-8")
    if draw(st.booleans()):
        raw = codecs.BOM_UTF8 + raw
    return raw


@st.composite
def latin1_file(draw) -> bytes:
    """latin-1 bytes with a coding cookie on line 1 or 2, LF or CRLF line endings."""
    text = draw(python_module(LATIN1))
    cookie = "# -*- coding: latin-1 -*-\n"
    if draw(st.booleans()):
        cookie = "#!/usr/bin/env python\n" + cookie
    text = with_newlines(draw, cookie + text, ("\n", "\r\n"))
    raw = text.encode("latin-1")
    assume(not raw.isascii())  # make sure the encoding matters
    return raw


# ---------------------------------------------------------------------------------------------------
# The reference: CPython's ast
# ---------------------------------------------------------------------------------------------------

Position = tuple[int, int, int, int]


def position(node: ast.AST) -> Position:
    return (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]


def docstring_node(body: list[ast.stmt]) -> ast.Constant | None:
    if body and isinstance(body[0], ast.Expr):
        value = body[0].value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value
    return None


def ast_nodes_by_entity(tree: ast.Module) -> dict[str, list[ast.AST]]:
    """The ast nodes each extracted entity stands for."""
    nodes: dict[str, list[ast.AST]] = defaultdict(list)
    doc = docstring_node(tree.body)
    if doc is not None:
        nodes["docstring"].append(doc)
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            nodes["class" if isinstance(node, ast.ClassDef) else "function"].append(node)
            nodes["decorator"].extend(node.decorator_list)
            doc = docstring_node(node.body)
            if doc is not None:
                nodes["docstring"].append(doc)
        elif isinstance(node, ast.Lambda):
            nodes["function"].append(node)
        elif isinstance(node, ast.Call):
            nodes["call"].append(node)
            nodes["argument"].extend([*node.args, *node.keywords])
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            nodes["import"].extend(node.names)
        elif isinstance(node, ast.arg):
            nodes["parameter"].append(node)
        elif isinstance(node, (ast.Name, ast.Attribute)):
            nodes["name_or_attribute"].append(node)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            nodes["comprehension"].append(node)
    return nodes


MAPPED_ENTITIES = ("class", "function", "call", "import", "decorator", "parameter", "argument", "docstring")


class Reference:
    """How CPython reads one file: its encoding, its text, its tree, and byte offsets of positions.

    Offsets are computed in text space (independently of the extractor's byte-level line index):
    a position's line is found among the decoded text's lines (split on \\r\\n, \\r, \\n as the
    tokenizer does), its UTF-8 column turned into a character count, and the text before it
    re-encoded in the file's encoding.
    """

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        self.bom = len(codecs.BOM_UTF8) if encoding == "utf-8-sig" else 0
        self.encoding = "utf-8" if encoding == "utf-8-sig" else encoding
        self.text = raw[self.bom :].decode(self.encoding)
        self.tree = ast.parse(raw)
        self.line_starts = [0, *(m.end() for m in re.finditer(r"\r\n|\r|\n", self.text))]

    def offset(self, line: int, col: int) -> int:
        start = self.line_starts[line - 1]
        end = self.line_starts[line] if line < len(self.line_starts) else len(self.text)
        chars = len(self.text[start:end].encode("utf-8")[:col].decode("utf-8"))
        return self.bom + len(self.text[: start + chars].encode(self.encoding))

    def segment(self, bstart: int, bend: int) -> str:
        return self.raw[bstart:bend].decode(self.encoding, errors="backslashreplace")


def extract(raw: bytes) -> dict[str, list[tuple]]:
    return extract_file(FileTask(path=PATH, raw=raw, content_hash=content_hash(raw)))


def as_dicts(rows: dict[str, list[tuple]], entity: str) -> list[dict]:
    return rows_to_table(entity, rows.get(entity, [])).to_pylist()


def row_position(row: dict) -> Position:
    return (row["line"], row["col"], row["end_line"], row["end_col"])


def check_spans(raw: bytes) -> None:
    ref = Reference(raw)
    rows = extract(raw)
    problems: list[str] = []
    assert not rows["diagnostic"], rows["diagnostic"]
    expected = ast_nodes_by_entity(ref.tree)

    # Every node row of every entity: the byte span is the one its (line, col) positions denote.
    # The exception is the module (and its scope), whose span is the whole file, a BOM included:
    # there, (line, col) is (1, 0) and the end position must denote the end of the file.
    for entity in NODE_ENTITIES:
        for row in as_dicts(rows, entity.name):
            bytes_ = (row["bstart"], row["bend"])
            if entity.name == "module" or (entity.name == "scope" and row["scope_kind"] == "module"):
                if (row["line"], row["col"], ref.offset(row["end_line"], row["end_col"])) != (1, 0, len(raw)):
                    problems.append(f"{entity.name} (whole file) positions {row_position(row)} of {len(raw)} bytes")
                if bytes_ != (0, len(raw)):
                    problems.append(f"{entity.name} (whole file) span {bytes_} != (0, {len(raw)})")
                continue
            want = (ref.offset(row["line"], row["col"]), ref.offset(row["end_line"], row["end_col"]))
            if bytes_ != want:
                problems.append(f"{entity.name} {row_position(row)}: bytes {bytes_} != {want}")

    # (b) positions equal ast's, as multisets; (a) the raw slice is ast's source segment.
    for entity in MAPPED_ENTITIES:
        table = as_dicts(rows, entity)
        by_position = {position(node): node for node in expected[entity]}
        want = Counter(position(node) for node in expected[entity])
        got = Counter(row_position(row) for row in table)
        if got != want:
            problems.append(f"{entity}: positions missing {sorted((want - got).elements())}, "
                            f"unexpected {sorted((got - want).elements())}")
        for row in table:
            node = by_position.get(row_position(row))
            if node is None:
                continue
            actual = ref.segment(row["bstart"], row["bend"])
            segment = ast.get_source_segment(ref.text, node)
            if actual != segment:
                problems.append(f"{entity} {row_position(row)}: raw slice {actual!r} != ast segment {segment!r}")

    # Names and attributes: every REFERENCE is an ast Name/Attribute with the same text.
    names = {position(node): node for node in expected["name_or_attribute"]}
    for row in as_dicts(rows, "reference"):
        node = names.get(row_position(row))
        if node is None:
            problems.append(f"reference {row['name']!r} {row_position(row)}: no ast Name/Attribute there")
        elif ref.segment(row["bstart"], row["bend"]) != ast.get_source_segment(ref.text, node):
            problems.append(f"reference {row['name']!r} {row_position(row)}: raw slice != ast segment")

    # Scopes: the module, or a class/def/lambda/comprehension with the same span and text.
    owners = {position(node): node for entity in ("class", "function", "comprehension") for node in expected[entity]}
    for row in as_dicts(rows, "scope"):
        if row["scope_kind"] == "module":
            continue  # checked above
        node = owners.get(row_position(row))
        if node is None or ref.segment(row["bstart"], row["bend"]) != ast.get_source_segment(ref.text, node):
            problems.append(f"scope {row['qualname']} {row_position(row)}: no matching ast definition")

    # Bindings: the slice is the bound identifier as written; NFKC of it is the bound name.
    for row in as_dicts(rows, "binding"):
        written = ref.segment(row["bstart"], row["bend"])
        if not written.isidentifier() or unicodedata.normalize("NFKC", written) != row["name"]:
            problems.append(f"binding {row['name']!r} ({row['binding_kind']}) {row_position(row)}: slice {written!r}")

    # The module: one row spanning the whole file.
    modules = as_dicts(rows, "module")
    if len(modules) != 1 or (modules[0]["bstart"], modules[0]["bend"]) != (0, len(raw)):
        problems.append(f"module rows {[(m['bstart'], m['bend']) for m in modules]} != [(0, {len(raw)})]")

    assert not problems, "\n".join([f"source: {raw!r}", *problems])


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------

ID_PATTERN = re.compile(r"[a-z]+:[0-9a-f]{32}")


@SETTINGS
@given(utf8_file())
def test_spans_match_ast_utf8(raw: bytes) -> None:
    check_spans(raw)


@SETTINGS
@given(latin1_file())
def test_spans_match_ast_latin1_cookie(raw: bytes) -> None:
    assert Reference(raw).encoding in ("iso-8859-1", "latin-1")
    check_spans(raw)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(st.one_of(utf8_file(), latin1_file()))
def test_ids_deterministic_unique_and_well_formed(raw: bytes) -> None:
    first, second = extract(raw), extract(raw)
    assert first == second

    seen: dict[str, str] = {}
    for entity in NODE_ENTITIES:
        for row in as_dicts(first, entity.name):
            node_id = row["id"]
            assert node_id.startswith(entity.id_prefix + ":"), (entity.name, node_id)
            assert ID_PATTERN.fullmatch(node_id), (entity.name, node_id)
            assert node_id not in seen, f"{node_id} is both a {seen[node_id]} and a {entity.name}"
            seen[node_id] = entity.name
            assert ID_PATTERN.fullmatch(row["file_id"]), row["file_id"]
            for column in ENTITIES_BY_NAME[entity.name].columns:
                if column.references and row[column.name] is not None:
                    assert ID_PATTERN.fullmatch(row[column.name]), (entity.name, column.name, row[column.name])

    modules = as_dicts(first, "module")
    assert len(modules) == 1
    assert (modules[0]["bstart"], modules[0]["bend"]) == (0, len(raw))


# Hand-written cases the generator covers only by chance; each must satisfy the same checks.
EDGE_CASES = {
    "bom_crlf": codecs.BOM_UTF8
    + "'''é\r\n漢'''\r\nclass C(B, metaclass=M):\r\n    def m(self, *a, **k): f(*a, **k)\r\n".encode(),
    "cr_only": b"import a.b as c\rx = [y for y in c if (z := y)]\rg = lambda q, /, r=1: lambda: q\r",
    "latin1_cookie": "# -*- coding: latin-1 -*-\nµs = 'é'  # ß\ndef café(ªb=1): return ªb\n".encode("latin-1"),
    "except_as_in_trailing_comment": b"try:\n    pass\nexcept E as x:  # as a\n    pass\n",
    "except_as_in_comment_line": b"try:\n    pass\nexcept E as x:\n    # treat as fatal\n    pass\n",
    "nfkc_names": "from . import \ufb01le\nimport \u00b5s.x as \u210cx\nfor \ufb01le in x: pass\n".encode(),
    "match_captures": b"match v:\n    case {'k': a, **rest}: pass\n    case [b, *others] | (c as d): pass\n",
}


def test_edge_cases() -> None:
    failures = []
    for label, raw in EDGE_CASES.items():
        try:
            check_spans(raw)
        except AssertionError as err:
            failures.append(f"[{label}] {err}")
    assert not failures, "\n\n".join(failures)
