"""The what-if answer as pydantic models: the JSON of ``doctor --what-if --json``
(``what_if`` in the doctor's report) and what the human output is rendered from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_STRICT = ConfigDict(extra="forbid")


class Range(BaseModel):
    """A figure over the seeds: its lowest and highest value (null: none had one)."""

    model_config = _STRICT

    low: float | None
    high: float | None

    def text(self, fmt: str = "{:,.0f}", joiner: str = "-") -> str:
        """``low-high`` in ``fmt`` (one value when they print alike; "-" when none)."""
        if self.low is None or self.high is None:
            return "-"
        low, high = fmt.format(self.low), fmt.format(self.high)
        return low if low == high else f"{low}{joiner}{high}"


class WhatIfRun(BaseModel):
    model_config = _STRICT

    seed: int
    connections: int = Field(description="Attempts from the action on.")
    to_old_pods: int = Field(description="Sent to weight-0, removed or dead real servers.")
    errors: dict[str, int]
    connect_p99_ms: float | None
    first_packet_dropped: int = Field(
        description="First SYNs dropped (#70747) and packets dropped on a removed server's"
        " entry (expire_nodest_conn=1 before 5.9): each costs the client a retry."
    )
    old_servers: int = Field(description="Real servers set to weight 0 from the action on.")
    old_servers_kept: int = Field(description="Of them, not deleted by the end of the run.")
    longest_stay_s: float | None = Field(description="Weight 0 to deleted, the longest.")
    new_pods_share: float | None = Field(
        description="Established connections that reached pods made by the action."
    )
    fair_share: float | None = Field(
        description="The new pods' part of the pods at the end: their share if spread evenly."
    )


class WhatIfVariant(BaseModel):
    model_config = _STRICT

    label: str = Field(description='"as is", a setting, or "all: ..." of them combined.')
    settings: list[str]
    refused: str | None = Field(description="Why the twin would not run it (null: it ran).")
    runs: list[WhatIfRun]
    errors: Range
    error_rate: Range
    to_old_pods: Range
    connect_p99_ms: Range
    longest_stay_s: Range
    old_servers_kept: Range
    new_pods_share: Range
    fair_share: Range


class WhatIfReport(BaseModel):
    model_config = _STRICT

    actions: list[str] = Field(description="What happens, at action_at_s into each run.")
    action_at_s: int
    after_s: int = Field(description="How long each run goes on after the actions.")
    seeds: list[int]
    services: dict[str, str] = Field(description="IPVS service -> the twin's service name.")
    assumptions: list[str]
    variants: list[WhatIfVariant]
    recommendation: list[str]
