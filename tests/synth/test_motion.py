import pytest
import torch

from avatarfit.synth.motion import dominant_controls, sample_performance
from avatarfit.synth.subject import CONTROLS


def test_segments_cover_every_expression_before_any_repeats():
    gen = torch.Generator().manual_seed(0)
    first = dominant_controls(len(CONTROLS), len(CONTROLS), gen)
    assert sorted(first) == list(range(len(CONTROLS)))
    more = dominant_controls(len(CONTROLS) + 3, len(CONTROLS), torch.Generator().manual_seed(1))
    assert sorted(more[:len(CONTROLS)]) == list(range(len(CONTROLS))) and len(more) == len(CONTROLS) + 3


def test_a_performance_moves_its_dominant_control_through_its_range_and_not_only_at_its_middle():
    ends = []
    for seed in range(8):
        p = sample_performance(1, 40, CONTROLS, torch.Generator().manual_seed(seed), dominant=2)
        assert p.name == "E001_" + "_".join(w.capitalize() for w in CONTROLS[2].split("_"))
        c = p.controls[:, 2]
        assert float(c.max()) > 0.9 and float(c.min()) < 0.2
        ends.append(float(c[-4:].mean()))
    # The last frames (a segment's test block) are not always near neutral.
    assert max(ends) > 0.5 > min(ends)
    with pytest.raises(ValueError, match="dominant"):
        sample_performance(1, 10, CONTROLS, torch.Generator(), dominant=len(CONTROLS))
