"""The instance file: hera's one on-disk format for an agent, built, installed or cached.

A package of its own because the format is a contract with every family and
every copy a user keeps: :mod:`.format` (the header model, load and save),
:mod:`.codec` (the arrays after the header), :mod:`.scanner` (a bounded JSON
scanner that says where a file is wrong), :mod:`.checksums` (CRC-32s of pieces joined) and
:mod:`.atomic` (write-then-rename, the previous good save). What families and
commands use is re-exported here; numpy is imported only when arrays are
touched.
"""

from hera.instance.format import (
    CALLSIGN_PATTERN,
    FORMAT_VERSION,
    FamilyRef,
    Header,
    Installation,
    Instance,
    InstanceFile,
    InstanceFileError,
    InstanceTooLarge,
    OnBytes,
    load,
    load_or_previous,
    now,
    read_header,
    save,
    transcribe,
    verify_file,
)

__all__ = [
    "CALLSIGN_PATTERN",
    "FORMAT_VERSION",
    "FamilyRef",
    "Header",
    "Installation",
    "Instance",
    "InstanceFile",
    "InstanceFileError",
    "InstanceTooLarge",
    "OnBytes",
    "load",
    "load_or_previous",
    "now",
    "read_header",
    "save",
    "transcribe",
    "verify_file",
]
