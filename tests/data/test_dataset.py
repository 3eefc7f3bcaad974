import torch

from avatarfit.data import Capture, CaptureDataset


def test_samples(tiny_capture):
    cap = Capture(tiny_capture)
    ds = CaptureDataset(cap)
    assert len(ds) == 3 * 4
    s = ds[5]
    T = cap.texture_size
    H, W = cap.image_size(s["camera"])
    assert s["texture"].shape == (3, T, T)
    assert s["verts"].shape == (cap.topology.num_verts, 3)
    assert s["photo"].shape == (3, H, W)
    assert s["K"].shape == (3, 3) and s["t"].shape == (3,)
    assert torch.isclose(s["view"].norm(), torch.tensor(1.0))
    # Normalised vertices map back to the stored ones.
    raw = cap.vertices(s["segment"], s["frame"])
    assert torch.allclose(cap.stats.denormalise_verts(s["verts"]), raw, atol=1e-3)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["photo"].shape == (4, 3, H, W)
