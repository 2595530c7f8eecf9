"""Registry entries, one module per group of mechanisms. Importing this package registers them all, in the
order below (families together), which is the order ``attnzoo list`` shows."""

# local family
from attnzoo.catalog import neighborhood  # noqa: F401, I001
from attnzoo.catalog import halo  # noqa: F401
from attnzoo.catalog import window  # noqa: F401
from attnzoo.catalog import sliding_window  # noqa: F401

# linear, kernel and recurrent family
from attnzoo.catalog import linear  # noqa: F401
from attnzoo.catalog import kernel  # noqa: F401
from attnzoo.catalog import recurrent  # noqa: F401
