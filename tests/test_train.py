"""The trainer: phases, L-BFGS stop reasons and recovery, resampling, non-finite losses, callbacks."""
import re

import pytest
import torch

from pinn_lam.optim import lbfgs
from pinn_lam.errors import NonFiniteLossError
from pinn_lam.training.loss import PINNLoss
from pinn_lam.nn.mlp import MLP
from pinn_lam.training.sampling import PointSampler
from pinn_lam.training.trainer import Phase, Trainer, parse_phases, split_iterations
from problems import Heat


def setup(dtype=torch.float64, n=128, seed=0, problem=None):
    problem = problem or Heat(modes=((1, 1.0),))
    model = MLP(2, width=12, depth=2, bounds=problem.bounds, output_transform=problem.output_transform(),
                generator=torch.Generator().manual_seed(seed)).to(dtype)
    sampler = PointSampler(problem, ("pde",), n_collocation=n, n_boundary=8, seed=seed)
    points = {k: torch.as_tensor(v, dtype=dtype) for k, v in sampler.sample().items()}
    return model, sampler, PINNLoss(problem, model, points)


def test_parse_phases_and_split_iterations():
    assert parse_phases("LAM+lbfgs") == ["lam", "lbfgs"]
    assert split_iterations(7, ["lam", "lbfgs"]) == [4, 3]
    assert split_iterations([5, 2], ["adam", "lbfgs"]) == [5, 2]
    with pytest.raises(ValueError, match="unknown optimizer 'nadam'"):
        parse_phases("lam+nadam")
    with pytest.raises(ValueError, match="iterations must be positive"):
        split_iterations(1, ["lam", "lbfgs"])
    with pytest.raises(ValueError, match="2 iteration counts for 1 phases"):
        split_iterations([3, 3], ["lam"])


def test_phases_run_in_order_and_lower_the_loss():
    model, sampler, loss = setup()
    rows = []
    trainer = Trainer(model, loss, [Phase("lam", 30, 1e-2), Phase("lbfgs", 20)], lr_decay=0.1,
                      callback=lambda s: rows.append((s.iteration, s.phase)))
    reason = trainer.run()
    assert reason.startswith("lbfgs: budget spent") and trainer.iteration == 50
    assert rows[0] == (1, "lam") and rows[29] == (30, "lam") and rows[-1] == (50, "lbfgs")
    history = trainer.history
    assert [r["iteration"] for r in history[:3]] == [0, 1, 2] and history[-1]["iteration"] == 50
    lam_end = next(r["loss"] for r in history if r["iteration"] == 30)
    assert history[-1]["loss"] < 0.1 * lam_end < 0.1 * history[0]["loss"]


def test_learning_rate_decays_exponentially_within_a_phase():
    model, sampler, loss = setup()
    seen = []
    trainer = Trainer(model, loss, [Phase("adam", 4, 1e-2)], lr_decay=0.01,
                      callback=lambda s: seen.append(s.optimizer.param_groups[0]["lr"]))
    trainer.run()
    assert seen == pytest.approx([1e-2 * 0.01 ** (k / 4) for k in range(4)], rel=1e-12)


def test_lbfgs_reports_convergence_on_a_quadratic():
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0], dtype=torch.float64))
    optimizer = lbfgs.make_lbfgs([w])

    def closure():
        optimizer.zero_grad()
        value = (w[0] - 1) ** 2 + 10 * (w[1] + 0.5) ** 2
        value.backward()
        return value

    lbfgs.set_chunk(optimizer, 50)
    optimizer.step(closure)
    done = lbfgs.iterations_done(optimizer)
    assert done < 50 and lbfgs.diagnose(optimizer, 50, done) == "converged"
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, -0.5], dtype=torch.float64))


def test_float32_line_search_failure_continues_in_float64_then_restarts_then_stops():
    model, sampler, loss = setup(dtype=torch.float32)
    trainer = Trainer(model, loss, [Phase("lbfgs", 100)])
    trainer._new_optimizer()
    trainer.lbfgs["pending"] = "line search failed"
    assert trainer._handle_lbfgs_failure() is False
    assert trainer.dtype == torch.float64 and loss.points["pde"].dtype == torch.float64
    assert "continuing in float64" in trainer.events[-1]
    for k in range(2):
        trainer.lbfgs["pending"] = "line search failed"
        assert trainer._handle_lbfgs_failure() is False
        assert "restarting L-BFGS" in trainer.events[-1]
    trainer.lbfgs["pending"] = "line search failed"
    assert trainer._handle_lbfgs_failure() is True
    assert "stopping L-BFGS" in trainer.events[-1]


def test_float32_lbfgs_run_diagnoses_its_failed_line_search_and_continues_in_float64():
    """A real float32 run stalls when its line search can no longer decrease the loss; the trainer
    names that (not "converged"), casts model and points to float64 and spends the rest of the budget."""
    model, sampler, loss = setup(dtype=torch.float32, n=64)
    trainer = Trainer(model, loss, [Phase("lbfgs", 400)])
    reason = trainer.run()
    switch = [e for e in trainer.events if "float64" in e]
    assert len(switch) == 1, trainer.events
    match = re.fullmatch(r"lbfgs at iteration (\d+): line search failed in float32; continuing in float64", switch[0])
    assert match, switch
    assert not any("converged" in e or "stopping L-BFGS" in e for e in trainer.events), trainer.events
    assert reason == "lbfgs: budget spent after 400 iterations" and trainer.iteration == 400
    assert trainer.dtype == torch.float64 and all(p.dtype == torch.float64 for p in model.parameters())
    assert loss.points["pde"].dtype == torch.float64
    at_switch = int(match.group(1))
    stalled = [row["loss"] for row in trainer.history if row["iteration"] <= at_switch]
    # float32 crawls near 5e-8 here (1% in 80 iterations); float64 goes 6 times lower in 160
    assert trainer.history[-1]["loss"] < 0.5 * min(stalled)


