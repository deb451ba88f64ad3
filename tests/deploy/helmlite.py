"""helmlite: render this repository's Helm chart (deploy/helm/wmfm-xapp) without helm.

Why: neither helm nor Go is available where the tests run, yet the chart must be checked: its
objects against the Kubernetes schemas, its configuration against the app's own loader. This is
a strict renderer of the subset of Helm 3 / Go text/template that the chart uses. Anything
outside that subset raises TemplateError naming the construct: it never guesses.

The subset:
- actions `{{ }}`, with `{{- ` / ` -}}` trimming all adjacent whitespace (newlines included) as
  Go does; comments `{{/* */}}`;
- operands: `.`, fields `.A.b` (a missing map key is nil; a field of nil is an error, as in
  Helm), `$`, `$var` (and its fields), string, raw string, int, float, bool and nil literals,
  `( pipeline )`; pipelines `x | f a b`; `$v := pipeline` and `$v = pipeline`;
- `if / else if / else / end`, `with / else / end`, `range [$v :=] / [$k, $v :=] ... else / end`
  over lists and maps (maps in key order), `define`, `template`, `include`;
- the functions in FUNCS: the Go builtins and the Sprig/Helm ones the chart calls;
- `.Values` (values.yaml deep-merged with overrides as `-f` does, a null override deleting the
  key), `.Release`, `.Chart`, `.Template.BasePath`, `.Files.Get` (follows symlinks, as helm does).
Values-file numbers are float64 as in Helm: `gt .Values.n 1` fails ("incompatible types") and
needs `int`; printing follows Go's %v (3 -> "3", 1000000 -> "1e+06"). Printing nil is refused
(helm would write an empty string, which hides a misspelt value). Rendered manifests are split
on `---` and loaded with a YAML loader that rejects duplicate keys.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import re
from decimal import Decimal
from pathlib import Path

import yaml


class TemplateError(Exception):
    """A template the renderer refuses: a syntax error, an unsupported construct, a failed call."""


_TOKEN = re.compile(r"""(?P<close>\s+-\}\}|\}\})|(?P<ws>\s+)|(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)
    |(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])|(?P<decl>:=)|(?P<assign>=)|(?P<comma>,)|(?P<pipe>\|)
    |(?P<lp>\()|(?P<rp>\))|(?P<var>\$\w*(?:\.\w+)*)|(?P<field>(?:\.\w+)+|\.)|(?P<ident>[A-Za-z_]\w*)""", re.X)
_COMMENT = re.compile(r"/\*.*?\*/(\s+-)?\}\}", re.S)
_WS = " \t\r\n"
_NONE = object()                                    # "no piped value"
_LITERALS = {"true": True, "false": False, "nil": None}


def _lex(text: str, name: str) -> list:
    """Text -> [("text", s) | ("act", tokens)], comments dropped, trim markers applied."""
    items, pos, trim_next = [], 0, False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip(_WS)
        if start < 0:
            items.append(("text", chunk))
            return items
        i = start + 2
        if text[i:i + 1] == "-" and text[i + 1:i + 2] in tuple(_WS):
            chunk, i = chunk.rstrip(_WS), i + 2
            while text[i:i + 1] in tuple(_WS) and i < len(text):
                i += 1
        items.append(("text", chunk))
        if text.startswith("/*", i):
            m = _COMMENT.match(text, i)
            if not m:
                raise TemplateError(f"{name}: unclosed comment at offset {start}")
            pos, trim_next = m.end(), bool(m.group(1))
            continue
        toks, prev = [], None
        while True:
            m = _TOKEN.match(text, i)
            if not m:
                raise TemplateError(f"{name}: unsupported syntax at offset {i}: {text[i:i + 20]!r}")
            kind, val, i = m.lastgroup, m.group(), m.end()
            if kind == "close":
                trim_next = val != "}}"
                break
            if kind == "field" and prev == "rp":
                raise TemplateError(f"{name}: field access on a parenthesized pipeline ({val}): use a variable")
            if kind == "ident" and val in _LITERALS:
                kind, val = "lit", _LITERALS[val]
            elif kind in ("str", "raw"):
                kind, val = "lit", ast.literal_eval(val) if kind == "str" else val[1:-1]
            elif kind == "num":
                kind, val = "lit", float(val) if re.search(r"[.eE]", val) else int(val)
            if kind != "ws":
                toks.append((kind, val))
            prev = kind
        items.append(("act", toks))
        pos = i


class _Parser:
    """Items -> a tree: ("text", s), ("action", pipe), ("if", [(pipe, body)], else),
    ("with"|"range", [(pipe, body)], else), ("template", name, pipe); defines collected aside.
    A pipe is (declared variables, ":=" | "=" | None, commands); a command, a list of operands."""

    def __init__(self, items, name, defines):
        self.items, self.i, self.name, self.defines = items, 0, name, defines

    def fail(self, what):
        raise TemplateError(f"{self.name}: {what}")

    def block(self, top=False):
        nodes = []
        while self.i < len(self.items):
            kind, val = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(("text", val))
                continue
            if not val:
                self.fail("empty action {{ }}")
            kw = val[0][1] if val[0][0] == "ident" else None
            if kw in ("end", "else"):
                if top:
                    self.fail(f"unexpected {{{{{kw}}}}}")
                return nodes, (kw, val[1:])
            if kw in ("if", "with", "range"):
                nodes.append(self.control(kw, val[1:]))
            elif kw in ("define", "template"):
                if len(val) < 2 or val[1][0] != "lit" or not isinstance(val[1][1], str):
                    self.fail(f"{kw} needs a quoted name")
                if kw == "template":
                    nodes.append(("template", val[1][1], self.pipe(val[2:]) if val[2:] else None))
                    continue
                if not top or len(val) > 2:
                    self.fail("define: only at the top level, with a name only")
                body, term = self.block()
                if term[0] != "end" or term[1]:
                    self.fail(f"define {val[1][1]!r}: {{{{{term[0]}}}}} where {{{{end}}}} was expected")
                self.defines[val[1][1]] = body
            elif kw in ("block", "break", "continue"):
                self.fail(f"{{{{{kw}}}}} is not supported by helmlite")
            else:
                nodes.append(("action", self.pipe(val)))
        if not top:
            self.fail("missing {{end}}")
        return nodes, None

    def control(self, kw, toks):
        pipe, otherwise = self.pipe(toks), None
        body, term = self.block()
        branches = [(pipe, body)]
        while term[0] == "else":
            if term[1][:1] == [("ident", "if")] and kw == "if":
                pipe = self.pipe(term[1][1:])
                body, term = self.block()
                branches.append((pipe, body))
            elif term[1]:
                self.fail(f"{{{{else {term[1][0][1]} ...}}}} is not supported in {kw}")
            else:
                otherwise, term = self.block()
                if term[0] != "end":
                    self.fail(f"{{{{else}}}} after {{{{else}}}} in {kw}")
        if term[1]:
            self.fail("{{end}} takes no arguments")
        if kw != "if" and len(branches) > 1:
            self.fail(f"else-if in {kw}")
        return (kw, branches, otherwise)

    def pipe(self, toks):
        names, j = [], 0
        while j < len(toks) and toks[j][0] == "var" and "." not in toks[j][1]:
            names.append(toks[j][1])
            j += 1
            if j < len(toks) and toks[j][0] == "comma":
                j += 1
                continue
            break
        if names and j < len(toks) and toks[j][0] in ("decl", "assign"):
            names, op, j = names, toks[j][1], j + 1
        else:
            names, op, j = [], None, 0
        cmds, j = self.commands(toks, j)
        if j != len(toks):
            self.fail(f"unexpected {toks[j][1]!r} in a pipeline")
        return (names, op, cmds)

    def commands(self, toks, j):
        cmds = []
        while True:
            cmd = []
            while j < len(toks) and toks[j][0] not in ("pipe", "rp"):
                kind, val = toks[j]
                if kind == "lp":
                    sub, j = self.commands(toks, j + 1)
                    if j >= len(toks) or toks[j][0] != "rp":
                        self.fail("unclosed (")
                    cmd.append(("pipe", ([], None, sub)))
                elif kind == "lit":
                    cmd.append(("lit", val))
                elif kind in ("var", "field"):
                    base, _, chain = val.partition(".") if kind == "var" else ("", "", val[1:])
                    cmd.append(("field", base or None, chain.split(".") if chain else []))
                elif kind == "ident":
                    cmd.append(("fn", val))
                else:
                    self.fail(f"unexpected {val!r}")
                j += 1
            if not cmd:
                self.fail("empty command in a pipeline")
            cmds.append(cmd)
            if j < len(toks) and toks[j][0] == "pipe":
                j += 1
                continue
            return cmds, j


def _kind(v):
    if v is None:
        return "invalid"
    return {bool: "bool", int: "int", float: "float64", str: "string", dict: "map", list: "slice"}.get(type(v), "?")


def _truth(v) -> bool:
    return bool(v) if v is None or isinstance(v, (bool, int, float, str, list, dict)) else True


def _gofloat(f: float) -> str:
    """Go's %v of a float64 (strconv 'g', shortest): exponent form when the exponent is < -4 or >= 6."""
    if f == 0:
        return "0"
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    ds, x = "".join(map(str, digits)), len(digits) + exp - 1
    if x < -4 or x >= 6:
        s = ds[0] + ("." + ds[1:] if len(ds) > 1 else "") + f"e{'+' if x >= 0 else '-'}{abs(x):02d}"
    else:
        s = format(Decimal(repr(abs(f))).normalize(), "f")
    return "-" + s if sign else s


