"""The optimizer registry: one entry is all a new optimizer needs."""
import pytest
import torch

from pinn_lam.optim import registry
from pinn_lam.optim.registry import OptimizerInfo


def test_a_new_entry_is_parsed_built_split_and_styled(monkeypatch):
    entry = OptimizerInfo("adagrad", "Adagrad (torch.optim.Adagrad)", torch.optim.Adagrad, "Adagrad", "#123456")
    monkeypatch.setitem(registry.REGISTRY, "adagrad", entry)
    assert registry.parse_phases("Adagrad+lbfgs") == ["adagrad", "lbfgs"]
    w = torch.nn.Parameter(torch.ones(3))
    optimizer = registry.make_optimizer("adagrad", [w], 0.5, {"lr_decay": 0.0})
    assert isinstance(optimizer, torch.optim.Adagrad) and optimizer.param_groups[0]["lr"] == 0.5
    assert registry.split_options(["adagrad", "lbfgs"], {"lr_decay": 0.1, "history_size": 5}) == [
        {"lr_decay": 0.1}, {"history_size": 5}]
    assert registry.style("adagrad") == ("#123456", "-") and registry.display_name("adagrad") == "Adagrad"


def test_closure_optimizers_take_no_learning_rate_from_the_run():
    w = torch.nn.Parameter(torch.ones(3))
    optimizer = registry.make_optimizer("lbfgs", [w], 0.01, {})
    assert optimizer.param_groups[0]["lr"] == 1  # L-BFGS keeps its own unit step under the line search
    assert registry.get("lbfgs").closure and not registry.get("lam").closure


def test_unknown_names_and_options_fail_in_one_line():
    with pytest.raises(ValueError, match=r"unknown optimizer 'nadam'; choose from lam, adam"):
        registry.parse_phases("lam+nadam")
    with pytest.raises(ValueError, match=r"option\(s\) momentum are not accepted by lam\+lbfgs"):
        registry.split_options(["lam", "lbfgs"], {"momentum": 0.9})
    assert registry.resolve_label("lam-bc") == ("lam", {"bias_correction": True})
    assert registry.style("nothing") == ("#bcbd22", "--")
