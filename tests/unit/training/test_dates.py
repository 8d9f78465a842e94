"""The built-in dates task: deterministic, held-out dates never seen in training."""

from __future__ import annotations

import datetime as dt

from training import dates


def test_same_seed_same_data_other_seed_other_data() -> None:
    assert dates.train_valid_pairs(50, 10, seed=1) == dates.train_valid_pairs(50, 10, seed=1)
    assert dates.train_valid_pairs(50, 10, seed=1) != dates.train_valid_pairs(50, 10, seed=2)


def test_held_out_set_is_fixed_and_disjoint_from_training_by_date() -> None:
    test = dates.held_out_pairs()
    assert len(test) == dates.TEST_SIZE == 2000
    assert test == dates.held_out_pairs()
    test_dates = {iso for _, iso in test}
    assert len(test_dates) == 2000
    for seed in (0, 1):
        train, valid = dates.train_valid_pairs(20000, 1000, seed)
        assert not test_dates & {iso for _, iso in train + valid}
        assert not {iso for _, iso in train} & {iso for _, iso in valid}


def test_formats_and_languages() -> None:
    day = dt.date(2007, 7, 10)
    forms = {dates.render(day, f) for f in range(dates.NUM_FORMATS)}
    for expected in (
        "Tuesday, 10 July 2007",
        "10/07/07",
        "10 juil. 2007",
        "Dienstag, 10. Juli 2007",
        "martes, 10 de julio de 2007",
        "2007年7月10日",
    ):
        assert expected in forms
    assert dates.render(dt.date(2007, 7, 1), 9) == "le 1er juillet 2007"
    assert dates.to_iso(day) == "2007-07-10"


def test_targets_are_the_iso_date_of_the_source() -> None:
    train, _ = dates.train_valid_pairs(300, 0, seed=5)
    for src, iso in train:
        day = dt.date.fromisoformat(iso)
        assert dates.FIRST_DAY <= day <= dates.LAST_DAY
        assert str(day.day) in src
