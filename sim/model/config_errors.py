"""Turning pydantic's validation errors into the config's one-line problems: the TOML path of
the field, the value given, and what is allowed (with "did you mean" for unknown keys).
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from sim.model.sections import (
    MAX_MAGNITUDE,
    MaxSatisfactionPolicy,
    NonePolicy,
    ReactivePolicy,
    StagePolicy,
    TablePolicy,
    UniformPolicy,
    ValuePolicy,
)


def _allowed_keys(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return list(model.model_fields)


def _model_at(root: type[BaseModel], loc: tuple, data: Any) -> type[BaseModel] | None:
    """The pydantic model class that owns the key at ``loc[-1]`` (for did-you-mean hints)."""
    model: Any = root
    parts = list(loc[:-1])
    if parts[:1] == ["policies"]:
        if len(parts) < 2 or not isinstance(parts[1], int):
            return None
        try:
            model = _POLICY_KINDS.get(data["policies"][parts[1]].get("kind"))
        except (KeyError, IndexError, TypeError, AttributeError):
            model = None
        if model is None:
            return None
        parts = parts[2:]
    for part in parts:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


_POLICY_KINDS = {
    "none": NonePolicy,
    "uniform": UniformPolicy,
    "stage": StagePolicy,
    "table": TablePolicy,
    "value": ValuePolicy,
    "max_satisfaction": MaxSatisfactionPolicy,
    "reactive": ReactivePolicy,
}


def _format_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _given_kind(item: dict, value: Any) -> Any:
    """The ``kind`` a policy table gave (for the message of an unknown policy kind)."""
    given = item.get("input")
    return given.get("kind") if isinstance(given, dict) else value


def _problems_from(error: ValidationError, data: Any, root: type[BaseModel]) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        # pydantic puts the union member's tag into loc (policies.0.stage.spend); drop it
        clean = []
        for i, part in enumerate(loc):
            if (
                i >= 2
                and loc[0] == "policies"
                and isinstance(loc[1], int)
                and i == 2
                and part in _POLICY_KINDS
            ):
                continue
            clean.append(part)
        key_error = bool(clean) and clean[-1] == "[key]"  # a bad key of a table (e.g. tier_spend.D)
        if key_error:
            clean = clean[:-1]
        path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in clean).replace(".[", "[")
        if path.startswith("policies[") and isinstance(data, dict):
            try:
                name = data["policies"][clean[1]].get("name")
                if name:
                    path = path.replace(f"policies[{clean[1]}]", f"policies[{clean[1]}] ({name!r})", 1)
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
        kind = item["type"]
        value = item.get("input")
        if kind == "extra_forbidden":
            key = str(clean[-1])
            owner = _model_at(root, tuple(clean), data)
            allowed = _allowed_keys(owner)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listing = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            problems.append((path, f"unknown key{hint}{listing}"))
            continue
        if kind == "union_tag_invalid":
            problems.append(
                (
                    path + ".kind" if not path.endswith("kind") else path,
                    f"{_format_value(_given_kind(item, value))} is not a policy kind; allowed: "
                    f"{', '.join(_POLICY_KINDS)}",
                )
            )
            continue
        if kind == "union_tag_not_found":
            problems.append((path, f"a policy needs 'kind', one of: {', '.join(_POLICY_KINDS)}"))
            continue
        message = item["msg"]
        message = message.replace("Value error, ", "")
        ctx = item.get("ctx") or {}
        if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            bound = next(iter(ctx.values()))
            symbol = {
                "greater_than_equal": ">=",
                "less_than_equal": "<=",
                "greater_than": ">",
                "less_than": "<",
            }[kind]
            message = (
                f"must be {symbol} {bound:g}"
                if isinstance(bound, float) and abs(bound) >= 1e6
                else f"must be {symbol} {bound}"
            )
            hint = _RANGE_HINTS.get(".".join(str(part) for part in clean))
            if hint:
                message += f" ({hint})"
            elif _is_probability_path(root, clean, data):
                message += " (a probability in [0, 1])"
            elif isinstance(bound, float) and abs(bound) == MAX_MAGNITUDE:
                message += (
                    " (the largest magnitude a config may hold: beyond it the model's float64 arithmetic "
                    "could overflow)"
                )
        message = _plain_message(kind, message, clean, value, ctx)
        if key_error:
            expected = ctx.get("expected")
            message = (
                f"unknown key; allowed keys: {expected}" if expected else f"not an allowed key: {message}"
            )
        if kind == "missing":
            problems.append((path, "is required"))
            continue
        if kind == "too_short" and any(p.startswith(path + "[") for p, _ in problems):
            continue  # a consequence of a bad element already reported (e.g. a bad policy)
        if isinstance(value, (dict, list, tuple)) and kind.startswith("value_error"):
            problems.append((path, message))
        else:
            problems.append((f"{path} = {_format_value(value)}", message))
    return problems


#: Plain descriptions of the name patterns, for messages.
_PATTERNS = {
    r"^[A-Za-z0-9_\-]+$": (
        "must use letters, digits, '_' and '-' only (it names the result folder: no '/', '.' or spaces)"
    ),
    r"^[A-Za-z0-9_.\-]+$": "must use letters, digits, '_', '.' and '-' only (no '/' or spaces)",
}


def _plain_message(kind: str, message: str, loc: list, value: Any, ctx: dict) -> str:
    """Pydantic's message for ``kind`` in the words of a TOML file."""
    if kind == "finite_number":
        return "must be a finite number (not nan or inf)"
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(str(ctx.get("pattern")), message)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table (in TOML a [section], or {key = value, ...})"
    if kind in ("too_short", "too_long"):
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        if limit is not None:
            bound = "least" if kind == "too_short" else "most"
            return f"must have at {bound} {limit} item{'s' if limit != 1 else ''}"
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else f"must have at least {ctx.get('min_length')} characters"
        )
    if kind == "string_too_long":
        return f"must have at most {ctx.get('max_length')} characters"
    if kind in ("tuple_type", "list_type"):
        if loc == ["policies"] and isinstance(value, dict):
            return "must be an array of tables: write each policy as a [[policies]] section (double brackets)"
        return "must be a list (in TOML [a, b, ...])"
    return message


#: What is allowed for fields whose range is [0, 1] but which are not probabilities.
_RANGE_HINTS = {
    "economics.annual_discount_rate": "a yearly discount rate in [0, 1]: 0.10 discounts by 10 % a year",
}


def _is_probability_path(root: type[BaseModel], loc: list, data: Any) -> bool:
    owner = _model_at(root, tuple(loc), data)
    if owner is None:
        return False
    field = owner.model_fields.get(str(loc[-1]))
    if field is None:
        return False
    metadata = field.metadata
    lows = [getattr(m, "ge", None) for m in metadata]
    highs = [getattr(m, "le", None) for m in metadata]
    return 0.0 in lows and 1.0 in highs
