"""A pydantic model from a profile's JSON schema, so model outputs are validated by pydantic.

Only the subset the profiles use (and a small model can fill) is supported: objects with
`properties`/`required`, strings with `maxLength`/`minLength`/`pattern`/`enum`, integers and
numbers with `minimum`/`maximum`, booleans, and arrays with `items`/`maxItems`/`minItems`.
Anything else is a profile error at start-up, not a surprise at run time.
"""

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model

_NUMBER_BOUNDS = {"minimum": "ge", "maximum": "le"}
_STRING_BOUNDS = {"maxLength": "max_length", "minLength": "min_length", "pattern": "pattern"}
_ARRAY_BOUNDS = {"maxItems": "max_length", "minItems": "min_length"}
# vLLM's xgrammar (0.2.8, in vLLM 0.32) fails to compile a pattern repeating more than 128
# times (`[^\n]{1,129}`): every request with the schema gets a 500. Split a longer bound
# (`[^\n]{1,128}[^\n]{0,32}`) or use maxLength, which xgrammar enforces.
MAX_PATTERN_REPEAT = 128
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


class SchemaError(ValueError):
    """The JSON schema uses something this converter does not support."""


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def model_from_schema(schema: dict[str, Any], name: str = "Output") -> type[BaseModel]:
    """A pydantic model accepting exactly the objects `schema` describes."""
    if schema.get("type") != "object":
        raise SchemaError(f"{name}: the top level must be an object")
    return _object_model(schema, name)


def _object_model(schema: dict[str, Any], name: str) -> type[BaseModel]:
    properties: dict[str, Any] = schema.get("properties") or {}
    if not properties:
        raise SchemaError(f"{name}: an object needs properties")
    required = set(schema.get("required") or [])
    if unknown := required - set(properties):
        raise SchemaError(f"{name}: required names unknown properties {sorted(unknown)}")
    fields: dict[str, Any] = {}
    for key, sub in properties.items():
        annotation = _annotation(sub, f"{name}.{key}")
        fields[key] = (annotation, ...) if key in required else (annotation | None, None)
    model: type[BaseModel] = create_model(_identifier(name), __base__=_Output, **fields)
    return model


def _bounds(schema: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names[key]: value for key, value in schema.items() if key in names}


def _annotation(schema: dict[str, Any], where: str) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        values = tuple(schema["enum"])
        if not values or not all(isinstance(v, str) for v in values):
            raise SchemaError(f"{where}: enum must list strings")
        return Literal[values]
    if kind == "string":
        if "pattern" in schema and {"maxLength", "minLength"} & set(schema):
            # vLLM's xgrammar refuses the pair with a 400 on every request: fail at start-up.
            raise SchemaError(
                f"{where}: bound the length inside the pattern, not with max/minLength"
            )
        if over := [b for b in _repeat_bounds(schema.get("pattern", "")) if b > MAX_PATTERN_REPEAT]:
            raise SchemaError(
                f"{where}: the pattern repeats up to {max(over)} times; vLLM's xgrammar fails "
                f"above {MAX_PATTERN_REPEAT}: split the repetition or use maxLength"
            )
        return Annotated[str, Field(strict=True, **_bounds(schema, _STRING_BOUNDS))]
    if kind == "integer":
        return Annotated[int, Field(strict=True, **_bounds(schema, _NUMBER_BOUNDS))]
    if kind == "number":
        return Annotated[float, Field(**_bounds(schema, _NUMBER_BOUNDS))]
    if kind == "boolean":
        return StrictBool
    if kind == "array":
        items = _annotation(schema.get("items") or {}, f"{where}[]")
        return Annotated[list[items], Field(**_bounds(schema, _ARRAY_BOUNDS))]  # type: ignore[valid-type]
    if kind == "object":
        return _object_model(schema, where)
    raise SchemaError(f"{where}: unsupported type {kind!r}")


def _repeat_bounds(pattern: str) -> list[int]:
    return [int(high or low) for low, high in _REPEAT.findall(pattern)]


def _identifier(name: str) -> str:
    return name.replace("[]", "_item").replace(".", "_")
