"""Never more CPU threads than the cores a run was given (a shared machine)."""
import torch

from cryostar_engine.train.runtime import configure_cpu, default_threads


def test_threads_beyond_the_cores_given_are_capped_with_a_warning(caplog):
    before = torch.get_num_threads()
    try:
        available = default_threads()
        with caplog.at_level("WARNING", logger="cryostar_engine"):
            assert configure_cpu(available + 3) == available
        assert torch.get_num_threads() == available
        assert f"--threads {available + 3} is more than the {available} core(s)" in caplog.text
        caplog.clear()
        assert configure_cpu(1) == 1 and torch.get_num_threads() == 1
        assert configure_cpu(None) == available
        assert caplog.text == ""
    finally:
        torch.set_num_threads(before)
