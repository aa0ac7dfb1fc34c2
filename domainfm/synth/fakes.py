"""Seeded fake values shared by the clinical and legal generators: names, dates, numbers.

Every generator owns one :class:`Fakes`, so a seed fixes the whole corpus. Faker instances are
private and seeded with ``seed_instance``; the global Faker and ``random`` seeds are never
touched, because other code in the same process may rely on them.
"""

from __future__ import annotations

import random
import string
from datetime import date, timedelta

from faker import Faker

# en_US dominates; the others add name diversity seen in US hospitals and courts. Only locales
# with Latin-script names, since US notes romanise names.
NAME_LOCALES = (("en_US", 70), ("es_MX", 10), ("en_IN", 6), ("de_DE", 4), ("fr_FR", 3),
                ("it_IT", 4), ("pl_PL", 3))

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Fakes:
    """Deterministic fake values from one seed.

    Args:
        seed: fixes both the ``random.Random`` stream and every Faker instance.
    """

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self._fakers: dict[str, Faker] = {}
        for i, (locale, _) in enumerate(NAME_LOCALES):
            faker = Faker(locale)
            faker.seed_instance(seed * 101 + i)
            self._fakers[locale] = faker
        self.us = self._fakers["en_US"]

    def faker_for_name(self) -> Faker:
        locales = [loc for loc, _ in NAME_LOCALES]
        weights = [w for _, w in NAME_LOCALES]
        return self._fakers[self.rng.choices(locales, weights)[0]]

    def person(self, sex: str | None = None) -> tuple[str, str]:
        """``(first, last)`` for sex ``"F"``/``"M"`` (random when ``None``)."""
        faker = self.faker_for_name()
        sex = sex or self.rng.choice("FM")
        first = faker.first_name_female() if sex == "F" else faker.first_name_male()
        return first, faker.last_name()

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq):
        return self.rng.choice(seq)

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def letters(self, n: int) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase) for _ in range(n))

    def date_between(self, start: date, end: date) -> date:
        return start + timedelta(days=self.rng.randrange((end - start).days + 1))

    def phone(self) -> str:
        area, mid, last = self.rng.randint(201, 989), self.rng.randint(200, 999), self.digits(4)
        style = self.rng.randrange(4)
        if style == 0:
            return f"({area}) {mid}-{last}"
        if style == 1:
            return f"{area}-{mid}-{last}"
        if style == 2:
            return f"{area}.{mid}.{last}"
        return f"+1 {area} {mid} {last}"

    def full_date(self, d: date, style: int | None = None) -> str:
        """A date with day, month and year in one of the forms seen in notes and filings."""
        style = self.rng.randrange(7) if style is None else style
        month = MONTHS[d.month - 1]
        return (
            f"{d.month}/{d.day}/{d.year}",
            f"{d.month:02d}/{d.day:02d}/{d.year}",
            f"{d.month}/{d.day}/{d.year % 100:02d}",
            f"{month} {d.day}, {d.year}",
            f"{d.day:02d}-{month[:3]}-{d.year}",
            f"{d.year}-{d.month:02d}-{d.day:02d}",
            f"{d.day} {month} {d.year}",
        )[style]

    def short_date(self, d: date) -> str:
        """A date written without the year, or a month-year form (never a bare year)."""
        month = MONTHS[d.month - 1]
        return self.pick((
            f"{d.month}/{d.day}",
            f"{month} {ordinal(d.day)}",
            f"{month[:3]} {d.day}",
            f"{month} {d.year}",
            f"{d.month}/{d.year}",
            f"the {ordinal(d.day)}",
        ))
