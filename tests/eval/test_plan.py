"""The tables' cells: what each table needs, what is n/a, what tables share."""

from avatarfit.eval.plan import MODELS, TABLES, TASKS, Cell, plan_cells, table_models

ALL = tuple(MODELS)


def test_every_table_row_and_column_is_known():
    for table in TABLES.values():
        assert all(m in MODELS for m in table.rows)
        assert all(task in TASKS for task, _, _ in table.columns)


def test_na_cells_follow_the_paper():
    # DAM has no prior encoder; DAM-*-Reg's Q is its frozen DAM's (n/a in Tables 7-8)
    assert not Cell("dam", "decode_prior", True).applies()
    assert not Cell("dam_hmc_reg", "decode_encoder", True).applies()
    assert Cell("dam_hmc_reg", "decode_prior", True).applies()
    assert Cell("dam_hmc_enc", "decode_encoder", True).applies()  # its encoder is P (paper: same numbers)


def test_cells_are_shared_and_pose_fits_come_last():
    cells = plan_cells((6, 7, 8, 9), ALL)
    keys = [c.key for c in cells]
    assert len(keys) == len(set(keys))
    assert keys.count("dam/frontal") == 1  # Tables 6, 7 and 8
    assert "dam/decode_encoder_noLL" not in keys  # decodings do not depend on L_L
    assert {"dam/keypoints", "dam/keypoints_noLL", "dam/hmc", "dam/hmc_noLL"} <= set(keys)
    pose = [k for k, c in enumerate(cells) if TASKS[c.task].pose]
    assert len(pose) == 5 and pose == list(range(len(cells) - 5, len(cells)))
    # 4 prior decodings per setting, 4 + 3 encoder decodings and DAM-Flow's, 6 fits per model
    # and setting (DAM's frontal and masked fits shared), DAM-Flow's frontal fit, 5 pose fits
    assert len(cells) == 8 + 8 + 30 + 26 + 1 + 5


def test_subsets_keep_what_a_row_needs():
    assert table_models((7,), ("dam_hmc_reg", "lip_flow_hmc", "dam")) == ["dam", "dam_hmc_reg", "lip_flow_hmc"]
    assert table_models((6,), ("dam", "lip_flow_kpt", "lip_kl_hmc")) == ["dam", "lip_flow_kpt"]
    cells = plan_cells((9,), ("lip_flow_hmc",))
    assert [c.key for c in cells] == ["lip_flow_hmc/hmc_pose"]
