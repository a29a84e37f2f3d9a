"""Deterministic seeding of a realistic world: people (the sandbox's users, with their Google
grants, plus external contacts), then each service's data (`ServicePlugin.seed`) from the same
random stream, so one seed always gives the same world.
"""

from __future__ import annotations

import gc
import random
from datetime import date, datetime
from typing import TYPE_CHECKING

from sunny_pipelines.sandbox.core.common import get_zone, rfc3339_millis

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.world import World

DOMAIN = "example.com"
EXTERNAL_DOMAINS = ("globex.example.net", "initech.example.org")

PIONEERS = [
    ("Ada", "Lovelace", "Europe/London"),
    ("Grace", "Hopper", "America/New_York"),
    ("Alan", "Turing", "Europe/London"),
    ("Katherine", "Johnson", "America/New_York"),
    ("Edsger", "Dijkstra", "Europe/Amsterdam"),
    ("Barbara", "Liskov", "America/New_York"),
    ("Donald", "Knuth", "America/Los_Angeles"),
    ("Margaret", "Hamilton", "America/New_York"),
    ("Tim", "Berners-Lee", "Europe/London"),
    ("Hedy", "Lamarr", "Europe/Vienna"),
    ("Radia", "Perlman", "America/Los_Angeles"),
    ("Dennis", "Ritchie", "America/New_York"),
    ("Frances", "Allen", "America/New_York"),
    ("Claude", "Shannon", "America/New_York"),
    ("Leslie", "Lamport", "America/Los_Angeles"),
    ("Shafi", "Goldwasser", "America/Los_Angeles"),
    ("Yukihiro", "Matsumoto", "Asia/Tokyo"),
    ("Guido", "van Rossum", "Europe/Amsterdam"),
    ("Sophie", "Wilson", "Europe/London"),
    ("Karen", "Sparck Jones", "Europe/London"),
    ("Bjarne", "Stroustrup", "Europe/Copenhagen"),
    ("Niklaus", "Wirth", "Europe/Zurich"),
    ("Anita", "Borg", "America/Los_Angeles"),
    ("Fei-Fei", "Li", "America/Los_Angeles"),
    ("Andrew", "Yao", "Asia/Shanghai"),
    ("Jean", "Bartik", "America/Chicago"),
    ("Annie", "Easley", "America/New_York"),
    ("Vint", "Cerf", "America/New_York"),
    ("Lynn", "Conway", "America/Los_Angeles"),
    ("Kristen", "Nygaard", "Europe/Oslo"),
    ("John", "McCarthy", "America/Los_Angeles"),
    ("Adele", "Goldberg", "America/Los_Angeles"),
    ("Butler", "Lampson", "America/New_York"),
    ("Whitfield", "Diffie", "America/Los_Angeles"),
    ("Ivan", "Sutherland", "America/Los_Angeles"),
    ("Mary", "Jackson", "America/New_York"),
    ("Cristina", "Amon", "America/Toronto"),
    ("Raj", "Reddy", "Asia/Kolkata"),
    ("Ruchi", "Sanghvi", "Asia/Kolkata"),
    ("Tu", "Weiming", "Asia/Singapore"),
]
FIRST_NAMES = [
    "Amelia", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Gita", "Hugo", "Ines", "Jonas", "Keiko", "Liam",
    "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wei", "Ximena",
    "Yusuf", "Zoe", "Aisha", "Bruno", "Carmen", "Dmitri", "Emeka", "Freya", "Goran", "Hana", "Ivan", "Jia",
]  # fmt: skip
LAST_NAMES = [
    "Anderson", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Singh", "Tanaka",
    "Uchenna", "Varga", "Wagner", "Xu", "Yilmaz", "Zhang", "Novak", "Silva", "Kim", "Murphy",
]  # fmt: skip
TIMEZONES = [
    "Europe/London", "America/New_York", "America/Los_Angeles", "Europe/Berlin", "America/Chicago",
    "Europe/Paris", "Asia/Tokyo", "Australia/Sydney", "America/Sao_Paulo", "Asia/Kolkata",
]  # fmt: skip


class SeedContext:
    """What every service's seeding shares: the world, the random stream, "now", external people."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.now = world.now()
        self.externals: list[tuple[str, str]] = []  # (email, name) of people outside the domain
        self._today: dict[str, date] = {}

    def stamp(self, before: float) -> tuple[str, str]:
        """created / updated times in the past, before `before` when that is in the past too."""
        latest = min(before, self.now) - 3600
        created = latest - self.rng.uniform(1, 40) * 86400
        updated = created + self.rng.uniform(0, latest - created)
        return rfc3339_millis(created), rfc3339_millis(updated)

    def today(self, tz: str) -> date:
        if tz not in self._today:
            self._today[tz] = datetime.fromtimestamp(self.now, get_zone(tz)).date()
        return self._today[tz]


def seed_world(world: World, users: int, events_per_user: int) -> None:
    """Populate `world` with `users` users and about `events_per_user` top-level events each."""
    # Seeding allocates ~100k small containers; cyclic GC passes over them are pure overhead here.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _seed(world, users, events_per_user)
    finally:
        if gc_was_enabled:
            gc.enable()


def _seed(world: World, users: int, events_per_user: int) -> None:
    rng = random.Random(world.seed)
    ctx = SeedContext(world, rng)
    for n in range(24):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        domain = EXTERNAL_DOMAINS[n % len(EXTERNAL_DOMAINS)]
        ctx.externals.append((f"{first.lower()}.{last.lower()}@{domain}", f"{first} {last}"))

    people = _people(rng, users)
    created = []
    for first, last, tz in people:
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        email = f"{local}@{DOMAIN}"
        suffix = 2
        while world.user_by_email(email):
            email = f"{local}{suffix}@{DOMAIN}"
            suffix += 1
        created.append(world.add_user(email, f"{first} {last}", tz))

    for service in world.services.values():
        service.seed(ctx, created, events_per_user)


def _people(rng: random.Random, count: int) -> list[tuple[str, str, str]]:
    out = list(PIONEERS[:count])
    seen = {(f, la) for f, la, _ in out}
    while len(out) < count:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if (first, last) in seen and len(seen) < len(FIRST_NAMES) * len(LAST_NAMES):
            continue
        seen.add((first, last))
        out.append((first, last, rng.choice(TIMEZONES)))
    return out
