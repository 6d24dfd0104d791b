"""What changes during a fit: the best state, the warm start, the topology guard, the counts.

The ``fit_objective.Objective`` is a function of its arguments; a ``FitState`` is where a fit
keeps what it has found. Only an evaluation whose relaxation converged and whose skyrmion number
is the reference one can become the best state (``consider``); the best state is the warm start
of the next relaxation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .objective import Evaluation

CHARGE_TOLERANCE = 0.5
"""A relaxed state whose skyrmion number differs from the reference by more than this is a
different configuration (a collapsed or created skyrmion); it never becomes the best state."""
RELAX_TOL_CEILING = 1e-6
RELAX_TOL_FACTOR = 1e-4
"""Inner relaxations stop at ``max(relax_tol, min(RELAX_TOL_CEILING, RELAX_TOL_FACTOR sqrt(L_best)))``:
far from the optimum a coarser equilibrium steers the step as well, and the image error it leaves
stays well below the current residual ``~ sqrt(L_best)``."""


@dataclass
class FitState:
    """The running state of a fit.

    Attributes
    ----------
    warm : tensor (nz, ny, nx, 3)
        Where the next relaxation starts (the best state's ``m``, or the start).
    charge : float, array or None
        The reference skyrmion number (an array: one per image of a field series; None: taken from
        the first converged evaluation).
    relax_tol : float
        The tightest inner relaxation tolerance.
    best : Evaluation or None
        The best evaluation of the current stage.
    tangent : tensor or None
        The last Jacobian's tangent responses (the next solve's starting guess).
    history : list of float
        The best loss after each outer iteration, over all stages.
    evaluations, lost_topology, unconverged : int
        Counts of evaluations, of those refused for another skyrmion number, and of those whose
        relaxation did not converge.
    keep_topology : bool
        Refuse evaluations with another skyrmion number (a fit of the material keeps the
        configuration); without, the misfit alone decides (a texture reconstruction may create or
        remove a skyrmion the start got wrong).
    """

    warm: torch.Tensor
    charge: float | None = None
    relax_tol: float = 1e-8
    best: Evaluation | None = None
    tangent: torch.Tensor | None = None
    history: list = field(default_factory=list)
    evaluations: int = 0
    lost_topology: int = 0
    unconverged: int = 0
    keep_topology: bool = True

    def consider(self, evaluation: Evaluation) -> bool:
        """Count an evaluation and make it the best state if it is valid and better; returns
        whether it was taken."""
        self.evaluations += 1
        if not evaluation.converged:
            self.unconverged += 1
            return False
        if self.charge is None:
            self.charge = evaluation.charge
        if self.keep_topology and _charge_change(evaluation.charge, self.charge) > CHARGE_TOLERANCE:
            self.lost_topology += 1
            return False
        if not math.isfinite(evaluation.loss):
            return False
        if self.best is None or evaluation.loss < self.best.loss:
            self.best = evaluation
            self.warm = evaluation.m
            return True
        return False

    def valid(self, evaluation: Evaluation) -> bool:
        """Whether an evaluation converged with the reference skyrmion number."""
        return evaluation.converged and (self.charge is None or _charge_change(evaluation.charge, self.charge)
                                         <= CHARGE_TOLERANCE)

    def new_stage(self):
        """Forget the best loss (the bias changed); the warm start stays."""
        self.best = None

    def tolerance(self) -> float:
        """The inner relaxation tolerance for the next evaluation (see ``RELAX_TOL_FACTOR``)."""
        if self.best is None:
            return max(self.relax_tol, RELAX_TOL_CEILING)
        coarse = RELAX_TOL_FACTOR * math.sqrt(max(self.best.loss, 0.0))
        return max(self.relax_tol, min(RELAX_TOL_CEILING, coarse))


def _charge_change(charge, reference) -> float:
    """The largest change of skyrmion number (charges are floats, or arrays of one per image)."""
    return float(np.max(np.abs(np.subtract(charge, reference))))
