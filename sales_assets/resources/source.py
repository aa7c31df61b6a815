"""The Sales Source API as a Dagster resource.

With ``base_url`` set it talks to any server that speaks the contract. Unset
(the local default) it starts the bundled demo server on a free 127.0.0.1 port
for the duration of the step, so a fresh clone needs no service started by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field, PrivateAttr

from sales_assets.source.client import SalesSourceClient
from sales_assets.source.demo_data import DemoDataConfig
from sales_assets.source.demo_server import DemoSourceServer


class SalesSourceResource(dg.ConfigurableResource):
    """A client of the Sales Source API contract (``contracts/sales-source-api.openapi.yaml``)."""

    base_url: str | None = Field(default=None, description="Base URL; unset starts the bundled demo source.")
    token: str | None = Field(default=None, description="Bearer token (never logged).")
    page_size: int = Field(default=1000, ge=1, le=10000)
    demo_orders_per_day: int = Field(default=400, ge=0, description="Volume of the bundled demo source.")
    max_attempts: int = Field(default=5, ge=1)
    max_retry_after_seconds: float = Field(
        default=60.0, ge=0, description="Longest Retry-After waited in-process; a longer one fails the attempt.")
    backoff_base_seconds: float = Field(default=0.5, ge=0, description="First retry's backoff (doubles per retry).")

    _server: DemoSourceServer | None = PrivateAttr(default=None)

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[SalesSourceResource]:
        if self.base_url:
            yield self
            return
        server = DemoSourceServer(port=0, config=DemoDataConfig(orders_per_day=self.demo_orders_per_day))
        server.start()
        if context.log:
            context.log.info(f"SALES_SOURCE_URL unset: started the bundled demo source at {server.url}")
        try:
            self._server = server
            yield self
        finally:
            self._server = None
            server.stop()

    @property
    def effective_url(self) -> str:
        if self.base_url:
            return self.base_url
        if self._server is None:
            raise RuntimeError("the demo source runs only while the resource is open for execution")
        return self._server.url

    def get_client(self) -> SalesSourceClient:
        token = self.token if self.base_url else self._server.token if self._server else None
        return SalesSourceClient(
            base_url=self.effective_url,
            token=token or "",
            page_size=self.page_size,
            max_attempts=self.max_attempts,
            max_retry_after=self.max_retry_after_seconds,
            backoff_base=self.backoff_base_seconds,
        )
