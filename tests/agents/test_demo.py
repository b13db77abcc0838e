from agents import demo

TINY = ["dataset:digits", "width:4", "epochs:8", "progress:false"]


def test_demo_trains_evaluates_and_prints_the_headline(tmp_path, capsys):
    rows = demo.main(["-n", "128", "--episodes", "4", "--greedy-limit", "20", "-f",
                      str(tmp_path), "--env-kwargs", *TINY])
    assert {"learned PPO policy", "uniform4", "uniform8", "random_budget", "greedy"} <= set(rows)
    learned = rows["learned PPO policy"]
    assert learned["n"] == 359 and learned["mean_bits"] >= 4.0 - 1e-6   # digits test split, budget
    assert abs(learned["drop"] - (learned["fp_acc"] - learned["dptq_acc"])) < 1e-9
    assert abs(rows["uniform8"]["drop"]) < 1.0   # 8 bits ≈ full precision
    out = capsys.readouterr().out
    assert "learned PPO policy" in out and f"tensorboard --logdir {tmp_path}" in out
    assert (tmp_path / "eval" / "summary.json").exists()
