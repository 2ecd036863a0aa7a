"""A small Go-template + sprig evaluator: enough of Helm to render this chart without `helm`.

Supports what `helm/templates` uses: text and actions with `{{-`/`-}}` trimming, comments,
`define`/`include`, `if`/`else`/`end`, `range` (lists and maps, with `$k`/`$k, $v`), `with`,
variables (`$x := ...`, `$`), pipelines, and the functions in FUNCS. Anything else raises, so a
template using a construct this does not know fails the test instead of passing silently.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.S)


class TemplateError(Exception):
    pass


@dataclass
class Node:
    kind: str  # text, action, if, range, with, define
    text: str = ""
    children: list[Any] = field(default_factory=list)
    else_children: list[Any] = field(default_factory=list)


def _tokens(src: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2)))
        pos = m.end()
        if m.group(3):
            rest = src[pos:]
            pos += len(rest) - len(rest.lstrip())
    out.append(("text", src[pos:]))
    return out


def parse(src: str) -> tuple[list[Node], dict[str, list[Node]]]:
    """The node tree of `src` and the templates it defines."""
    defines: dict[str, list[Node]] = {}
    root: list[Node] = []
    stack: list[tuple[Node | None, list[Node]]] = [(None, root)]
    for kind, value in _tokens(src):
        body = stack[-1][1]
        if kind == "text":
            if value:
                body.append(Node("text", value))
            continue
        if value.startswith("/*"):
            continue
        word = value.split(None, 1)[0] if value else ""
        rest = value[len(word) :].strip()
        if word in {"if", "range", "with", "define"}:
            node = Node(word, rest)
            body.append(node)
            stack.append((node, node.children))
        elif word == "else":
            node = stack[-1][0]
            if node is None or rest:
                raise TemplateError(f"unsupported else: {value!r}")
            stack[-1] = (node, node.else_children)
        elif word == "end":
            node, _ = stack.pop()
            if node is None:
                raise TemplateError("end without block")
            if node.kind == "define":
                body_nodes = stack[-1][1]
                body_nodes.remove(node)
                defines[_unquote(node.text)] = node.children
        else:
            body.append(Node("action", value))
    if len(stack) != 1:
        raise TemplateError("unclosed block")
    return root, defines


def _unquote(s: str) -> str:
    return shlex.split(s)[0]


def _truthy(v: Any) -> bool:
    return v not in (None, False, 0, "") and not (isinstance(v, list | dict) and not v)


def _str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dict | list):
        raise TemplateError(f"printing a collection: {v!r}")
    return str(v)


def _indent(n: int, s: str) -> str:
    pad = " " * n
    return pad + s.replace("\n", "\n" + pad)


def _to_yaml(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def _required(msg: str, v: Any) -> Any:
    if not _truthy(v):
        raise TemplateError(msg)
    return v


def _go_printf(fmt: str, *args: Any) -> str:
    return fmt % tuple(args)


FUNCS: dict[str, Any] = {
    "default": lambda d, *v: v[0] if v and _truthy(v[0]) else d,
    "trunc": lambda n, s: s[:n],
    "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
    "contains": lambda sub, s: sub in s,
    "printf": _go_printf,
    "print": lambda *a: "".join(_str(x) for x in a),
    "replace": lambda old, new, s: s.replace(old, new),
    "quote": lambda *a: " ".join(
        '"' + _str(x).replace('"', '\\"') + '"' for x in a if x is not None
    ),
    "toYaml": _to_yaml,
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "indent": _indent,
    "sha256sum": lambda s: hashlib.sha256(s.encode()).hexdigest(),
    "required": _required,
    "int": lambda v: int(v),
    "list": lambda *a: list(a),
    "ternary": lambda a, b, c: a if _truthy(c) else b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "not": lambda v: not _truthy(v),
    "and": lambda *a: next((x for x in a if not _truthy(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truthy(x)), a[-1]),
}


class Renderer:
    def __init__(self, defines: dict[str, list[Node]], files: dict[str, str]) -> None:
        self.defines = defines
        self.files = files  # "chart/templates/x.yaml" -> source, for include of a file

    def render(self, nodes: list[Node], dot: Any, root: Any) -> str:
        return self._block(nodes, dot, [{"$": root}])

    def _block(self, nodes: list[Node], dot: Any, scopes: list[dict[str, Any]]) -> str:
        scopes = [*scopes, {}]
        out = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "action":
                m = re.match(r"^(\$\w+)\s*:?=\s*(.+)$", node.text, re.S)
                if m:
                    scopes[-1][m.group(1)] = self._pipeline(m.group(2), dot, scopes)
                else:
                    out.append(_str(self._pipeline(node.text, dot, scopes)))
            elif node.kind == "if":
                cond = self._pipeline(node.text, dot, scopes)
                branch = node.children if _truthy(cond) else node.else_children
                out.append(self._block(branch, dot, scopes))
            elif node.kind == "with":
                value = self._pipeline(node.text, dot, scopes)
                if _truthy(value):
                    out.append(self._block(node.children, value, scopes))
                else:
                    out.append(self._block(node.else_children, dot, scopes))
            elif node.kind == "range":
                out.append(self._range(node, dot, scopes))
            else:
                raise TemplateError(f"unexpected {node.kind}")
        return "".join(out)

    def _range(self, node: Node, dot: Any, scopes: list[dict[str, Any]]) -> str:
        m = re.match(r"^(\$\w+)(?:\s*,\s*(\$\w+))?\s*:=\s*(.+)$", node.text, re.S)
        expr = m.group(3) if m else node.text
        seq = self._pipeline(expr, dot, scopes)
        items = sorted(seq.items()) if isinstance(seq, dict) else list(enumerate(seq or []))
        out = []
        for key, value in items:
            scope: dict[str, Any] = {}
            if m and m.group(2):
                scope[m.group(1)], scope[m.group(2)] = key, value
            elif m:
                scope[m.group(1)] = value
            out.append(self._block(node.children, value, [*scopes, scope]))
        if not items:
            out.append(self._block(node.else_children, dot, scopes))
        return "".join(out)

    # --- expressions ---------------------------------------------------------------------

    def _pipeline(self, text: str, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        value: Any = _NOTHING
        for command in _split(text, "|"):
            args = _args(command)
            value = self._command(args, dot, scopes, value)
        return value

    def _command(self, args: list[str], dot: Any, scopes: list[dict[str, Any]], piped: Any) -> Any:
        head, rest = args[0], args[1:]
        if head in FUNCS or head == "include":
            values = [self._operand(a, dot, scopes) for a in rest]
            if piped is not _NOTHING:
                values.append(piped)
            if head == "include":
                return self._include(*values)
            return FUNCS[head](*values)
        if rest or piped is not _NOTHING:
            raise TemplateError(f"unknown function {head!r}")
        return self._operand(head, dot, scopes)

    def _include(self, name: str, ctx: Any) -> str:
        if name in self.defines:
            return self.render(self.defines[name], ctx, ctx)
        if name in self.files:
            nodes, _ = parse(self.files[name])
            return self.render(nodes, ctx, ctx)
        raise TemplateError(f"include of unknown template {name!r}")

    def _operand(self, token: str, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        if token.startswith("("):
            return self._pipeline(token[1:-1], dot, scopes)
        if token.startswith('"'):
            return _unquote(token)
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if token in {"true", "false"}:
            return token == "true"
        if token == ".":
            return dot
        if token.startswith("$"):
            name, _, path = token.partition(".")
            for scope in reversed(scopes):
                if name in scope:
                    return _path(scope[name], path)
            raise TemplateError(f"undefined variable {name}")
        if token.startswith("."):
            return _path(dot, token[1:])
        raise TemplateError(f"unknown operand {token!r}")


_NOTHING = object()


def _path(value: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(value, dict):
            raise TemplateError(f"field {part} of a non-map {value!r}")
        value = value.get(part)
    return value


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside quotes and parentheses."""
    parts, depth, quote, cur = [], 0, False, ""
    for ch in text:
        if ch == '"' and not cur.endswith("\\"):
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quote:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def _args(command: str) -> list[str]:
    """Words of a command: quoted strings and parenthesised sub-pipelines stay whole."""
    args, depth, quote, cur = [], 0, False, ""
    for ch in command:
        if ch == '"' and not cur.endswith("\\"):
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if ch.isspace() and depth == 0 and not quote:
            if cur:
                args.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        args.append(cur)
    return args


def render_chart(chart_dir: Any, values: dict[str, Any], release: str = "rel") -> dict[str, str]:
    """Render every template of the chart: {template file name: output}."""
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    name = meta["name"]
    files = {
        f"{name}/templates/{p.name}": p.read_text()
        for p in sorted((chart_dir / "templates").iterdir())
        if p.is_file()
    }
    defines: dict[str, list[Node]] = {}
    for source in files.values():
        defines.update(parse(source)[1])
    renderer = Renderer(defines, files)
    root = {
        "Values": values,
        "Chart": {"Name": name, "Version": meta["version"], "AppVersion": meta["appVersion"]},
        "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
        "Template": {"BasePath": f"{name}/templates"},
    }
    out = {}
    for path, source in files.items():
        if path.endswith(".tpl"):
            continue
        nodes, _ = parse(source)
        out[path.rsplit("/", 1)[1]] = renderer.render(nodes, root, root)
    return out
