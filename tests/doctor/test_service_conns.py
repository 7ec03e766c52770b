"""Entries and templates attributed to (virtual service, real server), on real layouts."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.report import service_name
from ipvslab.doctor.service_conns import ServiceConnIndex, index_services

NODES = Path(__file__).resolve().parents[1] / "fixtures" / "doctor" / "nodes"


def index_of(node: str) -> ServiceConnIndex:
    snapshot = snapshot_from_capture(capture_from_layout(NODES / node))
    assert snapshot.ipvs is not None
    return index_services(snapshot.ipvs, snapshot.conns)


def totals(index: ServiceConnIndex) -> dict[tuple[str, str], int]:
    return {
        (service_name(s.service), f"{d[0]}:{d[1]}"): server.total
        for s in index.services
        for d, server in s.servers.items()
        if server.total
    }


def test_each_service_gets_only_the_entries_that_name_it() -> None:
    index = index_of("shared-servers")
    assert totals(index) == {
        ("TCP 10.96.45.12:80", "10.244.2.9:8080"): 13,
        ("TCP 10.96.45.12:80", "10.244.1.7:8080"): 39,
        ("UDP 10.96.0.10:53", "10.244.0.5:53"): 1,
        ("TCP 10.0.1.11:30080", "10.244.2.9:8080"): 5,
        # The load balancer's address is no IPVS service: the fwmark service holds them.
        ("FWM 100", "10.244.2.9:8080"): 2,
    }
    assert index.unattributed_entries == 0
    stuck = [(service_name(svc), str(s.dest.address)) for svc, s in index.stuck()]
    assert stuck == [("TCP 10.96.45.12:80", "10.244.1.7")]


def test_an_invalidated_template_goes_to_the_one_server_at_its_address() -> None:
    index = index_of("template-invalidated")
    servers = {
        (service_name(s.service), str(d[0])): server
        for s in index.services
        for d, server in s.servers.items()
    }
    old = servers[("TCP 10.96.7.7:80", "10.244.3.5")]
    assert (old.templates, old.invalidated_templates, old.total) == (1, 1, 0)
    assert not old.stuck  # templates are not in ActiveConn/InActConn
    new = servers[("TCP 10.96.7.7:80", "10.244.3.6")]
    assert (new.templates, new.invalidated_templates, new.total) == (1, 0, 2)
    assert index.unattributed_templates == 0


def test_entries_of_a_deleted_service_are_unattributed() -> None:
    snapshot = snapshot_from_capture(capture_from_layout(NODES / "shared-servers"))
    assert snapshot.ipvs is not None
    kept = tuple(
        s for s in snapshot.ipvs.services if s.address != ipaddress.ip_address("10.96.0.10")
    )
    table = type(snapshot.ipvs)(snapshot.ipvs.version, snapshot.ipvs.conn_table_size, kept)
    index = index_services(table, snapshot.conns)
    assert index.unattributed_entries == 1  # the DNS query's entry
