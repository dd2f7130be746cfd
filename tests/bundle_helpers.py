"""Edited copies of a bundle, for the tests of what loading a bundle refuses
(test_runtime.py, test_reliability.py)."""

import json
import shutil


def set_field(path, value):
    """An edit setting ``manifest[path[0]][path[1]]... = value``."""

    def edit(manifest):
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def edited_copy(bundle, out, edit=None, *, seal=True):
    """Copy ``bundle`` to ``out`` with its manifest changed by ``edit(manifest)``; sealed
    again (a valid manifest saying something else), or with ``seal=False`` left with the
    original's digest, as a hand edit would."""
    from sertiny.runtime.bundle import write_manifest

    shutil.copytree(bundle, out)
    manifest = json.loads((out / "sertiny.json").read_text())
    if edit:
        edit(manifest)
    if seal:
        write_manifest(out, manifest)
    else:
        (out / "sertiny.json").write_text(json.dumps(manifest))
    return out
