import pytest
import torch

from avatarfit.models import FlowConfig, LatentFlow

CONFIG = FlowConfig(layers=4, hidden=16, blocks_per_layer=2, batch_norm=True)


def _ready(context):
    torch.manual_seed(0)
    flow = LatentFlow(6, CONFIG, context=context)
    # ActNorm initialises from the first training batch; then evaluate in eval mode.
    h = torch.randn(64, context) if context else None
    flow.train()
    with torch.no_grad():
        flow(torch.randn(64, 6) * 3 + 1, h)
    # Make LU and coupling weights non-trivial.
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow.eval()


@pytest.mark.parametrize("context", [None, 5])
def test_inverse_of_forward_is_identity(context):
    flow = _ready(context)
    z = torch.randn(8, 6, dtype=torch.float32)
    h = torch.randn(8, context) if context else None
    zp, logdet = flow(z, h)
    back, inv_logdet = flow.inverse(zp, h)
    torch.testing.assert_close(back, z, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(inv_logdet, -logdet, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(zp, z)


@pytest.mark.parametrize("context", [None, 5])
def test_logdet_equals_autograd_jacobian(context):
    flow = _ready(context).double()
    z = torch.randn(3, 6, dtype=torch.float64)
    h = torch.randn(3, context, dtype=torch.float64) if context else None
    _, logdet = flow(z, h)
    for i in range(3):
        hi = h[i:i + 1] if context else None
        J = torch.autograd.functional.jacobian(lambda x: flow(x[None], hi)[0][0], z[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(J).logabsdet, atol=1e-8, rtol=1e-8)


def test_context_is_checked():
    flow = _ready(5)
    with pytest.raises(ValueError, match="conditional"):
        flow(torch.randn(2, 6))
    with pytest.raises(ValueError, match="unconditional"):
        _ready(None)(torch.randn(2, 6), torch.randn(2, 5))


@pytest.mark.parametrize("context", [None, 5])
def test_save_and_load_keep_actnorm_initialised(context, tmp_path):
    flow = _ready(context)
    torch.save(flow.state_dict(), tmp_path / "flow.pt")
    torch.manual_seed(1)
    loaded = LatentFlow(6, CONFIG, context=context)
    loaded.load_state_dict(torch.load(tmp_path / "flow.pt", weights_only=True))
    states = [m.initialized for m in loaded.modules() if type(m).__name__ == "ActNorm"]
    assert states and all(bool(s) for s in states)
    z, h = torch.randn(8, 6) * 5 - 2, (torch.randn(8, context) if context else None)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(z, h), flow.eval()(z, h))
        # In training mode a loaded flow must not initialise ActNorm again from this batch.
        loaded.train(), flow.train()
        torch.testing.assert_close(loaded(z, h), flow(z, h))
