"""What the trainer guarantees every agent: its last logged values reach metrics.csv, and a seed repeats a run."""

from __future__ import annotations

from selfgym.metrics import read_metrics
from selfgym.train import train


def _config(**overrides):
    config = {"env": "Pendulum-v1", "agent": "sac", "n_timesteps": 300, "seed": 0, "device": "cpu", "num_threads": 1,
              "n_envs": 1, "vec_env": "dummy", "env_kwargs": {}, "normalize": False, "env_wrapper": None, "rewards": [],
              "hyperparams": {"policy": "MlpPolicy", "learning_starts": 100, "batch_size": 32,
                              "policy_kwargs": {"net_arch": [16]}},
              "eval_freq": 300, "eval_episodes": 1, "save_freq": 300, "keep_checkpoints": 1, "gym_packages": []}
    config.update(overrides)
    return config


def test_final_evaluation_of_an_off_policy_agent_is_written(tmp_path):
    """SAC writes a row every 4 episodes (800 Pendulum steps): a 300-step run's evaluation at step 300 used to be lost."""
    run_dir = train(_config(), str(tmp_path), final_eval=False)
    rows = read_metrics(run_dir / "metrics.csv")
    assert rows, "no metrics row at all"
    assert rows[-1]["steps"] == 300
    assert rows[-1].get("eval_return_mean") is not None


def test_a_custom_agent_repeats_with_its_seed(tmp_path):
    """slim samples actions and minibatches from the global torch RNG: the trainer seeds it, so equal seeds give equal runs."""
    import torch

    from selfgym import runs

    config = _config(agent="slim", n_timesteps=256, eval_freq=0, save_freq=256, rewards=["diayn"],
                     hyperparams={"n_steps": 128, "batch_size": 64, "n_epochs": 2, "weights": {"diayn": 1.0}})
    states = []
    for name in ("a", "b"):
        run_dir = train(dict(config), str(tmp_path / name), final_eval=False)
        state, _ = runs.load_checkpoint(run_dir / runs.MODEL_DIR)
        states.append(state["agent"])

    def tensors(tree, prefix=""):
        if isinstance(tree, dict):
            for key, value in tree.items():
                yield from tensors(value, f"{prefix}{key}.")
        elif isinstance(tree, torch.Tensor):
            yield prefix, tree

    first, second = dict(tensors(states[0])), dict(tensors(states[1]))
    assert first.keys() == second.keys() and first
    assert all(torch.equal(first[k], second[k]) for k in first)


def _drawn_curves(tmp_path, monkeypatch, table: str) -> tuple[list, str]:
    """learning_curve.png's lines and y label for a metrics.csv holding ``table``."""
    from selfgym import metrics

    (tmp_path / "metrics.csv").write_text(table)
    seen = {}

    def capture(fig, path, **kw):
        ax = fig.axes[0]
        seen["lines"] = [(line.get_label(), list(line.get_ydata())) for line in ax.get_lines()]
        seen["ylabel"] = ax.get_ylabel()
        return path

    monkeypatch.setattr(metrics, "save_figure", capture)
    metrics.plot_learning_curve(tmp_path, "t")
    return seen["lines"], seen["ylabel"]


def test_a_run_without_episodes_plots_its_loss_not_an_empty_picture(tmp_path, monkeypatch):
    """llm_sft logs no episode return: its picture was empty axes; now it is the training loss."""
    lines, ylabel = _drawn_curves(tmp_path, monkeypatch, "steps,ep_return_mean,train_loss\n10,,0.31\n20,,0.15\n")
    assert lines == [("training loss", [0.31, 0.15])] and ylabel == "training loss"
    lines, ylabel = _drawn_curves(tmp_path, monkeypatch, "steps,ep_return_mean,train_loss\n10,1.5,0.31\n20,2.5,0.15\n")
    assert lines == [("training episodes (mean)", [1.5, 2.5])] and ylabel == "episode return"  # returns come first
