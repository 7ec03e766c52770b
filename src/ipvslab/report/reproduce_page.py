"""The report page of an `ipvslab reproduce` folder (docs/reproduce.md): the
symptom x configuration matrix, the seeds' claims beside the measured figures,
seed 002's table, and a section per run with its pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ipvslab.report import figures, inputs
from ipvslab.report.inputs import ReportInputError, field
from ipvslab.report.page import Cell, Facts, Page, Section, Table, Text, anchor
from ipvslab.report.setup_block import setup_facts
from ipvslab.reproduce import cce
from ipvslab.reproduce.catalog import CONFIGURATION_BY_NAME, CONFIGURATIONS, SYMPTOM_BY_NAME
from ipvslab.reproduce.runner import MARKS, run_folder
from ipvslab.results.metrics import shares, time_series

# Verdict -> the CSS class that colours its cell (page.html.j2).
VERDICT_CSS = {verdict: "verdict-" + verdict.replace(" ", "-") for verdict in MARKS}
LEGEND = (
    ("verdict-symptom", "● the symptom, as the seed says"),
    ("verdict-not-reproduced", "○ not reproduced / ? failed"),
    ("verdict-cured", "✓ cured"),
    ("verdict-not-cured", "✗ not cured"),
    ("verdict-made-worse", "! made worse"),
)
_SECOND = 1_000_000


def run_anchor(symptom: str, configuration: str) -> str:
    return anchor("run", symptom, configuration)


def _title(symptom: str) -> str:
    known = SYMPTOM_BY_NAME.get(symptom)
    return known.title if known else symptom


def _config_title(name: str) -> str:
    known = CONFIGURATION_BY_NAME.get(name)
    return known.title if known else name


def _ordered_configs(matrix: dict[str, dict[str, Any]]) -> list[str]:
    present = {c for row in matrix.values() for c in row}
    known = [c.name for c in CONFIGURATIONS if c.name in present]
    return known + sorted(present - set(known))


def matrix_table(matrix: dict[str, dict[str, Any]], path: Path) -> Table:
    """Configurations down, symptoms across; each cell coloured by its verdict and
    linking to its run's section."""
    symptoms = list(matrix)
    rows: list[list[Cell | str]] = []
    for config in _ordered_configs(matrix):
        row: list[Cell | str] = [Cell(_config_title(config), title=config)]
        for symptom in symptoms:
            cell = matrix[symptom].get(config)
            if cell is None:
                row.append(Cell(""))
                continue
            if not isinstance(cell, dict):
                raise ReportInputError(f"{path}: field 'matrix.{symptom}.{config}': not an object")
            verdict = str(cell.get("verdict", "failed"))
            mark = MARKS.get(verdict, ("?", ""))[0]
            row.append(
                Cell(
                    f"{mark} {cell.get('figure', '')}",
                    css=VERDICT_CSS.get(verdict, "verdict-failed"),
                    href="#" + run_anchor(symptom, config),
                    title=verdict,
                )
            )
        rows.append(row)
    return Table(
        ["configuration", *(_title(s) for s in symptoms)],
        rows,
        css="matrix",
        caption="Each cell: the symptom's figure in that configuration; click for its run.",
    )


def claims_table(claims: list[Any], path: Path) -> Table:
    rows: list[list[Cell | str]] = []
    for claim in claims:
        if not isinstance(claim, dict):
            raise ReportInputError(f"{path}: field 'claims': expected objects")
        agrees = claim.get("agrees")
        verdict, css = (
            ("agrees", "agrees")
            if agrees is True
            else ("differs", "differs")
            if agrees is False
            else ("not comparable", "not-comparable")
        )
        symptom = str(claim.get("symptom", ""))
        rows.append(
            [
                Cell(_title(symptom), href="#" + anchor("symptom", symptom)),
                str(claim.get("source", "")),
                str(claim.get("claim", "")),
                str(claim.get("measured", "")),
                Cell(verdict, css=css),
            ]
        )
    return Table(["symptom", "source", "the seed says", "measured", ""], rows)


def cce_table(cells: list[Any], path: Path) -> Table:
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells:
        if not isinstance(cell, dict):
            raise ReportInputError(f"{path}: field 'cce': expected objects")
        by[(str(cell.get("preset")), str(cell.get("kube_proxy")))] = cell
    rows: list[list[Cell | str]] = []
    for preset, label in cce.OSES:
        row: list[Cell | str] = [label]
        for version, _ in cce.BANDS:
            c = by.get((preset, version))
            if c is None:
                row.append("-")
            elif c.get("agrees") is None:
                row.append(Cell(f"{c.get('derived')} (seed: -)", css="not-comparable"))
            elif c.get("agrees"):
                row.append(Cell(f"{c.get('derived')} ✓", css="agrees"))
            else:
                row.append(
                    Cell(
                        f"{c.get('derived')} ✗ seed: {c.get('seed')}",
                        css="differs",
                        title=str(c.get("why") or ""),
                    )
                )
        rows.append(row)
    notes = sorted({str(c.get("why")) for c in by.values() if c.get("why")})
    return Table(
        ["node OS", *(f"kube-proxy {band}" for _, band in cce.BANDS)],
        rows,
        caption=" ".join(notes),
    )


