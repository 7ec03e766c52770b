"""Ticket-shaped pastes: one file with several outputs, indentation, CRLF, UTF-16.

The fixture ``captures/ticket-one-file/ticket-4711.txt`` is a terminal session pasted
into a ticket: prompts, ``uname -r``, ``ipvsadm -Ln``, ``ipvsadm -Lnc | head`` and a
grep of ``sysctl -a``, one after the other (the 81775 node of ``cli/pasted``).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ipvslab.cli.main import app
from ipvslab.doctor.capture import InputKind, capture_from, snapshot_from_capture
from ipvslab.doctor.diagnose import diagnose
from ipvslab.doctor.parsers.paste import split_paste
from ipvslab.doctor.report import build_report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "doctor"
TICKET = FIXTURES / "captures" / "ticket-one-file" / "ticket-4711.txt"
PASTED = FIXTURES / "cli" / "pasted"
runner = CliRunner()


def test_a_terminal_session_splits_into_its_outputs() -> None:
    parts = split_paste(TICKET.read_text())
    assert [p.text.splitlines()[0] for p in parts] == [
        "4.15.0-213-generic",
        "IP Virtual Server version 1.2.1 (size=4096)",
        "IPVS connection entries",
        "net.ipv4.ip_local_port_range = 32768\t60999",
    ]
    assert [p.first_line for p in parts] == [2, 4, 13, 64]


def test_outputs_without_prompts_split_where_each_begins() -> None:
    text = (
        "5.4.0-150-generic\n"
        + (PASTED / "ipvsadm-Ln.txt").read_text()
        + "net.ipv4.vs.conn_reuse_mode = 1\nnet.ipv4.vs.conntrack = 1\n"
    )
    assert len(split_paste(text)) == 3


def test_a_kube_proxy_command_line_is_kept_but_its_version_command_splits() -> None:
    text = (
        "$ ps -o args= -C kube-proxy\n"
        "kube-proxy --proxy-mode=ipvs --ipvs-scheduler=rr\n"
        "$ /usr/local/bin/kube-proxy --version\n"
        "Kubernetes v1.20.0\n"
    )
    parts = split_paste(text)
    assert [p.text for p in parts] == [
        "kube-proxy --proxy-mode=ipvs --ipvs-scheduler=rr\n",
        "Kubernetes v1.20.0\n",
    ]


def test_a_single_output_is_one_part() -> None:
    for name in ("ipvsadm_list.txt", "proc_ip_vs_conn.txt", "sysctl_a.txt", "ipvsadm_conn.txt"):
        text = (FIXTURES / name).read_text()
        assert len(split_paste(text)) == 1, name


def _kinds(path: Path) -> set[InputKind]:
    return set(capture_from([str(path)]).files)


def test_the_ticket_is_read_as_four_inputs_and_diagnosed() -> None:
    capture = capture_from([str(TICKET)])
    assert set(capture.files) == {
        InputKind.KERNEL_RELEASE,
        InputKind.IPVSADM_LIST,
        InputKind.IPVSADM_CONN,
        InputKind.SYSCTL,
    }
    assert capture.problems == ()
    snapshot = snapshot_from_capture(capture)
    assert snapshot.issues == ()
    assert snapshot.kernel_release is not None
    assert snapshot.kernel_release.text == "4.15.0-213-generic"
    assert snapshot.sysctl_int("conn_reuse_mode") == 0
    assert snapshot.conns is not None and snapshot.conns.total == 48
    result = runner.invoke(app, ["doctor", "--from", str(TICKET), "--kube-proxy", "v1.20.0"])
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "preset ubuntu-18.04" in out and "exposed to problem 1" in out


def test_crlf_and_indented_pastes_read_alike(tmp_path: Path) -> None:
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(TICKET.read_bytes().replace(b"\n", b"\r\n"))
    indented = tmp_path / "indented.txt"
    indented.write_text("".join("    " + line for line in TICKET.read_text().splitlines(True)))
    expected = snapshot_from_capture(capture_from([str(TICKET)]))
    for path in (crlf, indented):
        snapshot = snapshot_from_capture(capture_from([str(path)]))
        assert snapshot.issues == (), path
        assert snapshot.ipvs == expected.ipvs
        assert snapshot.conns is not None and expected.conns is not None
        assert snapshot.conns.total == expected.conns.total
        assert snapshot.sysctls.values == expected.sysctls.values


def test_tab_separated_ipvsadm_is_recognised(tmp_path: Path) -> None:
    # What a spreadsheet or some ticket systems make of the column padding.
    lines = (PASTED / "ipvsadm-Ln.txt").read_text().splitlines()
    tabbed = tmp_path / "ipvsadm.tsv"
    tabbed.write_text("\n".join(re.sub(r"  +", "\t", line) for line in lines) + "\n")
    snapshot = snapshot_from_capture(capture_from([str(tabbed)]))
    expected = snapshot_from_capture(capture_from([str(PASTED / "ipvsadm-Ln.txt")]))
    assert snapshot.ipvs == expected.ipvs and snapshot.ipvs is not None


def test_powershell_utf16_pastes_are_decoded(tmp_path: Path) -> None:
    text = TICKET.read_text().replace("\n", "\r\n")
    with_bom = tmp_path / "ticket-ps.txt"
    with_bom.write_bytes(text.encode("utf-16"))  # PowerShell 5's `>`: UTF-16LE with a BOM
    without_bom = tmp_path / "ticket-nobom.txt"
    without_bom.write_bytes(text.encode("utf-16-le"))
    for path in (with_bom, without_bom):
        assert _kinds(path) == _kinds(TICKET), path
        assert snapshot_from_capture(capture_from([str(path)])).issues == ()
    # One output alone, as `ipvsadm -Ln > ipvs.txt` in PowerShell writes it.
    single = tmp_path / "ipvs.txt"
    single.write_bytes((PASTED / "ipvsadm-Ln.txt").read_text().encode("utf-16-le"))
    snapshot = snapshot_from_capture(capture_from([str(single)]))
    expected = snapshot_from_capture(capture_from([str(PASTED / "ipvsadm-Ln.txt")]))
    assert snapshot.issues == () and snapshot.ipvs == expected.ipvs


def test_a_ticket_on_stdin_is_split_too() -> None:
    result = runner.invoke(
        app,
        ["doctor", "--from", "-", "--json", "--kube-proxy", "v1.20.0"],
        input=TICKET.read_text(),
    )
    assert result.exit_code == 1, result.output
    assert '"ipvsadm-Lnc.txt"' in result.stdout and '"uname-r.txt"' in result.stdout


PIECES = [
    "[root@worker-3 ~]# ipvsadm -Ln\n",
    "$ uname -r\n",
    "4.19.0-25-amd64\n",
    "Ubuntu 5.4.0-1103.111-aws 5.4.231\n",
    "Linux version 4.19.0-25-amd64 (x) #1 SMP Debian 4.19.289-2 (2023-08-08)\n",
    "net.ipv4.vs.conn_reuse_mode = 0\n",
    "IPVS connection entries\n",
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "TCP  10.96.0.1:443 rr\n",
    "  -> 10.244.1.10:8080             Masq    0      3          40\n",
    "\t->\t10.244.1.10:8080\tMasq\t0\t3\t40\n",
    "\r\n",
    "    ",
    "\0",
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES) | st.text(max_size=30), max_size=25),
    st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-8-sig"]),
)
def test_any_paste_is_diagnosed_without_raising(pieces: list[str], encoding: str) -> None:
    text = "".join(pieces)
    with tempfile.TemporaryDirectory() as where:
        pasted = Path(where) / "ticket.txt"
        pasted.write_bytes(text.encode(encoding, "surrogatepass"))
        capture = capture_from([str(pasted)])
        report = build_report(diagnose(snapshot_from_capture(capture)))
        assert all(len(p.message) <= 400 for p in report.input_problems)
