"""Whatever a user feeds the loader, it loads or raises one bounded ScenarioError."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ipvslab.scenario import ScenarioError, load_model_text
from ipvslab.scenario.errors import MAX_PROBLEMS
from ipvslab.scenario.yaml_source import EMPTY, parse_yaml

from .conftest import VALID
from .models import AddServer, Client, Connect, Node, Scenario, Service

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces YAML gives meaning to, words of the scenario and characters from pasted tickets.
TOKENS = [
    *"ab1.: -[]{},&*!|>'\"#?%@`\\~=<\n\n  ",
    "\t",
    "\r\n",
    "é",
    "\x00",
    "\ufeff",
    "\u2028",
    "name",
    "kube-proxy",
    "nodes",
    "services",
    "- name: web\n",
    "port: 80\n",
    "rate: ",
    "yes",
    "2024-03-01",
    "0x1F",
    "1:30",
    "<<",
    "&a ",
    "*a",
    "!!str ",
    "!!python/name:os.system",
    "---\n",
    "...\n",
]
yaml_like = st.lists(st.sampled_from(TOKENS), max_size=60).map("".join)


def assert_loads_or_refuses_cleanly(text: str) -> None:
    try:
        load_model_text(text, "scenario.yaml", Scenario)
    except ScenarioError as err:
        assert 1 <= len(err.problems) <= MAX_PROBLEMS
        # YAML breaks lines at CR, LF, CRLF, NEL and the Unicode separators.
        last_line = len(re.findall("\r\n|[\r\n\x85\u2028\u2029]", text)) + 1
        for problem in err.problems:
            assert problem.file == "scenario.yaml"
            assert problem.line is None or 1 <= problem.line <= last_line
            assert problem.column is None or problem.column >= 1
            # Values are echoed to 60 characters, paths to 120: a line stays short.
            assert len(str(problem)) <= 600, str(problem)


@FAST
@given(yaml_like)
@example("a: &x [*x]\n")
@example("? - a\n: b\n")
@example("name: !!binary Zm9v!\n")
@example("name: =\n")
def test_random_yaml_loads_or_raises_a_scenario_error(text: str) -> None:
    assert_loads_or_refuses_cleanly(text)


@st.composite
def mutated_scenarios(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 12)))
        text = text[:start] + draw(yaml_like.filter(lambda piece: len(piece) < 20)) + text[end:]
    return text


@FAST
@given(mutated_scenarios())
def test_a_damaged_scenario_loads_or_raises_a_scenario_error(text: str) -> None:
    assert_loads_or_refuses_cleanly(text)


@FAST
@given(st.one_of(yaml_like, mutated_scenarios()))
def test_what_the_loader_reads_is_what_pyyaml_reads(text: str) -> None:
    try:
        ours = parse_yaml(text, "scenario.yaml").root
    except ScenarioError:
        return
    try:
        theirs = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        # A lone "=", which PyYAML cannot build and the loader reads as text.
        assert "=" in text
        return
    if ours is EMPTY:
        assert theirs is None
    else:
        # repr: NaN is not equal to itself; key order counts too.
        assert repr(ours) == repr(theirs)


# --- valid documents are accepted unchanged ---------------------------------------

# PyYAML's emitter writes NEL and the Unicode line and paragraph separators raw in
# quoted strings, where every YAML reader then folds them: those documents do not
# say what was dumped, whoever reads them.
_BREAKS = "\x85\u2028\u2029"
words = st.text(st.characters(codec="utf-8", exclude_characters=_BREAKS), max_size=30)
bounded = st.floats(min_value=0, max_value=1e12, allow_nan=False)
ports = st.integers(1, 65535)


def steps() -> st.SearchStrategy[AddServer | Connect]:
    return st.one_of(
        st.builds(
            AddServer,
            kind=st.just("add-server"),
            at=bounded,
            service=words,
            server=words,
            weight=st.integers(0, 65535),
        ),
        st.builds(
            Connect,
            kind=st.just("connect"),
            at=bounded,
            client=words,
            port=ports,
            close=st.sampled_from(["server-first", "client-first", "client-rst", "held"]),
        ),
    )


def _scenario(**fields: Any) -> Scenario:
    fields["kube-proxy"] = fields.pop("kube_proxy")
    return Scenario.model_validate(fields)


scenarios = st.builds(
    _scenario,
    name=words,
    kube_proxy=words,
    nodes=st.lists(
        st.builds(Node, name=words, kernel=words, sysctls=st.dictionaries(words, st.integers())),
        min_size=1,
        max_size=3,
    ),
    services=st.lists(
        st.builds(
            Service,
            name=words,
            port=ports,
            protocol=st.sampled_from(["TCP", "UDP", "SCTP"]),
            scheduler=st.sampled_from(["rr", "wrr", "lc", "wlc", "sh", "mh"]),
            affinity_seconds=st.none() | st.integers(0, 86400),
            endpoints=st.lists(words, min_size=1, max_size=4),
        ),
        max_size=3,
    ),
    clients=st.lists(
        st.builds(Client, name=words, node=words, rate=bounded, service=words), max_size=3
    ),
    steps=st.lists(steps(), max_size=4),
)


@FAST
@given(scenarios, st.booleans())
def test_a_valid_scenario_is_loaded_unchanged(scenario: Scenario, flow: bool) -> None:
    text = yaml.safe_dump(
        scenario.model_dump(by_alias=True),
        default_flow_style=flow,
        allow_unicode=True,
        sort_keys=False,
    )
    assert load_model_text(text, "scenario.yaml", Scenario) == scenario


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


plain_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | words
    | st.dates()
    | st.datetimes(timezones=st.just(dt.UTC)).map(lambda moment: moment.replace(fold=0)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=4),
    max_leaves=25,
)


@FAST
@given(st.dictionaries(words, plain_data, max_size=5), st.booleans())
def test_any_plain_document_reads_back_as_written(data: dict[str, Any], flow: bool) -> None:
    text = yaml.dump(
        data, Dumper=_NoAliases, default_flow_style=flow, allow_unicode=True, sort_keys=False
    )
    assert repr(parse_yaml(text, "scenario.yaml").root) == repr(data)
