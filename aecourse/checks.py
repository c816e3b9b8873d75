"""Check cells: every chapter ends by asserting the claims its prose makes.

>>> claims = Claims()
>>> claims.check(0.004 < 0.01, "the linear AE ends within 1% of the PCA optimum")
>>> claims.report()          # prints "All 1 claims of this chapter hold."

A failed claim raises :class:`ClaimFailed` at once, naming the claim. On the
random stand-in data used to time full-size runs (``AECOURSE_DATASET=standin``)
the data have no structure, so claims about structure cannot hold: there a
failure is reported as a warning instead, and the timing run goes on.
"""

from __future__ import annotations

import warnings


class ClaimFailed(AssertionError):
    """A claim the chapter makes did not hold in this execution."""


class Claims:
    def __init__(self, standin: bool = False):
        self.standin = standin
        self.held: list[str] = []
        self.failed: list[str] = []

    def check(self, condition: bool, statement: str) -> None:
        """Assert ``condition``; ``statement`` says in words what is claimed (with the numbers)."""
        if bool(condition):
            self.held.append(statement)
            return
        self.failed.append(statement)
        if self.standin:
            warnings.warn(f"claim not checked on stand-in data: {statement}", stacklevel=2)
            return
        raise ClaimFailed(f"The chapter claims: {statement} -- but this run does not bear it out.")

    def report(self) -> None:
        for s in self.held:
            print(f"  holds: {s}")
        if self.failed:
            print(f"{len(self.failed)} claim(s) not checked (random stand-in data).")
        else:
            print(f"All {len(self.held)} claims of this chapter hold.")
