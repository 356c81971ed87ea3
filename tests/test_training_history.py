"""Training time read back from an Ultralytics results.csv, across resumes."""

from __future__ import annotations

from yolo_optim.training.history import epoch_rows, training_seconds


def test_a_resumed_run_adds_each_start_s_epochs(tmp_path) -> None:
    # Ultralytics pads its header; `time` counts from each (re)start of the trainer
    rows = ["                  epoch,                   time,  metrics/mAP50-95(B)",
            "1,60.5,0.01", "2,120.0,0.02", "3,181.0,0.03",  # killed during epoch 4
            "4,70.0,0.04", "5,130.0,0.05"]  # resumed: the clock starts again
    (tmp_path / "results.csv").write_text("\n".join(rows) + "\n")
    assert training_seconds(tmp_path) == 181.0 + 130.0


def test_no_results_file_is_none_not_zero(tmp_path) -> None:
    assert training_seconds(tmp_path) is None


def test_epoch_rows_keep_the_row_written_after_a_resume(tmp_path) -> None:
    # killed after writing epoch 2's row but before the checkpoint: the resumed run trains epoch 2 again
    rows = ["   epoch,   time,  metrics/mAP50-95(B)", "1,60.0,0.10", "2,120.0,0.20", "2,65.0,0.25", "3,125.0,0.30"]
    (tmp_path / "results.csv").write_text("\n".join(rows) + "\n")
    got = epoch_rows(tmp_path)
    assert [r["epoch"] for r in got] == ["1", "2", "3"]
    assert got[1]["metrics/mAP50-95(B)"] == "0.25"
    assert epoch_rows(tmp_path / "missing") == []
