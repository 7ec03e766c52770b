"""Small scenario models for the loader's tests, shaped like the cluster twin's.

They are the tests' own: the loader must work for any pydantic model, so these
only need the kinds of fields real scenarios have (bounded numbers, choices,
lists of mappings, a discriminated union of steps, a hyphenated alias).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Node(Strict):
    name: str
    kernel: str
    sysctls: dict[str, int] = {}


class Service(Strict):
    name: str
    port: int = Field(ge=1, le=65535)
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    scheduler: Literal["rr", "wrr", "lc", "wlc", "sh", "mh"] = "rr"
    affinity_seconds: int | None = Field(default=None, ge=0, le=86400)
    endpoints: list[str] = Field(min_length=1)


class Client(Strict):
    name: str
    node: str
    rate: float = Field(ge=0)
    """New connections per second."""
    service: str


class AddServer(Strict):
    kind: Literal["add-server"]
    at: float = Field(ge=0)
    service: str
    server: str
    weight: int = Field(default=1, ge=0, le=65535)


class Connect(Strict):
    kind: Literal["connect"]
    at: float = Field(ge=0)
    client: str
    port: int = Field(ge=1, le=65535)
    close: Literal["server-first", "client-first", "client-rst", "held"] = "server-first"


Step = Annotated[AddServer | Connect, Field(discriminator="kind")]


class Scenario(Strict):
    name: str
    kube_proxy: str = Field(alias="kube-proxy")
    nodes: list[Node] = Field(min_length=1)
    services: list[Service]
    clients: list[Client] = []
    steps: list[Step] = []
