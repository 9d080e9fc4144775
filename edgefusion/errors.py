"""Errors that the command line reports as one line on stderr.

Every problem caused by the user's input (files, folders, recipes, bundles,
missing weights) raises :class:`UserError`; the CLI prints ``edgefusion: <message>``
and exits with :attr:`UserError.exit_code` (2), without a traceback.
"""


class UserError(Exception):
    """Bad input or environment; reported as one line, exit code 2."""

    exit_code = 2


class GateError(UserError):
    """An accuracy gate failed (INT8 model too far from FP32); exit code 3."""

    exit_code = 3


class BudgetError(UserError):
    """A latency check exceeded the target's budget; exit code 4."""

    exit_code = 4
