"""ASP.NET Core route templates as the Functions host matches HTTP-triggered functions' routes.

Literal segments match case-insensitively; ``{p}``/``{p?}``/``{p=default}``/``{*rest}`` parameters and
inline constraints (``{id:int}``, ``{name:alpha:length(3,8)}``) are read as ASP.NET reads them, and
``precedence`` orders templates the way the host registers them (literal, then constrained, then plain
parameters, then catch-alls).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote


class RouteTemplateError(ValueError):
    """A route template the host would refuse to register."""


# ---------------------------------------------------------------------------------------------
# Route constraints (ASP.NET Core inline constraints)

_INT_RE = re.compile(r"\s*[+-]?\d+\s*")
_DOUBLE_RE = re.compile(r"\s*[+-]?(\d[\d,]*\.?\d*|\.\d+)([eE][+-]?\d+)?\s*|\s*(NaN|[+-]?Infinity)\s*")
_DECIMAL_RE = re.compile(r"\s*[+-]?(\d[\d,]*\.?\d*|\.\d+)\s*")
_HEX = "[0-9a-fA-F]"
_GUID_D = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_GUID_RE = re.compile(rf"\s*({_GUID_D}|{_HEX}{{32}}|\{{{_GUID_D}\}}|\({_GUID_D}\))\s*")
_ALPHA_RE = re.compile(r"[A-Za-z]*")


def _integer(value: str, bits: int) -> int | None:
    if not _INT_RE.fullmatch(value):
        return None
    number = int(value)
    limit = 1 << (bits - 1)
    return number if -limit <= number < limit else None


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def _int_args(arg: str | None, count: int) -> list[int]:
    parts = [p.strip() for p in (arg or "").split(",")]
    if len(parts) != count or not all(_INT_RE.fullmatch(p) for p in parts):
        raise ValueError(arg)
    return [int(p) for p in parts]


def _make_check(name: str, arg: str | None) -> Callable[[str], bool] | None:
    """A predicate for a known constraint, or None for one the emulator does not implement."""
    try:
        if name == "int":
            return lambda v: _integer(v, 32) is not None
        if name == "long":
            return lambda v: _integer(v, 64) is not None
        if name == "bool":
            return lambda v: v.strip().lower() in ("true", "false")
        if name == "alpha":
            return lambda v: bool(_ALPHA_RE.fullmatch(v))
        if name == "guid":
            return lambda v: bool(_GUID_RE.fullmatch(v))
        if name in ("double", "float"):
            return lambda v: bool(_DOUBLE_RE.fullmatch(v))
        if name == "decimal":
            return lambda v: bool(_DECIMAL_RE.fullmatch(v))
        if name == "datetime":
            return _is_datetime
        if name == "required":
            return lambda v: v != ""
        if name in ("min", "max"):
            (bound,) = _int_args(arg, 1)
            if name == "min":
                return lambda v: (n := _integer(v, 64)) is not None and n >= bound
            return lambda v: (n := _integer(v, 64)) is not None and n <= bound
        if name == "range":
            low, high = _int_args(arg, 2)
            return lambda v: (n := _integer(v, 64)) is not None and low <= n <= high
        if name in ("minlength", "maxlength"):
            (size,) = _int_args(arg, 1)
            if name == "minlength":
                return lambda v: len(v) >= size
            return lambda v: len(v) <= size
        if name == "length":
            bounds = _int_args(arg, 2) if arg and "," in arg else _int_args(arg, 1) * 2
            return lambda v: bounds[0] <= len(v) <= bounds[1]
        if name == "regex" and arg is not None:
            # RegexRouteConstraint uses IsMatch (unanchored), ignoring case.
            pattern = re.compile(arg, re.IGNORECASE)
            return lambda v: pattern.search(v) is not None
    except (ValueError, re.error):
        return None
    return None


# ---------------------------------------------------------------------------------------------
# Route templates


@dataclass(frozen=True)
class _Param:
    name: str
    constraints: tuple[str, ...]  # as written, for precedence and messages
    checks: tuple[Callable[[str], bool], ...]
    unsupported: tuple[str, ...]
    optional: bool
    catch_all: bool
    default: str | None

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


_Part = str | _Param


@dataclass(frozen=True)
class _Segment:
    parts: tuple[_Part, ...]
    # Complex segments ("{name}.{ext}") match through regexes, tried in order.
    patterns: tuple[tuple[re.Pattern[str], tuple[_Param, ...]], ...] = ()

    @property
    def param(self) -> _Param | None:
        only = self.parts[0]
        return only if len(self.parts) == 1 and isinstance(only, _Param) else None

    @property
    def literal(self) -> str | None:
        only = self.parts[0]
        return only if len(self.parts) == 1 and isinstance(only, str) else None

    def precedence_digit(self) -> int:
        # RoutePrecedence.ComputeInboundPrecedenceDigit
        if len(self.parts) > 1:
            return 2
        param = self.param
        if param is None:
            return 1
        digit = 5 if param.catch_all else 3
        return digit - 1 if param.constraints else digit


_PARAM_NAME_INVALID = re.compile(r"[{}/?*]")


def _split_constraint_list(text: str, raw: str) -> tuple[list[tuple[str, str | None, str]], str]:
    """Parse ":c1:c2(arg)" at the start of text; returns [(name, arg, written)] and the remainder."""
    found: list[tuple[str, str | None, str]] = []
    rest = text
    while rest.startswith(":"):
        rest = rest[1:]
        name = re.match(r"[^:=?(]*", rest)
        assert name is not None
        cname = name.group(0)
        rest = rest[len(cname) :]
        arg: str | None = None
        if rest.startswith("("):
            # The argument ends at a ')' followed by the end or by another ':', '=' or '?'.
            start = 1
            while True:
                close = rest.find(")", start)
                if close < 0:
                    raise RouteTemplateError(f"The inline constraint in '{{{raw}}}' has an unclosed '('.")
                if close + 1 == len(rest) or rest[close + 1] in ":=?":
                    break
                start = close + 1
            arg = rest[1:close]
            rest = rest[close + 1 :]
        if not cname.strip():
            raise RouteTemplateError(f"The route parameter '{{{raw}}}' has an empty inline constraint.")
        found.append((cname.strip().lower(), arg, cname.strip() + (f"({arg})" if arg is not None else "")))
    return found, rest


def _parse_param(raw: str) -> _Param:
    text = raw
    catch_all = False
    if text.startswith("**"):
        catch_all, text = True, text[2:]
    elif text.startswith("*"):
        catch_all, text = True, text[1:]
    match = re.match(r"[^:=?]*", text)
    assert match is not None
    name = match.group(0).strip()
    constraints, rest = _split_constraint_list(text[len(match.group(0)) :], raw)
    optional = False
    default: str | None = None
    if rest.startswith("="):
        default = rest[1:]
        if default.endswith("?"):
            raise RouteTemplateError("An optional parameter cannot have default value.")
    elif rest == "?":
        optional = True
    elif rest:
        raise RouteTemplateError(f"The route parameter '{{{raw}}}' is malformed.")
    if not name or _PARAM_NAME_INVALID.search(name):
        raise RouteTemplateError(
            f"The route parameter name '{name}' is invalid. Route parameter names must be non-empty and "
            f"cannot contain these characters: '{{', '}}', '/'. The '?' character marks a parameter as "
            f"optional, and can occur only at the end of the parameter. The '*' character marks a parameter "
            f"as catch-all, and can occur only at the start of the parameter."
        )
    if catch_all and optional:
        raise RouteTemplateError("A catch-all parameter cannot be marked optional.")
    checks: list[Callable[[str], bool]] = []
    unsupported: list[str] = []
    for cname, arg, written in constraints:
        check = _make_check(cname, arg)
        if check is None:
            unsupported.append(written)
        else:
            checks.append(check)
    return _Param(
        name=name,
        constraints=tuple(written for _, _, written in constraints),
        checks=tuple(checks),
        unsupported=tuple(unsupported),
        optional=optional,
        catch_all=catch_all,
        default=default,
    )


def _parse_segment(text: str) -> list[_Part]:
    parts: list[_Part] = []
    literal: list[str] = []
    i = 0
    incomplete = (
        "There is an incomplete parameter in the route template. Check that each '{' character has a "
        "matching '}' character."
    )
    while i < len(text):
        c = text[i]
        if c == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif c == "{":
            inner: list[str] = []
            j = i + 1
            while True:
                if j >= len(text):
                    raise RouteTemplateError(incomplete)
                if text.startswith("}}", j) or text.startswith("{{", j):
                    inner.append(text[j])
                    j += 2
                elif text[j] == "}":
                    break
                elif text[j] == "{":
                    raise RouteTemplateError(incomplete)
                else:
                    inner.append(text[j])
                    j += 1
            if literal:
                parts.append("".join(literal))
                literal = []
            if parts and isinstance(parts[-1], _Param):
                raise RouteTemplateError(
                    "A path segment cannot contain two consecutive parameters. They must be separated by a "
                    "'/' or by a literal string."
                )
            parts.append(_parse_param("".join(inner)))
            i = j + 1
        elif c == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif c == "}":
            raise RouteTemplateError(incomplete)
        elif c == "?":
            raise RouteTemplateError(
                "The literal section '?' is invalid. Literal sections cannot contain the '?' character."
            )
        else:
            literal.append(c)
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


_Patterns = tuple[tuple[re.Pattern[str], tuple[_Param, ...]], ...]


def _complex_patterns(segment_text: str, parts: list[_Part]) -> _Patterns:
    params = tuple(p for p in parts if isinstance(p, _Param))
    for index, part in enumerate(parts):
        if isinstance(part, _Param) and part.catch_all:
            raise RouteTemplateError(
                "A path segment that contains more than one section, such as a literal section or a "
                "parameter, cannot contain a catch-all parameter."
            )
        if isinstance(part, _Param) and part.optional:
            if index != len(parts) - 1:
                raise RouteTemplateError(
                    f"An optional parameter must be at the end of the segment. In the segment "
                    f"'{segment_text}', optional parameter '{part.name}' is followed by '{parts[index + 1]}'."
                )
            if parts[index - 1] != ".":
                raise RouteTemplateError(
                    f"In the segment '{segment_text}', the optional parameter '{part.name}' is preceded by "
                    f"an invalid segment '{parts[index - 1]}'. Only a period (.) can precede an optional "
                    f"parameter."
                )

    def regex(include_optional: bool) -> str:
        pieces = []
        for part in parts:
            if isinstance(part, _Param):
                pieces.append("(.+)")
            else:
                pieces.append(re.escape(part))
        if not include_optional:
            pieces = pieces[:-2]  # drop the trailing "." and the optional parameter
        return "".join(pieces)

    last = parts[-1]
    if isinstance(last, _Param) and last.optional:
        # Try with the optional part first, or the greedy first parameter would swallow "name.ext".
        return (
            (re.compile(regex(True), re.IGNORECASE | re.DOTALL), params),
            (re.compile(regex(False), re.IGNORECASE | re.DOTALL), params[:-1]),
        )
    return ((re.compile(regex(True), re.IGNORECASE | re.DOTALL), params),)


class RouteTemplate:
    """A parsed ASP.NET Core route template, matched against the path after the route prefix."""

    def __init__(self, template: str) -> None:
        self.text = template
        body = template
        if body.startswith("~/"):
            body = body[2:]
        body = body.strip("/")
        segments: list[_Segment] = []
        names: set[str] = set()
        raw_segments = body.split("/") if body else []
        for index, raw in enumerate(raw_segments):
            if raw == "":
                raise RouteTemplateError(
                    "The route template separator character '/' cannot appear consecutively. It must be "
                    "separated by either a parameter or a literal value."
                )
            parts = _parse_segment(raw)
            for part in parts:
                if isinstance(part, _Param):
                    if part.name.lower() in names:
                        raise RouteTemplateError(
                            f"The route parameter name '{part.name}' appears more than one time in the route "
                            f"template."
                        )
                    names.add(part.name.lower())
                    if part.catch_all and index != len(raw_segments) - 1:
                        raise RouteTemplateError(
                            "A catch-all parameter can only appear as the last segment of the route template."
                        )
            if len(parts) > 1:
                segments.append(_Segment(tuple(parts), _complex_patterns(raw, parts)))
            else:
                segments.append(_Segment(tuple(parts)))
        self._segments = tuple(segments)
        # Comparing digit tuples is the same order as ASP.NET's decimal precedence (digits are 1..5).
        self.precedence: tuple[int, ...] = tuple(s.precedence_digit() for s in segments)

    @property
    def unsupported_constraints(self) -> list[str]:
        found: list[str] = []
        for segment in self._segments:
            for part in segment.parts:
                if isinstance(part, _Param):
                    found.extend(part.unsupported)
        return found

    def match(self, path: str) -> dict[str, str] | None:
        """Route values when ``path`` (after the prefix, percent-encoding allowed) matches, else None."""
        if path.startswith("/"):
            path = path[1:]
        if path.endswith("/"):
            path = path[:-1]
        raw_segments = path.split("/") if path else []
        values: dict[str, str] = {}
        for index, segment in enumerate(self._segments):
            param = segment.param
            if param is not None and param.catch_all:
                rest = unquote("/".join(raw_segments[index:]))
                if rest:
                    if not param.accepts(rest):
                        return None
                    values[param.name] = rest
                elif param.default is not None:
                    values[param.name] = param.default
                return values
            if index >= len(raw_segments):
                # Only trailing optional or defaulted parameters may be left out.
                if param is None or not (param.optional or param.default is not None):
                    return None
                if param.default is not None:
                    values[param.name] = param.default
                continue
            text = unquote(raw_segments[index])
            literal = segment.literal
            if literal is not None:
                if text.casefold() != literal.casefold():
                    return None
            elif param is not None:
                if text == "" or not param.accepts(text):
                    return None
                values[param.name] = text
            elif not self._match_complex(segment, text, values):
                return None
        if len(raw_segments) > len(self._segments):
            return None
        return values

    @staticmethod
    def _match_complex(segment: _Segment, text: str, values: dict[str, str]) -> bool:
        for pattern, params in segment.patterns:
            found = pattern.fullmatch(text)
            if found is None:
                continue
            captured = dict(zip((p.name for p in params), found.groups(), strict=True))
            if all(p.accepts(captured[p.name]) for p in params):
                values.update(captured)
                return True
            return False  # like ASP.NET, no backtracking into other splits once the literals matched
        return False
