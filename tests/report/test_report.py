"""Report stage: the page is self-contained, picks the right checkpoint and never invents numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdtflow.data.episode import write_episode
from rdtflow.evaluate.run import summary_by
from rdtflow.evaluate.stats import wilson_interval
from rdtflow.evaluate.videos import write_video
from rdtflow.report.collect import (
    SUCCESS_NOT_MEASURED,
    best_checkpoint,
    load_episode_lengths,
    load_evaluations,
    load_training_log,
)
from rdtflow.report.page import SIZE_BUDGET_BYTES, paired_test, verdict, write_report
from rdtflow.report.provenance import SOURCE_TREE
from tests.helpers.browser import ARTIFACTS, view_page

STEPS = [100, 200, 300]
MACHINE = {"host": "trainer-1", "platform": "Linux", "cpu": "Test CPU", "cores": 2, "gpus": []}
LAYOUT = {"micro_batch": 16, "accumulation": 2, "processes": 2}
SCRIPT_EPISODE = "<script>alert(1)</script>"
EPISODES = ["episode_00001", SCRIPT_EPISODE]
CONFIG = {"run": "demo-run", "seed": 0, "demos": {"generate": True},
          "sim": {"env": "builtin-pick-place", "options": {"max_steps": 70}},
          "data": {"cameras": ["cam_high"], "image_group": "/observations/images"}, "split": {"held_out": 0.2},
          "model": {"pretrained": None}, "train": {"max_steps": 300}, "eval": {"execute_horizon": 8}}


def _write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def _evaluation(step: int | None, policy: str, success_rate: float | None, mse: float,
                video_dir: Path | None = None, tasks: tuple[str, ...] = ("demos",),
                episode_ids: list[str] = EPISODES) -> dict:
    """An eval/*.json payload; episode outcomes follow the rate (or are null without a simulator),
    episodes are dealt over `tasks` in turn. With `video_dir`, one real rollout video of the
    first failure (or success) is written there. The first episodes are the successes."""
    n_successes = None if success_rate is None else round(success_rate * len(episode_ids))
    episodes = [{"episode_id": episode_id, "task": tasks[index % len(tasks)], "open_loop_mse": mse,
                 "success": None if n_successes is None else index < n_successes,
                 "held_at_end": None if n_successes is None else index < n_successes,
                 "stage": None if n_successes is None or index >= n_successes else "placed",
                 "steps": 40 + index}
                for index, episode_id in enumerate(episode_ids)]
    result = {"step": step, "policy": policy, "simulator": None if success_rate is None else "builtin-pick-place",
              "success_rate": success_rate, "n_episodes": len(episode_ids), "open_loop_mse": mse, "episodes": episodes,
              "videos": [], "by_task": summary_by(episodes, "task", closed_loop=n_successes is not None)}
    if n_successes is not None:
        interval = list(wilson_interval(n_successes, len(episode_ids)))
        result |= {"success_interval": interval, "held_at_end_rate": success_rate, "held_at_end_interval": interval,
                   "stage_rates": {"placed": {"rate": success_rate, "interval": interval, "successes": n_successes,
                                              "n": len(episode_ids)}},
                   "wall_seconds": 75.0}
    if video_dir is not None and n_successes is not None:
        filmed = next((e for e in episodes if not e["success"]), episodes[0])
        frame = np.zeros((64, 64, 3), dtype=np.uint8)
        write_video(video_dir / "filmed.mp4", np.stack([frame, 255 - frame]), fps=10)
        result["videos"] = [{"episode_id": filmed["episode_id"], "file": "filmed.mp4", "success": filmed["success"],
                             "bytes": (video_dir / "filmed.mp4").stat().st_size}]
    return result


def _make_run(root: Path, success_rates: list[float | None], baseline_rate: float | None,
              tasks: tuple[str, ...] = ("demos",), episode_ids: list[str] = EPISODES) -> dict:
    """A results/{run}/ folder as the earlier stages would have written it."""
    validation = _write_json(root / "data/validation.json", {
        "n_files": 5, "n_valid": 3, "n_rejected": 2,
        "rejected_by_reason": {"nan_values": 1, "not_hdf5": 1},
        "rejected": [{"path": "/demos/bad_nan.hdf5", "episode_id": "bad_nan", "reason": "nan_values",
                      "detail": "qpos has 3 NaN values"},
                     {"path": "/demos/" + "deeply_nested_recording_folder/" * 8 + "notes.hdf5", "episode_id": "notes",
                      "reason": "not_hdf5",
                      "detail": "file signature not found"}]})
    index = root / "data/index.parquet"
    frames = [np.full((24, 32, 3), value, dtype=np.uint8) for value in (0, 120, 240)]
    for episode_id in ("a", "b", "c"):
        write_episode(root / f"demos/{episode_id}.hdf5", np.zeros((3, 2)), np.zeros((3, 2)), {"cam_high": frames})
    pd.DataFrame({"episode_id": ["a", "b", "c", "bad_nan", "notes"],
                  "path": [str(root / f"demos/{name}.hdf5") for name in ("a", "b", "c", "bad_nan", "notes")],
                  "group": "",
                  "n_steps": [3, 3, 3, 0, 0],
                  "split": ["train", "held_out", "held_out", "rejected", "rejected"]}).to_parquet(index)
    plan = _write_json(root / "plan.json", {"layout": LAYOUT, "effective_batch": 64, "optimizer_steps": 300,
                                            "epochs": 0.5, "peak_gib": 3.2, "usable_gib": 21.6, "warnings": []})
    benchmark_files = []
    for stage, step in [("validate", None), ("train", 100), ("train", 200), ("train", 300), ("eval", 100)]:
        path = root / ("benchmarks/" + (f"{stage}.tsv" if step is None else f"{stage}/checkpoint-{step}.tsv"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("s\th:m:s\tmax_rss\tmax_vms\n12.5\t0:00:12\t1024.0\t2048.0\n")
        benchmark_files.append(path)
    checkpoint_dirs = []
    for period, step in enumerate(STEPS):
        directory = root / f"train/checkpoint-{step}"
        directory.mkdir(parents=True)
        steps = range(period * 100 + 1, step + 1)
        pd.DataFrame({"step": steps, "epoch": 0, "loss": [1.0 / s for s in steps],
                      "lr": 5e-4, "grad_norm": 0.5, "samples_per_s": 100.0}).to_csv(directory / "train_log.csv",
                                                                                    index=False)
        _write_json(directory / "trainer_state.json", {"step": step, "samples_seen": step * 64, "epoch": 0.5,
                                                       "effective_batch": 64, "layout": LAYOUT,
                                                       "peak_device_memory_gib": None, "machine": MACHINE})
        checkpoint_dirs.append(directory)
    video_dirs = [root / f"eval/videos/checkpoint-{step}" for step in STEPS]
    eval_files = [_write_json(root / f"eval/checkpoint-{step}.json",
                              _evaluation(step, f"checkpoint-{step}", rate, 0.01 * (4 - period), video_dir, tasks,
                                          episode_ids))
                  for period, (step, rate, video_dir) in enumerate(zip(STEPS, success_rates, video_dirs))]
    baseline = _write_json(root / "eval/baseline.json",
                           _evaluation(None, "mean-trajectory baseline", baseline_rate, 0.2, tasks=tasks,
                                       episode_ids=episode_ids))
    return {"config": CONFIG, "validation_json": validation, "index_parquet": index, "plan_json": plan,
            "checkpoint_dirs": checkpoint_dirs, "eval_files": eval_files, "video_dirs": video_dirs,
            "baseline_json": baseline, "benchmark_files": benchmark_files,
            "out_html": root / "report/index.html", "training_png": root / "report/training.png",
            "success_png": root / "report/success.png", "episode_lengths_png": root / "report/episode_lengths.png",
            "provenance_out": root / "provenance.json"}


def _render(tmp_path: Path, success_rates: list[float | None], baseline_rate: float | None,
            tasks: tuple[str, ...] = ("demos",), episode_ids: list[str] = EPISODES) -> str:
    run = _make_run(tmp_path, success_rates, baseline_rate, tasks, episode_ids)
    write_report(**run)
    return run["out_html"].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The page of a run whose middle checkpoint is best, rendered once for all checks."""
    return _render(tmp_path_factory.mktemp("run"), success_rates=[0.5, 1.0, 0.5], baseline_rate=0.25)


def test_page_is_self_contained(page: str) -> None:
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', page)
    assert "<link" not in page
    assert page.count('src="data:image/png;base64,') == 3  # success, training, episode lengths
    assert page.count('src="data:image/jpeg;base64,') == 3  # first, middle and last frame of one camera
    assert page.count('src="data:video/mp4;base64,') == 1  # the best checkpoint's rollout


def test_rates_carry_their_interval_and_the_best_is_tested_against_the_final(page: str) -> None:
    headline = page.split('class="headline"')[1].split("</div>")[0]
    assert "100.0% [34.2%, 100.0%] success on 2 held-out episodes" in headline  # Wilson, 2 of 2
    assert ("Best against final on the same 2 initial states: not significantly different (exact McNemar p = 1; "
            "only the best succeeds on 1, only the final on 0)") in headline
    assert '<td class="ok" title="success in 40 steps">✓</td>' in page


def test_figures_are_written_next_to_page(tmp_path: Path) -> None:
    _render(tmp_path, success_rates=[0.5, 1.0, 0.5], baseline_rate=0.25)
    for name in ("index.html", "training.png", "success.png", "episode_lengths.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0


def test_best_checkpoint_is_highlighted(page: str) -> None:
    best_rows = re.findall(r'<tr class="best">(.*?)</tr>', page)
    assert len(best_rows) == 1
    assert ">200<" in best_rows[0] and "100.0%" in best_rows[0]
    assert "step 200" in page.split('class="headline"')[1].split("</div>")[0]


def test_baseline_and_rejections_are_reported(page: str) -> None:
    assert "25.0%" in page and "mean-trajectory baseline" in page
    for rejected in ("bad_nan", "notes", "qpos has 3 NaN values", "not_hdf5"):
        assert rejected in page


def test_user_strings_are_escaped(page: str) -> None:
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_null_success_is_said_not_invented(tmp_path: Path) -> None:
    page = _render(tmp_path, success_rates=[None, None, None], baseline_rate=None)
    assert SUCCESS_NOT_MEASURED in page
    assert not re.search(r"\d\.\d%", page.split("<body>")[1])  # no rate anywhere, 0.0% least of all


def test_empty_rejection_list_says_none_rejected(tmp_path: Path) -> None:
    run = _make_run(tmp_path, success_rates=[0.5, 0.5, 0.5], baseline_rate=0.0)
    _write_json(run["validation_json"], {"n_files": 3, "n_valid": 3, "n_rejected": 0,
                                         "rejected_by_reason": {}, "rejected": []})
    write_report(**run)
    assert "none rejected" in run["out_html"].read_text(encoding="utf-8")


@pytest.mark.parametrize(("rows", "expected_step"), [
    ([(100, 0.5, 0.1), (200, 0.9, 0.3), (300, 0.7, 0.01)], 200),   # highest success wins
    ([(100, 0.9, 0.2), (200, 0.9, 0.1), (300, 0.9, 0.3)], 200),    # tie -> lowest MSE
    ([(100, 0.9, 0.1), (200, 0.9, 0.1), (300, 0.5, 0.1)], 200),    # tie on both -> latest step
    ([(100, None, 0.2), (200, None, 0.1), (300, None, 0.3)], 200),  # nothing measured -> lowest MSE
])
def test_best_checkpoint_tie_breaking(rows: list[tuple], expected_step: int) -> None:
    evals = pd.DataFrame(rows, columns=["step", "success_rate", "open_loop_mse"]).assign(n_episodes=10)
    evals["success_rate"] = evals["success_rate"].astype(float)
    assert best_checkpoint(evals)["step"] == expected_step


def test_training_log_is_sorted_and_deduplicated(tmp_path: Path) -> None:
    """Checkpoints given out of order; step 3 is logged twice and the later checkpoint's row wins."""
    directories = []
    for step, logged_steps, loss in ((4, [3, 4], 2.0), (2, [1, 2, 3], 1.0)):
        directory = tmp_path / f"checkpoint-{step}"
        directory.mkdir()
        pd.DataFrame({"step": logged_steps, "epoch": 0, "loss": loss, "lr": 1e-4, "samples_per_s": 1.0}) \
            .to_csv(directory / "train_log.csv", index=False)
        _write_json(directory / "trainer_state.json", {"step": step, "samples_seen": step, "epoch": 0.5,
                                                       "effective_batch": 64, "layout": LAYOUT})
        directories.append(directory)
    log = load_training_log(directories)
    assert log["step"].tolist() == [1, 2, 3, 4]
    assert log.loc[log["step"] == 3, "loss"].item() == 2.0


def test_evaluations_keep_null_success_as_nan(tmp_path: Path) -> None:
    files = [_write_json(tmp_path / f"{step}.json", _evaluation(step, "p", None, 0.1)) for step in (20, 10)]
    evals = load_evaluations(files)
    assert evals["step"].tolist() == [10, 20]
    assert evals["success_rate"].isna().all()
    assert best_checkpoint(evals)["success_rate"] is None


def test_headline_states_the_batch_layout(page: str) -> None:
    assert "effective batch 64 = 16 per device x 2 accumulation x 2 processes" in page
    assert "Trained 300 optimizer steps" in page


def test_sections_come_in_reading_order(page: str) -> None:
    """The answer first, the config last and collapsed."""
    order = ['class="headline"', 'id="checkpoints"', 'id="episodes"', 'id="rollouts"', 'id="training"', 'id="data"',
             'id="plan"', 'id="provenance"', 'id="config"']
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "<details><summary>The full resolved config</summary>" in page.split('id="config"')[1]


def test_verdict_names_the_checkpoint_its_interval_and_the_comparisons(page: str) -> None:
    verdict = page.split('class="verdict">')[1].split("</p>")[0]
    assert verdict == ("Use checkpoint 200: it succeeds on 100.0% [34.2%, 100.0%] of 2 held-out initial states, "
                       "not clearly above the blind baseline (25.0%): their intervals overlap; the final checkpoint "
                       "(300, 50.0%) may differ from it by chance alone (exact McNemar p = 1).")


TWELVE = [f"episode_{index:05d}" for index in range(12)]


def test_a_best_checkpoint_significantly_better_than_the_final_is_named_with_the_test():
    """10 of 12 against 1 of 12 on the same states: 9 discordant episodes, all the best's way."""
    best, final = (_evaluation(step, f"checkpoint-{step}", rate, 0.01, episode_ids=TWELVE)
                   for step, rate in ((200, 10 / 12), (300, 1 / 12)))
    baseline = _evaluation(None, "mean-trajectory baseline", 0.0, 0.2, episode_ids=TWELVE)
    test = paired_test(best, final)
    assert (test["only_first"], test["only_second"], test["n"]) == (9, 0, 12)
    assert test["p_value"] == pytest.approx(2 / 2**9) and test["significant"]
    assert verdict(best, final, baseline, test) == (
        "Use checkpoint 200: it succeeds on 83.3% [55.2%, 95.3%] of 12 held-out initial states, clearly above the "
        "blind baseline (0.0%); it is significantly better than the final checkpoint (300, 8.3%), so training past "
        "it hurt.")


def test_the_rendered_report_names_a_significantly_better_best_checkpoint(tmp_path: Path) -> None:
    page = _render(tmp_path, success_rates=[0.5, 10 / 12, 1 / 12], baseline_rate=0.0, episode_ids=TWELVE)
    verdict_text = page.split('class="verdict">')[1].split("</p>")[0]
    assert verdict_text.startswith("Use checkpoint 200: it succeeds on 83.3% [55.2%, 95.3%] of 12 held-out")
    assert verdict_text.endswith("significantly better than the final checkpoint (300, 8.3%), so training past it hurt.")

def test_the_resolved_config_is_shown_as_the_yaml_writes_it(page: str) -> None:
    config = page.split('id="config"')[1]
    assert "<tr><td>pretrained</td><td>null</td></tr>" in config and "<tr><td>held_out</td><td>0.2</td></tr>" in config
    assert "<tr><td>generate</td><td>true</td></tr>" in config and "<tr><td>cameras</td><td>cam_high</td></tr>" in config


def test_episode_lengths_leave_out_rejected_files(tmp_path: Path) -> None:
    run = _make_run(tmp_path, [0.5, 1.0, 0.5], 0.25)
    lengths = load_episode_lengths(run["index_parquet"])
    assert list(lengths["episode_id"]) == ["a", "b", "c"] and set(lengths["split"]) == {"train", "held_out"}

def test_grid_shows_every_held_out_episode_under_every_policy(page: str) -> None:
    grid = page.split('<table class="grid">')[1].split("</table>")[0]
    assert [header for header in re.findall(r"<th>(.*?)</th>", grid)] == ["100", "200", "300", "baseline"]
    rows = re.findall(r"<tr><td class=\"episode\">(.*?)</td>(.*?)</tr>", grid)
    assert [episode for episode, _ in rows] == ["&lt;script&gt;alert(1)&lt;/script&gt;", "episode_00001"]
    marks = {episode: re.findall(r'<td class="(ok|none|partial)"', cells) for episode, cells in rows}
    assert marks["episode_00001"] == ["ok", "ok", "ok", "none"] and marks[rows[0][0]] == ["none", "ok", "none", "none"]


def test_plan_is_set_against_what_was_measured(page: str) -> None:
    plan = page.split('id="plan"')[1].split("</section>")[0]
    assert "<td>16 x 2 x 2</td><td>16 x 2 x 2</td>" in plan
    assert "3.2 GiB (estimate) of 21.6 GiB usable" in plan and "CPU run: 1.0 GiB resident" in plan
    assert "19200 samples/s" not in plan and "512.0 samples/s over 3 training jobs" in plan  # 300 steps x 64 / 37.5 s


def test_provenance_is_written_and_shown(tmp_path: Path) -> None:
    run = _make_run(tmp_path, success_rates=[0.5, 1.0, 0.5], baseline_rate=0.25)
    write_report(**run)
    provenance = json.loads(run["provenance_out"].read_text())
    assert provenance["training_machines"] == [MACHINE] and provenance["packages"]["torch"]
    code = provenance["code"]
    assert len(provenance["config_sha256"]) == 64 and (code["commit"] is not None) == (SOURCE_TREE / ".git").exists()
    assert provenance["stages"] == [
        {"stage": "validate", "jobs": 1, "wall_seconds": 12.5, "max_rss_mb": 1024.0},
        {"stage": "train", "jobs": 3, "wall_seconds": 37.5, "max_rss_mb": 1024.0},
        {"stage": "eval", "jobs": 1, "wall_seconds": 12.5, "max_rss_mb": 1024.0}]
    section = run["out_html"].read_text(encoding="utf-8").split('id="provenance"')[1]
    assert (code["commit"] or code["note"]) in section and provenance["config_sha256"] in section
    assert "Trained on trainer-1: Test CPU, 2 cores, no GPU" in section and "1 min 2 s" in section


def test_a_page_over_its_size_budget_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("rdtflow.report.page.SIZE_BUDGET_BYTES", 1000)
    run = _make_run(tmp_path, success_rates=[0.5, 1.0, 0.5], baseline_rate=0.25)
    [warning] = write_report(**run)
    assert "over its 1 kB budget" in warning and "eval.videos" in warning
    assert "over its 1 kB budget: mail may" in run["out_html"].read_text(encoding="utf-8")
    assert warning in capsys.readouterr().err
    assert SIZE_BUDGET_BYTES == 10_000_000


def test_a_page_without_a_simulator_reads_on_a_phone(tmp_path: Path) -> None:
    """Offline data (no success rates, no videos) and a long rejected path: the page still
    loads cleanly in Chromium at 390 px without running off the side."""
    page = _render(tmp_path, success_rates=[None, None, None], baseline_rate=None)
    assert "deeply_nested_recording_folder" in page
    view = view_page(tmp_path / "report" / "index.html", 390, ARTIFACTS / "report-offline-390px.png")
    assert view.console_errors == [] and view.failed_requests == [] and view.videos == []
    assert all(image["naturalWidth"] > 0 for image in view.images) and view.scroll_width <= view.inner_width


def test_a_report_run_by_hand_has_no_stage_times_and_says_so(tmp_path: Path) -> None:
    """`rdtflow report --config` outside Snakemake: no benchmark files, so no wall times."""
    run = _make_run(tmp_path, success_rates=[0.5, 1.0, 0.5], baseline_rate=0.25)
    for benchmark in run["benchmark_files"]:
        benchmark.unlink()
    write_report(**run)
    assert json.loads(run["provenance_out"].read_text())["stages"] == []
    plan = run["out_html"].read_text(encoding="utf-8").split('id="plan"')[1].split("</section>")[0]
    assert "<td>throughput</td><td>—</td><td>not measured</td>" in plan


def test_a_run_where_nothing_succeeds_says_so_instead_of_recommending_a_checkpoint(tmp_path: Path) -> None:
    page = _render(tmp_path, success_rates=[0.0, 0.0, 0.0], baseline_rate=0.0)
    verdict = page.split('class="verdict">')[1].split("</p>")[0]
    assert verdict.startswith("No checkpoint succeeded on any of the 2 held-out initial states: the success rate is "
                              "below 65.8% with 95% confidence")


def test_several_tasks_get_a_row_each_per_checkpoint(tmp_path: Path, page: str) -> None:
    two_tasks = _render(tmp_path, success_rates=[0.5, 1.0, 0.5], baseline_rate=0.0, tasks=("fold", "stack"))
    table = two_tasks.split('<section id="tasks">')[1].split("</section>")[0]
    assert "<th>step 100</th><th>step 200</th><th>step 300</th><th>baseline</th>" in table
    assert re.search(r"<tr><td>fold</td><td class=\"num\">1</td><td class=\"num\">100.0% \[20.7%, 100.0%\]</td>", table)
    assert re.search(r"<tr><td>stack</td><td class=\"num\">1</td><td class=\"num\">0.0% \[0.0%, 79.3%\]</td>", table)
    assert '<a href="#tasks">' in two_tasks and '<section id="tasks">' not in page  # one task: no table
    offline = _render(tmp_path / "offline", success_rates=[None, None, None], baseline_rate=None, tasks=("fold", "stack"))
    assert "open-loop action MSE. A run over" in offline and '<td class="num">0.04000</td>' in offline.split('id="tasks"')[1]
