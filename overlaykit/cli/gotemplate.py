"""A subset of Go's text/template, for the --format and -f options Docker users type.

Docker formats `ps`, `images`, `inspect` and `version` with Go templates; scripts written for
it (`{{.State.Pid}}`, `{{json .Config}}`, `{{range .Mounts}}{{.Source}}{{end}}`,
`{{index .Config.Labels "k"}}`) should give the same text here. This module parses and runs
that subset on plain Python data (dicts, lists, strings, numbers, None, and callables for
Docker's methods such as `.Label "k"`):

- text with `{{ }}` actions, `{{-`/`-}}` trimming, `{{/* comments */}}`;
- fields (`.A.B`), `.`, `$`, variables (`$x := ...`, `range $i, $e := ...`), literals
  (strings, raw strings, numbers, true, false, nil), parentheses, pipes (`x | f`);
- `if`/`else if`/`else`, `range` (with `else`), `with` (with `else`), `end`;
- Go's functions and, or, not, len, index, slice, eq, ne, lt, le, gt, ge, print, printf,
  println, and Docker's json, join, split, title, lower, upper, pad, truncate.

What it does not support (`template`, `define`, `block`, `break`, `continue`, `html`, `js`,
`urlquery`, `call`) is refused at parse time with one line naming it, never half-run.

The values and how they print are cli/govalues.py's, the functions cli/gofuncs.py's.
"""

from __future__ import annotations

import json as _json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from overlaykit.cli.gofuncs import FUNCTIONS
from overlaykit.cli.govalues import MISSING, Struct, TemplateError, format_value, go_type, truth

_UNSUPPORTED = {"template", "define", "block", "break", "continue"}
_UNSUPPORTED_FUNCS = {"html", "js", "urlquery", "call"}


# ---------------------------------------------------------------- the tree

@dataclass
class _Field:
    """A field chain on the dot: `.State.Running`."""
    chain: tuple[str, ...]           # .A.B -> ("A", "B"); "." alone -> ()


@dataclass
class _Var:
    """A variable, with the fields read from it: `$c.Name`."""
    name: str                        # "$" or "$x"
    chain: tuple[str, ...] = ()


@dataclass
class _Ident:
    """A function named in a command: `json`, `index`, `printf`."""
    name: str                        # a function name


@dataclass
class _Literal:
    """A constant operand: a string, a number, a bool or nil."""
    value: Any


@dataclass
class _Sub:
    """A parenthesised pipeline used as an operand, with fields read from its value."""
    pipe: "_Pipe"
    chain: tuple[str, ...] = ()


@dataclass
class _Pipe:
    """A pipeline: its commands, joined by |, and the variables it declares or sets."""
    decl: tuple[str, ...]            # variables declared: ("$x",) or ("$i", "$e")
    commands: list[list[Any]]        # each command: its operands, the first may be a function
    assign: bool = False             # `$x = ...` (an existing variable) rather than `:=`


@dataclass
class _Text:
    """Template text printed as it is."""
    text: str


@dataclass
class _Action:
    """`{{pipeline}}`: its value printed."""
    pipe: _Pipe


@dataclass
class _Branch:
    """`{{if}}`, `{{range}}` or `{{with}}`, with its body and its else."""
    kind: str                        # if, range, with
    pipe: _Pipe
    body: list = field(default_factory=list)
    otherwise: list = field(default_factory=list)


# ---------------------------------------------------------------- lexing

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[|(),])
""", re.VERBOSE)


def _split_actions(text: str) -> list[tuple[str, str]]:
    """("text", ...) and ("action", ...) pieces, with {{- and -}} trimming applied."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            pieces.append(("text", text[pos:]))
            return pieces
        before = text[pos:start]
        inner_start = start + 2
        if text.startswith("- ", inner_start) or text.startswith("-\t", inner_start) \
                or text.startswith("-\n", inner_start):
            before = before.rstrip(" \t\r\n")
            inner_start += 1
        pieces.append(("text", before))
        end = _action_end(text, inner_start)
        inner = text[inner_start:end]
        pos = end + 2
        if inner.endswith(" -") or inner.endswith("\t-") or inner.endswith("\n-"):
            inner = inner[:-1]
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
        pieces.append(("action", inner))


