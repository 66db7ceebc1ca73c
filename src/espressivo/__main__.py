import sys

from espressivo.cli import main

sys.exit(main())
