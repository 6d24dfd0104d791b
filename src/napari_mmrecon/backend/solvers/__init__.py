"""Solvers on the model of ``physics``: energy minimization and LLG dynamics (``relax``), Krylov
solves, the tangent-space Hessian and Newton steps, and the differentiable equilibrium used by the
inverse problems."""