def _action_end(text: str, i: int) -> int:
    """Where the action's }} is, skipping over quoted strings and comments."""
    if text[i:].lstrip(" ").startswith("/*"):
        close = text.find("*/", i)
        if close < 0:
            raise TemplateError("unclosed comment")
        i = close + 2
    quote = None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote != "`":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"`'":
            quote = c
        elif text.startswith("}}", i):
            return i
        i += 1
    raise TemplateError("unclosed action")


def _tokens(inner: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    while pos < len(inner):
        m = _TOKEN.match(inner, pos)
        if not m:
            raise TemplateError(f"unexpected {inner[pos]!r} in {{{{{inner.strip()}}}}}")
        pos = m.end()
        if m.lastgroup != "space":
            found.append((m.lastgroup, m.group()))
    return found


# ---------------------------------------------------------------- parsing

def parse(text: str) -> "Template":
    """Parse text; TemplateError names the first thing that is wrong or not supported."""
    items: list = []
    stack: list[tuple[_Branch, list]] = []   # open branches and the list they will go into
    current = items
    for kind, piece in _split_actions(text):
        if kind == "text":
            if piece:
                current.append(_Text(piece))
            continue
        stripped = piece.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError("comment must end the action")
            continue
        toks = _tokens(piece)
        if not toks:
            raise TemplateError("missing value for command")
        head = toks[0][1] if toks[0][0] == "ident" else None
        if head in _UNSUPPORTED:
            raise TemplateError(f"{{{{{head}}}}} is not supported by overlaykit's Go templates")
        if head in ("if", "range", "with"):
            branch = _Branch(head, _Parser(toks[1:]).pipeline(allow_decl=True))
            current.append(branch)
            stack.append((branch, current))
            current = branch.body
        elif head == "else":
            if not stack or current is stack[-1][0].otherwise:
                raise TemplateError("unexpected {{else}}")
            branch = stack[-1][0]
            current = branch.otherwise
            if len(toks) > 1:  # else if / else with: a nested branch that shares our {{end}}
                nested_kind = toks[1][1]
                if toks[1][0] != "ident" or nested_kind not in ("if", "with") or nested_kind != branch.kind:
                    raise TemplateError(f"unexpected {' '.join(t[1] for t in toks)!r}")
                nested = _Branch(nested_kind, _Parser(toks[2:]).pipeline(allow_decl=True))
                current.append(nested)
                stack.append((nested, None))  # closed together with its parent
                current = nested.body
        elif head == "end":
            if len(toks) > 1 or not stack:
                raise TemplateError("unexpected {{end}}")
            while True:
                branch, outer = stack.pop()
                if outer is not None:
                    current = outer
                    break
        else:
            current.append(_Action(_Parser(toks).pipeline(allow_decl=True)))
    if stack:
        raise TemplateError(f"unexpected EOF: {{{{{stack[-1][0].kind}}}}} has no {{{{end}}}}")
    return Template(items)


class _Parser:
    def __init__(self, toks: list[tuple[str, str]]):
        self.toks, self.pos = toks, 0

    def _peek(self) -> tuple[str, str] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def pipeline(self, allow_decl: bool = False, closing: str | None = None) -> _Pipe:
        decl: tuple[str, ...] = ()
        assign = False
        if allow_decl:
            decl, assign = self._declaration()
        commands: list[list[Any]] = []
        operands: list[Any] = []
        while True:
            tok = self._peek()
            if tok is None or (closing and tok == ("punct", closing)):
                break
            self.pos += 1
            kind, value = tok
            if (kind, value) == ("punct", "|"):
                if not operands:
                    raise TemplateError("missing command before |")
                commands.append(operands)
                operands = []
            elif (kind, value) == ("punct", "("):
                sub = self.pipeline(allow_decl=False, closing=")")
                if self._peek() != ("punct", ")"):
                    raise TemplateError("unclosed left paren")
                self.pos += 1
                chain: tuple[str, ...] = ()
                nxt = self._peek()
                if nxt and nxt[0] == "field" and nxt[1] != ".":
                    chain = tuple(nxt[1].split(".")[1:])
                    self.pos += 1
                operands.append(_Sub(sub, chain))
            else:
                operands.append(self._operand(kind, value))
        if operands:
            commands.append(operands)
        if not commands:
            raise TemplateError("missing value for command")
        for command in commands[1:]:
            if isinstance(command[0], _Literal):
                raise TemplateError("non executable command in pipeline stage")
        return _Pipe(decl, commands, assign)

    def _declaration(self) -> tuple[tuple[str, ...], bool]:
        toks = self.toks
        if len(toks) >= 2 and toks[0][0] == "var" and toks[1][0] in ("declare", "assign") \
                and "." not in toks[0][1]:
            self.pos = 2
            return (toks[0][1],), toks[1][0] == "assign"
        if len(toks) >= 4 and toks[0][0] == "var" and toks[1] == ("punct", ",") \
                and toks[2][0] == "var" and toks[3][0] in ("declare", "assign"):
            self.pos = 4
            return (toks[0][1], toks[2][1]), toks[3][0] == "assign"
        return (), False

    def _operand(self, kind: str, value: str) -> Any:
        if kind == "field":
            return _Field(() if value == "." else tuple(value.split(".")[1:]))
        if kind == "var":
            name, *chain = value.split(".")
            return _Var(name, tuple(chain))
        if kind == "string":
            return _Literal(_json.loads(value) if "\\x" not in value else _unquote(value))
        if kind == "raw":
            return _Literal(value[1:-1])
        if kind == "char":
            return _Literal(ord(_unquote('"' + value[1:-1] + '"')))
        if kind == "number":
            return _Literal(_number(value))
        if kind == "ident":
            if value in ("true", "false"):
                return _Literal(value == "true")
            if value == "nil":
                return _Literal(None)
            if value in _UNSUPPORTED_FUNCS:
                raise TemplateError(f'function "{value}" is not supported by overlaykit\'s Go templates')
            if value in ("if", "range", "with", "else", "end") or value in _UNSUPPORTED:
                raise TemplateError(f"unexpected keyword {value!r} in command")
            if value not in FUNCTIONS:
                raise TemplateError(f'function "{value}" not defined')
            return _Ident(value)
        raise TemplateError(f"unexpected {value!r} in command")


def _unquote(quoted: str) -> str:
    return quoted[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")


def _number(text: str) -> int | float:
    text = text.replace("_", "")
    try:
        return int(text, 0)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise TemplateError(f"bad number syntax: {text!r}") from None


# ---------------------------------------------------------------- running

class Template:
    """A parsed template; execute() runs it on one value (Go's dot)."""

    def __init__(self, items: list):
        self._items = items

    def execute(self, data: Any, functions: dict[str, Callable[..., Any]] | None = None) -> str:
        """The text for data; functions replaces the function table (names parse() knew)."""
        out: list[str] = []
        _run(self._items, data, _Scopes([{"$": data}], functions or FUNCTIONS), out)
        return "".join(out)


class _Scopes(list):
    """The variables, innermost scope last, and the function table of this execution."""

    def __init__(self, scopes: list[dict], functions: dict[str, Callable[..., Any]]):
        super().__init__(scopes)
        self.functions = functions


def render(text: str, data: Any) -> str:
    """parse(text).execute(data)."""
    return parse(text).execute(data)


def _run(items: list, dot: Any, scopes: list[dict], out: list[str]) -> None:
    for item in items:
        if isinstance(item, _Text):
            out.append(item.text)
        elif isinstance(item, _Action):
            value = _pipe(item.pipe, dot, scopes)
            if not item.pipe.decl:
                out.append(format_value(value))
        else:
            _branch(item, dot, scopes, out)


def _branch(branch: _Branch, dot: Any, scopes: list[dict], out: list[str]) -> None:
    scopes.append({})
    try:
        if branch.kind == "range":
            _range(branch, dot, scopes, out)
            return
        value = _pipe(branch.pipe, dot, scopes)
        if truth(value):
            _run(branch.body, value if branch.kind == "with" else dot, scopes, out)
        else:
            _run(branch.otherwise, dot, scopes, out)
    finally:
        scopes.pop()


def _range(branch: _Branch, dot: Any, scopes: list[dict], out: list[str]) -> None:
    pipe = branch.pipe
    value = _pipe(_Pipe((), pipe.commands), dot, scopes)
    if isinstance(value, dict):
        pairs = [(k, value[k]) for k in sorted(value)]
    elif isinstance(value, (list, tuple)):
        pairs = list(enumerate(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        pairs = [(i, i) for i in range(value)]
    elif value is None or value is MISSING:
        pairs = []
    else:
        raise TemplateError(f"range can't iterate over {format_value(value)}")
    if not pairs:
        _run(branch.otherwise, dot, scopes, out)
        return
    for key, element in pairs:
        if len(pipe.decl) == 1:
            scopes[-1][pipe.decl[0]] = element
        elif len(pipe.decl) == 2:
            scopes[-1][pipe.decl[0]], scopes[-1][pipe.decl[1]] = key, element
        _run(branch.body, element, scopes, out)


def _pipe(pipe: _Pipe, dot: Any, scopes: list[dict]) -> Any:
    value: Any = _NOTHING
    for command in pipe.commands:
        value = _command(command, dot, scopes, value)
    if pipe.decl:
        if len(pipe.decl) > 1:
            raise TemplateError("too many declarations in command")
        name = pipe.decl[0]
        if pipe.assign:
            for scope in reversed(scopes):
                if name in scope:
                    scope[name] = value
                    break
            else:
                raise TemplateError(f"undefined variable: {name}")
        else:
            scopes[-1][name] = value
    return value


_NOTHING = object()  # no value piped in yet


def _command(command: list, dot: Any, scopes: list[dict], piped: Any) -> Any:
    head, args = command[0], command[1:]
    final = [] if piped is _NOTHING else [piped]
    if isinstance(head, _Ident):
        values = [_operand(a, dot, scopes) for a in args] + final
        return scopes.functions[head.name](*values)
    if isinstance(head, (_Field, _Var, _Sub)) and (args or final):
        target = _operand(head, dot, scopes, call=False)
        if callable(target):
            return target(*[_operand(a, dot, scopes) for a in args], *final)
        raise TemplateError(f"can't give argument to non-function {_describe(head)}")
    if args or final:
        raise TemplateError(f"can't give argument to non-function {_describe(head)}")
    return _operand(head, dot, scopes)


def _operand(node: Any, dot: Any, scopes: list[dict], call: bool = True) -> Any:
    if isinstance(node, _Literal):
        return node.value
    if isinstance(node, _Field):
        return _walk(dot, node.chain, call, node)
    if isinstance(node, _Var):
        for scope in reversed(scopes):
            if node.name in scope:
                return _walk(scope[node.name], node.chain, call, node)
        raise TemplateError(f"undefined variable: {node.name}")
    if isinstance(node, _Sub):
        return _walk(_pipe(node.pipe, dot, scopes), node.chain, call, node)
    if isinstance(node, _Ident):
        return scopes.functions[node.name]()
    raise TemplateError(f"cannot evaluate {node!r}")


def _walk(value: Any, chain: tuple[str, ...], call: bool, node: Any) -> Any:
    for i, name in enumerate(chain):
        value = _field(value, name, node)
        if callable(value) and (call or i < len(chain) - 1):
            value = value()
    return value


def _field(value: Any, name: str, node: Any) -> Any:
    if isinstance(value, Struct):
        if name not in value and value.zero is not None:
            return value.zero(name)
        if name not in value:
            raise TemplateError(f"can't evaluate field {name} in type {value.type_name}")
        return value[name]
    if isinstance(value, dict):
        return value[name] if name in value else MISSING
    if value is None or value is MISSING:
        return MISSING
    raise TemplateError(f"can't evaluate field {name} in type {go_type(value)}")


def _describe(node: Any) -> str:
    if isinstance(node, _Field):
        return "." + ".".join(node.chain)
    if isinstance(node, _Var):
        return ".".join((node.name, *node.chain))
    if isinstance(node, _Literal):
        return format_value(node.value)
    return "(...)"