def _str(v) -> str:
    """What `{{ v }}` prints (Go's %v) for the values the chart may print."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _gofloat(v)
    if v is None:
        raise TemplateError("printing nil (a missing value?): helm would write an empty string")
    raise TemplateError(f"printing a {_kind(v)}: use toYaml or toJson")


def _plain(v):
    """Values as Go's encoders see them: float64 without a fraction is written as an integer."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not isinstance(v, bool):
        if v.is_integer() and abs(v) < 1e21:
            return int(v)
        if not 1e-4 <= abs(v) < 1e16:
            raise TemplateError(f"encoding {v!r}: Go and Python write this float differently")
    return v


def _floats(v):
    """Numbers as Helm holds values-file and fromJson numbers: float64."""
    if isinstance(v, dict):
        return {k: _floats(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_floats(x) for x in v]
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _compare(op, a, b):
    ka, kb = _kind(a), _kind(b)
    if ka != kb or ka not in ("bool", "int", "float64", "string"):
        raise TemplateError(f"incompatible types for comparison: {op} {ka} {kb}")
    if op not in ("eq", "ne") and ka == "bool":
        raise TemplateError(f"{op}: bools are not ordered")
    return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def _comparison(op):
    return lambda a, b: _compare(op, a, b)


def _printf(fmt, *args):
    out, it = [], iter(args)
    for lit, verb in re.findall(r"([^%]*)(%.|%$|$)", fmt):
        out.append(lit)
        if verb == "%%":
            out.append("%")
        elif verb:
            a = next(it, _NONE)
            ok = {"%s": isinstance(a, str), "%d": isinstance(a, int) and not isinstance(a, bool), "%v": True}
            if a is _NONE or not ok.get(verb, False):
                raise TemplateError(f"printf {fmt!r}: {verb} with {_kind(a) if a is not _NONE else 'no argument'}")
            out.append(_str(a))
    if next(it, _NONE) is not _NONE:
        raise TemplateError(f"printf {fmt!r}: too many arguments")
    return "".join(out)


def _quote(s: str) -> str:
    if any(ord(c) < 32 and c not in "\t\n\r" or ord(c) == 127 for c in s):
        raise TemplateError(f"quote {s!r}: control characters")
    return json.dumps(s, ensure_ascii=False)


def _to_int(v):
    if isinstance(v, (int, float)) or v is None:
        return int(v or 0)
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    raise TemplateError(f"int {v!r}: not a number")


def _need_str(name, fn):
    """A Sprig string function: its last argument (the piped one) must be a string, as in Go."""
    def call(*args):
        if not args or not isinstance(args[-1], str):
            raise TemplateError(f"{name}: expected a string, got {_kind(args[-1]) if args else 'nothing'}")
        return fn(*args)
    return call


def _all_str(name, fn):
    """A Sprig function whose every argument is a string."""
    def call(*args):
        bad = next((a for a in args if not isinstance(a, str)), "")
        if not args or not isinstance(bad, str):
            raise TemplateError(f"{name}: expected strings, got {_kind(bad) if args else 'nothing'}")
        return fn(*args)
    return call


def _to_yaml(v):
    text = yaml.safe_dump(_plain(v), default_flow_style=False, sort_keys=True, allow_unicode=True, width=1 << 30)
    return text[:-5] if text.endswith("\n...\n") else text[:-1] if text.endswith("\n") else text


def _fail(msg):
    raise TemplateError(f"fail: {msg}")


def _len(v):
    """Go's builtin len: bytes of a string (UTF-8), items of a slice or map."""
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, dict)):
        return len(v)
    raise TemplateError(f"len of {_kind(v)}")


