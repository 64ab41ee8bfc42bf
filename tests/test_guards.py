"""Divergence: the guard's rule by hand, a diverging run stops with a one-line error, and L-BFGS
never calls a flat region above its starting loss "converged"."""
import pytest
import torch

from pinn_lam.errors import DivergenceError, NonFiniteLossError
from pinn_lam.training.checkpoint import load_checkpoint
from pinn_lam.training.guards import DivergenceGuard, exit_status, signal_name
from pinn_lam.training.solve import solve
from pinn_lam.nn.mlp import MLP
from pinn_lam.training.loss import PINNLoss
from pinn_lam.training.sampling import PointSampler
from pinn_lam.training.trainer import Phase, Trainer
from problems import Heat


def setup(seed=0):
    problem = Heat(modes=((1, 1.0),))
    model = MLP(2, width=12, depth=2, bounds=problem.bounds, output_transform=problem.output_transform(),
                generator=torch.Generator().manual_seed(seed)).to(torch.float64)
    sampler = PointSampler(problem, ("pde",), n_collocation=128, n_boundary=8, seed=seed)
    points = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in sampler.sample().items()}
    return model, sampler, PINNLoss(problem, model, points)


def test_guard_trips_after_a_sustained_stretch_above_factor_times_best_and_the_first_loss():
    guard = DivergenceGuard(factor=10.0, patience=3)
    assert not guard.update(0, 5.0) and not guard.update(1, 0.1)        # best 0.1, first 5
    assert guard.bound() == 5.0                                          # max(10 * 0.1, 5)
    assert not guard.update(2, 4.0) and not guard.suspicious             # a jump below the first loss is quiet
    assert [guard.update(i, 6.0) for i in (3, 4, 5)] == [False, False, False] and guard.suspicious
    assert guard.update(6, 6.0)                                          # above since 3, 6 - 3 >= 3
    assert guard.above_since == 3 and guard.best == 0.1 and guard.best_iteration == 1


def test_guard_resets_when_the_loss_comes_back_and_round_trips_its_state():
    guard = DivergenceGuard(factor=10.0, patience=2)
    guard.update(0, 1.0)
    guard.update(1, 20.0)
    assert not guard.update(2, 0.5) and not guard.suspicious and guard.best == 0.5
    guard.update(3, 50.0)
    copy = DivergenceGuard(factor=10.0, patience=2)
    copy.load_state_dict(guard.state_dict())
    assert copy.update(5, 50.0) and guard.update(5, 50.0)


def test_guard_rejects_a_factor_or_patience_that_cannot_work():
    with pytest.raises(ValueError, match="factor must be above 1"):
        DivergenceGuard(factor=1.0)
    with pytest.raises(ValueError, match="patience must be a positive"):
        DivergenceGuard(patience=0)


def test_signal_names_and_exit_statuses_follow_the_shell_convention():
    assert (signal_name(2), exit_status(2)) == ("SIGINT", 130)
    assert (signal_name(15), exit_status(15)) == ("SIGTERM", 143)


def test_heat_quick_with_a_huge_learning_rate_stops_as_diverged(tmp_path):
    with pytest.raises(DivergenceError) as caught:
        solve("heat", preset="quick", lr=1e6, figure=False, device="cpu", output_dir=tmp_path, checkpoint_every=1)
    message = str(caught.value)
    assert not isinstance(caught.value, NonFiniteLossError) and "\n" not in message
    assert message.startswith("diverging loss at iteration ") and "(lam phase)" in message
    assert "largest term 'pde'" in message and "last good checkpoint is iteration 0 in" in message
    # the checkpoint left behind is the last one within bounds, not one of the exploded iterations
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 0


def test_a_normal_run_with_resampling_never_trips_the_guard():
    model, sampler, loss = setup()
    trainer = Trainer(model, loss, [Phase("lam", 60, 1e-2), Phase("lbfgs", 40)], sampler=sampler, resample_every=5)
    assert trainer.run().startswith("lbfgs: budget spent")
    assert not trainer.divergence.suspicious and trainer.divergence.best < trainer.divergence.first


@pytest.mark.parametrize("start_over_loss, converged", [(0.5, False), (1.0, False), (2.0, True)])
def test_lbfgs_reports_converged_only_below_the_loss_its_phase_started_at(start_over_loss, converged):
    model, sampler, loss = setup()
    trainer = Trainer(model, loss, [Phase("lbfgs", 50)])
    trainer._new_optimizer()
    current = float(loss()[0].detach())
    trainer.lbfgs.update(start=start_over_loss * current, pending="converged")
    assert trainer._handle_lbfgs_failure() is True  # the phase ends either way
    (event,) = trainer.events
    if converged:
        assert event == "lbfgs at iteration 0: converged (gradient below tolerance)"
    else:
        assert "not below the phase's first loss" in event and "converged" not in event
        assert f"at loss {current:.3e}" in event and event.endswith("stopping L-BFGS")
