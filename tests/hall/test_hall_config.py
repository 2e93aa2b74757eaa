"""The hall directory: city and district halls from halls.json, township centres generated."""
from __future__ import annotations

import copy
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.city import load
from app.errors import InvalidInput, NotFound
from app.hall.config import HallDirectory, directory

QINGDAO = {"city", "shinan", "shibei", "licang", "laoshan", "huangdao", "chengyang", "jimo", "jiaozhou",
           "pingdu", "laixi"}


def _config() -> dict[str, Any]:
    return copy.deepcopy(load("halls"))


def test_the_city_hall_and_every_district_hall_are_configured() -> None:
    main_halls = {h.hall: h for h in directory() if h.level != "township"}
    assert set(main_halls) == QINGDAO and len(main_halls) >= 10
    assert main_halls["city"].name.startswith("青岛市") and main_halls["huangdao"].name.startswith("西海岸新区")
    assert all(len(h.services) >= 5 and len(h.counters) >= 5 for h in main_halls.values())


def test_198_township_centres_are_generated_with_two_or_three_services_and_two_counters() -> None:
    townships = [h for h in directory() if h.level == "township"]
    assert len(townships) == 198 and len(directory()) >= 208
    assert all(h.hall.isascii() and h.name.endswith("便民服务中心") for h in townships)
    assert all(2 <= len(h.services) <= 3 and len(h.counters) == 2 for h in townships)
    town = directory().get("huangdao-15")
    assert town.name == "西海岸新区六汪镇便民服务中心"
    assert [s.service for s in town.services] == ["general", "social_insurance", "agriculture"]
    assert directory().get("shinan-01").name == "市南区八大峡街道便民服务中心"
    assert directory().get("shinan-12").name == "市南区第12镇街便民服务中心"


def test_prefixes_are_single_letters_unique_within_each_hall() -> None:
    for hall in directory():
        prefixes = [s.prefix for s in hall.services]
        assert len(set(prefixes)) == len(prefixes)
        assert all(len(p) == 1 and "A" <= p <= "Z" for p in prefixes)
        assert all(hall.service_of(f"{s.prefix}001") == s.service for s in hall.services)


def test_counters_serve_their_configured_services_or_all() -> None:
    city = directory().get("city")
    assert [s.service for s in city.services_for("3")] == ["household", "entry_exit"]
    with pytest.raises(InvalidInput) as raised:
        city.services_for("99")  # a counter the plan does not name does not exist
    assert "counter" in raised.value.errors
    shinan = directory().get("shinan")
    assert shinan.services_for("7") == shinan.services  # "*": a general window
    street = directory().get("shinan-01")  # the township plan's agriculture is skipped in a street
    assert [s.service for s in street.services_for("1")] == ["general"]


def test_unknown_hall_and_service_are_domain_errors() -> None:
    with pytest.raises(NotFound):
        directory().get("atlantis")
    with pytest.raises(InvalidInput) as raised:
        directory().get("city").service("agriculture")
    assert "service" in raised.value.errors


@pytest.mark.parametrize("breakage", [
    lambda c: c["halls"][0].update(services=["household", "general"]),       # both prefix A
    lambda c: c["halls"][0].update(services=["household", "household"]),
    lambda c: c["halls"][0].update(services=["household", "no_such_service"]),
    lambda c: c["halls"][0]["counters"].update({"1": ["tax", "typo"]}),
    lambda c: c["halls"][0]["counters"].update({"1": []}),
    lambda c: c["halls"][0].update(counters={}),                              # nobody could call
    lambda c: c["townships"].update(counters={}),
    lambda c: c["halls"][1].update(hall="城市"),
    lambda c: c["halls"].append(dict(c["halls"][0])),
    lambda c: c["services"]["household"].update(prefix="AA"),
    lambda c: c["townships"]["districts"][0].update(count=3),
])
def test_bad_configuration_fails_when_loaded(breakage: Any) -> None:
    config = _config()
    breakage(config)
    with pytest.raises(ValueError):
        HallDirectory.from_config(config)


def test_get_halls_lists_every_hall_with_services(client: FlaskClient) -> None:
    response = client.get("/v1/halls")
    assert response.status_code == 200
    halls = response.get_json()
    assert len(halls) >= 208 and halls[0]["hall"] == "city"
    assert {"service": "household", "name": "户籍", "prefix": "A"} in halls[0]["services"]
    assert {"counter": "3", "services": ["household", "entry_exit"]} in halls[0]["counters"]
    assert all({"hall", "name", "services"} <= set(h) for h in halls)


def test_hall_endpoints_are_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in ("/v1/halls", "/v1/halls/{hall}/tickets", "/v1/halls/{hall}/call", "/v1/halls/{hall}/skip",
                 "/v1/halls/{hall}/recall", "/v1/halls/{hall}/board"):
        assert path in paths
