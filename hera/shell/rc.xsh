# The hera shell's rc: hera's aliases, the agent object, the prompt.
from hera.shell.start import start as _hera_start
_hera_start(__xonsh__)
del _hera_start
