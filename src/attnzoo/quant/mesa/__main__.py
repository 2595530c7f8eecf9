"""``python -m attnzoo.quant.mesa``: see :mod:`attnzoo.quant.mesa.experiment`."""

import sys

from attnzoo.quant.mesa.experiment import main

sys.exit(main())