def _run_section(out: Path, symptom: str, config: str, cell: dict[str, Any]) -> tuple[Section, Any]:
    """A run's section, and its established connect times (for the symptom's CDF)."""
    folder = run_folder(out, symptom, config, symptom)
    verdict = str(cell.get("verdict", "failed"))
    facts = Facts(
        [
            ("configuration", _describe(config)),
            ("verdict", f"{MARKS.get(verdict, ('?', ''))[0]} {verdict}"),
            ("figure", str(cell.get("figure", ""))),
            ("error rate", _pct(cell.get("error_rate"))),
            ("p99 connect", _ms(cell.get("connect_p99_ms"))),
            ("files", str(folder)),
        ]
    )
    section = Section(run_anchor(symptom, config), _config_title(config), [facts])
    if not (folder / "trace.parquet").is_file():
        section.blocks.append(Text(["No run files: the run failed or was not written."]))
        return section, None
    setup = inputs.read_json(folder / "run.json") if (folder / "run.json").is_file() else None
    trace = inputs.read_parquet(folder / "trace.parquet", inputs.TRACE)
    has_extras = setup is not None
    samples = (
        inputs.read_parquet(folder / "servers.parquet", inputs.SERVERS) if has_extras else None
    )
    server_log = (
        inputs.read_parquet(folder / "server_log.parquet", inputs.SERVER_LOG)
        if has_extras
        else None
    )
    pods = inputs.read_parquet(folder / "pods.parquet", inputs.PODS) if has_extras else None
    spec = setup.get("scenario_spec") if setup else None
    spec = spec if isinstance(spec, dict) else None
    interval = spec.get("interval") if spec else None
    interval = interval if isinstance(interval, int) and interval > 0 else _SECOND
    simulated = setup.get("simulated_s") if setup else None
    end = (
        int(simulated * _SECOND)
        if isinstance(simulated, int | float)
        else int(trace["time_us"].cast(pl.Int64).max() or 0) + 1  # type: ignore[arg-type]
    )
    if samples is None:  # a folder from before the run's servers were written
        sampled = pl.DataFrame(schema={k: v[0] for k, v in inputs.SERVERS.items()})
    else:
        sampled = samples
    series = time_series(trace, sampled, interval, end)
    markers = figures.events_of(spec, pods if pods is not None else pl.DataFrame())
    section.blocks += setup_facts(setup, "")
    title = f"{_title(symptom)}, {_config_title(config)}"
    section.blocks.append(
        figures.block(figures.shares_figure(shares(trace, interval), markers, f"{title}: shares"))
    )
    section.blocks.append(figures.block(figures.errors_figure(series, markers, f"{title}: errors")))
    if samples is not None and server_log is not None:
        dataplane = str(setup.get("dataplane", "?")) if setup else "?"
        section.blocks.append(
            figures.block(
                figures.stuck_servers_figure(
                    samples, server_log, markers, f"{title}: weight-0 servers", dataplane
                )
            )
        )
    return section, trace.filter(pl.col("result") == "established")["connect_us"]


def _describe(config: str) -> str:
    known = CONFIGURATION_BY_NAME.get(config)
    return f"{config}: {known.description}" if known else config


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, int | float) else "-"


def _ms(value: Any) -> str:
    return f"{value:,.0f} ms" if isinstance(value, int | float) else "-"


def build(folder: Path) -> Page:
    path = folder / "report.json"
    data = inputs.read_json(path)
    matrix = field(data, path, "matrix", dict)
    for symptom, row in matrix.items():
        if not isinstance(row, dict):
            raise ReportInputError(f"{path}: field 'matrix.{symptom}': expected an object")
    claims = field(data, path, "claims", list)
    cells = data.get("cce") if isinstance(data.get("cce"), list) else []
    scale = str(data.get("scale", "?"))
    version = data.get("ipvslab_version")

    facts = Facts(
        [
            ("ipvslab", str(version) if version else "not recorded"),
            ("scale", scale),
            ("thresholds", str(data.get("thresholds", ""))),
            ("run again", "ipvslab reproduce" + (" --quick" if scale == "quick" else "")),
        ]
    )
    sections = [Section("setup", "What ran", [facts])]
    if matrix:
        sections.append(Section("matrix", "Symptom × configuration", [matrix_table(matrix, path)]))
    if claims:
        sections.append(
            Section("claims", "The seeds' claims, measured", [claims_table(claims, path)])
        )
    if cells:
        sections.append(
            Section("cce", "Seed 002: problem by node OS and kube-proxy", [cce_table(cells, path)])
        )
    for symptom, row in matrix.items():
        known = SYMPTOM_BY_NAME.get(symptom)
        section = Section(anchor("symptom", symptom), f"Symptom: {_title(symptom)}")
        if known is not None:
            section.blocks.append(
                Text([f"The figure: {known.figure}. The symptom is there when {known.threshold}."])
            )
        curves: list[tuple[str, Any]] = []
        for config in _ordered_configs({symptom: row}):
            run, connect = _run_section(folder, symptom, config, row[config])
            section.subsections.append(run)
            if connect is not None:
                curves.append((_config_title(config), connect))
        section.blocks.append(
            figures.block(
                figures.latency_cdf_figure(
                    curves, f"{_title(symptom)}: connect time per configuration"
                ),
                "A step at 1 s is the first SYN dropped and retransmitted (#70747).",
            )
        )
        sections.append(section)
    return Page(
        "ipvslab reproduce" + (" (quick scale)" if scale == "quick" else ""),
        "the seeds' symptoms, simulated and measured, against what is meant to cure them",
        sections,
        legend=LEGEND if matrix else (),
    )
