"""The halls of the city: services with their letter prefixes, and counters with what they serve.

Loaded from ``halls.json`` (``app.city.load``): a service catalogue, the city and district halls
written out, and a compact spec from which the township (镇街) service centres are generated — per
district a count and the names known, numbered names making up the rest. A township whose name
ends in 镇 (a rural town) also offers the ``town_services``; every township has the same counters.

A counter's services are a list, or ``"*"`` for a general window that serves every service of its
hall. Only the counters the configuration names exist: a counter action for any other counter text
is ``InvalidInput`` (422), so nothing but configured counter names reaches the public board, and a
counter calls only the services of its plan (``PermissionDenied``, 403). Every hall names at least
one counter. Bad configuration raises ``ValueError`` when first loaded, not at a kiosk.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from app.city import load
from app.errors import InvalidInput, NotFound, PermissionDenied

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PREFIX = re.compile(r"^[A-Z]$")
ALL_SERVICES = "*"


@dataclass(frozen=True)
class Service:
    service: str
    name: str
    prefix: str


@dataclass(frozen=True)
class Hall:
    """One hall: ``services`` in display order; ``counters`` maps counter → service ids, ``None``
    for a general window serving them all."""

    hall: str
    name: str
    level: str  # city | district | township
    services: tuple[Service, ...]
    counters: Mapping[str, tuple[str, ...] | None]

    def __post_init__(self) -> None:
        if not _SLUG.match(self.hall):
            raise ValueError(f"hall id {self.hall!r} must be a lower-case ASCII slug")
        if not self.services:
            raise ValueError(f"hall {self.hall}: no services")
        for what, values in (("service", [s.service for s in self.services]),
                             ("prefix", [s.prefix for s in self.services])):
            if len(set(values)) != len(values):
                raise ValueError(f"hall {self.hall}: duplicate {what} in {values}")
        if not self.counters:
            raise ValueError(f"hall {self.hall}: no counters")
        known = {s.service for s in self.services}
        for counter, served in self.counters.items():
            if not counter or len(counter) > 64 or served == () or set(served or ()) - known:
                raise ValueError(f"hall {self.hall}: counter {counter!r} must serve some of its "
                                 f"hall's services, or {ALL_SERVICES!r}")

    def service(self, service_id: str) -> Service:
        """The hall's service ``service_id``; ``InvalidInput`` (422, ``errors.service``) if none."""
        for service in self.services:
            if service.service == service_id:
                return service
        offered = ", ".join(s.service for s in self.services)
        raise InvalidInput("This hall does not offer that service.",
                           {"service": [f"unknown service for hall {self.hall}; one of: {offered}"]})

    def service_of(self, ticket: str) -> str | None:
        """The service a ticket of this hall belongs to, by its letter prefix."""
        return next((s.service for s in self.services if ticket[:1] == s.prefix), None)

    def services_for(self, counter: str) -> tuple[Service, ...]:
        """What ``counter`` serves: its configured services, or all of the hall's for a general
        window; ``InvalidInput`` (422, ``errors.counter``) for a counter the hall does not have."""
        if counter not in self.counters:
            raise InvalidInput("This hall has no such counter.",
                               {"counter": [f"unknown counter for hall {self.hall}; one of: "
                                            f"{', '.join(self.counters)}"]})
        served = self.counters[counter]
        if served is None:
            return self.services
        return tuple(s for s in self.services if s.service in served)

    def callable_by(self, counter: str, service_id: str | None = None) -> tuple[Service, ...]:
        """The services ``counter`` may call from: all it serves, or only ``service_id``.

        ``InvalidInput`` (422) for a counter or service the hall does not have;
        ``PermissionDenied`` (403) for a service of the hall outside the counter's plan.
        """
        served = self.services_for(counter)
        if service_id is None:
            return served
        service = self.service(service_id)
        if service not in served:
            raise PermissionDenied(f"Counter {counter} does not serve {service.service}.")
        return (service,)


class HallDirectory:
    """All halls by id, in configuration order (city, districts, then townships)."""

    def __init__(self, halls: list[Hall]) -> None:
        self._halls = {hall.hall: hall for hall in halls}
        if len(self._halls) != len(halls):
            raise ValueError("duplicate hall ids")

    def get(self, hall_id: str) -> Hall:
        hall = self._halls.get(hall_id)
        if hall is None:
            raise NotFound(f"No hall {hall_id!r}.")
        return hall

    def __iter__(self) -> Iterator[Hall]:
        return iter(self._halls.values())

    def __len__(self) -> int:
        return len(self._halls)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HallDirectory:
        catalogue = {sid: Service(sid, str(s["name"]), _prefix(sid, s["prefix"]))
                     for sid, s in config["services"].items()}
        halls = [_hall(h["hall"], h["name"], h.get("level", "district"), h["services"],
                       h.get("counters", {}), catalogue) for h in config["halls"]]
        halls += list(_townships(config.get("townships") or {}, catalogue))
        return cls(halls)


@lru_cache(maxsize=1)
def directory() -> HallDirectory:
    """The shipped (or ``CITYCODE_CITY_DIR``) halls, built on first use."""
    return HallDirectory.from_config(load("halls"))


def _prefix(service_id: str, prefix: object) -> str:
    if not isinstance(prefix, str) or not _PREFIX.match(prefix) or not _SLUG.match(service_id):
        raise ValueError(f"service {service_id!r}: id must be a slug and prefix one letter A-Z")
    return prefix


def _hall(hall_id: str, name: str, level: str, service_ids: list[str],
          counters: Mapping[str, Any], catalogue: Mapping[str, Service], *,
          offered_only: bool = False) -> Hall:
    """``offered_only``: drop counter services the hall does not offer (shared township plan)
    instead of failing on them."""
    unknown = [sid for sid in service_ids if sid not in catalogue]
    if unknown:
        raise ValueError(f"hall {hall_id}: services {unknown} are not in the catalogue")
    services = tuple(catalogue[sid] for sid in service_ids)
    plan: dict[str, tuple[str, ...] | None] = {}
    for counter, served in counters.items():
        if served == ALL_SERVICES:
            plan[str(counter)] = None
        elif isinstance(served, list):
            plan[str(counter)] = tuple(sid for sid in served if not offered_only or sid in service_ids)
        else:
            raise ValueError(f"hall {hall_id}: counter {counter!r} needs a list of services or '*'")
    return Hall(hall_id, name, level, services, MappingProxyType(plan))


def _townships(spec: Mapping[str, Any], catalogue: Mapping[str, Service]) -> Iterator[Hall]:
    """``count`` centres per district, ids ``<district>-NN``; a 镇 also gets ``town_services``.

    The shared counter plan may name a service a centre does not offer; that centre skips it.
    """
    base, extra = list(spec.get("services", [])), list(spec.get("town_services", []))
    counters = spec.get("counters", {})
    for district in spec.get("districts", []):
        towns, count = list(district.get("towns", [])), int(district["count"])
        if len(towns) > count:
            raise ValueError(f"district {district['district']}: more names than its count")
        for number in range(1, count + 1):
            town = towns[number - 1] if number <= len(towns) else f"第{number}镇街"
            services = base + extra if town.endswith("镇") else base
            yield _hall(f"{district['district']}-{number:02d}", f"{district['name']}{town}便民服务中心",
                        "township", services, counters, catalogue, offered_only=True)
