"""InMemoryFleet meets the FleetView contract."""

from __future__ import annotations

from microstatedb.resilience import FleetView, InMemoryFleet

from .fleet_contract import FleetViewContract


class TestInMemoryFleet(FleetViewContract):
    def make_view(self) -> FleetView:
        return InMemoryFleet()
