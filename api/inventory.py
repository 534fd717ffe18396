"""Inventory ingress and the availability API.

Checkout asks availability synchronously: a database read of the one ledger, answered in
milliseconds and reflecting reservations made by orders a moment ago. Stock events flow into
``InventoryAdjustment`` workflows (one per event id: a repeated event is the same workflow)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

import tracing
from adapters.erp.inventory import InventoryLedger
from adapters.errors import PermanentError, TransientError
from api.auth import ApiAuth
from api.errors import problem
from api.ingress import is_json, json_body
from api.inventory_rules import refusal
from api.openapi import json_body_of
from api.temporal import TemporalGateway
from canonical import ChannelAvailability, InventoryEvent, StockPosition
from orchestration.client import submit_inventory_event
from settings import Settings
from store.db import Store


class AvailabilityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = None
    skus: list[str] = Field(min_length=1, max_length=500)


class LocationStock(BaseModel):
    location: str
    on_hand: int
    reserved: int
    available: int


class SkuAvailability(BaseModel):
    sku: str
    available: int
    locations: list[LocationStock]


class Availability(BaseModel):
    channel: str | None
    items: list[ChannelAvailability] | list[SkuAvailability]


def _by_sku(positions: list[StockPosition], skus: list[str]) -> list[SkuAvailability]:
    out = []
    for sku in skus:
        mine = [p for p in positions if p.sku == sku]
        out.append(
            SkuAvailability(
                sku=sku,
                available=sum(p.available for p in mine),
                locations=[
                    LocationStock(
                        location=p.location, on_hand=p.on_hand, reserved=p.reserved, available=p.available
                    )
                    for p in mine
                ],
            )
        )
    return out


def inventory_router(settings: Settings, store: Store, gateway: TemporalGateway, auth: ApiAuth) -> APIRouter:
    router = APIRouter(tags=["inventory"])
    may_read = [Depends(auth.require("availability:read"))]
    may_write = [Depends(auth.require("inventory:write"))]
    ledger = InventoryLedger(store, store_shelves=settings.shopify_store_locations.values())

    async def read_async(channel: str | None, skus: list[str]) -> Availability:
        try:
            return await asyncio.to_thread(read, channel, skus)
        except (SQLAlchemyError, TransientError) as exc:
            raise problem(503, "store_unavailable", "the stock ledger cannot be read right now") from exc
        except PermanentError as exc:
            raise problem(422, exc.reason, exc.message) from exc

    def read(channel: str | None, skus: list[str]) -> Availability:
        unique = list(dict.fromkeys(skus))
        if channel:
            return Availability(channel=channel, items=ledger.channel_availability(channel, unique))
        positions = [p for sku in unique for p in ledger.positions(sku)]
        return Availability(channel=None, items=_by_sku(positions, unique))

    @router.get("/v1/availability", dependencies=may_read)
    async def availability(
        sku: Annotated[list[str], Query(min_length=1, max_length=500, description="one or more SKUs")],
        channel: Annotated[str | None, Query(description="what this channel may sell")] = None,
    ) -> Availability:
        """Available to sell, from the ledger: per channel (its locations, minus its safety
        buffer) or, without a channel, per location."""
        return await read_async(channel, sku)

    @router.post("/v1/availability", dependencies=may_read, openapi_extra=json_body_of(AvailabilityRequest))
    async def cart_availability(request: Request) -> Availability:
        """The batch form for a cart: ``{"channel": "shopify", "skus": ["A", "B"]}``."""
        if not is_json(request.headers.get("content-type")):
            raise problem(415, "unsupported_media_type", "Content-Type must be application/json")
        try:
            body = AvailabilityRequest.model_validate(json_body(await request.body()))
        except ValidationError as exc:
            raise problem(422, "invalid_request", str(exc)) from exc
        return await read_async(body.channel, body.skus)

    @router.post(
        "/v1/inventory/events",
        status_code=202,
        dependencies=may_write,
        openapi_extra=json_body_of(InventoryEvent),
    )
    async def inventory_event(request: Request) -> dict[str, str]:
        """A stock change from the ERP or the WMS (receipt, adjustment, transfer, cycle count,
        POS sale...). Idempotent on ``event_id``."""
        if not is_json(request.headers.get("content-type")):
            raise problem(415, "unsupported_media_type", "Content-Type must be application/json")
        raw = await request.body()
        try:
            event = InventoryEvent.model_validate_json(json.dumps(json_body(raw)))
        except ValidationError as exc:
            errors = [{"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
            raise problem(422, "invalid_event", "the inventory event is not valid", errors=errors) from exc
        refused = refusal(event)
        if refused:
            raise problem(422, "invalid_event", refused[1], path=refused[0])
        client = await gateway.client()
        try:
            with tracing.correlated(event.event_id, event_kind=event.kind):
                wf_id = await submit_inventory_event(client, event, settings)
        except RPCError as exc:
            raise problem(503, "temporal_unavailable", f"Temporal refused the event: {exc.message}") from exc
        return {"workflow_id": wf_id, "event_id": event.event_id}

    return router
