"""Label filters on names that are not classic identifiers, the same on SQLite and Postgres.

Alertmanager 0.27+ takes any UTF-8 label name, written double-quoted in a matcher
(``"service.name"="api"``). The list API's ``label`` filters bind the name as a parameter like
the value, so a dot, a space, CJK, quotes or SQL text in a name are just characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug.datastructures import MultiDict

from receiver.app import create_app
from receiver.bootstrap import bootstrap
from receiver.model.matchers import Matcher, MatchOp
from receiver.web.filters import parse_list_query
from tests.support.api import send
from tests.support.databases import module_database, receiver_settings
from tests.support.payloads import alert, webhook

INJECTION = "x' OR '1'='1"
LABELS = {
    "api-a100": {"service.name": "api", "gpu model": "A100", "模型": "llama"},
    "api-h100": {"service.name": "api", "gpu model": "H100", "模型": "mistral"},
    "batch": {"service.name": "batch", 'quote"and\\slash': "yes", INJECTION: "no"},
}


@dataclass
class Named:
    client: Any
    ids: dict[str, int]  # incident id by the key of LABELS


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def named(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Named]:
    with module_database(request, tmp_path_factory, "names") as url:
        container = bootstrap(receiver_settings(url))
        try:
            client = create_app(container=container).test_client()
            ids = {}
            for key, labels in LABELS.items():
                answer = send(client, webhook(alert("Named", **labels), group_key=key))
                [ids[key]] = answer["incidents"]
            yield Named(client, ids)
        finally:
            container.engine.dispose()


def found(named: Named, *filters: str) -> set[str]:
    query = "&".join("label=" + quote(f) for f in filters)
    response = named.client.get(f"/api/v1/incidents?limit=100&{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    by_id = {v: k for k, v in named.ids.items()}
    return {by_id[i["id"]] for i in response.get_json()["incidents"]}


@pytest.mark.parametrize(
    ("filters", "keys"),
    [
        (['"service.name"="api"'], {"api-a100", "api-h100"}),
        (["service.name=api"], {"api-a100", "api-h100"}),  # the UTF-8 parser's bare name
        (['"gpu model"=~"A.*"'], {"api-a100"}),
        (['"gpu model"!~"A.*"'], {"api-h100", "batch"}),  # batch has no gpu model: ""
        (['"模型"="mistral"'], {"api-h100"}),
        (["模型!=llama"], {"api-h100", "batch"}),
        (['"\\u6a21\\u578b"=~"l.*"'], {"api-a100"}),  # the same name, Go escapes
        (['{"service.name"="api", "gpu model"!="A100"}'], {"api-h100"}),
        (['"service.name"=~"api|batch"', '"模型"=""'], {"batch"}),
        (['"quote\\"and\\\\slash"="yes"'], {"batch"}),
        ([str(Matcher(INJECTION, MatchOp.EQ, "no"))], {"batch"}),
        ([str(Matcher(INJECTION, MatchOp.RE, ".*"))], {"api-a100", "api-h100", "batch"}),
        ([str(Matcher(INJECTION, MatchOp.RE, ".+"))], {"batch"}),
    ],
)
def test_filters_on_utf8_label_names(named: Named, filters: list[str], keys: set[str]) -> None:
    assert found(named, *filters) == keys


def test_a_filter_list_with_a_bad_matcher_is_refused_naming_the_position(named: Named) -> None:
    response = named.client.get("/api/v1/incidents?label=" + quote('{"gpu model"=~"A.*",}}'))
    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert error["field"] == "label" and "at character 22" in error["message"]


def test_the_model_parameter_is_an_exact_value_whatever_it_holds() -> None:
    args = MultiDict([("model", 'a"b\\nc'), ("label", '{"gpu model"="H100"}')])
    query = parse_list_query(args, 50)
    assert query.errors == []
    assert query.filter.matchers == [
        Matcher("gpu model", MatchOp.EQ, "H100"),
        Matcher("model", MatchOp.EQ, 'a"b\\nc'),
    ]
