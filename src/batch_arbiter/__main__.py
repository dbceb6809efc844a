import sys

from batch_arbiter.cli import main

sys.exit(main())