def _from_yaml(s):
    """Helm's fromYaml: a map, numbers as float64 (sigs.k8s.io/yaml goes through JSON). Helm puts a
    parse error under the key "Error"; here it is raised."""
    try:
        v = yaml.safe_load(s)
    except yaml.YAMLError as exc:
        raise TemplateError(f"fromYaml: {exc}") from None
    if not isinstance(v, dict):
        raise TemplateError(f"fromYaml: expected a map, got {_kind(v)}")
    return _floats(v)


def _merge_overwrite(dst, *srcs):
    """Sprig's mergeOverwrite (mergo WithOverride): each source in turn, maps merged key by key,
    other values replacing dst's; dst is changed and returned."""
    for src in srcs:
        if not isinstance(dst, dict) or not isinstance(src, dict):
            raise TemplateError(f"mergeOverwrite: expected maps, got {_kind(dst)} and {_kind(src)}")
        for k, v in src.items():
            if v is None or v == "":
                raise TemplateError(f"mergeOverwrite: empty value of {k!r} (mergo versions differ on it)")
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                _merge_overwrite(dst[k], v)
            else:
                dst[k] = v
    return dst


def _index(v, *keys):
    for k in keys:
        v = v.get(k) if isinstance(v, dict) else v[k] if isinstance(v, list) else _fail(f"index of {_kind(v)}")
    return v