def test_resampling_draws_new_points_every_n_iterations():
    model, sampler, loss = setup()
    seen = []
    trainer = Trainer(model, loss, [Phase("adam", 7, 1e-3)], sampler=sampler, resample_every=3,
                      callback=lambda s: seen.append(s.loss.points["pde"][0].clone()))
    trainer.run()
    changed = [not torch.equal(a, b) for a, b in zip(seen, seen[1:])]
    # points used in steps 1..7; new points for steps 4 and 7
    assert changed == [False, False, True, False, False, True]


def test_non_finite_loss_names_iteration_and_term():
    model, sampler, loss = setup()
    trainer = Trainer(model, loss, [Phase("sgd", 50, 1e30)])
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration \d+ \(sgd phase\): (total|term 'pde') is"):
        trainer.run()


def test_callback_and_time_limit_stop_training():
    model, sampler, loss = setup()
    trainer = Trainer(model, loss, [Phase("lam", 100, 1e-3)], callback=lambda s: s.iteration >= 5)
    assert trainer.run() == "stopped by callback" and trainer.iteration == 5
    trainer = Trainer(model, loss, [Phase("lam", 10**6, 1e-3)], time_limit=0.2)
    assert trainer.run().startswith("time limit") and 0 < trainer.iteration < 10**6


def test_bad_trainer_options_raise():
    model, sampler, loss = setup()
    with pytest.raises(ValueError, match="eval_every must be a positive integer"):
        Trainer(model, loss, [Phase("lam", 1)], eval_every=0)
    with pytest.raises(ValueError, match="lr_decay must be in"):
        Trainer(model, loss, [Phase("lam", 1)], lr_decay=2.0)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        Trainer(model, loss, [Phase("adam", 1, -1.0)]).run()


def test_adaptive_redraw_moves_points_to_the_residual_and_keeps_the_lbfgs_pairs():
    model, sampler, loss = setup()
    seen = []

    def record(s):
        state = s.optimizer.state.get(next(iter(s.model.parameters())), {})
        seen.append((s.iteration, id(s.optimizer), state.get("num_pairs", 0)))

    trainer = Trainer(model, loss, [Phase("lam", 10, 1e-2), Phase("lbfgs", 20)], sampler=sampler,
                      adaptive_every=10, adaptive_pool=2048, callback=record)
    before = loss.points["pde"].clone()
    trainer.run()
    assert trainer.adaptations == 2  # at iterations 10 and 20
    assert not torch.equal(before, loss.points["pde"]) and loss.points["pde"].shape == before.shape
    lbfgs = [(it, i, pairs) for it, i, pairs in seen if it > 10]
    assert len({i for _, i, _ in lbfgs}) == 1  # the redraw at 20 keeps the L-BFGS optimizer ...
    first_after = next(pairs for it, _, pairs in lbfgs if it > 20)
    last_before = [pairs for it, _, pairs in lbfgs if it <= 20][-1]
    assert last_before > 0 and first_after >= last_before  # ... and its curvature pairs
    # the redrawn points have a larger mean squared residual than fresh uniform ones
    with torch.no_grad():
        uniform = torch.as_tensor(sampler.sample()["pde"], dtype=torch.float64)
    adaptive_mse = loss.pde_residual().square().mean().item()
    uniform_mse = loss.pde_residual(uniform).square().mean().item()
    assert adaptive_mse > uniform_mse


def test_evaluation_and_checkpoints_follow_multiples_even_after_an_early_chunk_end(tmp_path):
    """An L-BFGS chunk that ends early leaves the multiples of eval_every: the next row past a
    multiple is evaluated all the same (the old `iteration % every == 0` skipped the rest)."""
    model, sampler, loss = setup()
    seen = []
    trainer = Trainer(model, loss, [Phase("lbfgs", 100)], eval_every=10, checkpoint_every=10,
                      evaluate=lambda m: seen.append(trainer.iteration) or {"rel_l2": 0.5},
                      checkpoint_path=tmp_path / "checkpoint.pt")
    values = {"loss": 1.0}
    saved = []
    for iteration in (0, 7, 13, 19, 20, 45, 47, 50):
        trainer.iteration = iteration
        trainer._log(values)
        if trainer._due(trainer.checkpoint_every, trainer._saved_at):
            trainer._saved_at = iteration
            saved.append(iteration)
    assert seen == [0, 13, 20, 45, 50]
    assert saved == [0, 13, 20, 45, 50]
    assert trainer._evaluated_at == 50 == trainer._last_evaluation(trainer.history)
    assert [row["iteration"] for row in trainer.history if "rel_l2" in row] == seen


def test_adam_uses_torchs_fused_kernel_and_follows_the_default_adams_iterates():
    from pinn_lam.optim.registry import make_optimizer

    def run(optimizer_of):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
        x = torch.linspace(-1, 1, 40, dtype=torch.float64).view(20, 2)
        opt = optimizer_of(list(net.parameters()))
        for _ in range(30):
            opt.zero_grad()
            (net(x) - x[:, :1] ** 2).square().mean().backward()
            opt.step()
        return opt, [p.detach().clone() for p in net.parameters()]

    fused, params = run(lambda p: make_optimizer("adam", p, 1e-2, {}))
    assert fused.defaults["fused"] is True
    _, reference = run(lambda p: torch.optim.Adam(p, lr=1e-2))
    for a, b in zip(params, reference):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    explicit, _ = run(lambda p: make_optimizer("adam", p, 1e-2, {"foreach": True}))
    assert not explicit.defaults["fused"]  # an explicit choice is kept
