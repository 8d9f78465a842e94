"""The built-in task: human-readable dates in many formats and languages -> ISO 8601.

"Tuesday, 10 July 2007", "10/07/07", "10 juil. 2007", "Dienstag, 10. Juli 2007", "2007年7月10日"
all map to "2007-07-10". It needs no download, trains in minutes on a CPU, and its attention plot
is easy to read: the year digits of the output look at the year in the input, and so on.

Everything is deterministic. The 2,000 held-out test dates come from a fixed seed of their own, so
every model is scored on the same set; training and validation examples are drawn from the other
calendar days only (disjoint by date, not merely by string), with the seed the user picks.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

FIRST_DAY = dt.date(1950, 1, 1)
LAST_DAY = dt.date(2049, 12, 31)  # two-digit years are unambiguous in 1950-2049: 50-99 -> 19xx
TEST_SEED = 20070710  # fixed: the held-out set never changes with the training seed
TEST_SIZE = 2000

# Month and weekday names per language: (full months, abbreviated months, weekdays Monday first).
_NAMES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "en": (
        "January February March April May June July August September October November December".split(),
        "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(),
        "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(),
    ),
    "fr": (
        "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split(),
        "janv. févr. mars avr. mai juin juil. août sept. oct. nov. déc.".split(),
        "lundi mardi mercredi jeudi vendredi samedi dimanche".split(),
    ),
    "de": (
        "Januar Februar März April Mai Juni Juli August September Oktober November Dezember".split(),
        "Jan. Feb. März Apr. Mai Juni Juli Aug. Sept. Okt. Nov. Dez.".split(),
        "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag".split(),
    ),
    "es": (
        "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre".split(),
        "ene. feb. mar. abr. may. jun. jul. ago. sept. oct. nov. dic.".split(),
        "lunes martes miércoles jueves viernes sábado domingo".split(),
    ),
}


def _month(d: dt.date, lang: str) -> str:
    return _NAMES[lang][0][d.month - 1]


def _mon(d: dt.date, lang: str) -> str:
    return _NAMES[lang][1][d.month - 1]


def _weekday(d: dt.date, lang: str) -> str:
    return _NAMES[lang][2][d.weekday()]


def _fr_day(d: dt.date) -> str:
    return "1er" if d.day == 1 else str(d.day)


def _yy(d: dt.date) -> str:
    return f"{d.year % 100:02d}"


# Each format turns a date into one human-readable string. Numeric formats are day-first only
# (as in all four languages outside the US): "07/10/2007" would otherwise be ambiguous.
_FORMATS: list[Callable[[dt.date], str]] = [
    # English
    lambda d: f"{_weekday(d, 'en')}, {d.day} {_month(d, 'en')} {d.year}",
    lambda d: f"{d.day} {_month(d, 'en')} {d.year}",
    lambda d: f"{_month(d, 'en')} {d.day}, {d.year}",
    lambda d: f"{_weekday(d, 'en')}, {_month(d, 'en')} {d.day}, {d.year}",
    lambda d: f"{d.day} {_mon(d, 'en')} {d.year}",
    lambda d: f"{_mon(d, 'en')} {d.day}, {d.year}",
    lambda d: f"{d.day:02d} {_mon(d, 'en').upper()} {d.year}",
    lambda d: f"{d.day} {_month(d, 'en').lower()} {_yy(d)}",
    # French
    lambda d: f"{_weekday(d, 'fr')} {_fr_day(d)} {_month(d, 'fr')} {d.year}",
    lambda d: f"le {_fr_day(d)} {_month(d, 'fr')} {d.year}",
    lambda d: f"{d.day} {_mon(d, 'fr')} {d.year}",
    lambda d: f"{_fr_day(d)} {_month(d, 'fr')} {d.year}",
    # German
    lambda d: f"{_weekday(d, 'de')}, {d.day}. {_month(d, 'de')} {d.year}",
    lambda d: f"{d.day}. {_month(d, 'de')} {d.year}",
    lambda d: f"{d.day}. {_mon(d, 'de')} {d.year}",
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    lambda d: f"{d.day}.{d.month}.{_yy(d)}",
    # Spanish
    lambda d: f"{_weekday(d, 'es')}, {d.day} de {_month(d, 'es')} de {d.year}",
    lambda d: f"{d.day} de {_month(d, 'es')} de {d.year}",
    lambda d: f"{d.day} {_mon(d, 'es')} {d.year}",
    # Numeric, day first
    lambda d: f"{d.day:02d}/{d.month:02d}/{_yy(d)}",
    lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}",
    lambda d: f"{d.day}/{d.month}/{d.year}",
    lambda d: f"{d.day:02d}-{d.month:02d}-{d.year}",
    lambda d: f"{d.year}-{d.month:02d}-{d.day:02d}",
    lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",
    # Chinese/Japanese style
    lambda d: f"{d.year}年{d.month}月{d.day}日",
]
NUM_FORMATS = len(_FORMATS)


def to_iso(d: dt.date) -> str:
    return d.isoformat()  # "2007-07-10"


def render(d: dt.date, fmt: int) -> str:
    """Date -> its human-readable form number `fmt` (0 <= fmt < NUM_FORMATS)."""
    return _FORMATS[fmt](d)


def _all_days() -> list[dt.date]:
    n = (LAST_DAY - FIRST_DAY).days + 1
    return [FIRST_DAY + dt.timedelta(days=i) for i in range(n)]


def _examples(days: list[dt.date], n: int, rng: random.Random) -> list[tuple[str, str]]:
    return [(render(d, rng.randrange(NUM_FORMATS)), to_iso(d)) for d in (rng.choice(days) for _ in range(n))]


def held_out_days() -> set[dt.date]:
    """The TEST_SIZE calendar days reserved for testing; never seen in training or validation."""
    return set(random.Random(TEST_SEED).sample(_all_days(), TEST_SIZE))


def held_out_pairs() -> list[tuple[str, str]]:
    """The fixed held-out set: one example for each of the TEST_SIZE reserved days."""
    rng = random.Random(TEST_SEED + 1)
    days = sorted(held_out_days())
    rng.shuffle(days)
    return [(render(d, rng.randrange(NUM_FORMATS)), to_iso(d)) for d in days]


def train_valid_pairs(
    n_train: int, n_valid: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, valid) examples drawn from the non-reserved days with `seed`. Validation days are
    disjoint from training days, so validation loss measures generalisation to unseen dates."""
    reserved = held_out_days()
    days = [d for d in _all_days() if d not in reserved]
    rng = random.Random(seed)
    rng.shuffle(days)
    valid_days = days[: max(1, len(days) // 20)]  # 5% of the calendar for validation
    train_days = days[len(valid_days) :]
    return _examples(train_days, n_train, rng), _examples(valid_days, n_valid, rng)