FUNCS = {
    "quote": lambda *a: " ".join(_quote(x if isinstance(x, str) else _str(x)) for x in a if x is not None),
    "default": lambda d, *given: given[0] if given and _truth(given[0]) else d,
    "required": lambda msg, v: _fail(msg) if v is None or v == "" else v,
    "fail": _fail,
    "toYaml": _to_yaml,
    "toJson": lambda v: json.dumps(_plain(v), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
    "fromJson": _need_str("fromJson", lambda s: _floats(json.loads(s))),
    "fromYaml": _need_str("fromYaml", _from_yaml),
    "mergeOverwrite": _merge_overwrite,
    "list": lambda *a: list(a),
    "len": _len,
    "indent": _need_str("indent", lambda n, s: " " * n + s.replace("\n", "\n" + " " * n)),
    "nindent": _need_str("nindent", lambda n, s: "\n" + " " * n + s.replace("\n", "\n" + " " * n)),
    "trunc": _need_str("trunc", lambda n, s: s[:n] if n >= 0 else s[n:]),
    "trimSuffix": _need_str("trimSuffix", lambda suf, s: s[:-len(suf)] if suf and s.endswith(suf) else s),
    "trimPrefix": _need_str("trimPrefix", lambda pre, s: s[len(pre):] if s.startswith(pre) else s),
    "replace": _all_str("replace", lambda old, new, s: s.replace(old, new)),
    "contains": _all_str("contains", lambda sub, s: sub in s),
    "b64enc": _need_str("b64enc", lambda s: base64.b64encode(s.encode()).decode()),
    "sha256sum": _need_str("sha256sum", lambda s: hashlib.sha256(s.encode()).hexdigest()),
    "printf": _printf,
    "print": lambda *a: "".join((" " if i and not isinstance(x, str) and not isinstance(a[i - 1], str) else "")
                                + _str(x) for i, x in enumerate(a)),
    "int": _to_int,
    "kindIs": lambda kind, v: _kind(v) == kind,
    "index": _index,
    "not": lambda v: not _truth(v),
    "ternary": lambda yes, no, cond: yes if _truth(cond) else no,
    **{op: _comparison(op) for op in ("ne", "lt", "le", "gt", "ge")},
    "eq": lambda a, *bs: any(_compare("eq", a, b) for b in bs),
}


class _Engine:
    """Parsed templates (the `define`s shared by all) and their execution."""

    def __init__(self):
        self.defines: dict[str, list] = {}

    def parse(self, text: str, name: str) -> list:
        return _Parser(_lex(text, name), name, self.defines).block(top=True)[0]

    def _run(self, tree, dot) -> str:
        out: list[str] = []
        self._exec(tree, dot, [{"$": dot}], out)
        return "".join(out)

    def _exec(self, nodes, dot, scope, out):
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                v = self._pipe(node[1], dot, scope)
                if not node[1][0]:
                    out.append(_str(v))
            elif kind == "template":
                out.append(self._include(node[1], self._pipe(node[2], dot, scope) if node[2] else None))
            elif kind == "if":
                inner = scope + [{}]
                for pipe, body in node[1]:
                    if _truth(self._pipe(pipe, dot, inner)):
                        self._exec(body, dot, inner, out)
                        break
                else:
                    self._exec(node[2] or [], dot, inner, out)
            elif kind == "with":
                inner = scope + [{}]
                (pipe, body), = node[1]
                v = self._pipe(pipe, dot, inner)
                self._exec(body if _truth(v) else node[2] or [], v if _truth(v) else dot, inner, out)
            else:
                self._range(node, dot, scope, out)

    def _range(self, node, dot, scope, out):
        (pipe, body), = node[1]
        names, _, cmds = pipe
        v = self._pipe(([], None, cmds), dot, scope)
        if isinstance(v, dict):
            pairs = [(k, v[k]) for k in sorted(v)]
        elif isinstance(v, list):
            pairs = list(enumerate(v))
        elif v is None:
            pairs = []
        else:
            raise TemplateError(f"range over a {_kind(v)}")
        if len(names) > 2:
            raise TemplateError("range: at most two variables")
        for k, x in pairs:
            inner = scope + [dict(zip(names, (x,) if len(names) == 1 else (k, x)))]
            self._exec(body, x, inner, out)
        if not pairs:
            self._exec(node[2] or [], dot, scope + [{}], out)

    def _pipe(self, pipe, dot, scope):
        names, op, cmds = pipe
        v = _NONE
        for cmd in cmds:
            v = self._cmd(cmd, dot, scope, v)
        if op == ":=":
            if len(names) != 1:
                raise TemplateError("only range declares two variables")
            scope[-1][names[0]] = v
        elif op == "=":
            frame = next((f for f in reversed(scope) if names[0] in f), None)
            if frame is None:
                raise TemplateError(f"{names[0]} = ...: undefined variable")
            frame[names[0]] = v
        return v

    def _cmd(self, cmd, dot, scope, piped):
        head, rest = cmd[0], cmd[1:]
        if head[0] == "fn" and head[1] in ("and", "or"):     # short-circuit, returns an operand
            args = [lambda o=o: self._arg(o, dot, scope) for o in rest]
            args += [lambda: piped] if piped is not _NONE else []
            if not args:
                raise TemplateError(f"{head[1]}: needs arguments")
            for get in args:
                v = get()
                if _truth(v) != (head[1] == "and"):
                    return v
            return v
        if head[0] == "fn":
            fn = {"include": self._include}.get(head[1]) or FUNCS.get(head[1])
            if fn is None:
                raise TemplateError(f"function {head[1]!r} is not supported by helmlite")
        else:
            fn = self._arg(head, dot, scope, call=True)
            if not callable(fn):
                if rest or piped is not _NONE:
                    raise TemplateError(f"can't give arguments to a non-function {_kind(fn)}")
                return fn
        args = [self._arg(o, dot, scope) for o in rest] + ([piped] if piped is not _NONE else [])
        try:
            return fn(*args)
        except TypeError as exc:
            raise TemplateError(f"{head[1] if head[0] == 'fn' else 'method'}: wrong arguments ({exc})") from None

    def _arg(self, o, dot, scope, call=False):
        if o[0] == "lit":
            return o[1]
        if o[0] == "pipe":
            return self._pipe(o[1], dot, scope)
        if o[0] == "fn":
            raise TemplateError(f"function {o[1]!r} as an argument: write ({o[1]} ...)")
        base, chain = o[1], o[2]
        if base is None:
            v = dot
        else:
            frame = next((f for f in reversed(scope) if base in f), None)
            if frame is None:
                raise TemplateError(f"undefined variable {base}")
            v = frame[base]
        for i, key in enumerate(chain):
            if callable(v):
                raise TemplateError(f"field {key} of a method")
            if v is None:
                raise TemplateError(f"nil pointer evaluating .{'.'.join(chain[:i + 1])}")
            if not isinstance(v, dict):
                raise TemplateError(f"can't evaluate field {key} in a {_kind(v)}")
            v = v.get(key)
        if callable(v) and not call:
            raise TemplateError(f"method .{'.'.join(chain)} used as a value")
        return v

    def _include(self, name, data=None):
        if name not in self.defines:
            raise TemplateError(f"no template named {name!r}")
        return self._run(self.defines[name], data)


class Chart(_Engine):
    """A chart folder: Chart.yaml, values.yaml, templates/ (every file parsed once)."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.meta = yaml.safe_load((self.path / "Chart.yaml").read_text())
        self.values = yaml.safe_load((self.path / "values.yaml").read_text()) or {}
        self.files: dict[str, list] = {}
        base = f"{self.meta['name']}/templates"
        for f in sorted((self.path / "templates").iterdir()):
            tree = self.parse(f.read_text(), f.name)
            self.files[f.name] = tree
            self.defines[f"{base}/{f.name}"] = tree             # include (print $.Template.BasePath "/x.yaml")

    def render_text(self, values: dict | None = None, name: str = "wmfm-xapp", namespace: str = "ricxapp") -> dict:
        """{template file name: rendered text}, NOTES.txt included, `_*` helpers excluded."""
        merged = _floats(_merge(self.values, values or {}))
        root = {"Values": merged,
                "Release": {"Name": name, "Namespace": namespace, "Service": "Helm", "IsInstall": True,
                            "IsUpgrade": False, "Revision": 1},
                "Chart": {"Name": self.meta["name"], "Version": str(self.meta["version"]),
                          "AppVersion": str(self.meta.get("appVersion", "")),
                          "Description": self.meta.get("description", "")},
                "Files": {"Get": self._file},
                "Template": {"BasePath": f"{self.meta['name']}/templates"}}
        return {f: self._run(tree, dict(root, Template=dict(root["Template"], Name=f)))
                for f, tree in self.files.items() if not f.startswith("_")}

    def render(self, values: dict | None = None, name: str = "wmfm-xapp", namespace: str = "ricxapp") -> list[dict]:
        """The Kubernetes objects of every templates/*.yaml, as `helm template` would make them."""
        objs = []
        for f, text in self.render_text(values, name, namespace).items():
            if f.endswith((".yaml", ".yml")):
                for doc in re.split(r"(?m)^---[ \t]*$", text):
                    try:
                        obj = yaml.load(doc, Loader=_StrictLoader)
                    except yaml.YAMLError as exc:
                        raise TemplateError(f"{f}: the rendered YAML does not load: {exc}\n{doc}") from None
                    if obj is not None:
                        objs.append(obj)
        return objs

    def _file(self, rel):
        p = (self.path / rel).resolve()
        if not p.is_file():
            raise TemplateError(f".Files.Get {rel!r}: no such file in the chart")
        return p.read_text()

def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with a repeated key (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=True) for k, _ in node.value]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key(s) {sorted(dup)}", node.start_mark)
        return super().construct_mapping(node, deep)


def render(chart: str | Path, values: dict | None = None, **release) -> list[dict]:
    """`helm template` for this chart: the list of Kubernetes objects."""
    return Chart(chart).render(values, **release)


def render_string(text: str, dot=None) -> str:
    """One template text rendered with `dot` as `.` (to test the renderer itself)."""
    engine = _Engine()
    return engine._run(engine.parse(text, "inline"), dot)
