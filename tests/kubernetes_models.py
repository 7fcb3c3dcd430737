"""Check a Kubernetes manifest against the API's own models (the official ``kubernetes`` client's
generated classes): every key must be a field of its object, every value of the field's type, and
required fields present.  No control plane is needed; a typo'd key (``podFailurePolicies``) fails."""

from __future__ import annotations

import re

import kubernetes.client.models as models

_PRIMITIVES = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float), "object": (object,),
               "datetime": (str,), "date": (str,)}


def check_manifest(document: dict) -> None:
    """Raise AssertionError naming the path of the first key or value the API would not accept."""
    version = document["apiVersion"].rpartition("/")[2]
    _check(document, f"{version.capitalize()}{document['kind']}", document["kind"])


def _check(value, type_name: str, path: str) -> None:
    if type_name.startswith("list["):
        assert isinstance(value, list), f"{path}: a list was expected, got {value!r}"
        for i, item in enumerate(value):
            _check(item, type_name[5:-1], f"{path}[{i}]")
        return
    mapping = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if mapping:
        assert isinstance(value, dict), f"{path}: a mapping was expected, got {value!r}"
        for key, item in value.items():
            _check(item, mapping.group(1), f"{path}.{key}")
        return
    if type_name in _PRIMITIVES:
        ok = isinstance(value, _PRIMITIVES[type_name]) and not (type_name == "int" and isinstance(value, bool))
        assert ok, f"{path}: {type_name} was expected, got {value!r}"
        return
    model = getattr(models, type_name)
    assert isinstance(value, dict), f"{path}: a {type_name} mapping was expected, got {value!r}"
    fields = {json_key: attr for attr, json_key in model.attribute_map.items()}
    for key, item in value.items():
        assert key in fields, f"{path}.{key}: not a field of {type_name} (fields: {', '.join(sorted(fields))})"
        _check(item, model.openapi_types[fields[key]], f"{path}.{key}")
    try:  # the generated constructor checks required fields
        model(**{fields[k]: v for k, v in value.items()})
    except ValueError as exc:
        raise AssertionError(f"{path}: {exc}") from None
