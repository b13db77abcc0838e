from agents import demo
from agents.pairs import main as pairs_main

TINY = ["--dataset", "digits", "--model-kw", "width:4", "epochs:8", "--n-envs", "8",
        "--policy-steps", "64", "--round-eval", "50", "--rounds", "1", "--no-progress"]


def test_demo_shows_the_published_pairs_on_the_same_inputs(tmp_path, capsys):
    pairs = tmp_path / "pairs"
    pairs_main([*TINY, "--mode", "detrimental", "--net-steps", "3",
                "--out", str(pairs / "detrimental")])
    pairs_main([*TINY, "--attack", "standard", "--out", str(pairs / "attack-standard")])
    rows = demo.main(["--pairs", str(pairs), "--episodes", "4", "--greedy-limit", "20",
                      "-f", str(tmp_path / "demo")])
    assert set(rows) == {"standard: fresh attacker", "standard: uniform 4",
                         "standard: best static plan", "detrimental pair: own policy",
                         "detrimental pair: uniform 4", "detrimental pair: best static plan"}
    assert {h["n"] for h in rows.values()} == {359}  # every row: the whole digits test split
    for h in rows.values():
        assert abs(h["drop"] - (h["fp_acc"] - h["dptq_acc"])) < 1e-9
    assert rows["detrimental pair: own policy"]["mean_bits"] >= 5 - 1e-9
    std = {h["fp_acc"] for k, h in rows.items() if k.startswith("standard")}
    assert len(std) == 1  # one network, one FP accuracy
    out = capsys.readouterr().out
    assert "reproduced exactly" in out and f"tensorboard --logdir {tmp_path / 'demo'}" in out
    assert (tmp_path / "demo" / "eval" / "summary.json").exists()
