"""Every limit the recipe language enforces, in one place: what a recipe may read, how deep
it may nest, and how big its values may grow. Each is far above what a real recipe needs and
turns what used to be a crash (RecursionError, MemoryError, a hang on /dev/zero) into a
one-line error at the recipe's position."""
from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_RECIPE_BYTES = 1 << 20      # a recipe or imported file
MAX_IMPORT_DEPTH = 16           # import chains
MAX_NESTING = 100               # expressions, blocks, and nested values
MAX_INT = (1 << 63) - 1         # integers are 64-bit, as Paddle's attrs
MAX_STRING = 1 << 20            # characters in a string value
MAX_LIST = 1 << 20              # elements in a list value
MAX_ARRAY = 1 << 24             # elements in an array a primitive builds


class FileProblem(Exception):
    """Why a recipe file cannot be read (the caller adds where)."""


def read_recipe(path: str | Path, *, need_suffix: bool) -> str:
    """The text of a recipe file, read bounded: only regular files, at most MAX_RECIPE_BYTES,
    UTF-8; with ``need_suffix`` (imports) only ``.actc`` files, links resolved first, so a
    link cannot make actc read (and echo) a file that is not a recipe."""
    real = Path(os.path.realpath(path))
    if need_suffix and real.suffix != ".actc":
        raise FileProblem("not a .actc file")
    try:
        st = os.stat(real)
    except OSError as e:
        raise FileProblem(e.strerror or str(e)) from None
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem("not a regular file")
    if st.st_size > MAX_RECIPE_BYTES:
        raise FileProblem(f"larger than {MAX_RECIPE_BYTES} bytes")
    try:
        with open(real, "rb") as fh:
            data = fh.read(MAX_RECIPE_BYTES + 1)
    except OSError as e:
        raise FileProblem(e.strerror or str(e)) from None
    if len(data) > MAX_RECIPE_BYTES:
        raise FileProblem(f"larger than {MAX_RECIPE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileProblem("not UTF-8 text") from None
