"""Keras 2's optimizer `decay=` in one place (`cvlab.train.schedules`): the rate after n updates is
lr0 / (1 + decay · n), and the ensembles' epoch schedule and the DCGAN's Adam both use it."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from cvlab.generative import dcgan
from cvlab.train import ensembles, schedules
from cvlab.train.schedules import ScheduleError, keras2_decay, keras2_decay_rate


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 123456])
def test_rate_after_n_steps(n):
    lr0, decay = 0.01, 0.01 / 40
    expected = lr0 / (1 + decay * n)
    assert keras2_decay_rate(lr0, decay, n) == pytest.approx(expected, rel=1e-15)
    schedule = keras2_decay(lr0, decay)
    assert float(schedule(n)) == pytest.approx(expected, rel=1e-6)  # Keras computes in float32


def test_no_decay_is_the_plain_rate_and_bad_values_are_refused():
    assert keras2_decay(0.0002, 0.0) == 0.0002
    with pytest.raises(ScheduleError, match="decay >= 0"):
        keras2_decay(0.01, -1.0)
    with pytest.raises(ScheduleError, match="learning_rate > 0"):
        keras2_decay(0.0, 0.1)


def test_schedule_round_trips_through_keras_serialization():
    import keras  # lazy: keras

    opt = keras.optimizers.Adam(learning_rate=keras2_decay(0.0002, 0.0002 / 50))
    clone = keras.optimizers.Adam.from_config(opt.get_config())
    clone.iterations.assign(500)
    assert float(clone.learning_rate) == pytest.approx(0.0002 / (1 + 0.0002 / 50 * 500), rel=1e-6)


def test_both_call_sites_use_it(monkeypatch):
    # the ensembles' epoch schedule is the mean of keras2_decay_rate over each epoch's updates
    assert ensembles.time_decay_schedule is schedules.time_decay_schedule
    calls = []

    def spy(lr, decay, iterations):
        calls.append(np.asarray(iterations).copy())
        return keras2_decay_rate(lr, decay, iterations)

    monkeypatch.setattr(schedules, "keras2_decay_rate", spy)
    plan = ensembles.time_decay_schedule(0.01, 0.001, 4, 3)
    assert [c.tolist() for c in calls] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert plan["values"][2] == pytest.approx(np.mean(0.01 / (1 + 0.001 * np.arange(8, 12))))
    # the DCGAN's book Adam takes its rate from keras2_decay
    made = []
    monkeypatch.setattr(dcgan, "keras2_decay", lambda lr, d: made.append((lr, d)) or lr)
    dcgan.book_adam(0.0002, decay=0.004)
    assert made == [(0.0002, 0.004)]
    assert "InverseTimeDecay" not in inspect.getsource(dcgan)  # no second copy of the rule
    assert "1.0 + decay" not in inspect.getsource(ensembles)
