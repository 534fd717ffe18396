"""Request bodies in the OpenAPI document.

The JSON APIs read their bodies raw (their own 4xx answers with field paths, no float money),
so FastAPI cannot see the models: each route names its body model with ``json_body_of`` and
``install`` adds those models' JSON Schemas to the document's components, for client
generators and the fuzz test (tests/test_api_fuzz.py)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

_MODELS: dict[str, type[BaseModel]] = {}


def json_body_of(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body is ``model``."""
    _MODELS[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": ref}}}}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model in _MODELS.items():
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[name] = model_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
