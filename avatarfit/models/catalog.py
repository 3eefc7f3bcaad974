"""The table of model variants, without torch (configs validate against it at load time).

- ``dam``: (a) DAM. Encoder Q; prior N(0, I); L_L = KL(q || N(0, I)); lambda_L 0.01.
- ``dam_flow``: DAM-Flow. Q; unconditional flow to N(0, I); L_L = -log p(z_q); 5e-4.
- ``dam_hmc_enc``: (b) DAM-HMC-Enc. No Q: P is the encoder; L_L = KL(N(mu_p, sigma_p) || N(0, I)); 1.
- ``dam_hmc_reg``: (c) DAM-HMC-Reg. Q and D of a trained DAM, frozen; P regresses its
  mu_q, L_L = -log N(mu_q; mu_p, sigma_p); 1.
- ``lip_kl``: (d) LiP-KL. Q; prior N(mu_p, sigma_p); L_L = KL(q || p); 1.
- ``lip_flow``: (e) LiP-Flow. Q; L_L = -log N(F(z_q; h); mu_p, sigma_p) - log |det dF/dz_q|; 5e-4.

Entropy penalty (LiP-Flow, supplementary H.1: in the keypoint setting "an additional loss term [...]
penalizing the entropy of the predicted Gaussian N(mu_p, sigma_p)", weighted like lambda_L).
It is meant against the high variance of a *prior* P: DAM-KPT-Reg, LiP-KL-KPT and
LiP-Flow-KPT add ``lambda_L * H(N(mu_p, sigma_p))`` to their total. DAM-KPT-Enc does not:
there P is the VAE's posterior and its L_L = KL(N(mu_p, sigma_p) || N(0, I)) already holds
``-H`` with the same weight; adding ``+lambda_L * H`` would cancel that term exactly and
leave ``sigma_p^2 / 2`` alone, which drives sigma_p to the lower bound (a deterministic
auto-encoder). With the penalty, the optimum of the other three is still a positive
sigma_p (for a Gaussian NLL, ``sigma_p^2 = r^2 / 2`` instead of ``r^2``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Variant", "VARIANTS"]


@dataclass(frozen=True)
class Variant:
    """What a variant is made of and how its latent term is computed.

    Attributes:
        name: config name.
        title: the paper's name.
        q_encoder: has a DAM encoder Q (the decoder's latent space is Q's).
        prior: ``normal``, ``flow``, ``gaussian`` or ``cond_flow``.
        latent_loss: ``kl_normal`` (KL(q || N(0, I))), ``nll`` (-log p(z_q)),
            ``kl_p_normal`` (KL(N(mu_p, sigma_p) || N(0, I))), ``regress``
            (-log N(mu_q; mu_p, sigma_p) against a frozen pretrained DAM), ``kl_q_p``.
        lambda_latent: the paper's weight of the latent term.
        pretrained: starts from a trained DAM whose encoder and decoder stay frozen.
        entropy_penalty: in the keypoint setting, adds ``lambda_L * H(N(mu_p, sigma_p))``
            (see the module docstring).
        latent_reduction: how L_L (and the entropy term) reduce over the L latent
            dimensions by default: ``mean`` for the KL and Gaussian-regression terms (the
            DAM reference implementation averages its KL over dimensions, and the paper
            reuses its weights), ``sum`` for a flow's negative log-density (the density of
            the whole code). Measured in the training README section.
    """

    name: str
    title: str
    q_encoder: bool
    prior: str
    latent_loss: str
    lambda_latent: float
    pretrained: bool = False
    entropy_penalty: bool = False

    @property
    def latent_reduction(self) -> str:
        return "sum" if self.latent_loss == "nll" else "mean"

    @property
    def conditional(self) -> bool:
        return self.prior in ("gaussian", "cond_flow")


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("dam", "DAM", True, "normal", "kl_normal", 0.01),
        Variant("dam_flow", "DAM-Flow", True, "flow", "nll", 5e-4),
        Variant("dam_hmc_enc", "DAM-HMC-Enc", False, "gaussian", "kl_p_normal", 1.0),
        Variant("dam_hmc_reg", "DAM-HMC-Reg", True, "gaussian", "regress", 1.0, pretrained=True, entropy_penalty=True),
        Variant("lip_kl", "LiP-KL", True, "gaussian", "kl_q_p", 1.0, entropy_penalty=True),
        Variant("lip_flow", "LiP-Flow", True, "cond_flow", "nll", 5e-4, entropy_penalty=True),
    )
}
