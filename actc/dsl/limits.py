"""Every limit the recipe language enforces, in one place: what a recipe may read, how deep
it may nest, and how big its values may grow. Each is far above what a real recipe needs and
turns what used to be a crash (RecursionError, MemoryError, a hang on /dev/zero) into a
one-line error at the recipe's position."""
from __future__ import annotations

MAX_RECIPE_BYTES = 1 << 20      # a recipe or imported file
MAX_IMPORT_DEPTH = 16           # import chains
MAX_NESTING = 100               # expressions, blocks, and nested values
MAX_INT = (1 << 63) - 1         # integers are 64-bit, as Paddle's attrs
MAX_STRING = 1 << 20            # characters in a string value
MAX_LIST = 1 << 20              # elements in a list value
MAX_ARRAY = 1 << 24             # elements in an array a primitive builds
MAX_CARET = 120                 # characters of a source line quoted under an error
